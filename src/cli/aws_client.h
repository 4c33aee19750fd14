// SPDX-License-Identifier: Apache-2.0
//
// Calls to berthd's AWS JSON 1.1 APIs (ECS, ECR, CloudWatch Logs) and to its
// signed /_berth/ endpoints, and the one-line rendering of their errors.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "cli/settings.h"
#include "common/result.h"

namespace berth::cli {

using Json = nlohmann::json;

enum class Service { kEcs, kEcr, kLogs };

class AwsClient {
 public:
  explicit AwsClient(Settings settings) : settings_(std::move(settings)) {}

  /// Calls `operation` ("ListClusters") with `input`. Errors: the service's
  /// error (code as in `__type`, the message and the HTTP status), or
  /// status 0 "TransportError" naming the endpoint when berthd cannot be
  /// reached.
  Result<Json> Call(Service service, const std::string& operation, const Json& input) const;

  /// A SigV4-signed GET (service "ecs") of one of berthd's own endpoints,
  /// `path` like "/_berth/tasks/<id>/stats". The answer must be JSON.
  Result<Json> GetInternal(const std::string& path) const;

  const Settings& settings() const { return settings_; }

 private:
  Settings settings_;
};

/// How an error is shown after "berth: ": "<Code>: <message>" for errors a
/// service sent, the message alone for the client's own.
std::string DescribeError(const Error& error);

/// An error of the client itself (bad input, local files), shown as its message.
Error LocalError(std::string message);

/// Parses an AWS JSON error body (`__type`, `message`/`Message`) into an Error
/// with `status`; the code loses any "namespace#" prefix.
Error ParseAwsError(long status, const std::string& body);

}  // namespace berth::cli
