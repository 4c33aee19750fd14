// SPDX-License-Identifier: Apache-2.0
#include "agent/rootfs.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

namespace berth::agent {
namespace {

namespace fs = std::filesystem;

constexpr long kOverlayMagic = 0x794c7630;  // OVERLAYFS_SUPER_MAGIC

Error InvalidParameter(const std::string& message) {
  return Error{400, "InvalidParameterException", message, {}};
}

bool IsMountPoint(const std::string& path) {
  struct statx stx;
  if (::statx(AT_FDCWD, path.c_str(), AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &stx) == 0 &&
      (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) != 0) {
    return (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0;
  }
  struct stat self;
  struct stat parent;
  if (::lstat(path.c_str(), &self) != 0 ||
      ::lstat(fs::path(path).parent_path().c_str(), &parent) != 0) {
    return false;
  }
  return self.st_dev != parent.st_dev;
}

bool IsOverlayMount(const std::string& path) {
  struct statfs sfs;
  return IsMountPoint(path) && ::statfs(path.c_str(), &sfs) == 0 &&
         static_cast<long>(sfs.f_type) == kOverlayMagic;
}

// Overlayfs splits lowerdir on ':' and the option string on ','; paths
// holding those (or the escape character) are refused instead of escaped.
Status CheckOptionPath(const std::string& path) {
  if (path.find_first_of(",:\\") != std::string::npos) {
    return InvalidParameter("path \"" + path + "\" contains ',', ':' or '\\', which overlay " +
                            "mount options cannot carry");
  }
  return Ok();
}

std::string BuildOptions(const std::vector<std::string>& lowers_top_first, const std::string& upper,
                         const std::string& work) {
  std::string opts = "lowerdir=";
  for (size_t i = 0; i < lowers_top_first.size(); ++i) {
    if (i > 0) {
      opts += ':';
    }
    opts += lowers_top_first[i];
  }
  opts += ",upperdir=" + upper + ",workdir=" + work;
  return opts;
}

// Longest directory that is an ancestor of every path (all absolute, clean).
fs::path CommonParent(const std::vector<std::string>& paths) {
  fs::path common = fs::path(paths.front()).parent_path();
  for (const auto& p : paths) {
    fs::path parent = fs::path(p).parent_path();
    fs::path shared;
    auto a = common.begin();
    auto b = parent.begin();
    while (a != common.end() && b != parent.end() && *a == *b) {
      shared /= *a;
      ++a;
      ++b;
    }
    common = shared;
  }
  return common.empty() ? fs::path("/") : common;
}

// Mounts from a child process so that changing the working directory, which
// relative lower paths need, does not disturb this process's other threads.
Status MountFromDirectory(const std::string& dir, const std::string& target,
                          const std::string& opts) {
  pid_t pid = ::fork();
  if (pid < 0) {
    return ServerError("fork for overlay mount: " + std::string(std::strerror(errno)));
  }
  if (pid == 0) {
    // Only async-signal-safe calls between fork and _exit.
    if (::chdir(dir.c_str()) != 0) {
      ::_exit(errno & 0xff);
    }
    if (::mount("overlay", target.c_str(), "overlay", 0, opts.c_str()) != 0) {
      ::_exit(errno & 0xff);
    }
    ::_exit(0);
  }
  int wstatus = 0;
  while (::waitpid(pid, &wstatus, 0) < 0) {
    if (errno != EINTR) {
      return ServerError("wait for overlay mount helper: " + std::string(std::strerror(errno)));
    }
  }
  if (!WIFEXITED(wstatus)) {
    return ServerError("overlay mount helper died");
  }
  int err = WEXITSTATUS(wstatus);
  if (err != 0) {
    return ServerError("mount overlay at " + target + " (relative to " + dir +
                       "): " + std::strerror(err));
  }
  return Ok();
}

}  // namespace

Result<std::string> MountRootfs(const std::vector<std::string>& lower_dirs_bottom_first,
                                const std::string& container_dir, bool read_only) {
  (void)read_only;  // See the header: the runtime makes the root read-only.
  if (lower_dirs_bottom_first.empty()) {
    return InvalidParameter("an overlay rootfs needs at least one layer");
  }
  std::error_code ec;
  fs::path base = fs::absolute(container_dir, ec).lexically_normal();
  std::string rootfs = (base / "rootfs").string();
  std::string upper = (base / "upper").string();
  std::string work = (base / "work").string();

  std::vector<std::string> lowers_top_first;
  for (auto it = lower_dirs_bottom_first.rbegin(); it != lower_dirs_bottom_first.rend(); ++it) {
    std::string dir = fs::absolute(*it, ec).lexically_normal().string();
    while (dir.size() > 1 && dir.back() == '/') {
      dir.pop_back();
    }
    BERTH_TRY(CheckOptionPath(dir));
    if (!fs::is_directory(dir, ec)) {
      return InvalidParameter("layer directory " + dir + " does not exist");
    }
    lowers_top_first.push_back(dir);
  }
  BERTH_TRY(CheckOptionPath(upper));
  BERTH_TRY(CheckOptionPath(work));

  for (const auto& dir : {rootfs, upper, work}) {
    fs::create_directories(dir, ec);
    if (ec) {
      return ServerError("create " + dir + ": " + ec.message());
    }
  }
  ::chmod(rootfs.c_str(), 0755);
  ::chmod(upper.c_str(), 0755);

  if (IsOverlayMount(rootfs)) {
    return rootfs;
  }

  const size_t limit = static_cast<size_t>(::sysconf(_SC_PAGESIZE)) - 1;
  std::string opts = BuildOptions(lowers_top_first, upper, work);
  if (opts.size() <= limit) {
    if (::mount("overlay", rootfs.c_str(), "overlay", 0, opts.c_str()) != 0) {
      return ServerError("mount overlay at " + rootfs + ": " + std::strerror(errno));
    }
    return rootfs;
  }

  // Too long: name the lower dirs relative to their common parent.
  fs::path parent = CommonParent(lowers_top_first);
  std::vector<std::string> relative;
  for (const auto& dir : lowers_top_first) {
    relative.push_back(fs::path(dir).lexically_relative(parent).string());
  }
  std::string short_opts = BuildOptions(relative, upper, work);
  if (short_opts.size() > limit) {
    return Error{400,
                 "RootfsTooManyLayers",
                 "overlay mount options for " + std::to_string(lowers_top_first.size()) +
                     " layers take " + std::to_string(short_opts.size()) +
                     " bytes even with relative paths; the kernel accepts " + std::to_string(limit),
                 {}};
  }
  BERTH_TRY(MountFromDirectory(parent.string(), rootfs, short_opts));
  return rootfs;
}

Status UnmountRootfs(const std::string& container_dir) {
  std::error_code ec;
  fs::path base = fs::absolute(container_dir, ec).lexically_normal();
  std::string rootfs = (base / "rootfs").string();

  // Several mounts may be stacked on the rootfs; take them all off.
  for (int i = 0; i < 16 && IsMountPoint(rootfs); ++i) {
    if (::umount2(rootfs.c_str(), UMOUNT_NOFOLLOW) == 0) {
      continue;
    }
    int err = errno;
    if (err == EINVAL) {
      break;  // not a mount point after all
    }
    if (err != EBUSY || ::umount2(rootfs.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) != 0) {
      return ServerError("unmount " + rootfs + ": " + std::strerror(errno));
    }
  }
  if (IsMountPoint(rootfs)) {
    return ServerError("unmount " + rootfs + ": still mounted");
  }

  // Nothing is mounted any more, so removal cannot reach into a layer.
  for (const char* sub : {"rootfs", "upper", "work"}) {
    fs::remove_all(base / sub, ec);
    if (ec) {
      return ServerError("remove " + (base / sub).string() + ": " + ec.message());
    }
  }
  return Ok();
}

}  // namespace berth::agent
