// SPDX-License-Identifier: Apache-2.0
//
// Where the berth command-line client sends its requests and which keys it
// signs them with. The endpoint, data dir and region come from flags or the
// environment; credentials are found the way the AWS CLI finds them (the
// AWS_* variables, then AWS_SHARED_CREDENTIALS_FILE), falling back to the
// credentials berthd wrote into its data dir, then to ~/.aws/credentials.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>

#include "common/result.h"

namespace berth::cli {

/// Looks up an environment variable; nullopt when unset.
using EnvFn = std::function<std::optional<std::string>(const std::string&)>;

/// The process environment.
EnvFn ProcessEnv();

/// What the global flags say; empty strings mean "not given".
struct GlobalFlags {
  std::string endpoint_url;
  std::string data_dir;
  std::string region;
  std::string profile;
};

/// Everything a command needs to talk to berthd.
struct Settings {
  std::string endpoint;  ///< "http://127.0.0.1:4566", no trailing slash
  std::string data_dir;
  std::string region;
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;
  std::string credentials_source;  ///< where the keys came from, for messages
};

/// An ini file as sections of key/value pairs ("[profile x]" is kept as "profile x").
using IniFile = std::map<std::string, std::map<std::string, std::string>>;

/// Parses the AWS CLI's ini format: `[section]` headers, `key = value` lines,
/// `#` and `;` comments. Keys and section names are trimmed.
IniFile ParseIni(const std::string& text);

/// Reads and parses an ini file; nullopt when it cannot be read.
std::optional<IniFile> ReadIniFile(const std::string& path);

/// The endpoint, data dir and region from flags and environment, without
/// credentials (for `berth env`). Never fails.
Settings ResolveLocation(const GlobalFlags& flags, const EnvFn& env);

/// ResolveLocation plus credentials. Fails with a message naming where it
/// looked when no access key is found.
Result<Settings> ResolveSettings(const GlobalFlags& flags, const EnvFn& env);

}  // namespace berth::cli
