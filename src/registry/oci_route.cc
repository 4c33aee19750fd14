#include "registry/oci_route.h"

#include <spdlog/spdlog.h>

#include <charconv>
#include <chrono>

#include "registry/digest.h"
#include "registry/names.h"

namespace berth::registry {

namespace {

using Kind = OciEndpoint::Kind;

constexpr const char* kApiVersionHeader = "Docker-Distribution-API-Version";
constexpr const char* kApiVersion = "registry/2.0";

Error Unauthorized(const std::string& message) {
  return Error{401, "UNAUTHORIZED", message, ""};
}

Error Unsupported() {
  return Error{405, "UNSUPPORTED", "the operation is unsupported", ""};
}

// The registry error codes of the distribution spec (and the two extra ones
// distribution answers with); anything else is mapped by status.
bool IsOciCode(const std::string& code) {
  static const char* kCodes[] = {"BLOB_UNKNOWN",
                                 "BLOB_UPLOAD_INVALID",
                                 "BLOB_UPLOAD_UNKNOWN",
                                 "DIGEST_INVALID",
                                 "MANIFEST_BLOB_UNKNOWN",
                                 "MANIFEST_INVALID",
                                 "MANIFEST_UNKNOWN",
                                 "NAME_INVALID",
                                 "NAME_UNKNOWN",
                                 "SIZE_INVALID",
                                 "UNAUTHORIZED",
                                 "DENIED",
                                 "UNSUPPORTED",
                                 "TOOMANYREQUESTS",
                                 "TAG_INVALID",
                                 "RANGE_INVALID",
                                 "PAGINATION_NUMBER_INVALID",
                                 "UNKNOWN"};
  for (const char* c : kCodes) {
    if (code == c) {
      return true;
    }
  }
  return false;
}

Json DetailValue(const std::string& detail) {
  if (detail.empty()) {
    return Json();
  }
  if (detail.front() == '{' || detail.front() == '[') {
    try {
      return Json::parse(detail);
    } catch (const Json::parse_error&) {
    }
  }
  return detail;
}

http::Response ErrorResponse(const Error& error) {
  http::Response r;
  r.status = error.status;
  std::string code = error.code;
  if (!IsOciCode(code)) {
    code = error.status == 413 ? "SIZE_INVALID" : error.status >= 500 ? "UNKNOWN" : "UNSUPPORTED";
  }
  Json errors = Json::array();
  Json detail = DetailValue(error.detail);
  if (detail.is_array() && !detail.empty() && detail[0].is_object() && detail[0].contains("code")) {
    errors = detail;
  } else {
    std::string message = error.status >= 500 ? "internal error" : error.message;
    errors.push_back({{"code", code}, {"message", message}, {"detail", detail}});
  }
  r.SetHeader("Content-Type", "application/json");
  r.body = Json{{"errors", errors}}.dump();
  return r;
}

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t pos = s.find(sep, start);
    out.push_back(s.substr(start, pos == std::string::npos ? std::string::npos : pos - start));
    if (pos == std::string::npos) {
      return out;
    }
    start = pos + 1;
  }
}

std::string Join(const std::vector<std::string>& parts, size_t count) {
  std::string out;
  for (size_t i = 0; i < count; ++i) {
    if (i > 0) {
      out += '/';
    }
    out += parts[i];
  }
  return out;
}

std::optional<int64_t> ParseInt(const std::string& s) {
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || ptr != s.data() + s.size()) {
    return std::nullopt;
  }
  return v;
}

std::string RangeValue(uint64_t size) {
  return "0-" + std::to_string(size == 0 ? 0 : size - 1);
}

std::string UploadLocation(const std::string& name, const std::string& id) {
  return "/v2/" + name + "/blobs/uploads/" + id;
}

// The body sink of blob uploads: appends to the upload, or, when the request
// was refused before its body arrived, drops the body and keeps the error so
// the answer can carry the upload's headers.
class BlobBodySink : public http::BodySink {
 public:
  BlobBodySink(std::unique_ptr<UploadWriter> writer, std::string upload_id)
      : writer_(std::move(writer)), upload_id_(std::move(upload_id)) {}

  explicit BlobBodySink(Error refused) : refused_(std::move(refused)) {}

  Status Write(const char* data, size_t size) override {
    if (refused_) {
      return Ok();
    }
    return writer_->Write(data, size);
  }

  UploadWriter* writer() { return writer_.get(); }

  const std::string& upload_id() const { return upload_id_; }

  const std::optional<Error>& refused() const { return refused_; }

 private:
  std::unique_ptr<UploadWriter> writer_;
  std::string upload_id_;
  std::optional<Error> refused_;
};

}  // namespace

OciEndpoint ParseOciPath(const std::string& path) {
  OciEndpoint ep;
  if (path == "/v2" || path == "/v2/") {
    ep.kind = Kind::kBase;
    return ep;
  }
  if (path.rfind("/v2/", 0) != 0) {
    return ep;
  }
  std::string rest = path.substr(4);
  if (rest == "_catalog") {
    ep.kind = Kind::kCatalog;
    return ep;
  }
  std::vector<std::string> segs = Split(rest, '/');
  const size_t n = segs.size();
  if (n >= 3 && segs[n - 2] == "tags" && segs[n - 1] == "list") {
    ep.kind = Kind::kTags;
    ep.name = Join(segs, n - 2);
  } else if (n >= 3 && segs[n - 2] == "manifests") {
    ep.kind = Kind::kManifest;
    ep.name = Join(segs, n - 2);
    ep.reference = segs[n - 1];
  } else if (n >= 4 && segs[n - 3] == "blobs" && segs[n - 2] == "uploads") {
    ep.kind = segs[n - 1].empty() ? Kind::kUploadStart : Kind::kUpload;
    ep.name = Join(segs, n - 3);
    ep.reference = segs[n - 1];
  } else if (n >= 3 && segs[n - 2] == "blobs" && segs[n - 1] == "uploads") {
    ep.kind = Kind::kUploadStart;
    ep.name = Join(segs, n - 2);
  } else if (n >= 3 && segs[n - 2] == "blobs") {
    ep.kind = Kind::kBlob;
    ep.name = Join(segs, n - 2);
    ep.reference = segs[n - 1];
  } else if (n >= 3 && segs[n - 2] == "referrers") {
    ep.kind = Kind::kReferrers;
    ep.name = Join(segs, n - 2);
    ep.reference = segs[n - 1];
  }
  return ep;
}

bool OciRoute::Matches(const http::Request& head) const {
  return head.path == "/v2" || head.path.rfind("/v2/", 0) == 0;
}

http::Response OciRoute::RenderError(const http::Request& request, const Error& error) {
  if (error.status >= 500) {
    // The client sees a generic message; the detail stays in the log.
    spdlog::error("request_id={} api=registry path={} error=\"{}\"", request.request_id,
                  request.raw_path, error.message);
  }
  http::Response r = ErrorResponse(error);
  r.SetHeader(kApiVersionHeader, kApiVersion);
  if (error.status == 401) {
    r.SetHeader("WWW-Authenticate", "Basic realm=\"http://" + registry_.registry_host() +
                                        "/\",service=\"ecr.amazonaws.com\"");
  }
  return r;
}

namespace {

// Checks the caller's credentials; a signed download URL admits one blob GET.
Status Authenticate(const Registry& registry, const http::Request& request, const OciEndpoint& ep) {
  auto now = std::chrono::system_clock::now();
  if (ep.kind == Kind::kBlob && (request.method == "GET" || request.method == "HEAD")) {
    auto expires = request.Query("X-Berth-Expires");
    auto signature = request.Query("X-Berth-Signature");
    if (expires && signature) {
      auto when = ParseInt(*expires);
      if (when && registry.tokens().VerifyDownload(ep.name, ep.reference, *when, *signature, now)) {
        return Ok();
      }
      return Error{403, "DENIED", "the download URL is invalid or has expired", ""};
    }
  }
  std::string header = request.Header("Authorization");
  if (header.empty()) {
    return Unauthorized("authentication required");
  }
  switch (registry.tokens().VerifyBasic(header, now)) {
    case TokenAuthority::Verdict::kValid:
      return Ok();
    case TokenAuthority::Verdict::kExpired:
      return Unauthorized("Your authorization token has expired. Reauthenticate and try again.");
    case TokenAuthority::Verdict::kInvalid:
      break;
  }
  return Unauthorized(
      "Your authorization token is invalid. Get a new one with GetAuthorizationToken.");
}

Status CheckName(const OciEndpoint& ep) {
  if (!ValidRepositoryName(ep.name)) {
    return Error{400, "NAME_INVALID", "invalid repository name", Json{{"name", ep.name}}.dump()};
  }
  return Ok();
}

}  // namespace

Result<std::unique_ptr<http::BodySink>> OciRoute::OpenBodySink(http::Request& head) {
  OciEndpoint ep = ParseOciPath(head.path);
  bool streams = (ep.kind == Kind::kUpload && (head.method == "PATCH" || head.method == "PUT")) ||
                 (ep.kind == Kind::kUploadStart && head.method == "POST" &&
                  head.Query("digest").has_value() && !head.Query("mount").has_value());
  if (!streams) {
    return std::unique_ptr<http::BodySink>();
  }
  BERTH_TRY(Authenticate(registry_, head, ep));
  auto refuse = [](Error e) -> std::unique_ptr<http::BodySink> {
    return std::make_unique<BlobBodySink>(std::move(e));
  };
  if (Status st = CheckName(ep); !st.ok()) {
    return refuse(st.error());
  }
  auto repo = registry_.GetRepository(ep.name, Surface::kOci);
  if (!repo.ok()) {
    return refuse(repo.error());
  }
  std::string id = ep.reference;
  if (ep.kind == Kind::kUploadStart) {
    // A monolithic upload: POST with ?digest= and the whole blob as body.
    if (Status st = ValidateDigest(*head.Query("digest")); !st.ok()) {
      return refuse(st.error());
    }
    auto started = registry_.StartUpload(ep.name);
    if (!started.ok()) {
      return refuse(started.error());
    }
    id = *started;
  }
  auto writer = registry_.OpenUpload(ep.name, id);
  if (!writer.ok()) {
    return refuse(writer.error());
  }
  std::string content_range = head.Header("Content-Range");
  if (!content_range.empty()) {
    auto range = ParseContentRange(content_range);
    if (!range || range->first != (*writer)->size()) {
      // Chunks must arrive in order; the client learns where to resume.
      return refuse(Error{416, "RANGE_INVALID",
                          "the chunk does not start where the upload ends (at byte " +
                              std::to_string((*writer)->size()) + ")",
                          content_range});
    }
    std::string length = head.Header("Content-Length");
    if (!length.empty() && ParseInt(length) != static_cast<int64_t>(range->length())) {
      return refuse(
          Error{416, "RANGE_INVALID", "Content-Range and Content-Length disagree", content_range});
    }
  }
  return std::unique_ptr<http::BodySink>(std::make_unique<BlobBodySink>(std::move(*writer), id));
}

http::Response OciRoute::Serve(http::Request& request, http::BodySink* sink) {
  auto started = std::chrono::steady_clock::now();
  http::Response resp = Dispatch(request, sink);
  resp.SetHeader(kApiVersionHeader, kApiVersion);
  double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  spdlog::info("request_id={} api=registry method={} path={} status={} ms={:.2f}",
               request.request_id, request.method, request.raw_path, resp.status, ms);
  return resp;
}

http::Response OciRoute::Dispatch(http::Request& request, http::BodySink* sink) {
  const OciEndpoint ep = ParseOciPath(request.path);
  const std::string& method = request.method;
  auto fail = [&](const Error& e) {
    return RenderError(request, e);
  };
  if (ep.kind == Kind::kUnknown) {
    return fail(Error{404, "UNSUPPORTED", "no such registry endpoint", request.path});
  }
  if (Status st = Authenticate(registry_, request, ep); !st.ok()) {
    return fail(st.error());
  }
  auto* blob_sink = dynamic_cast<BlobBodySink*>(sink);
  if (blob_sink != nullptr && blob_sink->refused()) {
    http::Response r = fail(*blob_sink->refused());
    if (blob_sink->refused()->status == 416) {
      auto offset = registry_.UploadOffset(ep.name, ep.reference);
      if (offset.ok()) {
        r.SetHeader("Location", UploadLocation(ep.name, ep.reference));
        r.SetHeader("Range", RangeValue(*offset));
        r.SetHeader("Docker-Upload-UUID", ep.reference);
      }
    }
    return r;
  }

  http::Response resp;
  if (ep.kind == Kind::kBase) {
    if (method != "GET" && method != "HEAD") {
      return fail(Unsupported());
    }
    resp.SetHeader("Content-Type", "application/json");
    resp.body = "{}";
    return resp;
  }

  auto page_size = [&](std::optional<size_t>& n) -> Status {
    auto raw = request.Query("n");
    if (!raw) {
      return Ok();
    }
    auto v = ParseInt(*raw);
    if (!v || *v < 0) {
      return Error{400, "PAGINATION_NUMBER_INVALID", "invalid number of results requested", *raw};
    }
    n = static_cast<size_t>(*v);
    return Ok();
  };

  if (ep.kind == Kind::kCatalog) {
    if (method != "GET") {
      return fail(Unsupported());
    }
    std::optional<size_t> n;
    if (Status st = page_size(n); !st.ok()) {
      return fail(st.error());
    }
    std::string last = request.Query("last").value_or("");
    Json names = Json::array();
    bool more = false;
    if (!n || *n > 0) {
      auto repos = registry_.ListRepositories(last, n ? *n + 1 : 0);
      if (!repos.ok()) {
        return fail(repos.error());
      }
      for (const auto& r : *repos) {
        if (n && names.size() == *n) {
          more = true;
          break;
        }
        names.push_back(r.name);
      }
    }
    if (more) {
      resp.SetHeader("Link", "</v2/_catalog?last=" + names.back().get<std::string>() +
                                 "&n=" + std::to_string(*n) + ">; rel=\"next\"");
    }
    resp.SetHeader("Content-Type", "application/json");
    resp.body = Json{{"repositories", names}}.dump();
    return resp;
  }

  if (Status st = CheckName(ep); !st.ok()) {
    return fail(st.error());
  }
  auto repo = registry_.GetRepository(ep.name, Surface::kOci);
  if (!repo.ok()) {
    return fail(repo.error());
  }

  switch (ep.kind) {
    case Kind::kTags: {
      if (method != "GET") {
        return fail(Unsupported());
      }
      std::optional<size_t> n;
      if (Status st = page_size(n); !st.ok()) {
        return fail(st.error());
      }
      std::string last = request.Query("last").value_or("");
      Json tags = Json::array();
      bool more = false;
      if (!n || *n > 0) {
        auto list = registry_.ListTags(ep.name, last, n ? *n + 1 : 0);
        if (!list.ok()) {
          return fail(list.error());
        }
        for (const auto& t : *list) {
          if (n && tags.size() == *n) {
            more = true;
            break;
          }
          tags.push_back(t);
        }
      }
      if (more) {
        resp.SetHeader("Link", "</v2/" + ep.name +
                                   "/tags/list?last=" + tags.back().get<std::string>() +
                                   "&n=" + std::to_string(*n) + ">; rel=\"next\"");
      }
      resp.SetHeader("Content-Type", "application/json");
      resp.body = Json{{"name", ep.name}, {"tags", tags}}.dump();
      return resp;
    }

    case Kind::kBlob: {
      if (Status st = ValidateDigest(ep.reference); !st.ok()) {
        return fail(st.error());
      }
      if (method == "DELETE") {
        if (Status st = registry_.UnlinkBlob(ep.name, ep.reference); !st.ok()) {
          return fail(st.error());
        }
        resp.status = 202;
        return resp;
      }
      if (method != "GET" && method != "HEAD") {
        return fail(Unsupported());
      }
      auto size = registry_.BlobSize(ep.name, ep.reference);
      if (!size.ok()) {
        return fail(size.error());
      }
      if (!*size) {
        return fail(Error{404, "BLOB_UNKNOWN", "blob unknown to registry", ep.reference});
      }
      uint64_t total = **size;
      resp.SetHeader("Content-Type", "application/octet-stream");
      resp.SetHeader("Docker-Content-Digest", ep.reference);
      resp.SetHeader("ETag", "\"" + ep.reference + "\"");
      resp.SetHeader("Accept-Ranges", "bytes");
      resp.SetHeader("Cache-Control", "max-age=31536000");
      resp.file_path = registry_.blobs().BlobPath(ep.reference);
      resp.file_offset = 0;
      resp.file_length = total;
      std::string range_header = request.Header("Range");
      if (!range_header.empty() && method == "GET") {
        RangeRequest rr = ParseRangeHeader(range_header, total);
        if (rr.kind == RangeRequest::Kind::kUnsatisfiable) {
          http::Response r;
          r.status = 416;
          r.SetHeader("Content-Range", "bytes */" + std::to_string(total));
          return r;
        }
        if (rr.kind == RangeRequest::Kind::kPartial) {
          resp.status = 206;
          resp.file_offset = rr.range.first;
          resp.file_length = rr.range.length();
          resp.SetHeader("Content-Range", "bytes " + std::to_string(rr.range.first) + "-" +
                                              std::to_string(rr.range.last) + "/" +
                                              std::to_string(total));
        }
      }
      return resp;
    }

    case Kind::kUploadStart: {
      if (method != "POST") {
        return fail(Unsupported());
      }
      auto mount = request.Query("mount");
      if (mount) {
        if (Status st = ValidateDigest(*mount); !st.ok()) {
          return fail(st.error());
        }
        std::string from = request.Query("from").value_or("");
        if (!from.empty() && !ValidRepositoryName(from)) {
          from.clear();
        }
        auto mounted = registry_.MountBlob(ep.name, *mount, from);
        if (!mounted.ok()) {
          return fail(mounted.error());
        }
        if (*mounted) {
          resp.status = 201;
          resp.SetHeader("Location", "/v2/" + ep.name + "/blobs/" + *mount);
          resp.SetHeader("Docker-Content-Digest", *mount);
          return resp;
        }
        // Not mountable: the client gets an ordinary upload instead.
      }
      if (blob_sink != nullptr && blob_sink->writer() != nullptr) {
        std::string digest = *request.Query("digest");
        auto done =
            registry_.CompleteUpload(ep.name, blob_sink->upload_id(), *blob_sink->writer(), digest);
        if (!done.ok()) {
          return fail(done.error());
        }
        resp.status = 201;
        resp.SetHeader("Location", "/v2/" + ep.name + "/blobs/" + done->digest);
        resp.SetHeader("Docker-Content-Digest", done->digest);
        return resp;
      }
      auto id = registry_.StartUpload(ep.name);
      if (!id.ok()) {
        return fail(id.error());
      }
      resp.status = 202;
      resp.SetHeader("Location", UploadLocation(ep.name, *id));
      resp.SetHeader("Range", "0-0");
      resp.SetHeader("Docker-Upload-UUID", *id);
      return resp;
    }

    case Kind::kUpload: {
      const std::string& id = ep.reference;
      if (method == "GET") {
        auto offset = registry_.UploadOffset(ep.name, id);
        if (!offset.ok()) {
          return fail(offset.error());
        }
        resp.status = 204;
        resp.SetHeader("Location", UploadLocation(ep.name, id));
        resp.SetHeader("Range", RangeValue(*offset));
        resp.SetHeader("Docker-Upload-UUID", id);
        return resp;
      }
      if (method == "DELETE") {
        if (Status st = registry_.CancelUpload(ep.name, id); !st.ok()) {
          return fail(st.error());
        }
        resp.status = 204;
        return resp;
      }
      if ((method != "PATCH" && method != "PUT") || blob_sink == nullptr ||
          blob_sink->writer() == nullptr) {
        return fail(Unsupported());
      }
      UploadWriter& writer = *blob_sink->writer();
      if (method == "PATCH") {
        resp.status = 202;
        resp.SetHeader("Location", UploadLocation(ep.name, id));
        resp.SetHeader("Range", RangeValue(writer.size()));
        resp.SetHeader("Docker-Upload-UUID", id);
        return resp;
      }
      auto digest = request.Query("digest");
      if (!digest) {
        return fail(Error{400, "DIGEST_INVALID", "the digest parameter is missing", ""});
      }
      if (Status st = ValidateDigest(*digest); !st.ok()) {
        return fail(st.error());
      }
      auto done = registry_.CompleteUpload(ep.name, id, writer, *digest);
      if (!done.ok()) {
        return fail(done.error());
      }
      resp.status = 201;
      resp.SetHeader("Location", "/v2/" + ep.name + "/blobs/" + done->digest);
      resp.SetHeader("Docker-Content-Digest", done->digest);
      return resp;
    }

    case Kind::kManifest: {
      const std::string& ref = ep.reference;
      const bool by_digest = ref.find(':') != std::string::npos;
      if (by_digest) {
        if (Status st = ValidateDigest(ref); !st.ok()) {
          return fail(st.error());
        }
      }
      if (method == "PUT") {
        PutManifestRequest put;
        put.repository = ep.name;
        put.tag = by_digest ? "" : ref;
        put.expected_digest = by_digest ? ref : "";
        put.body = std::move(request.body);
        put.media_type = request.Header("Content-Type");
        put.surface = Surface::kOci;
        auto done = registry_.PutManifest(put);
        if (!done.ok()) {
          return fail(done.error());
        }
        resp.status = 201;
        resp.SetHeader("Location", "/v2/" + ep.name + "/manifests/" + done->digest);
        resp.SetHeader("Docker-Content-Digest", done->digest);
        if (!done->subject.empty()) {
          resp.SetHeader("OCI-Subject", done->subject);
        }
        return resp;
      }
      if (method == "DELETE") {
        if (by_digest) {
          if (Status st = registry_.DeleteManifest(ep.name, ref); !st.ok()) {
            return fail(st.error());
          }
        } else {
          auto removed = registry_.DeleteTag(ep.name, ref, false);
          if (!removed.ok()) {
            return fail(removed.error());
          }
        }
        resp.status = 202;
        return resp;
      }
      if (method != "GET" && method != "HEAD") {
        return fail(Unsupported());
      }
      Error unknown{404, "MANIFEST_UNKNOWN", "manifest unknown to registry", ref};
      std::string digest = ref;
      if (!by_digest) {
        if (!ValidTag(ref)) {
          return fail(unknown);
        }
        auto resolved = registry_.ResolveTag(ep.name, ref);
        if (!resolved.ok()) {
          return fail(resolved.error());
        }
        if (!*resolved) {
          return fail(unknown);
        }
        digest = **resolved;
      }
      auto record = registry_.FindManifest(ep.name, digest);
      if (!record.ok()) {
        return fail(record.error());
      }
      if (!*record) {
        return fail(unknown);
      }
      const ManifestRecord& m = **record;
      std::string accept = request.Header("Accept");
      if (!accept.empty()) {
        bool acceptable = false;
        for (const auto& part : Split(accept, ',')) {
          std::string type = BareMediaType(part);
          if (type == m.media_type || type == "*/*" || type == "application/*") {
            acceptable = true;
            break;
          }
        }
        if (!acceptable) {
          return fail(Error{404, "MANIFEST_UNKNOWN",
                            "the manifest is a " + m.media_type +
                                ", which the request's Accept header does not allow",
                            ref});
        }
      }
      resp.SetHeader("Content-Type", m.media_type);
      resp.SetHeader("Docker-Content-Digest", m.digest);
      resp.SetHeader("ETag", "\"" + m.digest + "\"");
      resp.file_path = registry_.blobs().BlobPath(m.digest);
      resp.file_length = m.size;
      return resp;
    }

    case Kind::kReferrers: {
      if (method != "GET") {
        return fail(Unsupported());
      }
      if (Status st = ValidateDigest(ep.reference); !st.ok()) {
        return fail(st.error());
      }
      auto referrers = registry_.Referrers(ep.name, ep.reference);
      if (!referrers.ok()) {
        return fail(referrers.error());
      }
      auto filter = request.Query("artifactType");
      Json manifests = Json::array();
      for (const auto& m : *referrers) {
        if (filter && m.artifact_type != *filter) {
          continue;
        }
        Json d = {{"mediaType", m.media_type}, {"digest", m.digest}, {"size", m.size}};
        if (!m.artifact_type.empty()) {
          d["artifactType"] = m.artifact_type;
        }
        if (m.annotations.is_object() && !m.annotations.empty()) {
          d["annotations"] = m.annotations;
        }
        manifests.push_back(std::move(d));
      }
      if (filter) {
        resp.SetHeader("OCI-Filters-Applied", "artifactType");
      }
      resp.SetHeader("Content-Type", std::string(kOciIndex));
      resp.body = Json{
          {"schemaVersion", 2},
          {"mediaType", std::string(kOciIndex)},
          {"manifests",
           manifests}}.dump();
      return resp;
    }

    default:
      break;
  }
  return fail(Unsupported());
}

}  // namespace berth::registry
