// SPDX-License-Identifier: Apache-2.0
// Credentials the node agent pulls with from registries other than berth's own.
//
// They come from a file in the format docker, podman and skopeo write at `login` (a
// config.json or auth.json), so an existing login can be reused as it is:
//
//   {"auths": {"registry.example.com:5000": {"auth": "<base64 of user:password>"}}}
//
// RegistryClient answers a registry's Basic challenge, or the Bearer token challenge (the
// credentials go to the token realm as Basic auth), with the credentials of the registry's
// host. The file is read at every pull, so a refreshed login needs no restart of berthd.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "agent/registry_client.h"
#include "common/result.h"

namespace berth::agent {

/// Registry host ("host" or "host:port", lower case) to its credentials.
using RegistryAuthMap = std::map<std::string, Credentials>;

/// Parses the text of an auth file. An entry holds "auth" (base64 of "user:password") or
/// "username" and "password"; "auth" wins when both are given. Keys may carry a scheme and a
/// path ("https://registry.example.com/v1/"): only host[:port] is kept. Entries with neither
/// (identity tokens, credential helpers) are skipped. Errors: "InvalidRegistryAuth" for
/// malformed JSON, an "auths" that is not an object, bad base64, or an "auth" without ':'.
Result<RegistryAuthMap> ParseRegistryAuth(const std::string& text);

/// Reads and parses the auth file at `path`. Errors: those of ParseRegistryAuth, and
/// "InvalidRegistryAuth" for a file that cannot be read.
Result<RegistryAuthMap> LoadRegistryAuth(const std::string& path);

/// The credentials for `registry` ("host[:port]", any case). Host names are compared as
/// written: "localhost:5000" and "127.0.0.1:5000" are different keys. nullopt when none.
std::optional<Credentials> FindRegistryCredentials(const RegistryAuthMap& auths,
                                                   const std::string& registry);

}  // namespace berth::agent
