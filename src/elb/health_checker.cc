// SPDX-License-Identifier: Apache-2.0
#include "elb/health_checker.h"

#include <map>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <spdlog/spdlog.h>

namespace berth::elb {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using asio::awaitable;
using asio::use_awaitable;
using tcp = asio::ip::tcp;

namespace {

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

struct Task {
  Task(asio::io_context& io, CheckPlan p) : plan(std::move(p)), timer(io) {}
  CheckPlan plan;
  asio::steady_timer timer;
  bool stopped = false;
};

awaitable<ProbeResult> Probe(asio::io_context& io, const TargetRuntime& target,
                             const HealthCheckSpec& spec) {
  tcp::endpoint ep(target.endpoint.address(), spec.port != 0 ? spec.port : target.port);
  beast::tcp_stream stream(io);
  stream.expires_after(std::chrono::seconds(spec.timeout_seconds));
  beast::error_code ec;
  co_await stream.async_connect(ep, asio::redirect_error(use_awaitable, ec));
  if (ec) {
    co_return ProbeResult{ec == beast::error::timeout ? ProbeResult::Kind::kTimeout
                                                      : ProbeResult::Kind::kFailed,
                          0};
  }
  std::string host = ep.address().is_v6() ? "[" + target.ip + "]" : target.ip;
  std::string request = "GET " + spec.path + " HTTP/1.1\r\nHost: " + host + ":" +
                        std::to_string(ep.port()) +
                        "\r\nUser-Agent: ELB-HealthChecker/2.0\r\nAccept: */*\r\n"
                        "Connection: close\r\n\r\n";
  co_await asio::async_write(stream, asio::buffer(request),
                             asio::redirect_error(use_awaitable, ec));
  beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::empty_body> parser;
  if (!ec) {
    co_await bhttp::async_read_header(stream, buffer, parser,
                                      asio::redirect_error(use_awaitable, ec));
  }
  if (ec) {
    co_return ProbeResult{ec == beast::error::timeout ? ProbeResult::Kind::kTimeout
                                                      : ProbeResult::Kind::kFailed,
                          0};
  }
  int code = parser.get().result_int();
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  co_return ProbeResult{CodeMatches(spec.codes, code) ? ProbeResult::Kind::kPass
                                                      : ProbeResult::Kind::kCodeMismatch,
                        code};
}

}  // namespace

bool ApplyProbeResult(TargetRuntime& t, const HealthCheckSpec& spec, const ProbeResult& r) {
  HealthState before = t.state;
  if (r.kind == ProbeResult::Kind::kPass) {
    ++t.ok_streak;
    t.fail_streak = 0;
    if (t.state != HealthState::kHealthy && t.ok_streak >= spec.healthy_threshold) {
      t.state = HealthState::kHealthy;
      t.reason.clear();
      t.description.clear();
    } else if (t.state == HealthState::kInitial) {
      t.reason = "Elb.InitialHealthChecking";
      t.description = "Initial health checks in progress";
    }
  } else {
    ++t.fail_streak;
    t.ok_streak = 0;
    std::string reason;
    std::string description;
    switch (r.kind) {
      case ProbeResult::Kind::kCodeMismatch:
        reason = "Target.ResponseCodeMismatch";
        description = "Health checks failed with these codes: [" + std::to_string(r.code) + "]";
        break;
      case ProbeResult::Kind::kTimeout:
        reason = "Target.Timeout";
        description = "Request timed out";
        break;
      default:
        reason = "Target.FailedHealthChecks";
        description = "Health checks failed";
        break;
    }
    if (t.state != HealthState::kUnhealthy && t.fail_streak >= spec.unhealthy_threshold) {
      t.state = HealthState::kUnhealthy;
      t.reason = reason;
      t.description = description;
    } else if (t.state == HealthState::kInitial) {
      t.reason = "Elb.InitialHealthChecking";
      t.description = "Initial health checks in progress";
    } else if (t.state == HealthState::kUnhealthy) {
      t.reason = reason;
      t.description = description;
    }
  }
  t.UpdateRoutableLocked();
  return before != t.state;
}

struct HealthChecker::Impl : std::enable_shared_from_this<HealthChecker::Impl> {
  Impl(asio::io_context& io, std::chrono::milliseconds delay)
      : control(io), first_probe_delay(delay) {}

  asio::io_context& control;
  std::chrono::milliseconds first_probe_delay;
  std::map<TargetRuntime*, std::shared_ptr<Task>> tasks;  // control thread only

  awaitable<void> Loop(std::shared_ptr<Task> task) {
    if (first_probe_delay.count() > 0) {
      // Registration takes a moment before the first check, as in AWS;
      // meanwhile the target reads initial / Elb.RegistrationInProgress.
      task->timer.expires_after(first_probe_delay);
      beast::error_code ec;
      co_await task->timer.async_wait(asio::redirect_error(use_awaitable, ec));
    }
    while (!task->stopped) {
      HealthCheckSpec spec = task->plan.spec;
      ProbeResult result = co_await Probe(control, *task->plan.target, spec);
      if (task->stopped) {
        break;
      }
      TargetRuntime& t = *task->plan.target;
      {
        std::lock_guard lock(t.mu);
        if (ApplyProbeResult(t, spec, result)) {
          spdlog::info("event=lb_target_health_changed target_group={} target={}:{} state={} "
                       "reason={}",
                       t.group_id, t.ip, t.port, StateName(t.state), t.reason);
        }
      }
      task->timer.expires_after(std::chrono::seconds(task->plan.spec.interval_seconds));
      beast::error_code ec;
      co_await task->timer.async_wait(asio::redirect_error(use_awaitable, ec));
    }
  }

  void Apply(std::vector<CheckPlan> plans) {
    std::map<TargetRuntime*, std::shared_ptr<Task>> next;
    for (auto& plan : plans) {
      TargetRuntime* key = plan.target.get();
      auto it = tasks.find(key);
      if (it != tasks.end()) {
        if (plan.spec.interval_seconds < it->second->plan.spec.interval_seconds) {
          it->second->timer.cancel();  // check now rather than after the old, longer wait
        }
        it->second->plan.spec = plan.spec;
        next.emplace(key, it->second);
        tasks.erase(it);
        continue;
      }
      auto task = std::make_shared<Task>(control, std::move(plan));
      next.emplace(key, task);
      asio::co_spawn(control, Loop(task), asio::detached);
    }
    for (auto& [key, task] : tasks) {
      task->stopped = true;
      task->timer.cancel();
    }
    tasks = std::move(next);
  }
};

HealthChecker::HealthChecker(asio::io_context& control, std::chrono::milliseconds first_probe_delay)
    : impl_(std::make_shared<Impl>(control, first_probe_delay)) {}

HealthChecker::~HealthChecker() = default;

void HealthChecker::Update(std::vector<CheckPlan> plans) {
  asio::post(impl_->control,
             [impl = impl_, plans = std::move(plans)]() mutable { impl->Apply(std::move(plans)); });
}

void HealthChecker::Stop() {
  asio::post(impl_->control, [impl = impl_] { impl->Apply({}); });
}

}  // namespace berth::elb
