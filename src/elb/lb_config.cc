// SPDX-License-Identifier: Apache-2.0
#include "elb/lb_config.h"

#include <algorithm>
#include <cstdlib>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "elb/elb_state.h"

namespace berth::elb {

using Json = nlohmann::json;

namespace {

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

int AttributeInt(const Json& doc, const char* key, int fallback) {
  const Json& attrs = doc.value("_attributes", Json::object());
  auto it = attrs.find(key);
  if (it == attrs.end() || !it->is_string()) {
    return fallback;
  }
  return std::atoi(it->get<std::string>().c_str());
}

ActionSpec ParseAction(const Json& actions, const std::map<std::string, std::string>& tg_ids) {
  ActionSpec spec;
  if (!actions.is_array() || actions.empty()) {
    spec.kind = ActionSpec::Kind::kFixedResponse;
    spec.status = 503;
    return spec;
  }
  const Json& a = actions.back();  // the terminal action comes last
  if (a.value("Type", "") == "fixed-response") {
    const Json& c = a.value("FixedResponseConfig", Json::object());
    spec.kind = ActionSpec::Kind::kFixedResponse;
    spec.status = std::atoi(c.value("StatusCode", "200").c_str());
    spec.content_type = c.value("ContentType", "");
    spec.body = c.value("MessageBody", "");
    return spec;
  }
  spec.kind = ActionSpec::Kind::kForward;
  const Json& fc = a.value("ForwardConfig", Json::object());
  for (const auto& t : fc.value("TargetGroups", Json::array())) {
    auto id = tg_ids.find(t.value("TargetGroupArn", ""));
    if (id != tg_ids.end()) {
      spec.groups.emplace_back(id->second, t.value("Weight", 1));
    }
  }
  if (spec.groups.empty()) {
    auto id = tg_ids.find(a.value("TargetGroupArn", ""));
    if (id != tg_ids.end()) {
      spec.groups.emplace_back(id->second, 1);
    }
  }
  return spec;
}

std::vector<ConditionSpec> ParseConditions(const Json& conditions) {
  std::vector<ConditionSpec> out;
  for (const auto& c : conditions) {
    ConditionSpec spec;
    std::string field = c.value("Field", "");
    Json values;
    if (field == "path-pattern") {
      spec.field = ConditionSpec::Field::kPath;
      values = c.value("PathPatternConfig", Json::object()).value("Values", c.value("Values", Json::array()));
    } else if (field == "host-header") {
      spec.field = ConditionSpec::Field::kHost;
      values = c.value("HostHeaderConfig", Json::object()).value("Values", c.value("Values", Json::array()));
    } else if (field == "http-request-method") {
      spec.field = ConditionSpec::Field::kMethod;
      values = c.value("HttpRequestMethodConfig", Json::object()).value("Values", Json::array());
    } else if (field == "http-header") {
      spec.field = ConditionSpec::Field::kHeader;
      const Json& hc = c.value("HttpHeaderConfig", Json::object());
      spec.header_name = hc.value("HttpHeaderName", "");
      values = hc.value("Values", Json::array());
    } else {
      continue;
    }
    for (const auto& v : values) {
      spec.values.push_back(v.get<std::string>());
    }
    out.push_back(std::move(spec));
  }
  return out;
}

HealthCheckSpec ParseHealth(const Json& tg) {
  HealthCheckSpec h;
  h.enabled = tg.value("HealthCheckEnabled", true);
  h.path = tg.value("HealthCheckPath", "/");
  std::string port = tg.value("HealthCheckPort", "traffic-port");
  h.port = port == "traffic-port" ? 0 : static_cast<uint16_t>(std::atoi(port.c_str()));
  h.interval_seconds = tg.value("HealthCheckIntervalSeconds", 30);
  h.timeout_seconds = tg.value("HealthCheckTimeoutSeconds", 5);
  h.healthy_threshold = tg.value("HealthyThresholdCount", 5);
  h.unhealthy_threshold = tg.value("UnhealthyThresholdCount", 2);
  auto codes = ParseHttpCodes(tg.value("Matcher", Json::object()).value("HttpCode", "200"));
  if (codes.ok()) {
    h.codes = *codes;
  }
  return h;
}

}  // namespace

bool HealthCheckSpec::operator==(const HealthCheckSpec& o) const {
  if (codes.size() != o.codes.size()) {
    return false;
  }
  for (size_t i = 0; i < codes.size(); ++i) {
    if (codes[i].low != o.codes[i].low || codes[i].high != o.codes[i].high) {
      return false;
    }
  }
  return enabled == o.enabled && path == o.path && port == o.port &&
         interval_seconds == o.interval_seconds && timeout_seconds == o.timeout_seconds &&
         healthy_threshold == o.healthy_threshold && unhealthy_threshold == o.unhealthy_threshold;
}

LbConfig BuildLbConfig(const std::vector<store::Entry>& entries, int64_t now_ms) {
  std::vector<Json> lbs;
  std::vector<Json> tgs;
  std::vector<Json> listeners;
  std::vector<Json> rules;
  std::vector<std::pair<std::string, Json>> targets;  // tg id, record
  for (const auto& e : entries) {
    Json doc = Json::parse(e.value, nullptr, false);
    if (doc.is_discarded() || !doc.is_object()) {
      continue;
    }
    std::string_view key = e.key;
    if (StartsWith(key, kLoadBalancerPrefix)) {
      lbs.push_back(std::move(doc));
    } else if (StartsWith(key, kTargetGroupPrefix)) {
      tgs.push_back(std::move(doc));
    } else if (StartsWith(key, kListenerPrefix)) {
      listeners.push_back(std::move(doc));
    } else if (StartsWith(key, kRulePrefix)) {
      rules.push_back(std::move(doc));
    } else if (StartsWith(key, kTargetPrefix)) {
      std::string_view rest = key.substr(kTargetPrefix.size());
      targets.emplace_back(std::string(rest.substr(0, rest.find('/'))), std::move(doc));
    }
  }

  LbConfig config;
  std::map<std::string, std::string> tg_ids;  // arn -> id
  for (const auto& tg : tgs) {
    TargetGroupSpec spec;
    spec.arn = tg.value("TargetGroupArn", "");
    spec.id = ArnId(spec.arn);
    spec.health = ParseHealth(tg);
    const Json& attrs = tg.value("_attributes", Json::object());
    spec.algorithm = attrs.value("load_balancing.algorithm.type", "") == "least_outstanding_requests"
                         ? Algorithm::kLeastOutstandingRequests
                         : Algorithm::kRoundRobin;
    tg_ids[spec.arn] = spec.id;
    config.groups[spec.id] = std::move(spec);
  }
  for (auto& [tg_id, record] : targets) {
    auto group = config.groups.find(tg_id);
    if (group == config.groups.end()) {
      continue;
    }
    TargetSpec t;
    t.ip = record.value("Id", "");
    t.port = static_cast<uint16_t>(record.value("Port", 0));
    t.registered_at_ms = record.value("RegisteredAt", int64_t{0});
    if (record.contains("DrainUntil")) {
      int64_t until = record.at("DrainUntil").get<int64_t>();
      if (until <= now_ms) {
        continue;
      }
      t.draining = true;
      if (config.next_drain_deadline_ms == 0 || until < config.next_drain_deadline_ms) {
        config.next_drain_deadline_ms = until;
      }
    }
    group->second.targets.push_back(std::move(t));
  }

  std::map<std::string, int> idle_by_lb;
  for (const auto& lb : lbs) {
    idle_by_lb[ArnId(lb.value("LoadBalancerArn", ""))] =
        AttributeInt(lb, "idle_timeout.timeout_seconds", 60);
  }
  auto mark_used = [&](const ActionSpec& action) {
    for (const auto& [id, weight] : action.groups) {
      config.groups[id].in_use = true;
    }
  };
  for (const auto& l : listeners) {
    auto lb = idle_by_lb.find(l.value("_lb_id", ""));
    if (lb == idle_by_lb.end()) {
      continue;
    }
    ListenerSpec spec;
    spec.id = ArnId(l.value("ListenerArn", ""));
    spec.load_balancer_id = lb->first;
    spec.port = static_cast<uint16_t>(l.value("Port", 0));
    spec.idle_timeout_seconds = lb->second;
    spec.default_action = ParseAction(l.value("DefaultActions", Json::array()), tg_ids);
    mark_used(spec.default_action);
    for (const auto& r : rules) {
      if (r.value("_listener_id", "") != spec.id) {
        continue;
      }
      RuleSpec rule;
      rule.priority = std::atoi(r.value("Priority", "0").c_str());
      rule.conditions = ParseConditions(r.value("Conditions", Json::array()));
      rule.action = ParseAction(r.value("Actions", Json::array()), tg_ids);
      mark_used(rule.action);
      spec.rules.push_back(std::move(rule));
    }
    std::sort(spec.rules.begin(), spec.rules.end(),
              [](const RuleSpec& a, const RuleSpec& b) { return a.priority < b.priority; });
    config.listeners.push_back(std::move(spec));
  }
  return config;
}

bool RuleMatches(const RuleSpec& rule, const RequestFacts& request) {
  for (const auto& c : rule.conditions) {
    bool any = false;
    for (const auto& v : c.values) {
      switch (c.field) {
        case ConditionSpec::Field::kPath:
          any = GlobMatch(v, request.path, false);
          break;
        case ConditionSpec::Field::kHost:
          any = GlobMatch(v, request.host, true);
          break;
        case ConditionSpec::Field::kMethod:
          any = v == request.method;
          break;
        case ConditionSpec::Field::kHeader:
          any = request.header != nullptr &&
                GlobMatch(v, request.header(request.header_context, c.header_name), true);
          break;
      }
      if (any) {
        break;
      }
    }
    if (!any) {
      return false;
    }
  }
  return true;
}

}  // namespace berth::elb
