// SPDX-License-Identifier: Apache-2.0
#include "cli/http_client.h"

#include <curl/curl.h>

#include <memory>
#include <mutex>

#include "api/sigv4.h"

namespace berth::cli {

namespace {

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

size_t CollectBody(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

std::string Trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  size_t e = s.find_last_not_of(" \t\r\n");
  return b == std::string_view::npos ? "" : std::string(s.substr(b, e - b + 1));
}

// Keeps the headers of the final answer only (a 100 Continue comes first).
size_t CollectHeader(char* data, size_t size, size_t n, void* out) {
  auto* headers = static_cast<http::Headers*>(out);
  std::string_view line(data, size * n);
  if (line.rfind("HTTP/", 0) == 0) {
    headers->clear();
    return size * n;
  }
  size_t colon = line.find(':');
  if (colon != std::string_view::npos) {
    std::string name = Trim(line.substr(0, colon));
    std::string value = Trim(line.substr(colon + 1));
    auto it = headers->find(name);
    if (it == headers->end()) {
      headers->emplace(name, value);
    } else {
      it->second += "," + value;
    }
  }
  return size * n;
}

struct ReadState {
  const HttpRequest* request;
};

size_t ReadBody(char* buffer, size_t size, size_t n, void* user) {
  auto* state = static_cast<ReadState*>(user);
  size_t got = state->request->body_reader(buffer, size * n);
  if (got == kAbortUpload) {
    return CURL_READFUNC_ABORT;
  }
  return got;
}

}  // namespace

Result<Url> Url::Parse(const std::string& text) {
  Url u;
  size_t scheme_end = text.find("://");
  if (scheme_end == std::string::npos) {
    return ClientError("InvalidEndpoint", "not a URL: '" + text + "'");
  }
  u.scheme = text.substr(0, scheme_end);
  if (u.scheme != "http" && u.scheme != "https") {
    return ClientError("InvalidEndpoint",
                       "unsupported URL scheme '" + u.scheme + "' in '" + text + "'");
  }
  size_t host_start = scheme_end + 3;
  size_t path_start = text.find_first_of("/?", host_start);
  u.host = text.substr(
      host_start, path_start == std::string::npos ? std::string::npos : path_start - host_start);
  if (u.host.empty()) {
    return ClientError("InvalidEndpoint", "no host in URL '" + text + "'");
  }
  std::string rest = path_start == std::string::npos ? "" : text.substr(path_start);
  size_t q = rest.find('?');
  u.path = rest.substr(0, q);
  if (q != std::string::npos) {
    u.query = rest.substr(q + 1);
  }
  if (u.path.empty()) {
    u.path = "/";
  }
  return u;
}

std::string Url::ToString() const {
  return scheme + "://" + host + path + (query.empty() ? "" : "?" + query);
}

std::string ResolveLocation(const std::string& base, const std::string& location) {
  if (location.find("://") != std::string::npos) {
    return location;
  }
  auto u = Url::Parse(base);
  if (!u.ok()) {
    return location;
  }
  return u->scheme + "://" + u->host + (location.empty() || location[0] != '/' ? "/" : "") +
         location;
}

std::string HttpResponse::Header(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? "" : it->second;
}

Result<HttpResponse> Perform(const HttpRequest& request) {
  GlobalInit();
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), curl_easy_cleanup);
  if (!curl) {
    return Error{0, "TransportError", "cannot create an HTTP handle", {}};
  }
  CURL* h = curl.get();
  HttpResponse response;
  curl_slist* list = nullptr;
  for (const auto& [name, value] : request.headers) {
    list = curl_slist_append(list, (name + ": " + value).c_str());
  }
  // berthd answers at once; waiting for 100 Continue only adds a round trip.
  list = curl_slist_append(list, "Expect:");
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> headers(list, curl_slist_free_all);

  curl_easy_setopt(h, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, CollectBody);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &response.body);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, CollectHeader);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &response.headers);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, request.timeout_ms);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(h, CURLOPT_USERAGENT, "berth-cli/" BERTH_VERSION);

  ReadState state{&request};
  if (request.body_reader) {
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, ReadBody);
    curl_easy_setopt(h, CURLOPT_READDATA, &state);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(request.body_size));
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  } else if (request.method == "HEAD") {
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  } else if (request.method == "GET") {
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
  } else {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, request.body.data());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
  }

  CURLcode rc = curl_easy_perform(h);
  if (rc != CURLE_OK) {
    return Error{0, "TransportError", curl_easy_strerror(rc), {}};
  }
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &response.status);
  return response;
}

Status SignRequest(HttpRequest& request, const Settings& settings, const std::string& service) {
  auto url = Url::Parse(request.url);
  if (!url.ok()) {
    return url.error();
  }
  http::Request r;
  r.method = request.method;
  r.raw_path = url->path;
  r.raw_query = url->query;
  r.body = request.body;
  r.headers["Host"] = url->host;
  for (const auto& [name, value] : request.headers) {
    r.headers[name] = value;
  }
  if (!settings.session_token.empty()) {
    r.headers["X-Amz-Security-Token"] = settings.session_token;
  }
  api::SignSigV4(r, settings.access_key_id, settings.secret_access_key, settings.region, service);
  request.headers.clear();
  for (const auto& [name, value] : r.headers) {
    request.headers.emplace_back(name, value);
  }
  return Ok();
}

}  // namespace berth::cli
