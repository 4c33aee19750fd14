// Tasks: the ECS task model, its lifecycle, and placement onto nodes.
//
// Shared by the task API (RunTask, StopTask, DescribeTasks, ListTasks), the
// service controller (which starts and stops tasks for services) and the
// agent protocol (which tells each node its desired tasks and takes its
// reports).
//
// Store layout (JSON documents):
//   ecs/tasks/<cluster>/<task-id>    one task. The document is the task as
//                                    DescribeTasks shows it (taskArn, clusterArn,
//                                    taskDefinitionArn, lastStatus, desiredStatus,
//                                    containers[], attachments[], cpu, memory,
//                                    createdAt, startedAt, stopCode, ... with
//                                    timestamps as epoch seconds) plus internal
//                                    members whose names start with "_" and are
//                                    never shown to clients:
//                                      _node       node id the task is placed on
//                                      _service    service name (tasks of services)
//                                      _deployment deployment id (tasks of services)
//                                      _taskDefinition the full task definition
//                                      _overrides  the RunTask overrides
//                                      _seq        last agent report sequence applied
//                                      _networkConfiguration the RunTask networkConfiguration
//                                      _loadBalancers the service's loadBalancers when the
//                                                  task was started (tasks behind a load
//                                                  balancer)
//                                      _targets    where the task's targets stand: "pending"
//                                                  (the containers run; lastStatus stays
//                                                  ACTIVATING until the targets are
//                                                  registered), "registered", "released"
//                                                  (deregistered and drained)
//                                      _targetsHealthy whether every target of the task passes
//                                                  the load balancer's health checks
//   ecs/task-index/<cluster>/<task-id> the members ListTasks filters on (family,
//                                    startedBy, service, desiredStatus, lastStatus,
//                                    launchType, stoppedAt, node, targets), kept in step with
//                                    the task in the same transactions
//   ecs/nodes/<node-id>              a node: capacity, zone, allocatable, status
//                                    (ACTIVE or LOST) and the reservations of the
//                                    tasks placed on it ("tasks": {id: {cluster,
//                                    cpu, memory, group}}); heartbeats are kept in
//                                    memory
//   ecs/desired/<node-id>/<task-id>  what the node's agent must do with the task
//                                    (see agent_protocol.h); removed once STOPPED
//
// Tasks behind a load balancer (a service's loadBalancers) pass through two
// more steps, as on AWS. ACTIVATING: once the agent runs the containers the
// task waits there until the load balancer binder has registered its targets
// (MarkTargetsRegistered), then it is RUNNING. DEACTIVATING: StopTask on a
// RUNNING task with registered targets sets desiredStatus STOPPED and
// lastStatus DEACTIVATING, but the agent is still told to keep it running
// while the binder deregisters the targets and they drain; once they are gone
// (MarkTargetsReleased) the agent is told to stop it (STOPPING onwards). Every
// step is in the task document, so a restart in the middle carries on.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace berth::ecs {

using Json = nlohmann::json;

struct StartTasksRequest {
  std::string cluster;               // cluster name
  Json task_definition;              // the full registered task definition
  int count = 1;
  Json network_configuration;        // as in RunTask (awsvpcConfiguration)
  Json overrides = Json::object();   // as in RunTask
  std::string started_by;
  std::string group;                 // "family:<family>" or "service:<name>"
  std::string launch_type = "FARGATE";
  std::string platform_version = "1.4.0";
  Json tags = Json::array();
  bool enable_execute_command = false;
  std::string service;               // service name when started by a service
  std::string deployment_id;         // deployment id when started by a service
  std::string capacity_provider;     // "FARGATE" / "FARGATE_SPOT" when a strategy chose it
  Json load_balancers = Json::array();  // the service's loadBalancers (tasks of services)
};

struct StartTasksResult {
  std::vector<Json> tasks;     // as RunTask answers them
  std::vector<Json> failures;  // {"arn"?, "reason": "RESOURCE:CPU" | "RESOURCE:MEMORY", ...}
};

struct TaskFilter {
  std::string cluster;                    // required
  std::optional<std::string> service;     // tasks of this service
  std::optional<std::string> family;
  std::optional<std::string> started_by;
  std::optional<std::string> desired_status;  // "RUNNING" (also PENDING) or "STOPPED"
  std::optional<std::string> launch_type;
  std::optional<std::string> targets;  // the task's `_targets` state ("registered", ...)
};

class TaskManager {
 public:
  virtual ~TaskManager() = default;

  // Creates and places tasks (PROVISIONING, desiredStatus RUNNING). Tasks that
  // fit nowhere come back as failures.
  virtual Result<StartTasksResult> StartTasks(const StartTasksRequest& request) = 0;

  // Sets desiredStatus STOPPED with the stop code and reason; the node's agent
  // then stops the task (after the load balancer drained it, for a RUNNING
  // task with registered targets). Stopping a stopped task changes nothing.
  virtual Result<Json> StopTask(const std::string& cluster, const std::string& task_id,
                                const std::string& stop_code, const std::string& reason) = 0;

  // Full task documents (internal members included) matching the filter.
  virtual Result<std::vector<Json>> FindTasks(const TaskFilter& filter) = 0;

  // The load balancer binder's side of the lifecycle (see the top of this
  // file). Each returns the task document; errors: TaskNotFound.

  // Records that the task's targets are in their target groups; a task held
  // in ACTIVATING (`_targets` "pending") becomes RUNNING. Changes nothing
  // once the targets were released.
  virtual Result<Json> MarkTargetsRegistered(const std::string& cluster,
                                             const std::string& task_id) = 0;

  // Records whether every target of the task passes its health checks; the
  // service controller counts a task behind a load balancer as healthy only
  // then.
  virtual Result<Json> SetTargetsHealthy(const std::string& cluster, const std::string& task_id,
                                         bool healthy) = 0;

  // Records that the task's targets are deregistered and done draining; a
  // DEACTIVATING task may now be stopped by its agent.
  virtual Result<Json> MarkTargetsReleased(const std::string& cluster,
                                           const std::string& task_id) = 0;
};

}  // namespace berth::ecs
