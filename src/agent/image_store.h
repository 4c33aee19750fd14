// SPDX-License-Identifier: Apache-2.0
// The node agent's image cache: compressed blobs addressed by digest and the
// layers unpacked from them, shared by every container on the node.
//
// Layout under the root directory:
//   blobs/sha256/<hex>          blob content whose sha256 is <hex>
//   layers/sha256/<hex>/fs      the layer blob <hex> unpacked (an overlay lower dir)
//   layers/sha256/.tmp-*        unpacks in progress or being deleted
//   tmp/                        downloads in progress
// Anything under a final name is complete: blobs are renamed into place after
// their digest was checked, layers after the whole unpack succeeded. Init()
// removes what a crash left under temporary names.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>

#include "common/result.h"

namespace berth::agent {

/// True for "sha256:" followed by 64 lowercase hex digits, the only digest
/// form the store accepts.
bool IsValidDigest(const std::string& digest);

/// Returns "sha256:<hex>" of the file's content.
Result<std::string> Sha256OfFile(const std::string& path);

/// Returns "sha256:<hex>" of `data`.
std::string Sha256OfString(const std::string& data);

/// What one CollectUnused call removed and kept.
struct CollectStats {
  uint64_t layers_removed = 0;  ///< Unpacked layer directories.
  uint64_t blobs_removed = 0;
  uint64_t kept_in_use = 0;    ///< Digests on disk that the in-use set names.
  uint64_t kept_recent = 0;    ///< Unused digests still inside the grace period.
};

/// How CommitBlob treats the content it is given.
enum class BlobCheck { kVerify, kAlreadyVerified };

/// Content-addressed blob and unpacked-layer cache. Thread-safe. One
/// ImageStore object owns a root directory: Init() clears its temporary
/// names, which would break a second object working on the same root.
class ImageStore {
 public:
  explicit ImageStore(std::string root_dir);
  ImageStore(const ImageStore&) = delete;
  ImageStore& operator=(const ImageStore&) = delete;

  /// Creates the directory layout and removes leftovers of interrupted
  /// downloads, unpacks and deletions. Call once before any other method.
  Status Init();

  const std::string& root() const { return root_; }

  /// Path a blob has (or will have) in the store.
  std::string BlobPath(const std::string& digest) const;
  bool HasBlob(const std::string& digest) const;

  /// Creates a new empty file in the store's temporary directory (same
  /// filesystem as the blobs) and returns its path.
  Result<std::string> CreateTempFile(const std::string& hint);

  /// Moves `temp_path` to its place as blob `digest`. With kVerify the
  /// content is hashed first and a mismatch fails with "BlobDigestMismatch"
  /// (the temp file is removed). With kAlreadyVerified the caller vouches it
  /// hashed the bytes itself (e.g. while downloading them).
  Status CommitBlob(const std::string& digest, const std::string& temp_path,
                    BlobCheck check = BlobCheck::kVerify);

  /// Reads a whole blob, refusing ones larger than `max_size` bytes.
  Result<std::string> ReadBlob(const std::string& digest, uint64_t max_size) const;

  /// Path of the unpacked layer `digest` (the compressed blob's digest).
  std::string LayerPath(const std::string& digest) const;
  bool HasLayer(const std::string& digest) const;

  /// Returns the unpacked directory of layer `digest`, unpacking
  /// `blob_path` first if the store does not have it yet. The unpack goes to
  /// a temporary directory renamed into place once complete. Concurrent
  /// callers for the same digest wait for a single unpack and share its
  /// result (including its error). `blob_path` must hold content already
  /// verified against `digest`. The filesystem is synced (syncfs) before the
  /// rename, so a crash never leaves a published layer with lost data.
  /// Errors: "InvalidDigest"; the errors of UnpackLayer.
  Result<std::string> EnsureLayerUnpacked(const std::string& digest, const std::string& blob_path);

  /// Removes every unpacked layer and every blob whose digest is not in
  /// `in_use_digests`. Layers being unpacked right now are kept. Callers put
  /// in the set everything that running or starting containers need; a pull
  /// in progress is protected by PinAgainstCollection().
  Status CollectUnused(const std::set<std::string>& in_use_digests);

  /// Like the above, but also keeps every digest touched less than `grace` before `now`:
  /// marked used with MarkUsed, or whose blob or layer directory was last written then (which
  /// covers the blobs of a pull that failed half-way, and a store inherited from an earlier
  /// process, which has no marks). The blob and the unpacked layer of a digest go together.
  /// Errors: failures to list or remove entries (the first one; the rest is still tried).
  Result<CollectStats> CollectUnused(const std::set<std::string>& in_use_digests,
                                     std::chrono::seconds grace,
                                     std::chrono::system_clock::time_point now);

  /// Records that `digests` were in use at `now`, which starts their grace period: a pull that
  /// has just completed, or a task that has just released its images.
  void MarkUsed(const std::set<std::string>& digests,
                std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

  /// While the returned lock is held CollectUnused waits. A pull holds one
  /// from its first download until it has returned its result.
  std::shared_lock<std::shared_mutex> PinAgainstCollection();

  /// Number of layer unpacks this object has performed.
  uint64_t unpacks_performed() const;

 private:
  struct InFlight {
    bool done = false;
    std::optional<Error> error;
    std::condition_variable cv;
  };

  Result<std::string> UnpackNow(const std::string& digest, const std::string& blob_path);
  std::string UniqueSuffix();

  std::string root_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<InFlight>> in_flight_;  // guarded by mu_
  uint64_t unpacks_ = 0;                                        // guarded by mu_
  uint64_t counter_ = 0;                                        // guarded by mu_
  std::map<std::string, std::chrono::system_clock::time_point> last_used_;  // guarded by mu_
  std::shared_mutex collect_mu_;
};

}  // namespace berth::agent
