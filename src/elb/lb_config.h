// SPDX-License-Identifier: Apache-2.0
// The data plane's view of the ELBv2 configuration: what each listener does
// with a request and which targets each target group holds, read from the
// store documents the API writes (elb/elb_state.h).
//
// BuildLbConfig is a pure function of the store entries and the clock, so
// the data plane can rebuild it after every change and tests can check it
// without sockets.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "elb/matching.h"
#include "store/store.h"

namespace berth::elb {

enum class Algorithm : uint8_t { kRoundRobin, kLeastOutstandingRequests };

struct HealthCheckSpec {
  bool enabled = true;
  std::string path = "/";
  uint16_t port = 0;  // 0: the target's own port ("traffic-port")
  int interval_seconds = 30;
  int timeout_seconds = 5;
  int healthy_threshold = 5;
  int unhealthy_threshold = 2;
  std::vector<CodeRange> codes = {{200, 200}};

  bool operator==(const HealthCheckSpec& o) const;
};

struct TargetSpec {
  std::string ip;
  uint16_t port = 0;
  int64_t registered_at_ms = 0;
  bool draining = false;  // deregistered, still within its deregistration delay
};

struct TargetGroupSpec {
  std::string id;
  std::string arn;
  Algorithm algorithm = Algorithm::kRoundRobin;
  HealthCheckSpec health;
  std::vector<TargetSpec> targets;
  bool in_use = false;  // a listener or rule of a load balancer forwards to it
};

struct ActionSpec {
  enum class Kind : uint8_t { kForward, kFixedResponse };
  Kind kind = Kind::kForward;
  std::vector<std::pair<std::string, int>> groups;  // target group id, weight
  int status = 200;
  std::string content_type;
  std::string body;
};

struct ConditionSpec {
  enum class Field : uint8_t { kPath, kHost, kMethod, kHeader };
  Field field = Field::kPath;
  std::string header_name;  // kHeader
  std::vector<std::string> values;
};

struct RuleSpec {
  int priority = 0;
  std::vector<ConditionSpec> conditions;
  ActionSpec action;
};

struct ListenerSpec {
  std::string id;
  std::string load_balancer_id;
  uint16_t port = 0;
  int idle_timeout_seconds = 60;
  std::vector<RuleSpec> rules;  // by priority, lowest first
  ActionSpec default_action;
};

struct LbConfig {
  std::vector<ListenerSpec> listeners;
  std::map<std::string, TargetGroupSpec> groups;  // by id
  // The earliest deregistration deadline still to come (epoch ms), 0 if none.
  int64_t next_drain_deadline_ms = 0;
};

/// Builds the configuration from the store entries under "elb/". Targets
/// whose deregistration delay has passed by `now_ms` are left out; documents
/// that do not parse are skipped.
LbConfig BuildLbConfig(const std::vector<store::Entry>& entries, int64_t now_ms);

/// What a rule condition looks at in a request.
struct RequestFacts {
  std::string_view method;
  std::string_view path;  // without the query string
  std::string_view host;  // without the port
  // Looks up a header value by case-insensitive name; "" when absent.
  std::string_view (*header)(const void* context, std::string_view name) = nullptr;
  const void* header_context = nullptr;
};

/// Whether every condition of the rule holds for the request (a condition
/// holds when any of its values matches).
bool RuleMatches(const RuleSpec& rule, const RequestFacts& request);

}  // namespace berth::elb
