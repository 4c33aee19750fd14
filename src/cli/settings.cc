// SPDX-License-Identifier: Apache-2.0
#include "cli/settings.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace berth::cli {

namespace {

constexpr const char* kDefaultEndpoint = "http://127.0.0.1:4566";
constexpr const char* kDefaultDataDir = "/var/lib/berth";
constexpr const char* kDefaultRegion = "us-east-1";

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  size_t e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

std::string EnvOr(const EnvFn& env, const std::string& name, const std::string& fallback) {
  auto v = env(name);
  return v && !v->empty() ? *v : fallback;
}

std::string Lookup(const IniFile& ini, const std::string& section, const std::string& key) {
  auto s = ini.find(section);
  if (s == ini.end()) {
    return "";
  }
  auto k = s->second.find(key);
  return k == s->second.end() ? "" : k->second;
}

std::string ProfileOf(const GlobalFlags& flags, const EnvFn& env) {
  if (!flags.profile.empty()) {
    return flags.profile;
  }
  return EnvOr(env, "AWS_PROFILE", "default");
}

// The config file names profiles "[profile x]", except the default one.
std::string ConfigSection(const std::string& profile) {
  return profile == "default" ? "default" : "profile " + profile;
}

struct KeysFound {
  std::string access_key_id;
  std::string secret;
  std::string session_token;
};

// Reads the profile's keys from a shared credentials file. `why` receives a
// reason when the file gives none.
std::optional<KeysFound> KeysFromFile(const std::string& path, const std::string& profile,
                                      std::string& why) {
  std::ifstream probe(path);
  if (!probe) {
    why = path + ": " + std::strerror(errno);
    return std::nullopt;
  }
  auto ini = ReadIniFile(path);
  if (!ini) {
    why = path + ": cannot be read";
    return std::nullopt;
  }
  KeysFound k{Lookup(*ini, profile, "aws_access_key_id"),
              Lookup(*ini, profile, "aws_secret_access_key"),
              Lookup(*ini, profile, "aws_session_token")};
  if (k.access_key_id.empty() || k.secret.empty()) {
    why = path + ": no keys for profile '" + profile + "'";
    return std::nullopt;
  }
  return k;
}

}  // namespace

EnvFn ProcessEnv() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) {
      return std::nullopt;
    }
    return std::string(v);
  };
}

IniFile ParseIni(const std::string& text) {
  IniFile out;
  std::string section;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    line = Trim(line);
    if (line.empty() || line[0] == '#' || line[0] == ';') {
      continue;
    }
    if (line.front() == '[') {
      size_t close = line.find(']');
      section = Trim(line.substr(1, close == std::string::npos ? std::string::npos : close - 1));
      out[section];
      continue;
    }
    size_t eq = line.find('=');
    if (eq == std::string::npos) {
      continue;
    }
    out[section][Trim(line.substr(0, eq))] = Trim(line.substr(eq + 1));
  }
  return out;
}

std::optional<IniFile> ReadIniFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return std::nullopt;
  }
  std::stringstream text;
  text << in.rdbuf();
  return ParseIni(text.str());
}

Settings ResolveLocation(const GlobalFlags& flags, const EnvFn& env) {
  Settings s;
  s.endpoint = !flags.endpoint_url.empty() ? flags.endpoint_url
                                           : EnvOr(env, "BERTH_ENDPOINT", kDefaultEndpoint);
  while (s.endpoint.size() > 1 && s.endpoint.back() == '/') {
    s.endpoint.pop_back();
  }
  if (s.endpoint.find("://") == std::string::npos) {
    s.endpoint = "http://" + s.endpoint;
  }
  s.data_dir =
      !flags.data_dir.empty() ? flags.data_dir : EnvOr(env, "BERTH_DATA_DIR", kDefaultDataDir);
  while (s.data_dir.size() > 1 && s.data_dir.back() == '/') {
    s.data_dir.pop_back();
  }

  // Region: flag, the AWS variables, the AWS config file, berthd's config, us-east-1.
  const std::string profile = ProfileOf(flags, env);
  s.region = flags.region;
  if (s.region.empty()) {
    s.region = EnvOr(env, "AWS_REGION", EnvOr(env, "AWS_DEFAULT_REGION", ""));
  }
  if (s.region.empty()) {
    if (auto file = env("AWS_CONFIG_FILE"); file && !file->empty()) {
      if (auto ini = ReadIniFile(*file)) {
        s.region = Lookup(*ini, ConfigSection(profile), "region");
      }
    }
  }
  if (s.region.empty()) {
    if (auto ini = ReadIniFile(s.data_dir + "/config")) {
      s.region = Lookup(*ini, "default", "region");
    }
  }
  if (s.region.empty()) {
    s.region = kDefaultRegion;
  }
  return s;
}

Result<Settings> ResolveSettings(const GlobalFlags& flags, const EnvFn& env) {
  Settings s = ResolveLocation(flags, env);
  const std::string profile = ProfileOf(flags, env);

  // The variables win only as a pair, as in the AWS CLI.
  std::string akid = EnvOr(env, "AWS_ACCESS_KEY_ID", "");
  std::string secret = EnvOr(env, "AWS_SECRET_ACCESS_KEY", "");
  if (!akid.empty() && !secret.empty() && flags.profile.empty()) {
    s.access_key_id = akid;
    s.secret_access_key = secret;
    s.session_token = EnvOr(env, "AWS_SESSION_TOKEN", "");
    s.credentials_source = "the AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY variables";
    return s;
  }

  std::vector<std::string> candidates;
  if (auto file = env("AWS_SHARED_CREDENTIALS_FILE"); file && !file->empty()) {
    candidates.push_back(*file);
  } else {
    candidates.push_back(s.data_dir + "/credentials");
    if (auto home = env("HOME"); home && !home->empty()) {
      candidates.push_back(*home + "/.aws/credentials");
    }
  }
  std::string reasons;
  for (const auto& path : candidates) {
    std::string why;
    if (auto keys = KeysFromFile(path, profile, why)) {
      s.access_key_id = keys->access_key_id;
      s.secret_access_key = keys->secret;
      s.session_token = keys->session_token;
      s.credentials_source = path;
      return s;
    }
    reasons += (reasons.empty() ? "" : "; ") + why;
  }
  return ClientError("NoCredentials",
                     "no credentials found (" + reasons +
                         "); set --data-dir or BERTH_DATA_DIR to berthd's data dir, or "
                         "AWS_SHARED_CREDENTIALS_FILE, or AWS_ACCESS_KEY_ID and "
                         "AWS_SECRET_ACCESS_KEY");
}

}  // namespace berth::cli
