// Joins ECS services to their load balancers: a level-triggered loop that
// registers each running task of a service with `loadBalancers` in the
// target groups (IP:containerPort), deregisters tasks that are stopping, and
// replaces tasks the load balancer finds unhealthy once the service's
// healthCheckGracePeriodSeconds has passed.
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <tuple>

#include <nlohmann/json.hpp>

#include "ecs/tasks.h"
#include "elb/target_registry.h"
#include "store/store.h"

namespace berth {

class LoadBalancerBinder {
 public:
  LoadBalancerBinder(store::Store& store, ecs::TaskManager& tasks, elb::TargetRegistry& targets);
  ~LoadBalancerBinder();

  void Start();
  void Stop();

  // One reconcile pass over every service (public for tests).
  void Pass();

 private:
  using Target = std::tuple<std::string, std::string, int>;  // group ARN, ip, port

  store::Store& store_;
  ecs::TaskManager& tasks_;
  elb::TargetRegistry& targets_;
  std::set<Target> registered_;
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
