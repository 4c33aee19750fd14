// SPDX-License-Identifier: Apache-2.0
// The live state of one registered target: whether new requests may go to
// it, how many are in flight, and what the health checker found.
//
// One TargetRuntime exists per (target group, ip, port) for as long as the
// target stays registered; configuration reloads keep it, so health and
// counters survive API changes. The proxy's workers read `routable` and
// update `outstanding` without locks; the health checker and the data plane
// change the rest under `mu`.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

#include <boost/asio/ip/tcp.hpp>

namespace berth::elb {

enum class HealthState : uint8_t { kInitial, kHealthy, kUnhealthy };

struct TargetRuntime {
  TargetRuntime(std::string group_id_in, std::string ip_in, uint16_t port_in,
                boost::asio::ip::tcp::endpoint endpoint_in);

  const std::string group_id;
  const std::string ip;
  const uint16_t port;
  const boost::asio::ip::tcp::endpoint endpoint;
  const uint64_t id;  // unique in this process; keys connection pools

  // Read by the proxy on every request.
  std::atomic<bool> routable{false};
  std::atomic<int32_t> outstanding{0};

  std::mutex mu;
  // Guarded by mu.
  HealthState state = HealthState::kInitial;
  std::string reason = "Elb.RegistrationInProgress";
  std::string description = "Target registration is in progress";
  int ok_streak = 0;
  int fail_streak = 0;
  bool draining = false;
  bool checks_enabled = true;
  bool in_use = false;
  int64_t registered_at_ms = 0;

  /// Back to a fresh registration. Requires mu held.
  void ResetLocked();
  /// Recomputes `routable` from state, draining and checks_enabled.
  /// Requires mu held.
  void UpdateRoutableLocked();
};

}  // namespace berth::elb
