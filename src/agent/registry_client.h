// SPDX-License-Identifier: Apache-2.0
// Pulling images over the OCI distribution API into the agent's ImageStore.
//
// The client talks only to the registry named in the image reference, over
// http or https, and never falls back to a default registry: a reference
// without a registry host is the caller's to complete (the agent maps it, and
// ECR hosts, to the local registry). Error messages are written to serve as
// the reason of an ECS `CannotPullContainerError`.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "agent/image_store.h"
#include "common/result.h"

namespace berth::agent {

/// A parsed image reference: `[registry/]repository[:tag][@digest]`.
struct ImageRef {
  std::string registry;    ///< "host" or "host:port"; empty if the reference names none.
  std::string repository;  ///< e.g. "team/app".
  std::string tag;         ///< "latest" when neither tag nor digest was given.
  std::string digest;      ///< "sha256:<hex>" or empty.

  /// Parses a reference with Docker's rules: the first path component is a
  /// registry host when it contains '.' or ':', is "localhost", or has
  /// upper-case letters. Errors: "InvalidImageReference".
  static Result<ImageRef> Parse(const std::string& reference);

  /// The reference in canonical text form.
  std::string ToString() const;

  /// What the manifest is fetched by: the digest if set, else the tag.
  const std::string& ManifestReference() const { return digest.empty() ? tag : digest; }
};

/// An Amazon ECR registry host: `<account>.dkr.ecr.<region>.amazonaws.com`.
struct EcrRegistry {
  std::string account_id;
  std::string region;
};

/// Recognizes an ECR registry host name (no port), including the FIPS and
/// China partitions; nullopt for any other host.
std::optional<EcrRegistry> ParseEcrRegistry(const std::string& host);

/// Registry credentials. Empty username means anonymous.
struct Credentials {
  std::string username;
  std::string password;
};

struct PulledLayer {
  std::string digest;  ///< Digest of the compressed blob (the store key).
  std::string media_type;
  uint64_t size = 0;
  std::string path;  ///< The unpacked directory, an overlay lower dir.
};

struct PulledImage {
  std::string reference;        ///< The reference pulled, as text.
  std::string digest;           ///< What the reference resolved to (index or manifest).
  std::string manifest_digest;  ///< The image manifest used (differs if `digest` is an index).
  std::string manifest_media_type;
  std::string config_digest;
  nlohmann::json config;            ///< The image configuration blob.
  std::vector<PulledLayer> layers;  ///< Bottom layer first.
  uint64_t blobs_downloaded = 0;    ///< Blobs fetched in this pull (not already stored).
  uint64_t bytes_downloaded = 0;

  /// Every store digest this image needs (config and layers), for the in-use
  /// set given to ImageStore::CollectUnused.
  std::set<std::string> StoreDigests() const;
};

/// The part of a pulled image a task's record keeps, so that an agent taking the task back
/// after a restart knows which store digests the task's containers still use (and can start
/// a container that had not started yet): {"reference", "digest", "manifestDigest",
/// "configDigest", "layers": [{"digest", "mediaType", "size"}]}.
nlohmann::json PulledImageRecord(const PulledImage& image);

/// Rebuilds a PulledImage from its record: layer paths point into `store`, and the config is
/// read from the store's config blob (left null when the store no longer has it). An empty
/// record gives an empty image. Errors: "InvalidImageRecord" for a malformed record.
Result<PulledImage> PulledImageFromRecord(const nlohmann::json& record, const ImageStore& store);

/// The architecture name OCI uses for this build's target ("amd64", "arm64").
std::string HostArchitecture();

struct RegistryClientOptions {
  bool plain_http = false;  ///< http:// instead of https://.
  bool tls_verify = true;
  std::string ca_file;  ///< Extra CA bundle for https; empty for the system's.
  std::string os = "linux";
  std::string architecture = HostArchitecture();
  long connect_timeout_ms = 10000;
  long stall_timeout_s = 60;  ///< Abort a transfer that moves no data this long.
  int attempts = 3;           ///< Tries for transient manifest and blob failures.
  int retry_delay_ms = 250;   ///< Doubles after every retry.
  uint64_t max_manifest_bytes = 4 << 20;
  uint64_t max_config_bytes = 8 << 20;
};

/// A blocking OCI distribution client. Thread-safe: concurrent Pull calls
/// are independent (each uses its own connection).
class RegistryClient {
 public:
  explicit RegistryClient(RegistryClientOptions options = {});

  /// Pulls `ref` into `store`: resolves the manifest (picking the
  /// options' platform out of an index), downloads the config and every
  /// layer blob the store lacks (verifying size and sha256 while streaming),
  /// and unpacks the layers. Basic auth and the Bearer token flow are
  /// answered with `credentials` when the registry asks.
  /// Errors carry code "CannotPullContainerError" and a message such as
  /// "pull image manifest has been retried 0 time(s): failed to resolve ref
  /// <ref>: not found"; status 404 (not found), 401 (denied), 502
  /// (transport), 400 (bad content) or 500 (local failure).
  Result<PulledImage> Pull(const ImageRef& ref, ImageStore& store,
                           const Credentials& credentials) const;

 private:
  RegistryClientOptions options_;
};

}  // namespace berth::agent
