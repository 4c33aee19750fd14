// SPDX-License-Identifier: Apache-2.0
//
// The agent's side of the agent protocol (see agent_protocol.h): an HTTP
// client the node agent uses to register its node, long-poll its desired
// tasks and report task states to the control plane.
#pragma once

#include <chrono>
#include <string>

#include "ecs/agent_protocol.h"

namespace berth::ecs {

class AgentControlClient {
 public:
  /// `endpoint` is the control plane's base URL ("http://127.0.0.1:4566");
  /// `token` the node token. `timeout` bounds each call (a long poll gets its
  /// wait on top).
  AgentControlClient(std::string endpoint, std::string token,
                     std::chrono::milliseconds timeout = std::chrono::seconds(10));

  /// Registers (or re-registers) the node. Returns the node document.
  Result<Json> Register(const NodeRegistration& registration);

  /// The node's desired tasks; waits up to `wait` for a change after `after`.
  /// Errors: 404 NodeNotRegistered (register again), 401, or 503 Unavailable
  /// when the control plane cannot be reached.
  Result<DesiredState> Desired(const std::string& node_id, int64_t after,
                               std::chrono::seconds wait);

  /// Sends one task report. Returns {"applied", "seq", "desiredStatus", "lastStatus"}.
  /// Errors: 404 TaskNotFound (forget the task), 409 TaskNotOnNode, 400, 401, 503.
  Result<Json> Report(const TaskReport& report);

  /// Thread-safety: every method may be called from any thread; each call
  /// uses its own connection.

 private:
  Result<Json> Call(const std::string& method, const std::string& path, const std::string& body,
                    std::chrono::milliseconds timeout);

  std::string endpoint_;
  std::string token_;
  std::chrono::milliseconds timeout_;
};

}  // namespace berth::ecs
