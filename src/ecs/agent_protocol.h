// SPDX-License-Identifier: Apache-2.0
//
// The agent protocol: how node agents and the ECS control plane talk.
//
// Every node agent (the local one in `berthd serve`, or one per machine)
// speaks HTTP/JSON to the control plane under /_berth/agent/, authenticated
// with the node token (a random secret in <data-dir>/node-token, sent as
// `Authorization: Bearer <token>`):
//
//   POST /_berth/agent/register   NodeRegistration -> {"node": {...}, "revision": n}
//   GET  /_berth/agent/desired?node=<id>&after=<revision>&wait=<seconds>
//                                 -> DesiredState. Long-polls: answers at once
//                                 when the node's desired set changed after
//                                 `after` (or `after` is 0), else waits up to
//                                 `wait` seconds (at most 30) for a change. When
//                                 too many polls are waiting already it answers
//                                 at once with "retryAfterMs".
//   POST /_berth/agent/report     TaskReport -> {"applied": bool, "seq": n,
//                                 "desiredStatus": "..."}
//
// Errors answer {"code": "...", "message": "..."} with 400 (bad input),
// 401 (token), 404 (NodeNotRegistered / TaskNotFound: register again, or
// forget the task) or 409 (TaskNotOnNode).
//
// Reports are idempotent: each carries a per-task sequence number that the
// agent increases with every report; the control plane applies a report only
// when its seq is above the last one applied and ignores it otherwise. The
// desired set returns that last seq, so a restarted agent continues above it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace berth::ecs {

using Json = nlohmann::json;

/// A node announcing itself and its capacity.
struct NodeRegistration {
  std::string node_id;            // stable across agent restarts
  int64_t cpu = 0;                // cpu units (1024 per core)
  int64_t memory = 0;             // MiB
  std::string availability_zone;  // "" lets the control plane pick "<region>a"
  std::optional<double> allocation_factor;  // share offered to tasks; control plane default
  std::string address;            // informative: where the agent runs

  Json ToJson() const;
  /// Errors: 400 InvalidRequest naming the bad member.
  static Result<NodeRegistration> FromJson(const Json& j);
};

/// One task the node should be running (desiredStatus RUNNING) or stopping
/// (desiredStatus STOPPED).
struct DesiredTask {
  std::string task_id;
  std::string task_arn;
  std::string cluster;
  std::string cluster_arn;
  std::string desired_status;
  std::string last_status;  // as the control plane knows it
  int64_t seq = 0;          // last report sequence applied
  std::string cpu;          // task size, cpu units as a string
  std::string memory;       // MiB as a string
  std::string availability_zone;
  std::string attachment_id;  // the ENI attachment's id
  std::string service;        // service name for service tasks
  Json task_definition;       // the registered task definition
  Json overrides;             // RunTask overrides (containerOverrides, cpu, memory)
  Json network_configuration;  // awsvpcConfiguration as given to RunTask

  Json ToJson() const;
  static Result<DesiredTask> FromJson(const Json& j);
};

struct DesiredState {
  int64_t revision = 0;  // pass as `after` on the next poll
  std::vector<DesiredTask> tasks;
  /// When positive, the control plane had no long-poll slot free and answered
  /// at once: wait this long before polling again.
  int64_t retry_after_ms = 0;

  Json ToJson() const;
  static Result<DesiredState> FromJson(const Json& j);
};

/// The state of one container as the agent reports it.
struct ContainerReport {
  std::string name;
  std::string last_status;  // PENDING, RUNNING, STOPPED
  std::optional<int> exit_code;
  std::string reason;         // e.g. "CannotPullContainerError: ..."
  std::string health_status;  // HEALTHY, UNHEALTHY, UNKNOWN; "" = unchanged
  std::string runtime_id;
  std::string image_digest;

  Json ToJson() const;
  static Result<ContainerReport> FromJson(const Json& j);
};

/// The task's network interface once the agent has set it up.
struct NetworkReport {
  std::string private_ipv4_address;
  std::string mac_address;
  std::string network_interface_id;  // "" lets the control plane derive one
  std::string private_dns_name;      // "" lets the control plane derive one
  std::string subnet_gateway_ipv4_address;

  Json ToJson() const;
  static Result<NetworkReport> FromJson(const Json& j);
};

/// A task state report. lastStatus moves forward through PROVISIONING,
/// PENDING, ACTIVATING, RUNNING, DEACTIVATING, STOPPING, DEPROVISIONING,
/// STOPPED; a report may skip states (a task failing to start goes straight
/// to STOPPED). Timestamps are epoch seconds; absent ones are taken from the
/// control plane's clock when the task reaches the matching state.
struct TaskReport {
  std::string node_id;
  std::string cluster;
  std::string task_id;
  int64_t seq = 0;
  std::string last_status;
  std::vector<ContainerReport> containers;
  std::optional<NetworkReport> network;
  std::optional<double> pull_started_at;
  std::optional<double> pull_stopped_at;
  std::optional<double> started_at;
  std::optional<double> execution_stopped_at;
  std::string stop_code;       // TaskFailedToStart, EssentialContainerExited, ...
  std::string stopped_reason;  // "Essential container in task exited", ...

  Json ToJson() const;
  static Result<TaskReport> FromJson(const Json& j);
};

/// lastStatus values in lifecycle order; -1 for anything else.
int TaskStatusIndex(const std::string& status);

/// Reads <data_dir>/node-token, creating it (32 random bytes as hex, mode
/// 0600) when absent. Errors: ServerError when the file cannot be read or
/// written.
Result<std::string> EnsureNodeToken(const std::string& data_dir);

}  // namespace berth::ecs
