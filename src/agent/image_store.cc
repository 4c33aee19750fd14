// SPDX-License-Identifier: Apache-2.0
#include "agent/image_store.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "agent/layer_unpack.h"

namespace berth::agent {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kSha256Prefix = "sha256:";
constexpr std::string_view kTempPrefix = ".tmp-";

Error InvalidDigest(const std::string& digest) {
  return Error{400, "InvalidDigest", "invalid digest \"" + digest + "\"", {}};
}

std::string Hex(const unsigned char* data, size_t size) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(size * 2);
  for (size_t i = 0; i < size; ++i) {
    out += kDigits[data[i] >> 4];
    out += kDigits[data[i] & 0xf];
  }
  return out;
}

std::string HexOf(const std::string& digest) {
  return digest.substr(kSha256Prefix.size());
}

// Makes a rename or new file durable by syncing the directory holding it.
void SyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

bool IsValidDigest(const std::string& digest) {
  if (digest.size() != kSha256Prefix.size() + 64 || digest.rfind(kSha256Prefix, 0) != 0) {
    return false;
  }
  for (size_t i = kSha256Prefix.size(); i < digest.size(); ++i) {
    char c = digest[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}

Result<std::string> Sha256OfFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return ServerError("open " + path + ": " + std::strerror(errno));
  }
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  std::vector<char> buf(1 << 16);
  while (true) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      int err = errno;
      ::close(fd);
      EVP_MD_CTX_free(ctx);
      return ServerError("read " + path + ": " + std::strerror(err));
    }
    if (n == 0) {
      break;
    }
    EVP_DigestUpdate(ctx, buf.data(), static_cast<size_t>(n));
  }
  ::close(fd);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, md, &len);
  EVP_MD_CTX_free(ctx);
  return std::string(kSha256Prefix) + Hex(md, len);
}

std::string Sha256OfString(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return std::string(kSha256Prefix) + Hex(md, len);
}

ImageStore::ImageStore(std::string root_dir) : root_(std::move(root_dir)) {}

Status ImageStore::Init() {
  std::error_code ec;
  for (const char* sub : {"blobs/sha256", "layers/sha256", "tmp"}) {
    fs::create_directories(fs::path(root_) / sub, ec);
    if (ec) {
      return ServerError("create image store directory " + root_ + "/" + sub + ": " + ec.message());
    }
  }

  // Whatever sits under a temporary name was never completed.
  for (const auto& entry : fs::directory_iterator(fs::path(root_) / "tmp", ec)) {
    fs::remove_all(entry.path(), ec);
  }
  for (const auto& entry : fs::directory_iterator(fs::path(root_) / "layers/sha256", ec)) {
    std::string name = entry.path().filename().string();
    if (name.rfind(kTempPrefix, 0) == 0) {
      fs::remove_all(entry.path(), ec);
    }
  }
  return Ok();
}

std::string ImageStore::BlobPath(const std::string& digest) const {
  return root_ + "/blobs/sha256/" + HexOf(digest);
}

bool ImageStore::HasBlob(const std::string& digest) const {
  struct stat st;
  return IsValidDigest(digest) && ::stat(BlobPath(digest).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string ImageStore::UniqueSuffix() {
  uint64_t n;
  {
    std::lock_guard<std::mutex> lock(mu_);
    n = ++counter_;
  }
  auto now = std::chrono::steady_clock::now().time_since_epoch().count();
  return std::to_string(::getpid()) + "-" + std::to_string(n) + "-" + std::to_string(now);
}

Result<std::string> ImageStore::CreateTempFile(const std::string& hint) {
  std::string path = root_ + "/tmp/" + hint + "-" + UniqueSuffix();
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    return ServerError("create " + path + ": " + std::strerror(errno));
  }
  ::close(fd);
  return path;
}

Status ImageStore::CommitBlob(const std::string& digest, const std::string& temp_path,
                              BlobCheck check) {
  if (!IsValidDigest(digest)) {
    ::unlink(temp_path.c_str());
    return InvalidDigest(digest);
  }
  if (check == BlobCheck::kVerify) {
    auto actual = Sha256OfFile(temp_path);
    if (!actual.ok()) {
      ::unlink(temp_path.c_str());
      return actual.error();
    }
    if (*actual != digest) {
      ::unlink(temp_path.c_str());
      return Error{400,
                   "BlobDigestMismatch",
                   "blob content has digest " + *actual + ", expected " + digest,
                   {}};
    }
  }

  int fd = ::open(temp_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
  std::string final_path = BlobPath(digest);
  if (::rename(temp_path.c_str(), final_path.c_str()) != 0) {
    int err = errno;
    ::unlink(temp_path.c_str());
    return ServerError("store blob " + digest + ": " + std::strerror(err));
  }
  SyncDir(root_ + "/blobs/sha256");
  return Ok();
}

Result<std::string> ImageStore::ReadBlob(const std::string& digest, uint64_t max_size) const {
  if (!IsValidDigest(digest)) {
    return InvalidDigest(digest);
  }
  std::string path = BlobPath(digest);
  std::error_code ec;
  uint64_t size = fs::file_size(path, ec);
  if (ec) {
    return Error{404, "BlobNotFound", "blob " + digest + " is not in the image store", {}};
  }
  if (size > max_size) {
    return Error{400,
                 "BlobTooLarge",
                 "blob " + digest + " has " + std::to_string(size) + " bytes, more than " +
                     std::to_string(max_size),
                 {}};
  }
  std::ifstream in(path, std::ios::binary);
  std::string data(size, '\0');
  if (!in.read(data.data(), static_cast<std::streamsize>(size))) {
    return ServerError("read blob " + digest + " failed");
  }
  return data;
}

std::string ImageStore::LayerPath(const std::string& digest) const {
  return root_ + "/layers/sha256/" + HexOf(digest) + "/fs";
}

bool ImageStore::HasLayer(const std::string& digest) const {
  struct stat st;
  return IsValidDigest(digest) && ::stat(LayerPath(digest).c_str(), &st) == 0 &&
         S_ISDIR(st.st_mode);
}

Result<std::string> ImageStore::EnsureLayerUnpacked(const std::string& digest,
                                                    const std::string& blob_path) {
  if (!IsValidDigest(digest)) {
    return InvalidDigest(digest);
  }

  std::shared_ptr<InFlight> flight;
  {
    std::unique_lock<std::mutex> lock(mu_);
    auto it = in_flight_.find(digest);
    if (it != in_flight_.end()) {
      std::shared_ptr<InFlight> other = it->second;
      other->cv.wait(lock, [&] { return other->done; });
      if (other->error) {
        return *other->error;
      }
      return LayerPath(digest);
    }
    if (HasLayer(digest)) {
      return LayerPath(digest);
    }
    flight = std::make_shared<InFlight>();
    in_flight_[digest] = flight;
  }

  Result<std::string> result = UnpackNow(digest, blob_path);

  {
    std::lock_guard<std::mutex> lock(mu_);
    flight->done = true;
    if (!result.ok()) {
      flight->error = result.error();
    }
    in_flight_.erase(digest);
  }
  flight->cv.notify_all();
  return result;
}

Result<std::string> ImageStore::UnpackNow(const std::string& digest, const std::string& blob_path) {
  std::string layers_dir = root_ + "/layers/sha256";
  std::string temp_dir = layers_dir + "/" + std::string(kTempPrefix) + HexOf(digest).substr(0, 12) +
                         "-" + UniqueSuffix();
  if (::mkdir(temp_dir.c_str(), 0700) != 0) {
    return ServerError("create " + temp_dir + ": " + std::strerror(errno));
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++unpacks_;
  }

  Status unpacked = UnpackLayer(blob_path, temp_dir + "/fs");
  std::error_code ec;
  if (!unpacked.ok()) {
    fs::remove_all(temp_dir, ec);
    Error err = unpacked.error();
    err.message = "unpack layer " + digest + ": " + err.message;
    return err;
  }

  // Flush the unpacked files before the rename publishes them, so a crash
  // cannot leave a final-named layer with missing data.
  int fd = ::open(temp_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::syncfs(fd);
    ::close(fd);
  }
  ::chmod(temp_dir.c_str(), 0755);

  std::string final_dir = layers_dir + "/" + HexOf(digest);
  if (::rename(temp_dir.c_str(), final_dir.c_str()) != 0) {
    int err = errno;
    fs::remove_all(temp_dir, ec);
    // Another process published the same layer first; its copy is as good.
    if ((err == EEXIST || err == ENOTEMPTY) && HasLayer(digest)) {
      return LayerPath(digest);
    }
    return ServerError("publish layer " + digest + ": " + std::strerror(err));
  }
  SyncDir(layers_dir);
  return LayerPath(digest);
}

Status ImageStore::CollectUnused(const std::set<std::string>& in_use_digests) {
  auto stats = CollectUnused(in_use_digests, std::chrono::seconds(0),
                             std::chrono::system_clock::now());
  if (!stats.ok()) {
    return stats.error();
  }
  return Ok();
}

void ImageStore::MarkUsed(const std::set<std::string>& digests,
                          std::chrono::system_clock::time_point now) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& digest : digests) {
    auto& last = last_used_[digest];
    last = std::max(last, now);
  }
}

Result<CollectStats> ImageStore::CollectUnused(const std::set<std::string>& in_use_digests,
                                               std::chrono::seconds grace,
                                               std::chrono::system_clock::time_point now) {
  std::unique_lock<std::shared_mutex> collect_lock(collect_mu_);
  std::error_code ec;
  CollectStats stats;
  const std::string layers_dir = root_ + "/layers/sha256";
  const std::string blobs_dir = root_ + "/blobs/sha256";

  // Every digest present on disk, as a layer, a blob or both.
  std::set<std::string> present;
  for (const std::string& dir : {layers_dir, blobs_dir}) {
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      std::string digest = std::string(kSha256Prefix) + entry.path().filename().string();
      if (IsValidDigest(digest)) {
        present.insert(digest);
      }
    }
    if (ec) {
      return ServerError("list " + dir + ": " + ec.message());
    }
  }

  // Decide under mu_, so no unpack starts or publishes a layer meanwhile, and move doomed
  // layers out of their final names there (cheap and atomic: no caller sees a half-deleted
  // layer); the slow deletion happens afterwards.
  std::vector<fs::path> doomed_layers;
  std::vector<std::string> doomed_blobs;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& digest : present) {
      if (in_use_digests.count(digest) > 0 || in_flight_.count(digest) > 0) {
        ++stats.kept_in_use;
        continue;
      }
      auto last = std::chrono::system_clock::time_point::min();
      if (auto it = last_used_.find(digest); it != last_used_.end()) {
        last = it->second;
      }
      // The layer's own directory (renamed into place once complete) and the blob file.
      for (const std::string& path : {layers_dir + "/" + HexOf(digest), BlobPath(digest)}) {
        struct stat st;
        if (::stat(path.c_str(), &st) == 0) {
          auto written = std::chrono::system_clock::time_point(
              std::chrono::duration_cast<std::chrono::system_clock::duration>(
                  std::chrono::seconds(st.st_mtim.tv_sec) +
                  std::chrono::nanoseconds(st.st_mtim.tv_nsec)));
          last = std::max(last, written);
        }
      }
      if (grace.count() > 0 && last > now - grace) {
        ++stats.kept_recent;
        continue;
      }
      last_used_.erase(digest);
      doomed_blobs.push_back(BlobPath(digest));
      fs::path layer = layers_dir + "/" + HexOf(digest);
      fs::path moved = layers_dir + "/" + std::string(kTempPrefix) + "gc-" +
                       HexOf(digest).substr(0, 12) + "-" + std::to_string(++counter_);
      if (::rename(layer.c_str(), moved.c_str()) == 0) {
        doomed_layers.push_back(moved);
      }
    }
  }

  Status status = Ok();
  for (const auto& path : doomed_layers) {
    fs::remove_all(path, ec);
    if (ec && status.ok()) {
      status = ServerError("remove layer " + path.string() + ": " + ec.message());
    } else if (!ec) {
      ++stats.layers_removed;
    }
  }
  for (const auto& path : doomed_blobs) {
    std::error_code rm_ec;
    if (fs::remove(path, rm_ec)) {
      ++stats.blobs_removed;
    } else if (rm_ec && status.ok()) {
      status = ServerError("remove blob " + path + ": " + rm_ec.message());
    }
  }
  if (!status.ok()) {
    return status.error();
  }
  return stats;
}

std::shared_lock<std::shared_mutex> ImageStore::PinAgainstCollection() {
  return std::shared_lock<std::shared_mutex>(collect_mu_);
}

uint64_t ImageStore::unpacks_performed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return unpacks_;
}

}  // namespace berth::agent
