#include "registry/blob_store.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <vector>

#include "common/ids.h"

namespace berth::registry {

namespace fs = std::filesystem;

struct UploadState {
  std::mutex mu;  // held by the one writer
  int fd = -1;
  uint64_t size = 0;
  Sha256 hash;
  bool hash_valid = false;  // `hash` covers exactly `size` bytes of the file

  ~UploadState() {
    if (fd >= 0) {
      ::close(fd);
    }
  }
};

namespace {

Error UploadUnknown(const std::string& id) {
  return Error{404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry", id};
}

Error IoError(const std::string& what, int err) {
  return ServerError(what + ": " + ::strerror(err));
}

std::chrono::system_clock::time_point ModifiedTime(const struct stat& st) {
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::seconds(st.st_mtim.tv_sec) + std::chrono::nanoseconds(st.st_mtim.tv_nsec)));
}

Status WriteAll(int fd, const char* data, size_t size, uint64_t offset) {
  while (size > 0) {
    ssize_t n = ::pwrite(fd, data, size, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return IoError("write upload", errno);
    }
    data += n;
    size -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return Ok();
}

Status FsyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    return IoError("open " + dir, errno);
  }
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) {
    return IoError("fsync " + dir, err);
  }
  return Ok();
}

// Feeds the first `size` bytes of `path` to `hash`.
Status HashFile(const std::string& path, uint64_t size, Sha256& hash) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return IoError("open " + path, errno);
  }
  std::vector<char> buf(1 << 20);
  uint64_t done = 0;
  Status st = Ok();
  while (done < size) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), size - done));
    ssize_t n = ::pread(fd, buf.data(), want, static_cast<off_t>(done));
    if (n <= 0) {
      st = IoError("read " + path, n < 0 ? errno : EIO);
      break;
    }
    hash.Update(buf.data(), static_cast<size_t>(n));
    done += static_cast<uint64_t>(n);
  }
  ::close(fd);
  return st;
}

bool IsHex64(std::string_view s) {
  if (s.size() != 64) {
    return false;
  }
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}

}  // namespace

// --- UploadWriter ---

UploadWriter::UploadWriter(BlobStore& store, std::string id, std::shared_ptr<UploadState> state)
    : store_(store), id_(std::move(id)), state_(std::move(state)) {
  flushed_ = state_->size;
}

UploadWriter::~UploadWriter() {
  if (state_) {
    state_->mu.unlock();
  }
}

Status UploadWriter::Write(const char* data, size_t size) {
  UploadState& s = *state_;
  if (published_) {
    return ServerError("upload already published");
  }
  // Hash first: if the write then fails, the state is marked for a re-hash.
  s.hash.Update(data, size);
  Status st = WriteAll(s.fd, data, size, s.size);
  if (!st.ok()) {
    s.hash_valid = false;
    return st;
  }
  s.size += size;
  written_ += size;
  if (s.size - flushed_ >= BlobStore::kWritebackChunk) {
    // Start write-back of what has arrived so far without waiting for it; the
    // disk then works while the network delivers the rest.
    ::sync_file_range(s.fd, static_cast<off_t>(flushed_), static_cast<off_t>(s.size - flushed_),
                      SYNC_FILE_RANGE_WRITE);
    flushed_ = s.size;
  }
  return Ok();
}

uint64_t UploadWriter::size() const {
  return state_->size;
}

std::string UploadWriter::Digest() const {
  return state_->hash.Digest();
}

Result<Published> UploadWriter::Publish(std::string_view expected) {
  UploadState& s = *state_;
  std::string actual = s.hash.Digest();
  if (actual != expected) {
    return Error{400, "DIGEST_INVALID", "provided digest did not match uploaded content",
                 std::string(expected)};
  }
  // The bytes must be on disk before their name is; a blob already stored
  // needs no second copy, so no flush either.
  if (!store_.Stat(actual) && ::fdatasync(s.fd) != 0) {
    return IoError("fsync upload", errno);
  }
  auto present = store_.PublishFile(store_.UploadPath(id_), actual);
  if (!present.ok()) {
    return present.error();
  }
  published_ = true;
  Published out{actual, s.size, *present};
  store_.Forget(id_);
  return out;
}

// --- BlobStore ---

BlobStore::BlobStore(std::string root) : root_(std::move(root)) {}

BlobStore::~BlobStore() = default;

Result<std::unique_ptr<BlobStore>> BlobStore::Open(const std::string& root) {
  std::error_code ec;
  fs::create_directories(root + "/blobs/sha256", ec);
  if (!ec) {
    fs::create_directories(root + "/uploads", ec);
  }
  if (ec) {
    return ServerError("cannot create registry dirs under " + root + ": " + ec.message());
  }
  // All 256 fan-out directories up front: publishing a blob then never has
  // to create (and fsync) a directory on the way.
  static const char kHex[] = "0123456789abcdef";
  bool created = false;
  for (int i = 0; i < 256; ++i) {
    std::string dir = root + "/blobs/sha256/" + kHex[i >> 4] + kHex[i & 15];
    if (::mkdir(dir.c_str(), 0755) == 0) {
      created = true;
    } else if (errno != EEXIST) {
      return IoError("mkdir " + dir, errno);
    }
  }
  if (created) {
    BERTH_TRY(FsyncDir(root + "/blobs/sha256"));
  }
  // Temporary files of Put calls interrupted by a crash.
  for (const auto& entry : fs::directory_iterator(root + "/uploads", ec)) {
    if (entry.path().extension() == ".tmp") {
      fs::remove(entry.path(), ec);
    }
  }
  return std::unique_ptr<BlobStore>(new BlobStore(root));
}

std::string BlobStore::BlobPath(std::string_view digest) const {
  std::string_view hex = DigestHex(digest);
  std::string path;
  path.reserve(root_.size() + 90);
  path.append(root_).append("/blobs/sha256/").append(hex.substr(0, 2)).append("/").append(hex);
  return path;
}

std::string BlobStore::UploadPath(const std::string& id) const {
  return root_ + "/uploads/" + id;
}

std::optional<BlobStat> BlobStore::Stat(std::string_view digest) const {
  struct stat st;
  if (::stat(BlobPath(digest).c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return std::nullopt;
  }
  return BlobStat{static_cast<uint64_t>(st.st_size), ModifiedTime(st)};
}

void BlobStore::Touch(std::string_view digest) const {
  ::utimensat(AT_FDCWD, BlobPath(digest).c_str(), nullptr, 0);
}

Status BlobStore::EnsureBlobDir(std::string_view digest) const {
  std::string parent = root_ + "/blobs/sha256";
  std::string dir = parent + "/" + std::string(DigestHex(digest).substr(0, 2));
  if (::mkdir(dir.c_str(), 0755) == 0) {
    // A new directory entry must itself be durable before blobs land in it.
    return FsyncDir(parent);
  }
  if (errno != EEXIST) {
    return IoError("mkdir " + dir, errno);
  }
  return Ok();
}

Result<bool> BlobStore::PublishFile(const std::string& path, std::string_view digest) {
  BERTH_TRY(EnsureBlobDir(digest));
  std::string target = BlobPath(digest);
  struct stat st;
  if (::stat(target.c_str(), &st) == 0) {
    // Same bytes are already stored: keep one copy, and restart its grace
    // period so a collection running now does not take it away.
    ::unlink(path.c_str());
    ::utimensat(AT_FDCWD, target.c_str(), nullptr, 0);
    return true;
  }
  if (::rename(path.c_str(), target.c_str()) != 0) {
    return IoError("publish blob " + std::string(digest), errno);
  }
  std::string dir = target.substr(0, target.rfind('/'));
  BERTH_TRY(FsyncDir(dir));
  return false;
}

Result<std::string> BlobStore::Put(std::string_view data) {
  std::string digest = Sha256Digest(data);
  if (Stat(digest)) {
    return digest;
  }
  std::string tmp = root_ + "/uploads/put-" + RandomHex(8) + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    return IoError("create " + tmp, errno);
  }
  Status st = WriteAll(fd, data.data(), data.size(), 0);
  if (st.ok() && ::fdatasync(fd) != 0) {
    st = IoError("fsync " + tmp, errno);
  }
  ::close(fd);
  if (!st.ok()) {
    ::unlink(tmp.c_str());
    return st.error();
  }
  auto published = PublishFile(tmp, digest);
  if (!published.ok()) {
    ::unlink(tmp.c_str());
    return published.error();
  }
  return digest;
}

Result<std::string> BlobStore::Read(std::string_view digest, size_t max_size) const {
  auto st = Stat(digest);
  if (!st) {
    return Error{404, "BLOB_UNKNOWN", "blob unknown to registry", std::string(digest)};
  }
  if (st->size > max_size) {
    return ServerError("blob " + std::string(digest) + " is larger than expected");
  }
  return ReadFileRange(BlobPath(digest), 0, st->size);
}

Status BlobStore::Remove(std::string_view digest) {
  if (::unlink(BlobPath(digest).c_str()) != 0 && errno != ENOENT) {
    return IoError("remove blob " + std::string(digest), errno);
  }
  return Ok();
}

std::vector<std::pair<std::string, BlobStat>> BlobStore::List() const {
  std::vector<std::pair<std::string, BlobStat>> out;
  std::error_code ec;
  for (const auto& dir : fs::directory_iterator(root_ + "/blobs/sha256", ec)) {
    if (!dir.is_directory(ec)) {
      continue;
    }
    for (const auto& file : fs::directory_iterator(dir.path(), ec)) {
      std::string name = file.path().filename().string();
      if (!IsHex64(name)) {
        continue;
      }
      struct stat st;
      if (::stat(file.path().c_str(), &st) != 0) {
        continue;
      }
      out.emplace_back(std::string(kSha256Prefix) + name,
                       BlobStat{static_cast<uint64_t>(st.st_size), ModifiedTime(st)});
    }
  }
  return out;
}

Status BlobStore::CreateUpload(const std::string& id) {
  int fd = ::open(UploadPath(id).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    return IoError("create upload " + id, errno);
  }
  auto state = std::make_shared<UploadState>();
  state->fd = fd;
  state->hash_valid = true;
  std::lock_guard lock(mu_);
  states_[id] = std::move(state);
  return Ok();
}

std::optional<uint64_t> BlobStore::UploadSize(const std::string& id) const {
  struct stat st;
  if (::stat(UploadPath(id).c_str(), &st) != 0) {
    return std::nullopt;
  }
  return static_cast<uint64_t>(st.st_size);
}

std::shared_ptr<UploadState> BlobStore::StateFor(const std::string& id) {
  std::lock_guard lock(mu_);
  auto& slot = states_[id];
  if (!slot) {
    slot = std::make_shared<UploadState>();
  }
  return slot;
}

void BlobStore::Forget(const std::string& id) {
  std::lock_guard lock(mu_);
  states_.erase(id);
}

Result<std::unique_ptr<UploadWriter>> BlobStore::OpenUpload(const std::string& id) {
  std::string path = UploadPath(id);
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return UploadUnknown(id);
  }
  std::shared_ptr<UploadState> state = StateFor(id);
  if (!state->mu.try_lock()) {
    return Error{409, "BLOB_UPLOAD_INVALID", "another request is writing to this upload", id};
  }
  std::unique_ptr<UploadWriter> writer(new UploadWriter(*this, id, state));
  if (state->fd < 0) {
    state->fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (state->fd < 0) {
      return UploadUnknown(id);
    }
  }
  struct stat now;
  if (::fstat(state->fd, &now) != 0) {
    return IoError("stat upload " + id, errno);
  }
  uint64_t on_disk = static_cast<uint64_t>(now.st_size);
  if (!state->hash_valid || state->size != on_disk) {
    // After a restart (or a failed write) the hash is rebuilt from the bytes
    // on disk, so the upload resumes where the file ends.
    state->hash.Reset();
    BERTH_TRY(HashFile(path, on_disk, state->hash));
    state->size = on_disk;
    state->hash_valid = true;
    writer->flushed_ = on_disk;
  }
  return writer;
}

Status BlobStore::RemoveUpload(const std::string& id) {
  Forget(id);
  if (::unlink(UploadPath(id).c_str()) != 0 && errno != ENOENT) {
    return IoError("remove upload " + id, errno);
  }
  return Ok();
}

std::vector<UploadFile> BlobStore::ListUploads() const {
  std::vector<UploadFile> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root_ + "/uploads", ec)) {
    struct stat st;
    if (::stat(entry.path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      continue;
    }
    out.push_back(UploadFile{entry.path().filename().string(), static_cast<uint64_t>(st.st_size),
                             ModifiedTime(st)});
  }
  return out;
}

Result<std::string> ReadFileRange(const std::string& path, uint64_t offset, uint64_t length) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return IoError("open " + path, errno);
  }
  std::string out(static_cast<size_t>(length), '\0');
  uint64_t done = 0;
  while (done < length) {
    ssize_t n = ::pread(fd, out.data() + done, static_cast<size_t>(length - done),
                        static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      break;
    }
    done += static_cast<uint64_t>(n);
  }
  ::close(fd);
  out.resize(static_cast<size_t>(done));
  return out;
}

}  // namespace berth::registry
