// SPDX-License-Identifier: Apache-2.0
#include "agent/registry_auth.h"

#include <cctype>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/paging.h"

namespace berth::agent {
namespace {

using Json = nlohmann::json;

Error Invalid(const std::string& message) {
  return Error{400, "InvalidRegistryAuth", message, {}};
}

std::string Lower(std::string s) {
  for (char& c : s) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return s;
}

// "https://Registry.example.com:5000/v1/" -> "registry.example.com:5000".
std::string HostOfKey(const std::string& key) {
  std::string host = key;
  if (size_t scheme = host.find("://"); scheme != std::string::npos) {
    host = host.substr(scheme + 3);
  }
  host = host.substr(0, host.find('/'));
  return Lower(host);
}

}  // namespace

Result<RegistryAuthMap> ParseRegistryAuth(const std::string& text) {
  Json doc = Json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) {
    return Invalid("registry auth: not a JSON object");
  }
  RegistryAuthMap out;
  if (!doc.contains("auths")) {
    return out;
  }
  const Json& auths = doc["auths"];
  if (!auths.is_object()) {
    return Invalid("registry auth: \"auths\" is not an object");
  }
  for (const auto& [key, entry] : auths.items()) {
    std::string host = HostOfKey(key);
    if (host.empty() || !entry.is_object()) {
      return Invalid("registry auth: bad entry \"" + key + "\"");
    }
    Credentials creds;
    if (entry.contains("auth") && entry["auth"].is_string() &&
        !entry["auth"].get<std::string>().empty()) {
      auto decoded = Base64Decode(entry["auth"].get<std::string>());
      if (!decoded) {
        return Invalid("registry auth: the \"auth\" of \"" + key + "\" is not base64");
      }
      size_t colon = decoded->find(':');
      if (colon == std::string::npos || colon == 0) {
        return Invalid("registry auth: the \"auth\" of \"" + key +
                       "\" does not decode to user:password");
      }
      creds.username = decoded->substr(0, colon);
      creds.password = decoded->substr(colon + 1);
    } else if (entry.contains("username") && entry["username"].is_string() &&
               entry.contains("password") && entry["password"].is_string()) {
      creds.username = entry["username"].get<std::string>();
      creds.password = entry["password"].get<std::string>();
      if (creds.username.empty()) {
        return Invalid("registry auth: empty username for \"" + key + "\"");
      }
    } else {
      continue;
    }
    out[host] = std::move(creds);
  }
  return out;
}

Result<RegistryAuthMap> LoadRegistryAuth(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return Invalid("registry auth: cannot read " + path);
  }
  std::stringstream text;
  text << in.rdbuf();
  auto parsed = ParseRegistryAuth(text.str());
  if (!parsed.ok()) {
    Error e = parsed.error();
    e.message = path + ": " + e.message;
    return e;
  }
  return parsed;
}

std::optional<Credentials> FindRegistryCredentials(const RegistryAuthMap& auths,
                                                   const std::string& registry) {
  auto it = auths.find(Lower(registry));
  if (it == auths.end()) {
    return std::nullopt;
  }
  return it->second;
}

}  // namespace berth::agent
