// SPDX-License-Identifier: Apache-2.0
//
// Blocking HTTP for the berth client, over libcurl: plain requests with a
// buffered body, streamed uploads read piece by piece, and SigV4 signing of
// requests to berthd's AWS APIs and its own /_berth/ endpoints.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "cli/settings.h"
#include "common/result.h"
#include "server/http_types.h"

namespace berth::cli {

/// A URL split into what signing needs.
struct Url {
  std::string scheme;  ///< "http" or "https"
  std::string host;    ///< "127.0.0.1:4566" (with the port when one was given)
  std::string path;    ///< "/v2/x", percent-encoding kept; "/" at least
  std::string query;   ///< after '?', as written

  /// Parses "scheme://host[:port][/path][?query]". Errors: code "InvalidEndpoint".
  static Result<Url> Parse(const std::string& text);
  std::string ToString() const;
};

/// Resolves `location` (absolute, or a path as registries answer in Location)
/// against `base`.
std::string ResolveLocation(const std::string& base, const std::string& location);

struct HttpRequest {
  std::string method = "GET";
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  /// When set, the body is streamed from this function instead of `body`:
  /// it fills up to `size` bytes and returns how many; returning
  /// kAbortUpload aborts the transfer (the connection is dropped).
  std::function<size_t(char* buffer, size_t size)> body_reader;
  uint64_t body_size = 0;
  long timeout_ms = 120000;  ///< the whole request; 0 for none
};

/// What body_reader returns to drop the connection mid-body.
inline constexpr size_t kAbortUpload = static_cast<size_t>(-1);

struct HttpResponse {
  long status = 0;
  http::Headers headers;
  std::string body;

  std::string Header(const std::string& name) const;
};

/// Sends a request. Transport failures (refused, reset, timed out, aborted)
/// are an Error with status 0 and code "TransportError"; any HTTP answer,
/// whatever its status, is a response.
Result<HttpResponse> Perform(const HttpRequest& request);

/// Signs `request` (its url, method, headers and buffered body) with SigV4
/// for `service`, adding Host, X-Amz-Date, Authorization and, with a session
/// token, X-Amz-Security-Token.
Status SignRequest(HttpRequest& request, const Settings& settings, const std::string& service);

}  // namespace berth::cli
