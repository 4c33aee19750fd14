// SPDX-License-Identifier: Apache-2.0
#include "agent/registry_client.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <regex>
#include <thread>
#include <utility>

namespace berth::agent {
namespace {

using Json = nlohmann::json;

constexpr const char* kOciManifest = "application/vnd.oci.image.manifest.v1+json";
constexpr const char* kOciIndex = "application/vnd.oci.image.index.v1+json";
constexpr const char* kDockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
constexpr const char* kDockerList = "application/vnd.docker.distribution.manifest.list.v2+json";
constexpr const char* kDockerSchema1 = "application/vnd.docker.distribution.manifest.v1";
constexpr const char* kOciConfig = "application/vnd.oci.image.config.v1+json";
constexpr const char* kDockerConfig = "application/vnd.docker.container.image.v1+json";
constexpr uint64_t kMaxErrorBody = 64 * 1024;

Error PullError(int status, std::string message) {
  return Error{status, "CannotPullContainerError", std::move(message), {}};
}

Error RefError(const std::string& reference, const std::string& why) {
  return Error{
      400, "InvalidImageReference", "invalid image reference \"" + reference + "\": " + why, {}};
}

std::string ToLower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string Trim(std::string_view s) {
  size_t b = 0;
  size_t e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) {
    ++b;
  }
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) {
    --e;
  }
  return std::string(s.substr(b, e - b));
}

bool IsValidHost(const std::string& host) {
  // A bracketed IPv6 address or dot-separated DNS labels, then an optional port.
  static const std::regex kHost(R"(^(\[[0-9A-Fa-f:.]+\]|)"
                                R"([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)"
                                R"((\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*))"
                                R"((:[0-9]{1,5})?$)");
  return std::regex_match(host, kHost);
}

bool IsValidRepository(const std::string& repo) {
  static const std::regex kRepo(
      R"(^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$)");
  return repo.size() <= 255 && std::regex_match(repo, kRepo);
}

bool IsValidTag(const std::string& tag) {
  static const std::regex kTag(R"(^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$)");
  return std::regex_match(tag, kTag);
}

// "host:port" or "[v6]:port" without the port.
std::string HostName(const std::string& registry) {
  if (!registry.empty() && registry.front() == '[') {
    size_t close = registry.find(']');
    return ToLower(registry.substr(0, close == std::string::npos ? registry.size() : close + 1));
  }
  return ToLower(registry.substr(0, registry.find(':')));
}

std::string Base64(const std::string& in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()),
                          static_cast<int>(in.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// ---------------------------------------------------------------------------
// HTTP

struct Response {
  long status = 0;
  std::string url;
  std::multimap<std::string, std::string> headers;  // lower-case names
  std::string body;  // the body of non-2xx answers, or of 2xx ones read to memory

  std::string Header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

// Where a 2xx body goes: memory (with a cap) or a file hashed on the way.
struct Sink {
  int fd = -1;
  uint64_t limit = 0;
  EVP_MD_CTX* sha = nullptr;
  uint64_t written = 0;
  bool over_limit = false;
  int write_errno = 0;
};

struct TransferState {
  CURL* curl = nullptr;
  Response* response = nullptr;
  Sink* sink = nullptr;
};

size_t OnHeader(char* data, size_t size, size_t count, void* user) {
  auto* state = static_cast<TransferState*>(user);
  size_t len = size * count;
  std::string_view line(data, len);
  if (line.rfind("HTTP/", 0) == 0) {
    state->response->headers.clear();
    return len;
  }
  size_t colon = line.find(':');
  if (colon != std::string_view::npos) {
    state->response->headers.emplace(ToLower(std::string(line.substr(0, colon))),
                                     Trim(line.substr(colon + 1)));
  }
  return len;
}

size_t OnBody(char* data, size_t size, size_t count, void* user) {
  auto* state = static_cast<TransferState*>(user);
  size_t len = size * count;
  long code = 0;
  curl_easy_getinfo(state->curl, CURLINFO_RESPONSE_CODE, &code);
  Response* resp = state->response;
  Sink* sink = state->sink;
  if (code < 200 || code > 299) {
    if (resp->body.size() < kMaxErrorBody) {
      resp->body.append(data, std::min<size_t>(len, kMaxErrorBody - resp->body.size()));
    }
    return len;
  }
  if (sink->written + len > sink->limit) {
    sink->over_limit = true;
    return 0;  // aborts the transfer
  }
  sink->written += len;
  if (sink->fd < 0) {
    resp->body.append(data, len);
    return len;
  }
  EVP_DigestUpdate(sink->sha, data, len);
  size_t done = 0;
  while (done < len) {
    ssize_t n = ::write(sink->fd, data + done, len - done);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      sink->write_errno = errno;
      return 0;
    }
    done += static_cast<size_t>(n);
  }
  return len;
}

struct Challenge {
  std::string scheme;  // lower case
  std::map<std::string, std::string> params;
};

// Parses `Bearer realm="...",service="...",scope="..."` (one challenge).
Challenge ParseChallenge(const std::string& header) {
  Challenge c;
  size_t sp = header.find(' ');
  c.scheme = ToLower(header.substr(0, sp));
  if (sp == std::string::npos) {
    return c;
  }
  size_t i = sp + 1;
  while (i < header.size()) {
    while (i < header.size() && (header[i] == ' ' || header[i] == ',')) {
      ++i;
    }
    size_t eq = header.find('=', i);
    if (eq == std::string::npos) {
      break;
    }
    std::string key = ToLower(Trim(std::string_view(header).substr(i, eq - i)));
    i = eq + 1;
    std::string value;
    if (i < header.size() && header[i] == '"') {
      ++i;
      while (i < header.size() && header[i] != '"') {
        if (header[i] == '\\' && i + 1 < header.size()) {
          ++i;
        }
        value += header[i++];
      }
      ++i;
    } else {
      size_t end = header.find(',', i);
      value = Trim(std::string_view(header).substr(i, end == std::string::npos ? end : end - i));
      i = end == std::string::npos ? header.size() : end;
    }
    c.params[key] = value;
  }
  return c;
}

// The message a registry put in its OCI error body, if any.
std::string ServerMessage(const std::string& body) {
  Json j = Json::parse(body, nullptr, false);
  if (!j.is_object() || !j.contains("errors") || !j["errors"].is_array() || j["errors"].empty()) {
    return "";
  }
  const Json& e = j["errors"][0];
  std::string code = e.value("code", "");
  std::string message = e.value("message", "");
  if (code.empty()) {
    return message;
  }
  return ToLower(code) + (message.empty() ? "" : ": " + message);
}

// Describes a non-2xx answer in the words containerd uses, which is what ECS
// users search for.
Error StatusError(const Response& resp) {
  std::string server = ServerMessage(resp.body);
  if (resp.status == 404) {
    return PullError(404, "not found");
  }
  if (resp.status == 401 || resp.status == 403) {
    return PullError(401,
                     "pull access denied, repository does not exist or may require "
                     "authorization" +
                         (server.empty() ? std::string() : ": server message: " + server));
  }
  int status = resp.status >= 500 ? 502 : 400;
  return PullError(status, "unexpected status from GET request to " + resp.url + ": " +
                               std::to_string(resp.status) +
                               (server.empty() ? std::string() : ": " + server));
}

bool IsTransient(const Error& e) {
  return e.status == 502;
}

class Session {
 public:
  Session(const RegistryClientOptions& options, const ImageRef& ref, const Credentials& creds)
      : options_(options), ref_(ref), creds_(creds) {
    GlobalInit();
    curl_ = curl_easy_init();
    base_ = std::string(options.plain_http ? "http" : "https") + "://" + ref.registry;
    host_ = HostName(ref.registry);
  }

  ~Session() {
    if (curl_ != nullptr) {
      curl_easy_cleanup(curl_);
    }
  }

  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  std::string RepoUrl(const std::string& tail) const {
    return base_ + "/v2/" + ref_.repository + "/" + tail;
  }

  // GETs `url`, answering one auth challenge and following redirects that
  // stay on the registry host. The returned response may be any status.
  Result<Response> Get(const std::string& url, const std::string& accept, Sink* sink);

 private:
  Result<Response> Perform(const std::string& url, const std::string& accept, Sink* sink,
                           const std::string& authorization);
  Status Authenticate(const Response& challenge_response);
  Status CheckSameHost(const std::string& url) const;

  const RegistryClientOptions& options_;
  const ImageRef& ref_;
  const Credentials& creds_;
  CURL* curl_ = nullptr;
  std::string base_;
  std::string host_;
  std::string authorization_;
};

Status Session::CheckSameHost(const std::string& url) const {
  CURLU* u = curl_url();
  std::string scheme;
  std::string host;
  if (curl_url_set(u, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK) {
    char* part = nullptr;
    if (curl_url_get(u, CURLUPART_SCHEME, &part, 0) == CURLUE_OK) {
      scheme = ToLower(part);
      curl_free(part);
    }
    if (curl_url_get(u, CURLUPART_HOST, &part, 0) == CURLUE_OK) {
      host = ToLower(part);
      curl_free(part);
    }
  }
  curl_url_cleanup(u);
  if (scheme != "http" && scheme != "https") {
    return PullError(400, "refusing to follow \"" + url + "\": only http and https are used");
  }
  if (host != host_) {
    // LIMITATION: blobs served from another host (a CDN redirect) and token
    // services on another host are refused; the agent only talks to the
    // registry it was pointed at.
    return PullError(
        400, "refusing to contact \"" + url + "\": it is not on the registry host " + host_);
  }
  return Ok();
}

Result<Response> Session::Perform(const std::string& url, const std::string& accept, Sink* sink,
                                  const std::string& authorization) {
  if (curl_ == nullptr) {
    return PullError(500, "curl_easy_init failed");
  }
  curl_easy_reset(curl_);
  Response resp;
  resp.url = url;
  TransferState state{curl_, &resp, sink};

  curl_slist* headers = nullptr;
  if (!accept.empty()) {
    headers = curl_slist_append(headers, ("Accept: " + accept).c_str());
  }
  if (!authorization.empty()) {
    headers = curl_slist_append(headers, ("Authorization: " + authorization).c_str());
  }
  curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl_, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl_, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(curl_, CURLOPT_PROXY, "");  // never through an environment proxy
  curl_easy_setopt(curl_, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl_, CURLOPT_USERAGENT, "berth/" BERTH_VERSION);
  curl_easy_setopt(curl_, CURLOPT_CONNECTTIMEOUT_MS, options_.connect_timeout_ms);
  curl_easy_setopt(curl_, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(curl_, CURLOPT_LOW_SPEED_TIME, options_.stall_timeout_s);
  curl_easy_setopt(curl_, CURLOPT_SSL_VERIFYPEER, options_.tls_verify ? 1L : 0L);
  curl_easy_setopt(curl_, CURLOPT_SSL_VERIFYHOST, options_.tls_verify ? 2L : 0L);
  if (!options_.ca_file.empty()) {
    curl_easy_setopt(curl_, CURLOPT_CAINFO, options_.ca_file.c_str());
  }
  curl_easy_setopt(curl_, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(curl_, CURLOPT_HEADERDATA, &state);
  curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &state);
  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(curl_, CURLOPT_ERRORBUFFER, errbuf);

  CURLcode rc = curl_easy_perform(curl_);
  curl_slist_free_all(headers);
  curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &resp.status);

  if (sink->over_limit) {
    return PullError(
        400, "GET \"" + url + "\": response larger than " + std::to_string(sink->limit) + " bytes");
  }
  if (sink->write_errno != 0) {
    return PullError(500, "write download of \"" + url + "\": " + std::strerror(sink->write_errno));
  }
  if (rc != CURLE_OK) {
    std::string why = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc);
    return PullError(502, "failed to do request: GET \"" + url + "\": " + why);
  }
  if (resp.status >= 300 && resp.status < 400) {
    char* location = nullptr;
    curl_easy_getinfo(curl_, CURLINFO_REDIRECT_URL, &location);
    resp.headers.emplace("x-berth-redirect", location ? location : "");
  }
  return resp;
}

Result<Response> Session::Get(const std::string& url, const std::string& accept, Sink* sink) {
  std::string current = url;
  bool authenticated = false;
  for (int hop = 0; hop < 8; ++hop) {
    auto resp = Perform(current, accept, sink, authorization_);
    if (!resp.ok()) {
      return resp.error();
    }
    if (resp->status == 401 && !authenticated) {
      authenticated = true;
      BERTH_TRY(Authenticate(*resp));
      continue;
    }
    if (resp->status >= 300 && resp->status < 400) {
      std::string next = resp->Header("x-berth-redirect");
      if (next.empty()) {
        return PullError(502, "GET \"" + current + "\": redirect without a location");
      }
      BERTH_TRY(CheckSameHost(next));
      current = next;
      continue;
    }
    return resp;
  }
  return PullError(502, "GET \"" + url + "\": too many redirects");
}

Status Session::Authenticate(const Response& resp) {
  std::optional<Challenge> bearer;
  std::optional<Challenge> basic;
  auto range = resp.headers.equal_range("www-authenticate");
  for (auto it = range.first; it != range.second; ++it) {
    Challenge c = ParseChallenge(it->second);
    if (c.scheme == "bearer" && !bearer) {
      bearer = c;
    } else if (c.scheme == "basic" && !basic) {
      basic = c;
    }
  }
  std::string denied = "pull access denied, repository does not exist or may require authorization";

  if (bearer) {
    std::string realm = bearer->params["realm"];
    if (realm.empty()) {
      return PullError(401, denied + ": bearer challenge without a realm");
    }
    BERTH_TRY(CheckSameHost(realm));
    std::string scope = bearer->params.count("scope") > 0
                            ? bearer->params["scope"]
                            : "repository:" + ref_.repository + ":pull";
    std::string token_url = realm + (realm.find('?') == std::string::npos ? "?" : "&");
    char* service = curl_easy_escape(curl_, bearer->params["service"].c_str(), 0);
    char* scope_escaped = curl_easy_escape(curl_, scope.c_str(), 0);
    token_url += "service=" + std::string(service ? service : "") +
                 "&scope=" + std::string(scope_escaped ? scope_escaped : "");
    curl_free(service);
    curl_free(scope_escaped);

    std::string basic_auth;
    if (!creds_.username.empty()) {
      basic_auth = "Basic " + Base64(creds_.username + ":" + creds_.password);
    }
    Sink sink;
    sink.limit = 1 << 20;
    auto token_resp = Perform(token_url, "application/json", &sink, basic_auth);
    if (!token_resp.ok()) {
      return token_resp.error();
    }
    if (token_resp->status != 200) {
      std::string server = ServerMessage(token_resp->body);
      return PullError(401, denied + ": token request answered " +
                                std::to_string(token_resp->status) +
                                (server.empty() ? std::string() : ": " + server));
    }
    Json j = Json::parse(token_resp->body, nullptr, false);
    std::string token;
    if (j.is_object()) {
      if (j.contains("token") && j["token"].is_string()) {
        token = j["token"].get<std::string>();
      } else if (j.contains("access_token") && j["access_token"].is_string()) {
        token = j["access_token"].get<std::string>();
      }
    }
    if (token.empty()) {
      return PullError(401, denied + ": token response carries no token");
    }
    authorization_ = "Bearer " + token;
    return Ok();
  }

  if (basic) {
    if (creds_.username.empty()) {
      return PullError(401, denied + ": no basic auth credentials");
    }
    authorization_ = "Basic " + Base64(creds_.username + ":" + creds_.password);
    return Ok();
  }
  return PullError(401, denied + ": unsupported authentication challenge");
}

// ---------------------------------------------------------------------------
// Content

struct Descriptor {
  std::string media_type;
  std::string digest;
  uint64_t size = 0;
  bool has_urls = false;
  Json platform;
};

Result<Descriptor> ParseDescriptor(const Json& j, const std::string& what) {
  if (!j.is_object() || !j.contains("digest") || !j["digest"].is_string() || !j.contains("size") ||
      !j["size"].is_number_unsigned()) {
    return PullError(400, "manifest has an invalid " + what + " descriptor");
  }
  Descriptor d;
  d.media_type = j.value("mediaType", "");
  d.digest = j["digest"].get<std::string>();
  d.size = j["size"].get<uint64_t>();
  d.has_urls = j.contains("urls") && j["urls"].is_array() && !j["urls"].empty();
  if (j.contains("platform")) {
    d.platform = j["platform"];
  }
  if (!IsValidDigest(d.digest)) {
    return PullError(400, "manifest has an unsupported " + what + " digest \"" + d.digest + "\"");
  }
  return d;
}

struct Manifest {
  std::string digest;
  std::string media_type;
  Json body;
};

bool IsIndex(const Manifest& m) {
  return m.media_type == kOciIndex || m.media_type == kDockerList ||
         (m.media_type.empty() && m.body.contains("manifests") && !m.body.contains("layers"));
}

bool IsLayerType(const std::string& t) {
  return t == "application/vnd.oci.image.layer.v1.tar" ||
         t == "application/vnd.oci.image.layer.v1.tar+gzip" ||
         t == "application/vnd.oci.image.layer.v1.tar+zstd" ||
         t == "application/vnd.docker.image.rootfs.diff.tar.gzip" ||
         t == "application/vnd.docker.image.rootfs.diff.tar";
}

class Puller {
 public:
  Puller(const RegistryClientOptions& options, const ImageRef& ref, ImageStore& store,
         const Credentials& creds)
      : options_(options), ref_(ref), store_(store), session_(options, ref, creds) {}

  Result<PulledImage> Run();

 private:
  Result<Manifest> FetchManifestOnce(const std::string& reference);
  Result<Manifest> FetchManifest(const std::string& reference);
  Result<Descriptor> PickPlatform(const Manifest& index);
  Result<Manifest> ResolveManifest();
  Status FetchConfig(const Manifest& manifest);
  Status FetchLayers(const Manifest& manifest);
  Status DownloadBlobOnce(const Descriptor& desc);
  Status EnsureBlob(const Descriptor& desc, const std::string& what);

  template <typename F>
  auto WithRetries(F&& attempt, int* retries) -> decltype(attempt());

  const RegistryClientOptions& options_;
  const ImageRef& ref_;
  ImageStore& store_;
  Session session_;
  PulledImage image_;
};

template <typename F>
auto Puller::WithRetries(F&& attempt, int* retries) -> decltype(attempt()) {
  int delay = options_.retry_delay_ms;
  *retries = 0;
  while (true) {
    auto result = attempt();
    if (result.ok() || !IsTransient(result.error()) ||
        *retries + 1 >= std::max(1, options_.attempts)) {
      return result;
    }
    ++*retries;
    std::this_thread::sleep_for(std::chrono::milliseconds(delay));
    delay *= 2;
  }
}

Result<Manifest> Puller::FetchManifestOnce(const std::string& reference) {
  Sink sink;
  sink.limit = options_.max_manifest_bytes;
  std::string accept =
      std::string(kOciManifest) + ", " + kOciIndex + ", " + kDockerManifest + ", " + kDockerList;
  auto resp = session_.Get(session_.RepoUrl("manifests/" + reference), accept, &sink);
  if (!resp.ok()) {
    return resp.error();
  }
  if (resp->status != 200) {
    return StatusError(*resp);
  }

  Manifest m;
  m.digest = Sha256OfString(resp->body);
  if (reference.rfind("sha256:", 0) == 0 && m.digest != reference) {
    return PullError(400, "manifest digest mismatch: got " + m.digest);
  }
  std::string header_digest = resp->Header("docker-content-digest");
  if (header_digest.rfind("sha256:", 0) == 0 && header_digest != m.digest) {
    return PullError(400, "manifest digest mismatch: registry says " + header_digest +
                              ", content is " + m.digest);
  }
  m.body = Json::parse(resp->body, nullptr, false);
  if (!m.body.is_object()) {
    return PullError(400, "manifest is not a JSON object");
  }
  m.media_type = m.body.value("mediaType", "");
  if (m.media_type.empty()) {
    std::string content_type = resp->Header("content-type");
    m.media_type = Trim(content_type.substr(0, content_type.find(';')));
    if (m.media_type == "application/json" || m.media_type == "text/plain") {
      m.media_type.clear();
    }
  }
  if (m.media_type.rfind(kDockerSchema1, 0) == 0 || m.body.value("schemaVersion", 0) == 1) {
    return PullError(400, "manifest schema version 1 is not supported");
  }
  return m;
}

Result<Manifest> Puller::FetchManifest(const std::string& reference) {
  int retries = 0;
  auto m = WithRetries([&] { return FetchManifestOnce(reference); }, &retries);
  if (!m.ok()) {
    Error e = m.error();
    e.message = "pull image manifest has been retried " + std::to_string(retries) +
                " time(s): failed to resolve ref " + ref_.ToString() + ": " + e.message;
    return e;
  }
  return m;
}

Result<Descriptor> Puller::PickPlatform(const Manifest& index) {
  const Json& list = index.body.contains("manifests") ? index.body["manifests"] : Json();
  if (!list.is_array()) {
    return PullError(400, "image index " + index.digest + " has no manifests list");
  }
  for (const Json& entry : list) {
    auto d = ParseDescriptor(entry, "manifest");
    if (!d.ok()) {
      return d.error();
    }
    if (!d->platform.is_object()) {
      continue;
    }
    std::string os = d->platform.value("os", "");
    std::string arch = d->platform.value("architecture", "");
    std::string variant = d->platform.value("variant", "");
    if (os != options_.os || arch != options_.architecture) {
      continue;
    }
    if (arch == "arm64" && !variant.empty() && variant != "v8") {
      continue;
    }
    return d;
  }
  return PullError(404, "no matching manifest for " + options_.os + "/" + options_.architecture +
                            " in the manifest list entries of " + ref_.ToString());
}

Status Puller::DownloadBlobOnce(const Descriptor& desc) {
  auto temp = store_.CreateTempFile("blob");
  if (!temp.ok()) {
    return temp.error();
  }
  int fd = ::open(temp->c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (fd < 0) {
    ::unlink(temp->c_str());
    return PullError(500, "open " + *temp + ": " + std::strerror(errno));
  }
  Sink sink;
  sink.fd = fd;
  sink.limit = desc.size;
  sink.sha = EVP_MD_CTX_new();
  EVP_DigestInit_ex(sink.sha, EVP_sha256(), nullptr);
  auto resp = session_.Get(session_.RepoUrl("blobs/" + desc.digest), "", &sink);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  EVP_DigestFinal_ex(sink.sha, md, &md_len);
  EVP_MD_CTX_free(sink.sha);
  ::close(fd);

  auto fail = [&](Error e) -> Status {
    ::unlink(temp->c_str());
    return e;
  };
  if (!resp.ok()) {
    return fail(resp.error());
  }
  if (resp->status != 200) {
    return fail(StatusError(*resp));
  }
  if (sink.written != desc.size) {
    return fail(PullError(502, "short read: expected " + std::to_string(desc.size) +
                                   " bytes, got " + std::to_string(sink.written)));
  }
  static const char kHex[] = "0123456789abcdef";
  std::string actual = "sha256:";
  for (unsigned int i = 0; i < md_len; ++i) {
    actual += kHex[md[i] >> 4];
    actual += kHex[md[i] & 0xf];
  }
  if (actual != desc.digest) {
    return fail(PullError(400, "digest mismatch: content has " + actual));
  }
  Status committed = store_.CommitBlob(desc.digest, *temp, BlobCheck::kAlreadyVerified);
  if (!committed.ok()) {
    return PullError(500, committed.error().message);
  }
  ++image_.blobs_downloaded;
  image_.bytes_downloaded += sink.written;
  return Ok();
}

Status Puller::EnsureBlob(const Descriptor& desc, const std::string& what) {
  if (store_.HasBlob(desc.digest)) {
    return Ok();
  }
  int retries = 0;
  Status s = WithRetries([&] { return DownloadBlobOnce(desc); }, &retries);
  if (!s.ok()) {
    Error e = s.error();
    e.message = "pull " + what + " " + desc.digest + " of " + ref_.ToString() + ": " + e.message;
    return e;
  }
  return Ok();
}

Result<Manifest> Puller::ResolveManifest() {
  auto top = FetchManifest(ref_.ManifestReference());
  if (!top.ok()) {
    return top.error();
  }
  image_.digest = top->digest;
  if (!IsIndex(*top)) {
    return top;
  }
  auto chosen = PickPlatform(*top);
  if (!chosen.ok()) {
    return chosen.error();
  }
  auto manifest = FetchManifest(chosen->digest);
  if (!manifest.ok()) {
    return manifest.error();
  }
  if (IsIndex(*manifest)) {
    return PullError(400, "image index " + chosen->digest + " nests another index");
  }
  return manifest;
}

Status Puller::FetchConfig(const Manifest& manifest) {
  auto config = ParseDescriptor(manifest.body["config"], "config");
  if (!config.ok()) {
    return config.error();
  }
  if (config->media_type != kOciConfig && config->media_type != kDockerConfig) {
    return PullError(400, ref_.ToString() + " is not a container image (config media type \"" +
                              config->media_type + "\")");
  }
  if (config->size > options_.max_config_bytes) {
    return PullError(400, "image config " + config->digest + " is too large");
  }
  BERTH_TRY(EnsureBlob(*config, "image config"));
  auto text = store_.ReadBlob(config->digest, options_.max_config_bytes);
  if (!text.ok()) {
    return PullError(500, "read image config " + config->digest + ": " + text.error().message);
  }
  image_.config_digest = config->digest;
  image_.config = Json::parse(*text, nullptr, false);
  if (!image_.config.is_object()) {
    return PullError(400, "image config " + config->digest + " is not a JSON object");
  }
  return Ok();
}

Status Puller::FetchLayers(const Manifest& manifest) {
  for (const Json& entry : manifest.body["layers"]) {
    auto layer = ParseDescriptor(entry, "layer");
    if (!layer.ok()) {
      return layer.error();
    }
    // Foreign layers name download URLs on other hosts; they are never used.
    if (layer->has_urls || !IsLayerType(layer->media_type)) {
      return PullError(400, "layer " + layer->digest + " of " + ref_.ToString() +
                                " has unsupported media type \"" + layer->media_type + "\"");
    }
    if (!store_.HasLayer(layer->digest)) {
      BERTH_TRY(EnsureBlob(*layer, "layer"));
    }
    auto path = store_.EnsureLayerUnpacked(layer->digest, store_.BlobPath(layer->digest));
    if (!path.ok()) {
      return PullError(
          path.error().code == "LayerInvalid" ? 400 : 500,
          "unpack layer " + layer->digest + " of " + ref_.ToString() + ": " + path.error().message);
    }
    image_.layers.push_back(PulledLayer{layer->digest, layer->media_type, layer->size, *path});
  }

  const Json& rootfs = image_.config.contains("rootfs") ? image_.config["rootfs"] : Json();
  if (rootfs.is_object() && rootfs.contains("diff_ids") && rootfs["diff_ids"].is_array() &&
      rootfs["diff_ids"].size() != image_.layers.size()) {
    return PullError(400, "image config " + image_.config_digest + " lists " +
                              std::to_string(rootfs["diff_ids"].size()) + " layers, the manifest " +
                              std::to_string(image_.layers.size()));
  }
  return Ok();
}

Result<PulledImage> Puller::Run() {
  if (ref_.registry.empty()) {
    return PullError(400, "image reference " + ref_.ToString() + " names no registry");
  }
  image_.reference = ref_.ToString();

  auto manifest = ResolveManifest();
  if (!manifest.ok()) {
    return manifest.error();
  }
  image_.manifest_digest = manifest->digest;
  image_.manifest_media_type = manifest->media_type;
  if (!manifest->body.contains("config") || !manifest->body.contains("layers") ||
      !manifest->body["layers"].is_array()) {
    return PullError(400, "manifest " + manifest->digest + " of " + ref_.ToString() +
                              " has no config or layers");
  }

  BERTH_TRY(FetchConfig(*manifest));
  BERTH_TRY(FetchLayers(*manifest));
  return std::move(image_);
}

}  // namespace

// ---------------------------------------------------------------------------
// ImageRef

Result<ImageRef> ImageRef::Parse(const std::string& reference) {
  if (reference.empty()) {
    return RefError(reference, "empty");
  }
  if (reference.size() > 4096) {
    return RefError(reference.substr(0, 64) + "...", "too long");
  }
  ImageRef ref;
  std::string name = reference;

  size_t at = name.find('@');
  if (at != std::string::npos) {
    ref.digest = name.substr(at + 1);
    name = name.substr(0, at);
    if (ref.digest.rfind("sha256:", 0) != 0) {
      return RefError(reference, "only sha256 digests are supported");
    }
    if (!IsValidDigest(ref.digest)) {
      return RefError(reference, "malformed digest");
    }
  }

  size_t last_slash = name.rfind('/');
  size_t colon = name.rfind(':');
  if (colon != std::string::npos && (last_slash == std::string::npos || colon > last_slash)) {
    ref.tag = name.substr(colon + 1);
    name = name.substr(0, colon);
    if (!IsValidTag(ref.tag)) {
      return RefError(reference, "malformed tag \"" + ref.tag + "\"");
    }
  }

  size_t first_slash = name.find('/');
  if (first_slash != std::string::npos) {
    std::string first = name.substr(0, first_slash);
    bool is_host = first.find_first_of(".:") != std::string::npos || first == "localhost" ||
                   ToLower(first) != first || (!first.empty() && first.front() == '[');
    if (is_host) {
      ref.registry = first;
      name = name.substr(first_slash + 1);
      if (!IsValidHost(ref.registry)) {
        return RefError(reference, "malformed registry host \"" + ref.registry + "\"");
      }
    }
  }
  ref.repository = name;
  if (!IsValidRepository(ref.repository)) {
    return RefError(reference, "malformed repository name \"" + ref.repository + "\"");
  }
  if (ref.tag.empty() && ref.digest.empty()) {
    ref.tag = "latest";
  }
  return ref;
}

std::string ImageRef::ToString() const {
  std::string out;
  if (!registry.empty()) {
    out = registry + "/";
  }
  out += repository;
  if (!tag.empty()) {
    out += ":" + tag;
  }
  if (!digest.empty()) {
    out += "@" + digest;
  }
  return out;
}

std::optional<EcrRegistry> ParseEcrRegistry(const std::string& host) {
  static const std::regex kEcr(
      R"(^([0-9]{12})\.dkr\.ecr(-fips)?\.([a-z]{2}(-[a-z]+)+-[0-9]+)\.amazonaws\.com(\.cn)?$)");
  std::smatch m;
  std::string lower = ToLower(host);
  if (!std::regex_match(lower, m, kEcr)) {
    return std::nullopt;
  }
  return EcrRegistry{m[1].str(), m[3].str()};
}

std::set<std::string> PulledImage::StoreDigests() const {
  std::set<std::string> out;
  if (!config_digest.empty()) {
    out.insert(config_digest);
  }
  for (const auto& layer : layers) {
    out.insert(layer.digest);
  }
  return out;
}

Json PulledImageRecord(const PulledImage& image) {
  if (image.config_digest.empty() && image.layers.empty()) {
    return Json::object();
  }
  Json layers = Json::array();
  for (const auto& layer : image.layers) {
    layers.push_back(
        {{"digest", layer.digest}, {"mediaType", layer.media_type}, {"size", layer.size}});
  }
  return Json{{"reference", image.reference},
              {"digest", image.digest},
              {"manifestDigest", image.manifest_digest},
              {"configDigest", image.config_digest},
              {"layers", std::move(layers)}};
}

Result<PulledImage> PulledImageFromRecord(const Json& record, const ImageStore& store) {
  PulledImage image;
  if (!record.is_object() || record.empty()) {
    return image;
  }
  auto invalid = [](const std::string& why) {
    return Error{400, "InvalidImageRecord", "image record: " + why, {}};
  };
  try {
    image.reference = record.value("reference", "");
    image.digest = record.value("digest", "");
    image.manifest_digest = record.value("manifestDigest", "");
    image.config_digest = record.value("configDigest", "");
    if (!image.config_digest.empty() && !IsValidDigest(image.config_digest)) {
      return invalid("bad config digest \"" + image.config_digest + "\"");
    }
    for (const auto& l : record.value("layers", Json::array())) {
      PulledLayer layer;
      layer.digest = l.at("digest").get<std::string>();
      if (!IsValidDigest(layer.digest)) {
        return invalid("bad layer digest \"" + layer.digest + "\"");
      }
      layer.media_type = l.value("mediaType", "");
      layer.size = l.value("size", uint64_t{0});
      layer.path = store.LayerPath(layer.digest);
      image.layers.push_back(std::move(layer));
    }
  } catch (const Json::exception& e) {
    return invalid(e.what());
  }
  if (!image.config_digest.empty()) {
    auto config = store.ReadBlob(image.config_digest, 8 << 20);
    if (config.ok()) {
      image.config = Json::parse(*config, nullptr, false);
      if (image.config.is_discarded()) {
        image.config = nullptr;
      }
    }
  }
  return image;
}

std::string HostArchitecture() {
#if defined(__x86_64__)
  return "amd64";
#elif defined(__aarch64__)
  return "arm64";
#elif defined(__arm__)
  return "arm";
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  return "ppc64le";
#elif defined(__s390x__)
  return "s390x";
#elif defined(__riscv) && __riscv_xlen == 64
  return "riscv64";
#else
  return "unknown";
#endif
}

RegistryClient::RegistryClient(RegistryClientOptions options) : options_(std::move(options)) {}

Result<PulledImage> RegistryClient::Pull(const ImageRef& ref, ImageStore& store,
                                         const Credentials& credentials) const {
  auto pin = store.PinAgainstCollection();
  Puller puller(options_, ref, store, credentials);
  return puller.Run();
}

}  // namespace berth::agent
