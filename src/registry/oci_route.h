// The OCI distribution API (v1.1) under /v2/: what skopeo, podman, docker
// and every other registry client speak.
//
// Every request needs Basic credentials whose user is "AWS" and whose
// password is a token from the ECR API's GetAuthorizationToken; a blob GET may
// instead carry the signed query GetDownloadUrlForLayer hands out. Blob bodies
// (PATCH and PUT of uploads, POST with a digest) stream into the upload file
// while they are hashed; blob and manifest GETs are served from the files.
#pragma once

#include <memory>
#include <string>

#include "registry/registry.h"
#include "server/http_types.h"

namespace berth::registry {

class OciRoute : public http::Route {
 public:
  explicit OciRoute(Registry& registry) : registry_(registry) {}

  bool Matches(const http::Request& head) const override;

  uint64_t MaxBufferedBody(const http::Request& head) const override { return kMaxManifestSize; }

  Result<std::unique_ptr<http::BodySink>> OpenBodySink(http::Request& head) override;
  http::Response Serve(http::Request& request, http::BodySink* sink) override;
  http::Response RenderError(const http::Request& request, const Error& error) override;

 private:
  http::Response Dispatch(http::Request& request, http::BodySink* sink);
  Registry& registry_;
};

// Which endpoint a /v2/ path names.
struct OciEndpoint {
  enum class Kind {
    kBase,         // /v2/
    kCatalog,      // /v2/_catalog
    kTags,         // /v2/<name>/tags/list
    kManifest,     // /v2/<name>/manifests/<reference>
    kBlob,         // /v2/<name>/blobs/<digest>
    kUploadStart,  // /v2/<name>/blobs/uploads/
    kUpload,       // /v2/<name>/blobs/uploads/<id>
    kReferrers,    // /v2/<name>/referrers/<digest>
    kUnknown,
  };
  Kind kind = Kind::kUnknown;
  std::string name;
  std::string reference;  // tag, digest or upload id
};

// Splits a decoded path; names may hold '/', so the endpoint is read from the end.
OciEndpoint ParseOciPath(const std::string& path);

}  // namespace berth::registry
