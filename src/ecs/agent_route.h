// SPDX-License-Identifier: Apache-2.0
//
// The control plane's side of the agent protocol (see agent_protocol.h): the
// HTTP route under /_berth/agent/ that registers nodes, serves each node's
// desired tasks (long-polled) and takes the agents' task reports.
#pragma once

#include <string>

#include "ecs/store_task_manager.h"
#include "server/http_types.h"

namespace berth::ecs {

class AgentRoute : public http::Route {
 public:
  /// `token` is the node token agents must send as a Bearer token. `tasks`
  /// must outlive the route.
  AgentRoute(StoreTaskManager& tasks, std::string token);

  bool Matches(const http::Request& head) const override;
  uint64_t MaxBufferedBody(const http::Request& head) const override { return 1u << 20; }
  http::Response Serve(http::Request& request, http::BodySink* sink) override;
  http::Response RenderError(const http::Request& request, const Error& error) override;

  /// The longest long poll a desired request may ask for.
  static constexpr int kMaxWaitSeconds = 30;

 private:
  bool Authorized(const http::Request& request) const;

  StoreTaskManager& tasks_;
  std::string token_;
};

}  // namespace berth::ecs
