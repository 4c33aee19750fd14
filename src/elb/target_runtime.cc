// SPDX-License-Identifier: Apache-2.0
#include "elb/target_runtime.h"

namespace berth::elb {

TargetRuntime::TargetRuntime(std::string group_id_in, std::string ip_in, uint16_t port_in,
                             boost::asio::ip::tcp::endpoint endpoint_in)
    : group_id(std::move(group_id_in)),
      ip(std::move(ip_in)),
      port(port_in),
      endpoint(endpoint_in),
      id([] {
        static std::atomic<uint64_t> next{1};
        return next++;
      }()) {}

void TargetRuntime::ResetLocked() {
  state = HealthState::kInitial;
  reason = "Elb.RegistrationInProgress";
  description = "Target registration is in progress";
  ok_streak = 0;
  fail_streak = 0;
  UpdateRoutableLocked();
}

void TargetRuntime::UpdateRoutableLocked() {
  bool healthy = state == HealthState::kHealthy || !checks_enabled;
  routable.store(healthy && !draining && in_use, std::memory_order_relaxed);
}

}  // namespace berth::elb
