#include "server/http_types.h"

#include <strings.h>

#include <nlohmann/json.hpp>

namespace berth::http {

bool CaseInsensitiveLess::operator()(std::string_view a, std::string_view b) const {
  size_t n = std::min(a.size(), b.size());
  int c = strncasecmp(a.data(), b.data(), n);
  if (c != 0) {
    return c < 0;
  }
  return a.size() < b.size();
}

std::string Request::Header(std::string_view name) const {
  auto it = headers.find(name);
  return it == headers.end() ? std::string() : it->second;
}

std::optional<std::string> Request::Query(std::string_view name) const {
  auto it = query.find(std::string(name));
  if (it == query.end()) {
    return std::nullopt;
  }
  return it->second;
}

void Response::SetHeader(std::string name, std::string value) {
  for (auto& [n, v] : headers) {
    if (strcasecmp(n.c_str(), name.c_str()) == 0) {
      v = std::move(value);
      return;
    }
  }
  headers.emplace_back(std::move(name), std::move(value));
}

std::string Response::Header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (n.size() == name.size() && strncasecmp(n.data(), name.data(), n.size()) == 0) {
      return v;
    }
  }
  return {};
}

Response Route::RenderError(const Request& request, const Error& error) {
  Response r;
  r.status = error.status;
  r.SetHeader("Content-Type", "application/json");
  nlohmann::json body = {{"__type", error.code}, {"message", error.message}};
  r.body = body.dump();
  return r;
}

}  // namespace berth::http
