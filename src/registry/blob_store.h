// The content-addressed blob store on disk, shared by every repository.
//
// Layout under the registry root (<data-dir>/registry):
//   blobs/sha256/<first 2 hex>/<64 hex>   published blobs, immutable
//   uploads/<upload id>                   uploads in progress
//
// An upload is a file that grows chunk by chunk; its SHA-256 is computed
// while the bytes stream through and kept in memory between requests (and
// recomputed from the file after a restart). Publishing checks the digest,
// fsyncs the file and renames it into blobs/, then fsyncs the directory, so a
// blob is visible only once it is complete and durable. A blob pushed to two
// repositories is stored once; which repositories hold which blob is recorded
// by the Registry in the store, not here.
//
// Thread-safety: every method may be called from any thread. One upload is
// written by one request at a time; a second writer is refused.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "registry/digest.h"
#include "server/http_types.h"

namespace berth::registry {

struct BlobStat {
  uint64_t size = 0;
  std::chrono::system_clock::time_point modified;
};

struct UploadFile {
  std::string id;
  uint64_t size = 0;
  std::chrono::system_clock::time_point modified;
};

// What publishing an upload did.
struct Published {
  std::string digest;
  uint64_t size = 0;
  bool already_present = false;  // the blob existed; the upload's copy was dropped
};

class BlobStore;
struct UploadState;

// Appends a request body to an upload, hashing as it goes. Holds the upload
// for its lifetime.
class UploadWriter : public http::BodySink {
 public:
  ~UploadWriter() override;
  Status Write(const char* data, size_t size) override;

  // Bytes in the upload so far.
  uint64_t size() const;

  // Bytes this writer appended.
  uint64_t written() const { return written_; }

  // The digest of the bytes so far.
  std::string Digest() const;

  // Publishes the upload as a blob if its digest equals `expected` (else a
  // DIGEST_INVALID error, leaving the upload as it was).
  Result<Published> Publish(std::string_view expected);

 private:
  friend class BlobStore;
  UploadWriter(BlobStore& store, std::string id, std::shared_ptr<UploadState> state);

  BlobStore& store_;
  std::string id_;
  std::shared_ptr<UploadState> state_;
  uint64_t written_ = 0;
  uint64_t flushed_ = 0;  // offset up to which write-back has been started
  bool published_ = false;
};

class BlobStore {
 public:
  // Opens (creating) the layout under `root` and removes leftover temporary files.
  static Result<std::unique_ptr<BlobStore>> Open(const std::string& root);
  ~BlobStore();

  const std::string& root() const { return root_; }

  // The file of a blob; `digest` must have passed ValidateDigest.
  std::string BlobPath(std::string_view digest) const;
  std::optional<BlobStat> Stat(std::string_view digest) const;
  // Marks a blob as just used so the collector's grace period starts again.
  void Touch(std::string_view digest) const;

  // Stores `data` as a blob (no-op when present); returns its digest.
  Result<std::string> Put(std::string_view data);
  // Reads a whole blob of at most `max_size` bytes.
  Result<std::string> Read(std::string_view digest, size_t max_size) const;
  Status Remove(std::string_view digest);
  // Every published blob.
  std::vector<std::pair<std::string, BlobStat>> List() const;

  // Creates an empty upload.
  Status CreateUpload(const std::string& id);
  // The upload's size, nullopt when there is no such upload.
  std::optional<uint64_t> UploadSize(const std::string& id) const;
  // Opens the upload for appending. Fails with BLOB_UPLOAD_UNKNOWN when it
  // does not exist and BLOB_UPLOAD_INVALID when another request holds it.
  Result<std::unique_ptr<UploadWriter>> OpenUpload(const std::string& id);
  // Deletes an upload and its bytes.
  Status RemoveUpload(const std::string& id);
  std::vector<UploadFile> ListUploads() const;

  // Bytes after which the writer asks the kernel to start write-back, so the
  // final fsync has little left to do.
  static constexpr uint64_t kWritebackChunk = 8u << 20;

 private:
  friend class UploadWriter;
  explicit BlobStore(std::string root);
  std::string UploadPath(const std::string& id) const;
  std::shared_ptr<UploadState> StateFor(const std::string& id);
  void Forget(const std::string& id);
  Status EnsureBlobDir(std::string_view digest) const;
  // Moves a complete, fsynced file into place as `digest`.
  Result<bool> PublishFile(const std::string& path, std::string_view digest);

  std::string root_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<UploadState>> states_;
};

// Reads `length` bytes at `offset`, or fewer at the end of the file.
Result<std::string> ReadFileRange(const std::string& path, uint64_t offset, uint64_t length);

}  // namespace berth::registry
