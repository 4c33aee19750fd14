// SPDX-License-Identifier: Apache-2.0
#include "agent/layer_unpack.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <set>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace berth::agent {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kWhiteoutPrefix = ".wh.";
constexpr std::string_view kOpaqueMarker = ".wh..wh..opq";
constexpr std::string_view kMetaPrefix = ".wh..wh.";
constexpr std::string_view kOverlayXattrPrefix = "trusted.overlay.";

// libarchive's disk writer calls umask(0) and restores it in every
// archive_write_header; two writers doing that at once can leave the process
// with umask 0. All calls that touch the umask go through this lock.
std::mutex& UmaskMutex() {
  static std::mutex mu;
  return mu;
}

class UniqueFd {
 public:
  UniqueFd() = default;

  explicit UniqueFd(int fd) : fd_(fd) {}

  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      Reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }

  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  ~UniqueFd() { Reset(); }

  int get() const { return fd_; }

  bool valid() const { return fd_ >= 0; }

  void Reset() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

Error LayerInvalid(const std::string& message) {
  return Error{400, "LayerInvalid", message, {}};
}

std::string Quote(std::string_view s) {
  return "\"" + std::string(s) + "\"";
}

std::string Join(const std::vector<std::string>& comps, size_t n) {
  std::string out;
  for (size_t i = 0; i < n && i < comps.size(); ++i) {
    if (i > 0) {
      out += '/';
    }
    out += comps[i];
  }
  return out;
}

std::string Join(const std::vector<std::string>& comps) {
  return Join(comps, comps.size());
}

// Splits a tar path into clean components. Absolute paths and `..` are
// refused outright rather than cleaned, because a layer that carries them
// was not produced by a well-behaved image builder.
Result<std::vector<std::string>> SplitEntryPath(const char* raw, const char* what) {
  if (raw == nullptr) {
    return LayerInvalid(std::string(what) + " without a path");
  }
  std::string_view path(raw);
  if (path.empty()) {
    return LayerInvalid(std::string(what) + " with an empty path");
  }
  if (path.front() == '/') {
    return LayerInvalid(std::string(what) + " " + Quote(path) + " has an absolute path");
  }
  std::vector<std::string> comps;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t slash = path.find('/', pos);
    if (slash == std::string_view::npos) {
      slash = path.size();
    }
    std::string_view comp = path.substr(pos, slash - pos);
    pos = slash + 1;
    if (comp.empty() || comp == ".") {
      continue;
    }
    if (comp == "..") {
      return LayerInvalid(std::string(what) + " " + Quote(path) + " contains a '..' component");
    }
    comps.emplace_back(comp);
  }
  return comps;
}

long Openat2(int dirfd, const char* path, int flags, uint64_t resolve) {
  struct open_how how;
  std::memset(&how, 0, sizeof(how));
  how.flags = static_cast<uint64_t>(flags);
  how.resolve = resolve;
  return ::syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

enum class Missing { kStop, kCreate };

// Opens the directory made of the first `n` components of `comps`, beneath
// `root_fd`, refusing to pass through any symlink. With Missing::kStop, a
// missing component ends the walk early and an invalid fd is returned: the
// rest of the path does not exist yet, so nothing on it can be a symlink.
// `subject` names the entry in error messages.
Result<UniqueFd> OpenDirBeneath(int root_fd, const std::vector<std::string>& comps, size_t n,
                                Missing missing, const std::string& subject) {
  if (n == 0) {
    int fd = ::openat(root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
      return ServerError("open layer root: " + std::string(std::strerror(errno)));
    }
    return UniqueFd(fd);
  }

  // Fast path: the kernel resolves the whole prefix and refuses symlinks and
  // escapes itself.
  std::string prefix = Join(comps, n);
  long fd =
      Openat2(root_fd, prefix.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW,
              RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV);
  if (fd >= 0) {
    return UniqueFd(static_cast<int>(fd));
  }
  int err = errno;
  if (err != ENOENT && err != ENOSYS && err != ELOOP && err != EXDEV && err != ENOTDIR &&
      err != EPERM && err != E2BIG) {
    return ServerError("open " + Quote(prefix) + " in layer: " + std::strerror(err));
  }

  // Slow path, also used to name the offending component: walk one
  // component at a time without following anything.
  UniqueFd dir(::openat(root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir.valid()) {
    return ServerError("open layer root: " + std::string(std::strerror(errno)));
  }
  for (size_t i = 0; i < n; ++i) {
    const std::string& comp = comps[i];
    struct stat st;
    if (::fstatat(dir.get(), comp.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno != ENOENT) {
        return ServerError("stat " + Quote(Join(comps, i + 1)) +
                           " in layer: " + std::strerror(errno));
      }
      if (missing == Missing::kStop) {
        return UniqueFd();
      }
      if (::mkdirat(dir.get(), comp.c_str(), 0755) != 0 && errno != EEXIST) {
        return ServerError("create directory " + Quote(Join(comps, i + 1)) +
                           " in layer: " + std::strerror(errno));
      }
    } else if (S_ISLNK(st.st_mode)) {
      return LayerInvalid(subject + " passes through the symlink " + Quote(Join(comps, i + 1)));
    } else if (!S_ISDIR(st.st_mode)) {
      return LayerInvalid(subject + " has a parent " + Quote(Join(comps, i + 1)) +
                          " that is not a directory");
    }
    UniqueFd next(
        ::openat(dir.get(), comp.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!next.valid()) {
      if (errno == ELOOP || errno == ENOTDIR) {
        return LayerInvalid(subject + " passes through " + Quote(Join(comps, i + 1)));
      }
      return ServerError("open " + Quote(Join(comps, i + 1)) +
                         " in layer: " + std::strerror(errno));
    }
    dir = std::move(next);
  }
  return dir;
}

// Removes whatever sits at `name` in `dir_fd` (file, symlink or whole tree).
Status RemoveAt(int dir_fd, const std::string& name, const std::string& abs_path) {
  struct stat st;
  if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return errno == ENOENT ? Ok() : ServerError("stat " + abs_path + ": " + std::strerror(errno));
  }
  if (!S_ISDIR(st.st_mode)) {
    if (::unlinkat(dir_fd, name.c_str(), 0) != 0) {
      return ServerError("remove " + abs_path + ": " + std::strerror(errno));
    }
    return Ok();
  }
  // The parent was reached without crossing a symlink and remove_all never
  // follows symlinks, so the tree removed stays inside the layer.
  std::error_code ec;
  fs::remove_all(abs_path, ec);
  if (ec) {
    return ServerError("remove " + abs_path + ": " + ec.message());
  }
  return Ok();
}

struct Unpacker {
  std::string blob_path;
  std::string dest;  // canonical absolute path of the destination
  UniqueFd root_fd;
  archive* in = nullptr;
  archive* out = nullptr;
  UnpackStats stats;
  // Paths (joined components) of entries not created, so that hard links
  // to them are skipped as well instead of failing.
  std::set<std::string> skipped;

  ~Unpacker() { Release(); }

  // Frees both archives. After a failure this must run before the
  // destination is removed: freeing the writer applies its deferred
  // directory fixups.
  void Release() {
    if (in != nullptr) {
      archive_read_free(in);
      in = nullptr;
    }
    if (out != nullptr) {
      std::lock_guard<std::mutex> lock(UmaskMutex());
      archive_write_free(out);
      out = nullptr;
    }
  }

  Status Open();
  Status Run();
  Status HandleEntry(archive_entry* entry);
  Status ApplyWhiteout(const std::vector<std::string>& comps, const std::string& entry);
  Status ApplyOpaque(const std::vector<std::string>& comps, const std::string& entry);
  Status CheckHardlink(archive_entry* entry, const std::string& entry_path, bool* skip);
  Status WriteEntry(archive_entry* entry, const std::string& entry_path);
  Error WriteError(const std::string& entry_path, const char* step);
};

Status Unpacker::Open() {
  in = archive_read_new();
  if (in == nullptr) {
    return ServerError("archive_read_new failed");
  }
  archive_read_support_filter_all(in);
  archive_read_support_format_tar(in);
  archive_read_support_format_gnutar(in);
  if (archive_read_open_filename(in, blob_path.c_str(), 1 << 16) != ARCHIVE_OK) {
    int err = archive_errno(in);
    std::string msg = archive_error_string(in) ? archive_error_string(in) : "unknown error";
    if (err == ENOENT || err == EACCES || err == EISDIR) {
      return ServerError("open layer blob " + blob_path + ": " + msg);
    }
    return LayerInvalid("layer blob " + blob_path + " is not a readable tar stream: " + msg);
  }

  {
    std::lock_guard<std::mutex> lock(UmaskMutex());
    out = archive_write_disk_new();
  }
  if (out == nullptr) {
    return ServerError("archive_write_disk_new failed");
  }
  // Absolute paths are produced by this code (destination + checked relative
  // path), so ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS cannot be used; the
  // relative path was checked for being absolute before the prefix was added.
  // No user/group name lookup is installed: numeric ids from the layer are
  // used as they are, never mapped through the host's account database.
  int flags = ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME |
              ARCHIVE_EXTRACT_XATTR | ARCHIVE_EXTRACT_SECURE_SYMLINKS |
              ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_SPARSE;
  archive_write_disk_set_options(out, flags);
  return Ok();
}

Status Unpacker::Run() {
  while (true) {
    archive_entry* entry = nullptr;
    int r = archive_read_next_header(in, &entry);
    if (r == ARCHIVE_EOF) {
      break;
    }
    if (r < ARCHIVE_WARN) {
      const char* msg = archive_error_string(in);
      return LayerInvalid("read layer " + blob_path + " after " + std::to_string(stats.entries) +
                          " entries: " + (msg ? msg : "unknown error"));
    }
    ++stats.entries;
    BERTH_TRY(HandleEntry(entry));
  }

  int r = archive_write_close(out);
  if (r < ARCHIVE_WARN) {
    const char* msg = archive_error_string(out);
    return ServerError("finish layer " + blob_path + ": " + (msg ? msg : "unknown error"));
  }
  return Ok();
}

Status Unpacker::HandleEntry(archive_entry* entry) {
  const char* raw = archive_entry_pathname(entry);
  if (raw == nullptr) {
    raw = archive_entry_pathname_utf8(entry);
  }
  auto comps = SplitEntryPath(raw, "entry");
  if (!comps.ok()) {
    return comps.error();
  }
  if (comps->empty()) {
    // The layer's own root ("./"): the lower dir keeps its own attributes.
    ++stats.skipped_other;
    return Ok();
  }
  std::string entry_path = Join(*comps);
  const std::string& base = comps->back();

  if (base.compare(0, kWhiteoutPrefix.size(), kWhiteoutPrefix) == 0) {
    if (base == kOpaqueMarker) {
      return ApplyOpaque(*comps, entry_path);
    }
    if (base.compare(0, kMetaPrefix.size(), kMetaPrefix) == 0) {
      // Other `.wh..wh.` names are aufs bookkeeping (hard link dirs); they
      // carry nothing an overlay needs.
      ++stats.skipped_other;
      return Ok();
    }
    return ApplyWhiteout(*comps, entry_path);
  }

  mode_t type = archive_entry_filetype(entry);
  if (type == AE_IFCHR || type == AE_IFBLK || type == AE_IFIFO) {
    ++stats.skipped_devices;
    skipped.insert(entry_path);
    return Ok();
  }
  if (type == AE_IFSOCK) {
    ++stats.skipped_other;
    skipped.insert(entry_path);
    return Ok();
  }

  // Every parent must be a real directory inside the layer.
  auto parent = OpenDirBeneath(root_fd.get(), *comps, comps->size() - 1, Missing::kStop,
                               "entry " + Quote(entry_path));
  if (!parent.ok()) {
    return parent.error();
  }

  bool skip = false;
  BERTH_TRY(CheckHardlink(entry, entry_path, &skip));
  if (skip) {
    ++stats.skipped_devices;
    skipped.insert(entry_path);
    return Ok();
  }
  return WriteEntry(entry, entry_path);
}

Status Unpacker::ApplyWhiteout(const std::vector<std::string>& comps, const std::string& entry) {
  std::string name = comps.back().substr(kWhiteoutPrefix.size());
  if (name.empty() || name == "." || name == "..") {
    return LayerInvalid("whiteout entry " + Quote(entry) + " names no file");
  }
  auto parent = OpenDirBeneath(root_fd.get(), comps, comps.size() - 1, Missing::kCreate,
                               "whiteout entry " + Quote(entry));
  if (!parent.ok()) {
    return parent.error();
  }
  std::vector<std::string> target(comps.begin(), comps.end() - 1);
  target.push_back(name);
  std::string abs_target = dest + "/" + Join(target);
  BERTH_TRY(RemoveAt(parent->get(), name, abs_target));
  if (::mknodat(parent->get(), name.c_str(), S_IFCHR | 0000, makedev(0, 0)) != 0) {
    return ServerError("create whiteout " + abs_target + ": " + std::strerror(errno));
  }
  ++stats.whiteouts;
  return Ok();
}

Status Unpacker::ApplyOpaque(const std::vector<std::string>& comps, const std::string& entry) {
  auto dir = OpenDirBeneath(root_fd.get(), comps, comps.size() - 1, Missing::kCreate,
                            "opaque marker entry " + Quote(entry));
  if (!dir.ok()) {
    return dir.error();
  }
  if (::fsetxattr(dir->get(), "trusted.overlay.opaque", "y", 1, 0) != 0) {
    return ServerError("mark " + Quote(Join(comps, comps.size() - 1)) +
                       " opaque: " + std::strerror(errno));
  }
  ++stats.opaque_dirs;
  return Ok();
}

Status Unpacker::CheckHardlink(archive_entry* entry, const std::string& entry_path, bool* skip) {
  const char* raw = archive_entry_hardlink(entry);
  if (raw == nullptr) {
    return Ok();
  }
  auto target = SplitEntryPath(raw, "hard link target");
  if (!target.ok()) {
    return LayerInvalid("entry " + Quote(entry_path) + ": " + target.error().message);
  }
  if (target->empty()) {
    return LayerInvalid("entry " + Quote(entry_path) + " is a hard link to the layer root");
  }
  std::string target_path = Join(*target);
  if (skipped.count(target_path) > 0) {
    *skip = true;
    return Ok();
  }
  auto parent =
      OpenDirBeneath(root_fd.get(), *target, target->size() - 1, Missing::kStop,
                     "entry " + Quote(entry_path) + " (a hard link to " + Quote(target_path) + ")");
  if (!parent.ok()) {
    return parent.error();
  }
  struct stat st;
  if (!parent->valid() ||
      ::fstatat(parent->get(), target->back().c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return LayerInvalid("entry " + Quote(entry_path) + " is a hard link to " + Quote(target_path) +
                        ", which is not in the layer");
  }
  if (S_ISDIR(st.st_mode)) {
    return LayerInvalid("entry " + Quote(entry_path) + " is a hard link to the directory " +
                        Quote(target_path));
  }
  archive_entry_set_hardlink(entry, (dest + "/" + target_path).c_str());
  return Ok();
}

Error Unpacker::WriteError(const std::string& entry_path, const char* step) {
  int err = archive_errno(out);
  const char* msg = archive_error_string(out);
  std::string text =
      std::string(step) + " entry " + Quote(entry_path) + ": " + (msg ? msg : "unknown error");
  switch (err) {
    case ENOSPC:
    case EDQUOT:
    case EIO:
    case EROFS:
    case ENOMEM:
    case EMFILE:
    case ENFILE:
      return ServerError(text);
    default:
      return LayerInvalid(text);
  }
}

Status Unpacker::WriteEntry(archive_entry* entry, const std::string& entry_path) {
  // Drop overlay xattrs: a lower dir carrying trusted.overlay.redirect or
  // metacopy would make the overlay look up files elsewhere.
  std::vector<std::pair<std::string, std::string>> xattrs;
  archive_entry_xattr_reset(entry);
  const char* xname = nullptr;
  const void* xvalue = nullptr;
  size_t xsize = 0;
  bool dropped = false;
  while (archive_entry_xattr_next(entry, &xname, &xvalue, &xsize) == ARCHIVE_OK) {
    if (std::string_view(xname).substr(0, kOverlayXattrPrefix.size()) == kOverlayXattrPrefix) {
      dropped = true;
      continue;
    }
    xattrs.emplace_back(xname, std::string(static_cast<const char*>(xvalue), xsize));
  }
  if (dropped) {
    archive_entry_xattr_clear(entry);
    for (const auto& [k, v] : xattrs) {
      archive_entry_xattr_add_entry(entry, k.c_str(), v.data(), v.size());
    }
  }

  std::string abs_path = dest + "/" + entry_path;
  if (abs_path.size() >= PATH_MAX) {
    // LIMITATION: libarchive changes the process working directory to write
    // paths longer than PATH_MAX, which is unsafe with other threads; such
    // entries are refused.
    return LayerInvalid("entry " + Quote(entry_path) + " has a path too long to unpack");
  }
  archive_entry_set_pathname(entry, abs_path.c_str());

  int r;
  {
    std::lock_guard<std::mutex> lock(UmaskMutex());
    r = archive_write_header(out, entry);
  }
  if (r < ARCHIVE_WARN) {
    return WriteError(entry_path, "create");
  }

  if (archive_entry_size(entry) > 0) {
    const void* buf = nullptr;
    size_t size = 0;
    la_int64_t offset = 0;
    while (true) {
      int rr = archive_read_data_block(in, &buf, &size, &offset);
      if (rr == ARCHIVE_EOF) {
        break;
      }
      if (rr < ARCHIVE_WARN) {
        const char* msg = archive_error_string(in);
        return LayerInvalid("read data of entry " + Quote(entry_path) + ": " +
                            (msg ? msg : "unknown error"));
      }
      if (archive_write_data_block(out, buf, size, offset) < ARCHIVE_WARN) {
        return WriteError(entry_path, "write");
      }
      stats.bytes += size;
    }
  }
  if (archive_write_finish_entry(out) < ARCHIVE_WARN) {
    return WriteError(entry_path, "finish");
  }

  if (archive_entry_hardlink(entry) != nullptr) {
    ++stats.hardlinks;
  } else {
    switch (archive_entry_filetype(entry)) {
      case AE_IFDIR:
        ++stats.directories;
        break;
      case AE_IFLNK:
        ++stats.symlinks;
        break;
      default:
        ++stats.files;
        break;
    }
  }
  return Ok();
}

Status PrepareDest(const std::string& dest_dir, std::string* canonical) {
  if (::mkdir(dest_dir.c_str(), 0755) != 0) {
    if (errno != EEXIST) {
      return ServerError("create " + dest_dir + ": " + std::strerror(errno));
    }
    std::error_code ec;
    if (!fs::is_directory(fs::symlink_status(dest_dir, ec)) || !fs::is_empty(dest_dir, ec)) {
      return ServerError("unpack destination " + dest_dir + " exists and is not an empty dir");
    }
  }
  char buf[PATH_MAX];
  if (::realpath(dest_dir.c_str(), buf) == nullptr) {
    return ServerError("resolve " + dest_dir + ": " + std::strerror(errno));
  }
  *canonical = buf;
  return Ok();
}

}  // namespace

Status UnpackLayer(const std::string& blob_path, const std::string& dest_dir, UnpackStats* stats) {
  Unpacker u;
  u.blob_path = blob_path;
  BERTH_TRY(PrepareDest(dest_dir, &u.dest));

  Status status = [&]() -> Status {
    u.root_fd = UniqueFd(::open(u.dest.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!u.root_fd.valid()) {
      return ServerError("open " + u.dest + ": " + std::strerror(errno));
    }
    BERTH_TRY(u.Open());
    return u.Run();
  }();

  if (stats != nullptr) {
    *stats = u.stats;
  }
  u.Release();
  if (!status.ok()) {
    std::error_code ec;
    fs::remove_all(u.dest, ec);
  }
  return status;
}

}  // namespace berth::agent
