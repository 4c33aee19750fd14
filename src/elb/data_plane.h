// SPDX-License-Identifier: Apache-2.0
// The load balancer data plane as one unit: it follows the store's ELBv2
// documents (through the change feed, so API changes take effect within
// milliseconds), keeps one TargetRuntime per registered target across
// reloads, and drives the proxy (listeners, routing) and the health checker.
// It is also the API's DataPlaneHooks: listener ports are bound through it
// and target health is read from it.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <boost/asio/io_context.hpp>

#include "elb/elb_api.h"
#include "elb/health_checker.h"
#include "elb/proxy.h"
#include "store/store.h"

namespace berth::elb {

struct DataPlaneOptions {
  ProxyOptions proxy;  // bind address, worker threads, timeouts
  // How long a new target waits for its first health check.
  std::chrono::milliseconds first_probe_delay = std::chrono::seconds(1);
};

class DataPlane : public DataPlaneHooks {
 public:
  DataPlane(store::Store& store, DataPlaneOptions options);
  ~DataPlane() override;

  /// Starts the threads, binds the listeners the store holds (failures are
  /// logged) and begins following the store.
  Status Start();
  /// Stops serving; safe to call twice.
  void Stop();

  /// Called when a deregistration delay ends, to delete the drained
  /// registrations from the store (ElbApi::ExpireDrainedTargets).
  void SetDrainExpirer(std::function<Status()> expire) { expire_ = std::move(expire); }

  /// Rebuilds the configuration from the store now.
  void Reload();

  /// The port a listener's socket is bound to, if any.
  std::optional<uint16_t> ListenerPort(const std::string& listener_id) const;

  // DataPlaneHooks.
  Status BindListener(const std::string& listener_id, uint16_t port) override;
  void ReleaseListener(const std::string& listener_id) override;
  std::optional<TargetHealthReport> Health(const std::string& target_group_id,
                                           const std::string& ip, uint16_t port) override;

 private:
  void Watch();

  store::Store& store_;
  DataPlaneOptions options_;
  boost::asio::io_context control_;
  std::thread control_thread_;
  std::unique_ptr<Proxy> proxy_;
  std::unique_ptr<HealthChecker> checker_;
  std::function<Status()> expire_;

  std::mutex mu_;  // serializes reloads; guards the maps below
  std::map<std::string, std::shared_ptr<TargetRuntime>> targets_;  // "<tg>|<ip>|<port>"
  std::map<std::string, std::shared_ptr<std::atomic<uint64_t>>> cursors_;  // by group id

  std::thread watch_thread_;
  std::atomic<bool> running_{false};
  std::atomic<int64_t> revision_{0};
  std::atomic<int64_t> next_deadline_ms_{0};
};

}  // namespace berth::elb
