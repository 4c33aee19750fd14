#include "server/lb_binder.h"

#include <chrono>

#include <spdlog/spdlog.h>

#include "common/time_util.h"

namespace berth {

using Json = nlohmann::json;

namespace {

constexpr const char* kServicePrefix = "ecs/services/";

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
  std::set<Target> wanted;
  for (const auto& entry : *services) {
    Json svc = Json::parse(entry.value, nullptr, false);
    if (svc.is_discarded()) {
      continue;
    }
    const Json lbs = svc.value("loadBalancers", Json::array());
    if (lbs.empty()) {
      continue;
    }
    std::string cluster_arn = svc.value("clusterArn", "");
    std::string cluster = cluster_arn.substr(cluster_arn.rfind('/') + 1);
    std::string name = svc.value("serviceName", "");
    int grace = svc.value("healthCheckGracePeriodSeconds", 0);
    ecs::TaskFilter filter;
    filter.cluster = cluster;
    filter.service = name;
    auto found = tasks_.FindTasks(filter);
    if (!found.ok()) {
      continue;
    }
    double now = NowEpochSeconds();
    for (const auto& task : *found) {
      std::string ip = TaskIp(task);
      if (ip.empty()) {
        continue;
      }
      bool serving = task.value("desiredStatus", "") == "RUNNING" &&
                     task.value("lastStatus", "") == "RUNNING";
      for (const auto& lb : lbs) {
        Target t{lb.value("targetGroupArn", ""), ip, lb.value("containerPort", 0)};
        if (std::get<0>(t).empty() || std::get<2>(t) == 0) {
          continue;
        }
        if (!serving) {
          continue;  // deregistered below: only serving tasks stay wanted
        }
        wanted.insert(t);
        // Replace a task the load balancer keeps finding unhealthy, once the
        // grace period after its start has passed.
        double started = task.value("startedAt", now);
        if (now - started >= grace) {
          auto health = targets_.TargetHealth(std::get<0>(t), ip, std::get<2>(t));
          if (health.ok() && *health == "unhealthy") {
            spdlog::info("component=lb_binder event=unhealthy_target task={} ip={}",
                         TaskId(task), ip);
            (void)tasks_.StopTask(cluster, TaskId(task), "ServiceSchedulerInitiated",
                                  "Task failed ELB health checks in (target-group " +
                                      std::get<0>(t) + ")");
          }
        }
      }
    }
  }
  for (const auto& t : wanted) {
    if (registered_.count(t)) {
      continue;
    }
    Status st = targets_.Register(std::get<0>(t), std::get<1>(t), std::get<2>(t));
    if (st.ok()) {
      registered_.insert(t);
      spdlog::info("component=lb_binder event=registered target_group={} target={}:{}",
                   std::get<0>(t), std::get<1>(t), std::get<2>(t));
    }
  }
  for (auto it = registered_.begin(); it != registered_.end();) {
    if (wanted.count(*it)) {
      ++it;
      continue;
    }
    (void)targets_.Deregister(std::get<0>(*it), std::get<1>(*it), std::get<2>(*it));
    spdlog::info("component=lb_binder event=deregistered target_group={} target={}:{}",
                 std::get<0>(*it), std::get<1>(*it), std::get<2>(*it));
    it = registered_.erase(it);
  }
}

}  // namespace berth
