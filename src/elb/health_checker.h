// SPDX-License-Identifier: Apache-2.0
// Active health checks: every interval, an HTTP GET of the target group's
// health check path on each target; the answer's status against the
// matcher decides pass or fail, and the healthy/unhealthy thresholds of
// consecutive results move the target between initial, healthy and
// unhealthy (with AWS's reason codes). Runs on the data plane's control
// io_context.
#pragma once

#include <chrono>
#include <memory>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "elb/lb_config.h"
#include "elb/target_runtime.h"

namespace berth::elb {

struct CheckPlan {
  std::shared_ptr<TargetRuntime> target;
  HealthCheckSpec spec;
};

/// The outcome of one probe.
struct ProbeResult {
  enum class Kind : uint8_t { kPass, kCodeMismatch, kTimeout, kFailed };
  Kind kind = Kind::kFailed;
  int code = 0;  // the status the target answered, for kPass and kCodeMismatch
};

/// Applies one probe's outcome to a target (thresholds, state, reason).
/// Requires target.mu held. Returns whether the state changed.
bool ApplyProbeResult(TargetRuntime& target, const HealthCheckSpec& spec,
                      const ProbeResult& result);

class HealthChecker {
 public:
  /// A new target's first probe comes `first_probe_delay` after it appears.
  HealthChecker(boost::asio::io_context& control,
                std::chrono::milliseconds first_probe_delay = std::chrono::seconds(1));
  ~HealthChecker();

  /// Checks exactly these targets from now on: new ones get their first probe
  /// at once, known ones keep their rhythm with the new settings, the others
  /// stop. Thread-safe.
  void Update(std::vector<CheckPlan> plans);

  /// Stops every check. Thread-safe.
  void Stop();

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace berth::elb
