// SPDX-License-Identifier: Apache-2.0
//
// Joins ECS services to their load balancers: a level-triggered loop over the
// tasks of services with `loadBalancers`, driving their part of the task
// lifecycle (see ecs/tasks.h):
//   - a task whose containers run (held in ACTIVATING) gets its targets
//     (IP:containerPort) registered, then is marked so and becomes RUNNING;
//   - the targets' health is copied into the task, so the service controller
//     counts the task as healthy only once the load balancer does, and a task
//     the load balancer keeps finding unhealthy is replaced once the
//     service's healthCheckGracePeriodSeconds has passed;
//   - the registered targets of a task that no longer serves are
//     deregistered; for a DEACTIVATING task the binder waits until they have
//     drained (DescribeTargetHealth no longer shows them `draining`) before
//     releasing it to its agent, which then stops the containers.
// Everything it acts on is in the store (task documents, target records), so
// a restart in the middle of a drain carries on where it was; the sets it
// keeps in memory only spare repeated calls.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "ecs/tasks.h"
#include "elb/target_registry.h"
#include "store/store.h"

namespace berth {

class LoadBalancerBinder {
 public:
  /// `store`, `tasks` and `targets` must outlive the binder.
  LoadBalancerBinder(store::Store& store, ecs::TaskManager& tasks, elb::TargetRegistry& targets);
  ~LoadBalancerBinder();

  /// Runs a pass every 250 ms on a thread of its own until Stop().
  void Start();
  /// Stops the thread; safe to call twice.
  void Stop();

  /// One reconcile pass over every service (public for tests).
  void Pass();

 private:
  using Target = std::tuple<std::string, std::string, int>;  // group ARN, ip, port
  // Service name -> its loadBalancers, per cluster.
  using ServiceLoadBalancers = std::map<std::string, nlohmann::json>;

  // Registers the serving tasks of one service and follows their health;
  // adds their targets to `wanted`, each with the id of the task serving it.
  void BindService(const std::string& cluster, const nlohmann::json& service,
                   std::map<Target, std::string>& wanted);
  // Copies the targets' health into the task; replaces an unhealthy task.
  void FollowHealth(const std::string& cluster, const nlohmann::json& service,
                    const nlohmann::json& task, const std::vector<Target>& targets);
  // Deregisters the targets of the cluster's tasks that no longer serve and
  // releases the tasks once their targets have drained.
  void ReleaseTasks(const std::string& cluster, const ServiceLoadBalancers& services,
                    const std::map<Target, std::string>& wanted);

  store::Store& store_;
  ecs::TaskManager& tasks_;
  elb::TargetRegistry& targets_;
  std::set<Target> registered_;    // registered by this process and not since deregistered
  std::set<Target> deregistered_;  // deregistered by this process, task not yet released
  uint64_t passes_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
};

// The ECS CreateService/UpdateService checks of loadBalancers against the
// load balancing plane, with AWS's messages (C10).
Status CheckServiceTargetGroups(elb::TargetRegistry& targets,
                                const nlohmann::json& load_balancers,
                                const nlohmann::json& task_definition);

}  // namespace berth
