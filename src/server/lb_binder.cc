// SPDX-License-Identifier: Apache-2.0
#include "server/lb_binder.h"

#include <chrono>
#include <map>
#include <vector>

#include <spdlog/spdlog.h>

#include "common/time_util.h"

namespace berth {

using Json = nlohmann::json;

namespace {

constexpr const char* kServicePrefix = "ecs/services/";
// Every this many passes (250 ms each) also clusters without load balancers
// are looked at for targets to release.
constexpr uint64_t kPassesPerFullRelease = 20;

std::string TaskIp(const Json& task) {
  for (const auto& c : task.value("containers", Json::array())) {
    for (const auto& ni : c.value("networkInterfaces", Json::array())) {
      std::string ip = ni.value("privateIpv4Address", "");
      if (!ip.empty()) {
        return ip;
      }
    }
  }
  return {};
}

std::string TaskId(const Json& task) {
  std::string arn = task.value("taskArn", "");
  return arn.substr(arn.rfind('/') + 1);
}

std::string ClusterOf(const Json& service) {
  std::string arn = service.value("clusterArn", "");
  return arn.substr(arn.rfind('/') + 1);
}

std::string TargetsState(const Json& task) {
  auto it = task.find("_targets");
  return it != task.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// A task whose targets belong in their groups: it runs and is meant to, or
// its containers run and it waits in ACTIVATING for the registration.
bool Serving(const Json& task) {
  if (task.value("desiredStatus", "") != "RUNNING") {
    return false;
  }
  std::string last = task.value("lastStatus", "");
  return last == "RUNNING" || (last == "ACTIVATING" && TargetsState(task) == "pending");
}

// The task's targets: one per load balancer of the service when the task was
// started (the service's current ones for tasks that did not record them).
std::vector<std::tuple<std::string, std::string, int>> TargetsOf(const Json& task,
                                                                 const Json& service_lbs) {
  std::vector<std::tuple<std::string, std::string, int>> out;
  std::string ip = TaskIp(task);
  if (ip.empty()) {
    return out;
  }
  Json lbs = task.value("_loadBalancers", Json::array());
  if (!lbs.is_array() || lbs.empty()) {
    lbs = service_lbs.is_array() ? service_lbs : Json::array();
  }
  for (const auto& lb : lbs) {
    std::string group = lb.value("targetGroupArn", "");
    int port = lb.value("containerPort", 0);
    if (!group.empty() && port != 0) {
      out.emplace_back(group, ip, port);
    }
  }
  return out;
}

}  // namespace

Status CheckServiceTargetGroups(elb::TargetRegistry& targets, const Json& load_balancers,
                                const Json& task_definition) {
  bool awsvpc = task_definition.value("networkMode", "") == "awsvpc";
  for (const auto& lb : load_balancers) {
    std::string arn = lb.value("targetGroupArn", "");
    if (arn.empty()) {
      continue;  // classic load balancers by name are not served
    }
    auto tg = targets.DescribeTargetGroup(arn);
    if (!tg.ok()) {
      return ClientError("InvalidParameterException",
                         "Unable to assume role and validate the specified targetGroupArn. "
                         "Please verify that the ECS service role being passed has the proper "
                         "permissions.");
    }
    if (awsvpc && tg->value("TargetType", "") == "instance") {
      return ClientError("InvalidParameterException",
                         "The provided target group " + arn +
                             " has target type instance, which is incompatible with the awsvpc "
                             "network mode specified in the task definition.");
    }
    if (tg->value("LoadBalancerArns", Json::array()).empty()) {
      return ClientError("InvalidParameterException",
                         "The target group with targetGroupArn " + arn +
                             " does not have an associated load balancer.");
    }
  }
  return Ok();
}

LoadBalancerBinder::LoadBalancerBinder(store::Store& store, ecs::TaskManager& tasks,
                                       elb::TargetRegistry& targets)
    : store_(store), tasks_(tasks), targets_(targets) {}

LoadBalancerBinder::~LoadBalancerBinder() { Stop(); }

void LoadBalancerBinder::Start() {
  thread_ = std::thread([this] {
    std::unique_lock lock(mu_);
    while (!stop_) {
      lock.unlock();
      try {
        Pass();
      } catch (const std::exception& e) {
        spdlog::error("component=lb_binder event=pass_failed error=\"{}\"", e.what());
      }
      lock.lock();
      cv_.wait_for(lock, std::chrono::milliseconds(250), [this] { return stop_; });
    }
  });
}

void LoadBalancerBinder::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) {
    thread_.join();
  }
}

void LoadBalancerBinder::Pass() {
  auto services = store_.List(kServicePrefix);
  if (!services.ok()) {
    return;
  }
  std::map<std::string, ServiceLoadBalancers> clusters;
  std::set<std::string> balanced;  // clusters with a service behind a load balancer
  std::map<Target, std::string> wanted;
  for (const auto& entry : *services) {
    Json svc = Json::parse(entry.value, nullptr, false);
    if (!svc.is_object()) {
      continue;
    }
    std::string cluster = ClusterOf(svc);
    const Json lbs = svc.value("loadBalancers", Json::array());
    clusters[cluster][svc.value("serviceName", "")] = lbs;
    if (lbs.is_array() && !lbs.empty()) {
      balanced.insert(cluster);
      BindService(cluster, svc, wanted);
    }
  }
  // Registered targets are found on tasks of services that lost their load
  // balancers too, but rarely: those clusters are looked at every few seconds
  // only, so clusters without load balancers cost next to nothing.
  bool everywhere = passes_++ % kPassesPerFullRelease == 0;
  for (const auto& [cluster, lbs] : clusters) {
    if (everywhere || balanced.count(cluster)) {
      ReleaseTasks(cluster, lbs, wanted);
    }
  }
}

void LoadBalancerBinder::BindService(const std::string& cluster, const Json& svc,
                                     std::map<Target, std::string>& wanted) {
  ecs::TaskFilter filter;
  filter.cluster = cluster;
  filter.service = svc.value("serviceName", "");
  filter.desired_status = "RUNNING";
  auto found = tasks_.FindTasks(filter);
  if (!found.ok()) {
    return;
  }
  const Json lbs = svc.value("loadBalancers", Json::array());
  for (const auto& task : *found) {
    if (!Serving(task)) {
      continue;
    }
    std::vector<Target> targets = TargetsOf(task, lbs);
    if (targets.empty()) {
      continue;
    }
    bool all_registered = true;
    for (const auto& t : targets) {
      wanted[t] = TaskId(task);
      if (registered_.count(t)) {
        continue;
      }
      Status st = targets_.Register(std::get<0>(t), std::get<1>(t), std::get<2>(t));
      if (st.ok()) {
        registered_.insert(t);
        deregistered_.erase(t);
        spdlog::info("component=lb_binder event=registered task={} target_group={} target={}:{}",
                     TaskId(task), std::get<0>(t), std::get<1>(t), std::get<2>(t));
      } else if (st.error().code == "TargetGroupNotFound") {
        // Nothing to join: the task must not wait for a group that is gone.
        spdlog::debug("component=lb_binder event=target_group_missing task={} target_group={}",
                      TaskId(task), std::get<0>(t));
      } else {
        all_registered = false;
        spdlog::warn("component=lb_binder event=register_failed task={} target_group={} "
                     "error=\"{}\"",
                     TaskId(task), std::get<0>(t), st.error().message);
      }
    }
    if (!all_registered) {
      continue;
    }
    if (TargetsState(task) != "registered") {
      auto marked = tasks_.MarkTargetsRegistered(cluster, TaskId(task));
      if (!marked.ok()) {
        continue;
      }
      FollowHealth(cluster, svc, *marked, targets);
      continue;
    }
    FollowHealth(cluster, svc, task, targets);
  }
}

void LoadBalancerBinder::FollowHealth(const std::string& cluster, const Json& svc,
                                      const Json& task, const std::vector<Target>& targets) {
  bool healthy = true;
  std::string failing_group;
  for (const auto& t : targets) {
    auto detail = targets_.TargetHealthDetail(std::get<0>(t), std::get<1>(t), std::get<2>(t));
    if (!detail.ok()) {
      continue;  // no group, no health to wait for
    }
    std::string state = detail->value("State", "");
    std::string reason = detail->value("Reason", "");
    if (state == "healthy" || state == "unavailable" ||
        (state == "unused" && reason == "Target.NotInUse")) {
      continue;
    }
    healthy = false;
    if (state == "unhealthy") {
      failing_group = std::get<0>(t);
    } else if (state == "draining" || reason == "Target.NotRegistered") {
      // Taken out behind the binder's back: register it again next pass.
      registered_.erase(t);
    }
  }
  auto known = task.find("_targetsHealthy");
  if (known == task.end() || !known->is_boolean() || known->get<bool>() != healthy) {
    (void)tasks_.SetTargetsHealthy(cluster, TaskId(task), healthy);
  }

  // Replace a task the load balancer keeps finding unhealthy, once the grace
  // period after its start has passed.
  if (failing_group.empty() || task.value("lastStatus", "") != "RUNNING") {
    return;
  }
  double now = NowEpochSeconds();
  double started = task.value("startedAt", now);
  if (now - started < svc.value("healthCheckGracePeriodSeconds", 0)) {
    return;
  }
  spdlog::info("component=lb_binder event=unhealthy_target task={} target_group={}",
               TaskId(task), failing_group);
  (void)tasks_.StopTask(cluster, TaskId(task), "ServiceSchedulerInitiated",
                        "Task failed ELB health checks in (target-group " + failing_group + ")");
}

void LoadBalancerBinder::ReleaseTasks(const std::string& cluster,
                                      const ServiceLoadBalancers& services,
                                      const std::map<Target, std::string>& wanted) {
  ecs::TaskFilter filter;
  filter.cluster = cluster;
  filter.targets = "registered";
  auto found = tasks_.FindTasks(filter);
  if (!found.ok()) {
    return;
  }
  for (const auto& task : *found) {
    if (Serving(task)) {
      continue;
    }
    auto service = services.find(task.value("_service", ""));
    std::vector<Target> targets =
        TargetsOf(task, service != services.end() ? service->second : Json::array());
    // Targets another task serves at the same address stay; a task that was
    // still serving earlier in this pass (it was stopped since) waits for the
    // next pass, which sees it the same way throughout.
    std::vector<Target> own;
    bool seen_serving = false;
    for (const auto& t : targets) {
      auto w = wanted.find(t);
      if (w == wanted.end()) {
        own.push_back(t);
      } else if (w->second == TaskId(task)) {
        seen_serving = true;
      }
    }
    if (seen_serving) {
      continue;
    }
    bool deregistered = true;
    for (const auto& t : own) {
      if (deregistered_.count(t)) {
        continue;
      }
      Status st = targets_.Deregister(std::get<0>(t), std::get<1>(t), std::get<2>(t));
      if (!st.ok() && st.error().code != "TargetGroupNotFound") {
        deregistered = false;
        spdlog::warn("component=lb_binder event=deregister_failed task={} target_group={} "
                     "error=\"{}\"",
                     TaskId(task), std::get<0>(t), st.error().message);
        continue;
      }
      registered_.erase(t);
      deregistered_.insert(t);
      spdlog::info("component=lb_binder event=deregistered task={} target_group={} "
                   "target={}:{} last_status={}",
                   TaskId(task), std::get<0>(t), std::get<1>(t), std::get<2>(t),
                   task.value("lastStatus", ""));
    }
    if (!deregistered) {
      continue;
    }
    // A DEACTIVATING task still runs, and requests already sent to it still
    // need their answers: it is released only once its targets have drained.
    if (task.value("lastStatus", "") == "DEACTIVATING") {
      bool drained = true;
      for (const auto& t : own) {
        auto state = targets_.TargetHealth(std::get<0>(t), std::get<1>(t), std::get<2>(t));
        if (state.ok() && *state == "draining") {
          drained = false;
        }
      }
      if (!drained) {
        continue;
      }
    }
    auto released = tasks_.MarkTargetsReleased(cluster, TaskId(task));
    if (!released.ok()) {
      continue;
    }
    for (const auto& t : own) {
      deregistered_.erase(t);
    }
    spdlog::info("component=lb_binder event=task_released task={} last_status={}", TaskId(task),
                 released->value("lastStatus", ""));
  }
}

}  // namespace berth
