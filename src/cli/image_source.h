// SPDX-License-Identifier: Apache-2.0
//
// Images on disk that `berth image push` reads: an OCI image layout
// directory (index.json plus blobs/) or a docker-archive tarball (what
// `docker save` writes: manifest.json, a config and layer tars).
//
// An OCI layout is pushed byte for byte, so the digests in the registry are
// the layout's. A docker-archive is converted to an OCI image manifest: its
// config is kept as is, uncompressed layer tars are gzip-compressed into a
// temporary directory (already compressed layers are kept), and the manifest
// is written fresh.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"

namespace berth::cli {

inline constexpr const char* kOciManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr const char* kOciIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr const char* kOciConfig = "application/vnd.oci.image.config.v1+json";
inline constexpr const char* kOciLayerGzip = "application/vnd.oci.image.layer.v1.tar+gzip";
inline constexpr const char* kOciLayerZstd = "application/vnd.oci.image.layer.v1.tar+zstd";
inline constexpr const char* kDockerManifest =
    "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr const char* kDockerManifestList =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr const char* kRefNameAnnotation = "org.opencontainers.image.ref.name";

/// A directory removed with everything in it when the last owner lets go.
class TempDir {
 public:
  /// Creates a fresh directory under $TMPDIR (or /tmp).
  static Result<std::shared_ptr<TempDir>> Create(const std::string& prefix);
  ~TempDir();

  const std::string& path() const { return path_; }

 private:
  explicit TempDir(std::string path) : path_(std::move(path)) {}

  std::string path_;
};

/// One blob to upload, stored in a file.
struct BlobToPush {
  std::string digest;  ///< "sha256:<hex>"
  uint64_t size = 0;
  std::string media_type;
  std::string path;   ///< the file holding exactly the blob's bytes
  std::string label;  ///< "config", "layer 2/3"
};

/// One manifest to put, by tag or by digest.
struct ManifestToPush {
  std::string digest;
  std::string media_type;
  std::string body;
  bool by_tag = false;  ///< the image's manifest (or index): put under the target tag
};

/// What pushing an image takes, in order: blobs first, then manifests
/// (an index's children before the index).
struct PushPlan {
  std::string description;  ///< "OCI layout out/app (ref v1)", for messages
  std::vector<BlobToPush> blobs;
  std::vector<ManifestToPush> manifests;
  std::shared_ptr<TempDir> temp;  ///< converted layers live here, if any
};

/// Reads `source`: a directory holding an OCI layout, or a docker-archive
/// file; either may be followed by ":<ref>" to pick one of several images
/// (an org.opencontainers.image.ref.name, or a RepoTags entry). Without a
/// ref, an image whose ref is `target_tag` or the only image is taken.
/// Errors are local ones with messages naming the file.
Result<PushPlan> LoadImage(const std::string& source, const std::string& target_tag);

/// The same, for an OCI layout directory and a docker-archive file.
Result<PushPlan> LoadOciLayout(const std::string& dir, const std::string& ref,
                               const std::string& target_tag);
Result<PushPlan> LoadDockerArchive(const std::string& file, const std::string& ref,
                                   const std::string& target_tag);

/// "sha256:<hex>" of a file's bytes, with its size.
Result<std::pair<std::string, uint64_t>> DigestFile(const std::string& path);

}  // namespace berth::cli
