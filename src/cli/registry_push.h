// SPDX-License-Identifier: Apache-2.0
//
// Pushing blobs and manifests to berth's OCI registry (/v2/).
//
// Blobs already in the repository are skipped (HEAD). The rest go up as a
// chunked upload: POST opens it, each chunk is a PATCH with Content-Range,
// and a PUT with ?digest= closes it. When a chunk fails (the connection
// drops, berthd restarts, the upload is busy), the client asks the upload's
// status (GET on its URL, whose Range header says how many bytes arrived)
// and continues from there, so no byte is sent twice more than needed.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "cli/image_source.h"
#include "common/result.h"

namespace berth::cli {

/// Where an image goes: "[host/]repository[:tag]".
struct PushTarget {
  std::string repository;
  std::string tag = "latest";

  /// Parses a target; a registry host in front ("localhost:4566/app:v1",
  /// "<account>.dkr.ecr.<region>.amazonaws.com/app") is dropped, since the
  /// image goes to the registry of the endpoint in use. Digests are refused.
  static Result<PushTarget> Parse(const std::string& text);
};

/// Reports an upload as it goes: a redrawn bar on a terminal, plain lines otherwise.
class PushProgress {
 public:
  virtual ~PushProgress() = default;
  virtual void Exists(const BlobToPush& blob) = 0;
  virtual void Start(const BlobToPush& blob) = 0;
  virtual void Advance(uint64_t done) = 0;
  virtual void Resume(uint64_t offset, const std::string& reason) = 0;
  virtual void Done(double seconds) = 0;
  virtual void Note(const std::string& line) = 0;
};

std::unique_ptr<PushProgress> MakePushProgress(std::FILE* out, bool terminal);

struct PushOptions {
  uint64_t chunk_size = 8u << 20;
  /// Consecutive failed attempts of one blob before giving up.
  int max_attempts = 6;
  int retry_delay_ms = 200;  ///< doubles after every failure, up to 3 s
  /// Test hook (BERTH_CLI_FAIL_AFTER_BYTES): drop the connection once, after
  /// this many body bytes of this process's uploads. 0 disables it.
  uint64_t fail_after_bytes = 0;
};

class RegistryPusher {
 public:
  /// `endpoint` is berthd's base URL; `authorization` the whole header value
  /// ("Basic <base64 of AWS:password>").
  RegistryPusher(std::string endpoint, std::string repository, std::string authorization,
                 PushOptions options, PushProgress& progress);

  /// Whether the repository holds the blob.
  Result<bool> HasBlob(const std::string& digest);

  /// Uploads a blob in chunks, resuming after failures.
  Status UploadBlob(const BlobToPush& blob);

  /// Puts a manifest under `reference` (a tag, or its digest); returns the
  /// digest berthd stored it as.
  Result<std::string> PutManifest(const ManifestToPush& manifest, const std::string& reference);

  /// Times a chunk was resumed after a failure, over all blobs.
  int resumes() const { return resumes_; }

 private:
  struct Upload;  // one blob's upload in progress
  // Sends the next chunk; after a failure, finds where to continue.
  Status SendChunk(Upload& up);
  // Waits, asks the upload's status and moves `up` to where berthd stands.
  Status Recover(Upload& up, const std::string& reason, bool zero_zero_is_one);
  // Closes the upload with the blob's digest.
  Status CloseUpload(Upload& up);
  Result<std::string> StartUpload();
  Result<uint64_t> QueryOffset(const std::string& location, std::string& new_location);
  std::string BlobsUrl() const;

  std::string endpoint_;
  std::string repository_;
  std::string authorization_;
  PushOptions options_;
  PushProgress& progress_;
  uint64_t body_bytes_sent_ = 0;
  bool failure_injected_ = false;
  int resumes_ = 0;
};

/// Parses an OCI registry error body into an Error ("<CODE>: <message>").
Error ParseRegistryError(long status, const std::string& body);

/// The offset after a Range header value ("0-1023" -> 1024). "0-0" is read
/// as 0 bytes unless `zero_zero_is_one`.
std::optional<uint64_t> OffsetFromRange(const std::string& range, bool zero_zero_is_one = false);

}  // namespace berth::cli
