// SPDX-License-Identifier: Apache-2.0
#include "ecs/agent_client.h"

#include <curl/curl.h>

#include <memory>
#include <mutex>

namespace berth::ecs {

namespace {

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

size_t Collect(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

std::string Escape(CURL* curl, const std::string& s) {
  char* e = curl_easy_escape(curl, s.c_str(), static_cast<int>(s.size()));
  std::string out = e ? e : "";
  curl_free(e);
  return out;
}

}  // namespace

AgentControlClient::AgentControlClient(std::string endpoint, std::string token,
                                       std::chrono::milliseconds timeout)
    : endpoint_(std::move(endpoint)), token_(std::move(token)), timeout_(timeout) {
  while (!endpoint_.empty() && endpoint_.back() == '/') {
    endpoint_.pop_back();
  }
  GlobalInit();
}

Result<Json> AgentControlClient::Call(const std::string& method, const std::string& path,
                                      const std::string& body,
                                      std::chrono::milliseconds timeout) {
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), curl_easy_cleanup);
  if (!curl) {
    return Error{503, "Unavailable", "agent client: cannot create a curl handle", {}};
  }
  std::string url = endpoint_ + path;
  std::string response;
  std::string auth = "Authorization: Bearer " + token_;
  curl_slist* headers = nullptr;
  headers = curl_slist_append(headers, auth.c_str());
  headers = curl_slist_append(headers, "Content-Type: application/json");
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> header_list(headers,
                                                                          curl_slist_free_all);
  CURL* h = curl.get();
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, Collect);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &response);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
  if (method == "POST") {
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  }
  CURLcode rc = curl_easy_perform(h);
  if (rc != CURLE_OK) {
    return Error{503, "Unavailable",
                 "agent client: " + method + " " + path + ": " + curl_easy_strerror(rc), {}};
  }
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  Json parsed;
  try {
    parsed = Json::parse(response.empty() ? std::string("{}") : response);
  } catch (const Json::parse_error&) {
    return Error{502, "BadResponse", "agent client: " + path + ": the answer is not JSON", {}};
  }
  if (status != 200) {
    return Error{static_cast<int>(status), parsed.value("code", "Error"),
                 parsed.value("message", "HTTP " + std::to_string(status)), {}};
  }
  return parsed;
}

Result<Json> AgentControlClient::Register(const NodeRegistration& registration) {
  auto out = Call("POST", "/_berth/agent/register", registration.ToJson().dump(), timeout_);
  if (!out.ok()) {
    return out.error();
  }
  return (*out)["node"];
}

Result<DesiredState> AgentControlClient::Desired(const std::string& node_id, int64_t after,
                                                 std::chrono::seconds wait) {
  std::string node;
  {
    std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), curl_easy_cleanup);
    node = Escape(curl.get(), node_id);
  }
  std::string path = "/_berth/agent/desired?node=" + node + "&after=" + std::to_string(after) +
                     "&wait=" + std::to_string(wait.count());
  auto out = Call("GET", path, "", timeout_ + wait);
  if (!out.ok()) {
    return out.error();
  }
  return DesiredState::FromJson(*out);
}

Result<Json> AgentControlClient::Report(const TaskReport& report) {
  return Call("POST", "/_berth/agent/report", report.ToJson().dump(), timeout_);
}

}  // namespace berth::ecs
