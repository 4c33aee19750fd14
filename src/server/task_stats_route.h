// SPDX-License-Identifier: Apache-2.0
//
// GET /_berth/tasks/<task-id>/stats: a task's cpu, memory and pids usage
// from the node agent's cgroups, for `berth stats`. The client runs on the
// host, not inside a task, so it cannot use the task metadata endpoint;
// this read-only endpoint takes the user's ordinary keys instead (SigV4,
// service "ecs", berthd's region).
//
// The answer: {"taskId": "<id>", "read": <epoch seconds>, "task": <Docker
// stats shape: cpu_stats, memory_stats, pids_stats>}. Errors are AWS JSON
// bodies: 404 TaskNotFoundException when no task with that id runs on this
// node, 503 when the node agent is not running, and the SigV4 errors.
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <shared_mutex>
#include <string>

#include "api/sigv4.h"
#include "server/http_types.h"

namespace berth {

class TaskStatsRoute : public http::Route {
 public:
  /// Returns the task's stats, or nullopt when the task is not on this node.
  using Source = std::function<std::optional<nlohmann::json>(const std::string& task_id)>;

  TaskStatsRoute(std::shared_ptr<const api::KeyRing> keys, std::string region);

  /// Sets (or, with an empty function, clears) where stats come from.
  /// Thread-safe; once it returns, no request uses the previous source.
  void SetSource(Source source);

  bool Matches(const http::Request& head) const override {
    return head.path.rfind("/_berth/tasks/", 0) == 0;
  }

  http::Response Serve(http::Request& request, http::BodySink* sink) override;
  http::Response RenderError(const http::Request& request, const Error& error) override;

 private:
  std::shared_ptr<const api::KeyRing> keys_;
  std::string region_;
  std::shared_mutex mu_;
  Source source_;
};

}  // namespace berth
