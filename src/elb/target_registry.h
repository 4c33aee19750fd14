// SPDX-License-Identifier: Apache-2.0
// What the ECS service controller needs from the load balancer: putting a
// task's IP:containerPort into a target group, taking it out (with connection
// draining), following its health, and checking a target group before a
// service is created with it.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace berth::elb {

/// Implemented by the ELBv2 module (ElbApi). Thread-safe; calls may block on
/// the store briefly.
class TargetRegistry {
 public:
  virtual ~TargetRegistry() = default;

  /// Registers `ip:port` in the target group, as RegisterTargets does: the
  /// target starts in `initial` and joins rotation once health checks pass.
  /// Registering a registered target changes nothing; registering a draining
  /// one brings it back. Errors: TargetGroupNotFound, ValidationError (not an
  /// IP address), InvalidTarget (the group's target type is not `ip`).
  virtual Status Register(const std::string& target_group_arn, const std::string& ip,
                          int port) = 0;

  /// Deregisters `ip:port`, as DeregisterTargets does: the target stops
  /// getting new requests at once, in-flight ones finish, and it is gone after
  /// the group's deregistration_delay.timeout_seconds. Poll TargetHealth until
  /// it answers "unused" to wait for the drain. Errors: TargetGroupNotFound.
  virtual Status Deregister(const std::string& target_group_arn, const std::string& ip,
                            int port) = 0;

  /// The target's state as DescribeTargetHealth reports it: "initial",
  /// "healthy", "unhealthy", "unavailable", "draining" or "unused" (never
  /// registered, or fully deregistered). Errors: TargetGroupNotFound.
  virtual Result<std::string> TargetHealth(const std::string& target_group_arn,
                                           const std::string& ip, int port) = 0;

  /// The full TargetHealth structure ({"State", "Reason", "Description"}), for
  /// service events that quote the reason. Errors: TargetGroupNotFound.
  virtual Result<nlohmann::json> TargetHealthDetail(const std::string& target_group_arn,
                                                    const std::string& ip, int port) = 0;

  /// The target group as DescribeTargetGroups shows it: TargetGroupArn,
  /// TargetType, Protocol, Port, LoadBalancerArns (empty when no listener or
  /// rule forwards to it), health check settings. Errors: TargetGroupNotFound.
  virtual Result<nlohmann::json> DescribeTargetGroup(const std::string& target_group_arn) = 0;
};

}  // namespace berth::elb
