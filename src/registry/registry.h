// The registry: repositories, manifests, tags, referrers and uploads over the
// store, blobs in the BlobStore, and the collector that removes what nothing
// needs any more. The OCI distribution route (/v2/) and the ECR JSON API are
// two views over this one object.
//
// State layout in the store (values are JSON documents):
//   ecr/repos/<name>                           the repository
//   ecr/lifecycle/<name>                       its lifecycle policy
//   ecr/manifests/<name>@<digest>              one image (manifest) of the repository
//   ecr/tags/<name>:<tag>                      {"digest"}: where a tag points
//   ecr/blobs/<name>@<digest>                  the repository holds this blob
//   ecr/referrers/<name>@<subject>/<digest>    <digest> names <subject> as its subject
//   ecr/uploads/<id>                           an upload in progress ({"repository"})
// Repository names cannot hold '@' or ':', so these prefixes never overlap
// between repositories. Manifest bodies are stored as blobs under their digest.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "api/aws_json_route.h"
#include "common/result.h"
#include "registry/auth.h"
#include "registry/blob_store.h"
#include "store/store.h"

namespace berth::registry {

using Json = nlohmann::json;

inline constexpr std::string_view kOciManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view kOciIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr std::string_view kDockerManifest =
    "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr std::string_view kDockerManifestList =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr uint64_t kMaxManifestSize = 4u << 20;

struct RegistryOptions {
  std::string root;  // <data-dir>/registry
  api::AccountInfo account;
  std::string registry_host = "localhost:4566";
  // How long an idle upload, or a blob nothing references, is kept.
  std::chrono::seconds gc_grace{24 * 3600};
};

// Which API a call comes from; each answers with its own errors.
enum class Surface { kOci, kEcr };

struct Repository {
  std::string name;
  Json doc;  // as stored: repositoryName, createdAt, imageTagMutability, ...
  int64_t revision = 0;
};

// What the registry records about one manifest in one repository.
struct ManifestRecord {
  std::string digest;
  std::string media_type;
  uint64_t size = 0;                  // bytes of the manifest itself
  double pushed_at = 0;               // seconds since the epoch, first push
  uint64_t image_size = 0;            // layers' bytes (an index: its largest child)
  std::string artifact_type;          // artifactType, else the config's media type
  std::string subject;                // the subject's digest, "" when none
  Json annotations;                   // object or null
  std::vector<std::string> blobs;     // config and layers (distributable ones)
  Json blob_types;                    // digest -> media type, for the blobs above
  std::vector<std::string> children;  // manifests an index lists

  Json ToJson() const;
  static ManifestRecord FromJson(std::string digest, const Json& doc);
};

struct Image {
  ManifestRecord manifest;
  std::vector<std::string> tags;  // sorted
};

struct PutManifestRequest {
  std::string repository;
  std::string tag;              // "" when pushed by digest only
  std::string expected_digest;  // "" when the caller named none
  std::string body;
  std::string media_type;  // Content-Type or imageManifestMediaType; "" when not given
  Surface surface = Surface::kOci;
};

struct PutManifestResult {
  std::string digest;
  std::string media_type;
  std::string subject;
};

struct GcStats {
  int images_expired = 0;
  int uploads_removed = 0;
  int links_removed = 0;
  int blobs_removed = 0;
  uint64_t bytes_freed = 0;
};

class Registry {
 public:
  static Result<std::unique_ptr<Registry>> Open(store::Store& store, RegistryOptions options);
  ~Registry();

  const api::AccountInfo& account() const { return options_.account; }

  std::string registry_host() const;
  // Sets the host:port in repositoryUri (once the listener is bound).
  void SetRegistryHost(std::string host);
  std::string RepositoryArn(const std::string& name) const;
  std::string RepositoryUri(const std::string& name) const;

  const TokenAuthority& tokens() const { return *tokens_; }

  BlobStore& blobs() { return *blobs_; }

  // Repositories. Errors name the repository as ECR does
  // (RepositoryNotFoundException on kEcr, NAME_UNKNOWN on kOci).
  Result<std::optional<Repository>> FindRepository(const std::string& name);
  Result<Repository> GetRepository(const std::string& name, Surface surface);
  // Fails with RepositoryAlreadyExistsException.
  Result<Repository> CreateRepository(const std::string& name, Json doc);
  // Applies `change` to the stored document, retrying on conflicts.
  Result<Repository> UpdateRepository(const std::string& name,
                                      const std::function<Status(Json&)>& change);
  // Fails with RepositoryNotEmptyException when it holds images and !force.
  Result<Repository> DeleteRepository(const std::string& name, bool force);
  // Names after `after` in order, at most `limit` (0: all).
  Result<std::vector<Repository>> ListRepositories(const std::string& after, size_t limit);

  // Lifecycle policy text and when it was last applied (seconds), if any.
  Result<std::optional<std::pair<std::string, double>>> GetLifecyclePolicy(const std::string& name);
  Status PutLifecyclePolicy(const std::string& name, const std::string& text);
  Status DeleteLifecyclePolicy(const std::string& name);

  // Blobs a repository holds. nullopt when it does not hold the blob.
  Result<std::optional<uint64_t>> BlobSize(const std::string& repo, const std::string& digest);
  // Removes the repository's hold on a blob (BLOB_UNKNOWN when it had none).
  Status UnlinkBlob(const std::string& repo, const std::string& digest);
  // Lets `repo` hold a blob `from` holds (or, with `from` empty, any stored
  // blob). Returns whether it did.
  Result<bool> MountBlob(const std::string& repo, const std::string& digest,
                         const std::string& from);

  // Uploads. Unknown uploads (or ones of another repository) give
  // BLOB_UPLOAD_UNKNOWN.
  Result<std::string> StartUpload(const std::string& repo);
  Result<uint64_t> UploadOffset(const std::string& repo, const std::string& id);
  Result<std::unique_ptr<UploadWriter>> OpenUpload(const std::string& repo, const std::string& id);
  // Publishes what `writer` holds as `expected`, and records that `repo`
  // holds it. A wrong digest removes the upload and gives DIGEST_INVALID.
  Result<Published> CompleteUpload(const std::string& repo, const std::string& id,
                                   UploadWriter& writer, const std::string& expected);
  Status CancelUpload(const std::string& repo, const std::string& id);

  // Manifests and tags.
  Result<PutManifestResult> PutManifest(const PutManifestRequest& request);
  Result<std::optional<ManifestRecord>> FindManifest(const std::string& repo,
                                                     const std::string& digest);
  Result<std::optional<std::string>> ResolveTag(const std::string& repo, const std::string& tag);
  Result<std::vector<Image>> ListImages(const std::string& repo);
  Result<std::vector<std::string>> ListTags(const std::string& repo, const std::string& after,
                                            size_t limit);
  Result<std::vector<ManifestRecord>> Referrers(const std::string& repo,
                                                const std::string& subject);
  Result<std::string> ReadManifest(const std::string& digest);
  // Deletes an image with all its tags (MANIFEST_UNKNOWN when absent).
  Status DeleteManifest(const std::string& repo, const std::string& digest);
  // Removes a tag (MANIFEST_UNKNOWN when absent). With `drop_untagged`, an
  // image left without tags is deleted too, unless an index in the
  // repository lists it.
  Result<std::string> DeleteTag(const std::string& repo, const std::string& tag,
                                bool drop_untagged);
  // Digests of indexes in `repo` that list `digest`.
  Result<std::vector<std::string>> IndexesListing(const std::string& repo,
                                                  const std::string& digest);

  // One collection: lifecycle policies, stale uploads, blobs no manifest
  // needs. Never removes a blob a manifest of any repository references.
  Result<GcStats> CollectGarbage(std::chrono::system_clock::time_point now);
  // Runs CollectGarbage every `interval` on a thread of its own until
  // StopCollector or destruction.
  void StartCollector(std::chrono::seconds interval);
  void StopCollector();

 private:
  Registry(store::Store& store, RegistryOptions options, std::unique_ptr<BlobStore> blobs,
           std::unique_ptr<TokenAuthority> tokens);
  Error NotFound(const std::string& name, Surface surface) const;
  Status ApplyLifecycle(double now, GcStats& stats);

  store::Store& store_;
  RegistryOptions options_;
  std::unique_ptr<BlobStore> blobs_;
  std::unique_ptr<TokenAuthority> tokens_;
  mutable std::mutex host_mu_;

  // Held shared by everything that makes a blob referenced (publishing,
  // mounting, manifest pushes) and exclusively by the collector's sweep, so
  // the sweep never sees a blob halfway to being referenced.
  std::shared_mutex gc_mu_;
  std::mutex collector_mu_;
  std::condition_variable collector_cv_;
  bool collector_stop_ = false;
  std::thread collector_;
};

// Parses a manifest body into the record the registry keeps (digest and
// pushed_at left empty). `declared` is the media type the client named ("" for
// none). Errors are MANIFEST_INVALID with the reason.
Result<ManifestRecord> ParseManifest(std::string_view body, std::string_view declared);

// "application/json; charset=utf-8" -> "application/json"
std::string BareMediaType(std::string_view value);

}  // namespace berth::registry
