// SPDX-License-Identifier: Apache-2.0
//
// The service controller: keeps every ECS service's promise.
//
// Level-triggered: each pass reads a service document and the service's tasks
// (through TaskManager::FindTasks), compares what is desired with what is
// observed, acts on the difference (starts and stops tasks) and writes the
// service's bookkeeping back with a compare-and-set on its revision. It keeps
// no state of its own between passes, so a restarted daemon picks up where the
// last one stopped. What a pass does, in order:
//   1. counts tasks of each deployment that failed (stopped before RUNNING,
//      essential container exited, failed health checks) into failedTasks;
//   2. applies the deployment circuit breaker to the PRIMARY deployment and,
//      with rollback, makes the last COMPLETED deployment PRIMARY again;
//   3. stops running tasks that fail their container health checks (after the
//      health check grace period);
//   4. scales the PRIMARY deployment to desiredCount within maximumPercent,
//      backing off when tasks cannot be placed or keep failing to start;
//   5. stops tasks of older deployments while healthy tasks stay at or above
//      minimumHealthyPercent (DRAINING services: every task);
//   6. completes the deployment once only healthy PRIMARY tasks remain, at
//      desiredCount: older deployments leave deployments[], rolloutState goes
//      to COMPLETED and the steady-state event is written.
// A pass runs on every change under ecs/ in the store and at least every tick.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <thread>

#include "common/result.h"
#include "ecs/services.h"
#include "ecs/tasks.h"
#include "store/store.h"

namespace berth::ecs {

struct ServiceControllerOptions {
  /// Longest time between two passes when nothing changes.
  std::chrono::milliseconds tick{1000};
  /// How long an INACTIVE service stays describable before it is removed.
  double inactive_retention_seconds = 3600;
  /// First and longest wait after a task could not be placed or failed to start.
  double backoff_base_seconds = 1;
  double backoff_max_seconds = 60;
  /// Failed tasks in a row before relaunches are throttled.
  int launch_failures_before_backoff = 3;
  /// How long a task must stay healthy to end a run of failed tasks.
  double stable_seconds = 10;
};

class ServiceController {
 public:
  using Clock = std::function<double()>;  // epoch seconds

  /// `store` and `tasks` must outlive the controller.
  ServiceController(store::Store& store, TaskManager& tasks,
                    ServiceControllerOptions options = {}, Clock clock = {});
  ~ServiceController();

  ServiceController(const ServiceController&) = delete;
  ServiceController& operator=(const ServiceController&) = delete;

  /// Runs passes on a thread of its own until Stop().
  void Start();
  /// Stops the thread (waits for the pass in progress); safe to call twice.
  void Stop();

  /// One pass over every service of every cluster. Errors of single services
  /// are logged and do not stop the pass; the first one is returned.
  Status ReconcileAll();
  /// One pass over one service; a missing service is not an error.
  Status ReconcileService(const std::string& cluster, const std::string& name);

 private:
  void Run();

  store::Store& store_;
  TaskManager& tasks_;
  ServiceControllerOptions options_;
  Clock clock_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace berth::ecs
