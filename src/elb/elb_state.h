// SPDX-License-Identifier: Apache-2.0
// How the ELBv2 resources live in the store, shared by the API (which writes
// them) and the data plane (which serves what they say).
//
// Keys (values are JSON documents):
//   elb/lb/<lb-id>                   a load balancer as DescribeLoadBalancers shows
//                                    it, plus "_attributes" {key: value} and "_tags"
//   elb/lbname/<name>                the id of the load balancer with that name
//   elb/tg/<tg-id>                   a target group as DescribeTargetGroups shows it
//                                    (without LoadBalancerArns, which is derived),
//                                    plus "_attributes" and "_tags"
//   elb/tgname/<name>                the id of the target group with that name
//   elb/listener/<listener-id>       a listener as DescribeListeners shows it, plus
//                                    "_lb_id", "_default_rule_id", "_tags" and
//                                    "_default_rule_tags"
//   elb/rule/<rule-id>               a rule as DescribeRules shows it, plus
//                                    "_listener_id" and "_tags"
//   elb/target/<tg-id>/<ip>@<port>   a registered target: {"Id", "Port",
//                                    "AvailabilityZone"?, "RegisteredAt" (epoch ms),
//                                    "DrainUntil" (epoch ms, while deregistering)}
// Ids are 16 lower-case hex digits, the last segment of the resource's ARN.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace berth::elb {

inline constexpr std::string_view kElbPrefix = "elb/";
inline constexpr std::string_view kLoadBalancerPrefix = "elb/lb/";
inline constexpr std::string_view kLoadBalancerNamePrefix = "elb/lbname/";
inline constexpr std::string_view kTargetGroupPrefix = "elb/tg/";
inline constexpr std::string_view kTargetGroupNamePrefix = "elb/tgname/";
inline constexpr std::string_view kListenerPrefix = "elb/listener/";
inline constexpr std::string_view kRulePrefix = "elb/rule/";
inline constexpr std::string_view kTargetPrefix = "elb/target/";

inline std::string Key(std::string_view prefix, std::string_view id) {
  std::string key(prefix);
  key += id;
  return key;
}

inline std::string TargetKey(std::string_view tg_id, std::string_view ip, int port) {
  std::string key(kTargetPrefix);
  key += tg_id;
  key += '/';
  key += ip;
  key += '@';
  key += std::to_string(port);
  return key;
}

/// The part of an ARN after its last '/', which is the resource's id.
inline std::string ArnId(std::string_view arn) {
  size_t slash = arn.rfind('/');
  return std::string(slash == std::string_view::npos ? arn : arn.substr(slash + 1));
}

/// The target group ARNs a list of actions forwards to (TargetGroupArn and
/// ForwardConfig.TargetGroups[].TargetGroupArn), without repeats.
std::vector<std::string> ForwardTargetGroupArns(const nlohmann::json& actions);

}  // namespace berth::elb
