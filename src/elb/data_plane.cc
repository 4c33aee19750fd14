// SPDX-License-Identifier: Apache-2.0
#include "elb/data_plane.h"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/address.hpp>
#include <spdlog/spdlog.h>

#include "common/time_util.h"
#include "elb/elb_state.h"

namespace berth::elb {

namespace asio = boost::asio;

namespace {

std::string RuntimeKey(const std::string& group_id, const std::string& ip, uint16_t port) {
  return group_id + "|" + ip + "|" + std::to_string(port);
}

const char* StateName(HealthState s) {
  switch (s) {
    case HealthState::kInitial:
      return "initial";
    case HealthState::kHealthy:
      return "healthy";
    case HealthState::kUnhealthy:
      return "unhealthy";
  }
  return "initial";
}

}  // namespace

DataPlane::DataPlane(store::Store& store, DataPlaneOptions options)
    : store_(store), options_(std::move(options)) {
  proxy_ = std::make_unique<Proxy>(options_.proxy, control_);
  checker_ = std::make_unique<HealthChecker>(control_, options_.first_probe_delay);
}

DataPlane::~DataPlane() { Stop(); }

Status DataPlane::Start() {
  if (running_.exchange(true)) {
    return Ok();
  }
  control_thread_ = std::thread([this] {
    auto guard = asio::make_work_guard(control_);
    control_.run();
  });
  proxy_->Start();
  Reload();
  watch_thread_ = std::thread([this] { Watch(); });
  spdlog::info("event=lb_data_plane_started bind={} threads={}", options_.proxy.bind_address,
               options_.proxy.threads);
  return Ok();
}

void DataPlane::Stop() {
  if (!running_.exchange(false)) {
    return;
  }
  if (watch_thread_.joinable()) {
    watch_thread_.join();
  }
  checker_->Stop();
  proxy_->Stop();
  control_.stop();
  if (control_thread_.joinable()) {
    control_thread_.join();
  }
}

void DataPlane::Watch() {
  while (running_) {
    int64_t wait_ms = 1000;
    int64_t deadline = next_deadline_ms_.load();
    if (deadline > 0) {
      wait_ms = std::clamp<int64_t>(deadline - NowEpochMillis() + 1, 0, 1000);
    }
    auto changes = store_.Changes(revision_.load(), kElbPrefix, std::chrono::milliseconds(wait_ms));
    if (!running_) {
      break;
    }
    deadline = next_deadline_ms_.load();
    bool due = deadline > 0 && NowEpochMillis() >= deadline;
    if (due && expire_) {
      Status st = expire_();
      if (!st.ok()) {
        spdlog::warn("event=lb_drain_expiry_failed error=\"{}\"", st.error().message);
      }
    }
    if (!changes.ok() || !changes->empty() || due) {
      Reload();
    }
  }
}

void DataPlane::Reload() {
  std::lock_guard lock(mu_);
  revision_ = store_.Revision();
  auto entries = store_.List(kElbPrefix);
  if (!entries.ok()) {
    spdlog::error("event=lb_reload_failed error=\"{}\"", entries.error().message);
    return;
  }
  LbConfig config = BuildLbConfig(*entries, NowEpochMillis());
  next_deadline_ms_ = config.next_drain_deadline_ms;

  auto snapshot = std::make_shared<ProxySnapshot>();
  std::map<std::string, std::shared_ptr<TargetRuntime>> targets;
  std::map<std::string, std::shared_ptr<std::atomic<uint64_t>>> cursors;
  std::vector<CheckPlan> plans;
  for (const auto& [id, group] : config.groups) {
    GroupRuntime g;
    g.id = id;
    g.algorithm = group.algorithm;
    auto cursor = cursors_.find(id);
    g.cursor = cursor != cursors_.end() ? cursor->second
                                         : std::make_shared<std::atomic<uint64_t>>(0);
    cursors[id] = g.cursor;
    for (const auto& t : group.targets) {
      boost::system::error_code ec;
      auto address = asio::ip::make_address(t.ip, ec);
      if (ec) {
        continue;
      }
      std::string key = RuntimeKey(id, t.ip, t.port);
      auto found = targets_.find(key);
      std::shared_ptr<TargetRuntime> rt;
      bool fresh = found == targets_.end();
      if (fresh) {
        rt = std::make_shared<TargetRuntime>(id, t.ip, t.port,
                                             asio::ip::tcp::endpoint(address, t.port));
      } else {
        rt = found->second;
      }
      {
        std::lock_guard target_lock(rt->mu);
        bool reregistered = !fresh && rt->registered_at_ms != t.registered_at_ms;
        bool left_use = rt->in_use && !group.in_use;
        if (fresh || reregistered || left_use) {
          rt->ResetLocked();
        }
        rt->registered_at_ms = t.registered_at_ms;
        rt->draining = t.draining;
        rt->in_use = group.in_use;
        rt->checks_enabled = group.health.enabled;
        rt->UpdateRoutableLocked();
      }
      // LIMITATION: a drained target's last in-flight requests may outlive the
      // deregistration delay; AWS closes those connections when it ends.
      if (group.in_use && group.health.enabled && !t.draining) {
        plans.push_back(CheckPlan{rt, group.health});
      }
      targets[key] = rt;
      g.targets.push_back(std::move(rt));
    }
    snapshot->groups.emplace(id, std::move(g));
  }
  for (const auto& spec : config.listeners) {
    ListenerRuntime l;
    l.id = spec.id;
    l.port = spec.port;
    l.idle_timeout_seconds = spec.idle_timeout_seconds;
    l.default_action = MakeRouteAction(spec.default_action, *snapshot);
    for (const auto& rule : spec.rules) {
      l.rules.push_back(RouteRule{rule, MakeRouteAction(rule.action, *snapshot)});
    }
    snapshot->listeners.emplace(spec.id, std::move(l));
  }
  targets_ = std::move(targets);
  cursors_ = std::move(cursors);
  spdlog::debug("event=lb_config_loaded revision={} listeners={} target_groups={} targets={}",
                revision_.load(), snapshot->listeners.size(), snapshot->groups.size(),
                targets_.size());
  proxy_->Update(std::move(snapshot));
  checker_->Update(std::move(plans));
}

std::optional<uint16_t> DataPlane::ListenerPort(const std::string& listener_id) const {
  return proxy_->BoundPort(listener_id);
}

Status DataPlane::BindListener(const std::string& listener_id, uint16_t port) {
  return proxy_->Bind(listener_id, port);
}

void DataPlane::ReleaseListener(const std::string& listener_id) {
  proxy_->Release(listener_id);
}

std::optional<TargetHealthReport> DataPlane::Health(const std::string& target_group_id,
                                                    const std::string& ip, uint16_t port) {
  std::shared_ptr<TargetRuntime> rt;
  {
    std::lock_guard lock(mu_);
    auto it = targets_.find(RuntimeKey(target_group_id, ip, port));
    if (it == targets_.end()) {
      return std::nullopt;
    }
    rt = it->second;
  }
  std::lock_guard lock(rt->mu);
  return TargetHealthReport{StateName(rt->state), rt->reason, rt->description};
}

}  // namespace berth::elb
