// SPDX-License-Identifier: Apache-2.0
// ElbApi: listeners, rules, their actions and conditions.
#include <algorithm>
#include <cstdio>
#include <map>
#include <regex>
#include <set>

#include "common/ids.h"
#include "elb/elb_api.h"
#include "elb/elb_api_internal.h"

namespace berth::elb {

using namespace detail;

namespace {

constexpr size_t kMaxListenersPerLoadBalancer = 50;
constexpr size_t kMaxRulesPerLoadBalancer = 100;

Error Unsupported(const std::string& what) {
  return Validation(what + " is not supported by berth's load balancer");
}

// The values of a condition given either as Values or as <Field>Config.Values.
Result<Json> ConditionValues(const Json& condition, const char* config) {
  bool plain = condition.contains("Values");
  bool nested = condition.contains(config);
  if (plain && nested) {
    return Validation(std::string("A condition can specify Values or ") + config +
                      ", not both");
  }
  Json values = plain ? condition.at("Values")
                      : condition.value(config, Json::object()).value("Values", Json::array());
  if (values.empty()) {
    return Validation("A condition must specify at least one value");
  }
  return values;
}

Status CheckHostPattern(const std::string& host) {
  static const std::regex kHost("^[A-Za-z0-9.*?-]{1,128}$");
  if (!std::regex_match(host, kHost)) {
    return Validation("The host-header value '" + host +
                      "' may contain only A-Z, a-z, 0-9, '-', '.', '*' and '?' and be at most "
                      "128 characters");
  }
  return Ok();
}

Status CheckPathPattern(const std::string& path) {
  if (path.empty() || path.size() > 128) {
    return Validation("The path-pattern value '" + path +
                      "' must be between 1 and 128 characters");
  }
  return Ok();
}

std::string PriorityKey(const Json& rule) {
  if (rule.value("IsDefault", false)) {
    return "99999";
  }
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%05d", std::atoi(rule.value("Priority", "0").c_str()));
  return buf;
}

}  // namespace

Result<Json> ElbApi::NormalizeConditions(const Json& conditions) const {
  if (conditions.empty()) {
    return Validation("A rule must have at least one condition");
  }
  Json out = Json::array();
  std::set<std::string> seen;
  size_t total_values = 0;
  for (const auto& c : conditions) {
    std::string field = c.value("Field", "");
    if (field.empty()) {
      return Validation("A condition field must be specified");
    }
    if (field != "http-header" && !seen.insert(field).second) {
      return Validation("A rule can only have one '" + field + "' condition");
    }
    Json normalized = {{"Field", field}};
    if (field == "path-pattern" || field == "host-header") {
      const char* config = field == "path-pattern" ? "PathPatternConfig" : "HostHeaderConfig";
      auto values = ConditionValues(c, config);
      if (!values.ok()) {
        return values.error();
      }
      for (const auto& v : *values) {
        BERTH_TRY(field == "path-pattern" ? CheckPathPattern(v.get<std::string>())
                                          : CheckHostPattern(v.get<std::string>()));
      }
      total_values += values->size();
      normalized["Values"] = *values;
      normalized[config] = {{"Values", *values}};
    } else if (field == "http-request-method") {
      Json values = c.value("HttpRequestMethodConfig", Json::object()).value("Values", Json::array());
      static const std::regex kMethod("^[A-Z_-]{1,40}$");
      if (values.empty()) {
        return Validation("An http-request-method condition needs HttpRequestMethodConfig.Values");
      }
      for (const auto& v : values) {
        if (!std::regex_match(v.get<std::string>(), kMethod)) {
          return Validation("The http-request-method value '" + v.get<std::string>() +
                            "' must be an upper-case HTTP method");
        }
      }
      total_values += values.size();
      normalized["HttpRequestMethodConfig"] = {{"Values", values}};
    } else if (field == "http-header") {
      Json config = c.value("HttpHeaderConfig", Json::object());
      std::string name = config.value("HttpHeaderName", "");
      Json values = config.value("Values", Json::array());
      if (name.empty() || values.empty()) {
        return Validation("An http-header condition needs HttpHeaderConfig.HttpHeaderName and "
                          "Values");
      }
      total_values += values.size();
      normalized["HttpHeaderConfig"] = {{"HttpHeaderName", name}, {"Values", values}};
    } else if (field == "query-string" || field == "source-ip") {
      // LIMITATION: rules match on path, host, method and headers only.
      return Unsupported("The '" + field + "' condition");
    } else {
      return Validation("Condition field '" + field + "' is not valid");
    }
    out.push_back(normalized);
  }
  if (total_values > 5) {
    return Validation("A rule can only have '5' condition values");
  }
  return out;
}

Result<Json> ElbApi::NormalizeActions(const Json& actions, const Inventory& inv,
                                      const std::string& lb_arn) const {
  if (actions.empty()) {
    return Validation("At least one action must be specified");
  }
  if (actions.size() > 1) {
    return Validation("A rule can have only one action of type forward or fixed-response");
  }
  const Json& a = actions.at(0);
  std::string type = a.value("Type", "");
  Json out = {{"Type", type}};
  if (a.contains("Order")) {
    out["Order"] = a.at("Order");
  }
  if (type == "fixed-response") {
    if (!a.contains("FixedResponseConfig")) {
      return Validation("A fixed-response action must have a FixedResponseConfig");
    }
    const Json& config = a.at("FixedResponseConfig");
    static const std::regex kStatus("^(2|4|5)\\d\\d$");
    std::string status = config.value("StatusCode", "");
    if (!std::regex_match(status, kStatus)) {
      return Validation("The fixed-response status code '" + status + "' must be 2XX, 4XX or 5XX");
    }
    Json normalized = {{"StatusCode", status}};
    if (config.contains("ContentType")) {
      static const std::set<std::string> kTypes = {"text/plain", "text/css", "text/html",
                                                   "application/javascript",
                                                   "application/json"};
      std::string ct = config.at("ContentType").get<std::string>();
      if (kTypes.count(ct) == 0) {
        return Validation("The fixed-response content type '" + ct +
                          "' must be one of text/plain, text/css, text/html, "
                          "application/javascript, application/json");
      }
      normalized["ContentType"] = ct;
    }
    if (config.contains("MessageBody")) {
      normalized["MessageBody"] = config.at("MessageBody");
    }
    out["FixedResponseConfig"] = normalized;
    return Json::array({out});
  }
  if (type != "forward") {
    // LIMITATION: no redirects and no authentication (both need HTTPS
    // listeners to be useful, which berth does not offer).
    return Unsupported("Action type '" + type + "'");
  }

  // forward: TargetGroupArn, or ForwardConfig.TargetGroups with weights.
  std::vector<std::pair<std::string, int>> groups;
  if (a.contains("ForwardConfig")) {
    const Json& fc = a.at("ForwardConfig");
    if (fc.value("TargetGroupStickinessConfig", Json::object()).value("Enabled", false)) {
      return Unsupported("Target group stickiness");
    }
    for (const auto& t : fc.value("TargetGroups", Json::array())) {
      int weight = t.value("Weight", 1);
      if (weight < 0 || weight > 999) {
        return Validation("Target group weights must be between 0 and 999");
      }
      groups.emplace_back(t.value("TargetGroupArn", ""), weight);
    }
  }
  if (a.contains("TargetGroupArn")) {
    std::string arn = a.at("TargetGroupArn").get<std::string>();
    if (groups.empty()) {
      groups.emplace_back(arn, 1);
    } else if (groups.size() != 1 || groups[0].first != arn) {
      return Validation("The TargetGroupArn and the ForwardConfig of a forward action must name "
                        "the same target group");
    }
  }
  if (groups.empty()) {
    return Validation("A forward action must specify a target group");
  }
  if (groups.size() > 5) {
    return Validation("A forward action can have at most 5 target groups");
  }
  Json tuples = Json::array();
  std::set<std::string> seen;
  for (const auto& [arn, weight] : groups) {
    if (!seen.insert(arn).second) {
      return Validation("Target group '" + arn + "' is listed more than once");
    }
    auto it = std::find_if(inv.tgs.begin(), inv.tgs.end(), [&](const Loaded& t) {
      return t.doc.value("TargetGroupArn", "") == arn;
    });
    if (it == inv.tgs.end()) {
      return TargetGroupNotFound();
    }
    for (const auto& other : inv.LoadBalancersUsing(arn)) {
      if (other != lb_arn) {
        return ClientError("TargetGroupAssociationLimit",
                           "The following target groups cannot be associated with more than one "
                           "load balancer: " + arn);
      }
    }
    tuples.push_back({{"TargetGroupArn", arn}, {"Weight", weight}});
  }
  if (groups.size() == 1) {
    out["TargetGroupArn"] = groups[0].first;
  }
  out["ForwardConfig"] = {{"TargetGroups", tuples},
                          {"TargetGroupStickinessConfig", {{"Enabled", false}}}};
  return Json::array({out});
}

Json ElbApi::DefaultRuleView(const Json& listener) const {
  std::string listener_arn = listener.value("ListenerArn", "");
  std::string suffix = listener_arn.substr(listener_arn.find(":listener/") + 10);
  return {{"RuleArn", Arn("listener-rule/" + suffix + "/" +
                          listener.value("_default_rule_id", ""))},
          {"Priority", "default"},
          {"Conditions", Json::array()},
          {"Actions", listener.value("DefaultActions", Json::array())},
          {"IsDefault", true}};
}

Result<Json> ElbApi::RulesOf(const std::string& listener_id, const Inventory& inv) const {
  const Loaded* listener = inv.ListenerById(listener_id);
  if (listener == nullptr) {
    return ListenerNotFound();
  }
  std::vector<Json> rules;
  for (const auto& r : inv.rules) {
    if (r.doc.value("_listener_id", "") == listener_id) {
      rules.push_back(Public(r.doc));
    }
  }
  std::sort(rules.begin(), rules.end(),
            [](const Json& a, const Json& b) { return PriorityKey(a) < PriorityKey(b); });
  rules.push_back(DefaultRuleView(listener->doc));
  return Json(rules);
}

// ---------------------------------------------------------------------------
// Listeners

Result<Json> ElbApi::CreateListener(const Json& in) {
  const std::string lb_arn = in.at("LoadBalancerArn").get<std::string>();
  std::string protocol = in.value("Protocol", "HTTP");
  if (protocol != "HTTP") {
    // LIMITATION: no TLS termination (HTTPS needs certificates from ACM,
    // which berth does not have) and no layer-4 listeners.
    return ClientError("UnsupportedProtocol",
                       "Listener protocol '" + protocol +
                           "' is not supported; berth's load balancer listens on HTTP");
  }
  if (!in.contains("Port")) {
    return Validation("A listener port must be specified");
  }
  int port = in.at("Port").get<int>();
  Json tags = in.value("Tags", Json::array());
  BERTH_TRY(CheckTags(tags));

  std::lock_guard lock(mu_);
  auto lb = FindLoadBalancer(lb_arn);
  if (!lb.ok()) {
    return lb.error();
  }
  auto inv = LoadInventory();
  if (!inv.ok()) {
    return inv.error();
  }
  std::string lb_id = ArnId(lb_arn);
  size_t count = 0;
  for (const auto& l : inv->listeners) {
    if (l.doc.value("Port", 0) != port) {
      count += l.doc.value("_lb_id", "") == lb_id;
      continue;
    }
    if (l.doc.value("_lb_id", "") == lb_id) {
      return ClientError("DuplicateListener",
                         "A listener already exists on this port for this load balancer '" +
                             lb_arn + "'");
    }
    // LIMITATION: every load balancer listens on the same address, so a
    // port serves one load balancer.
    return ClientError("InvalidConfigurationRequest",
                       "Port " + std::to_string(port) + " is already used by load balancer '" +
                           inv->LoadBalancerArnOfListener(l.doc) +
                           "'; berth's load balancers share the address " + bind_address_);
  }
  if (count >= kMaxListenersPerLoadBalancer) {
    return ClientError("TooManyListeners",
                       "You've reached the limit on the number of listeners per load balancer");
  }
  auto actions = NormalizeActions(in.at("DefaultActions"), *inv, lb_arn);
  if (!actions.ok()) {
    return actions.error();
  }

  std::string id = RandomHex(8);
  std::string lb_name = lb->doc.value("LoadBalancerName", "");
  Json doc = {
      {"ListenerArn", Arn("listener/app/" + lb_name + "/" + lb_id + "/" + id)},
      {"LoadBalancerArn", lb_arn},
      {"Port", port},
      {"Protocol", protocol},
      {"DefaultActions", *actions},
      {"_lb_id", lb_id},
      {"_default_rule_id", RandomHex(8)},
      {"_tags", tags},
  };
  if (hooks_ != nullptr) {
    Status bound = hooks_->BindListener(id, static_cast<uint16_t>(port));
    if (!bound.ok()) {
      return ClientError("InvalidConfigurationRequest", bound.error().message);
    }
  }
  store::Txn txn;
  txn.IfRevision(lb->entry.key, lb->entry.mod_revision).Put(Key(kListenerPrefix, id), doc.dump());
  Status committed = Commit(txn);
  if (!committed.ok()) {
    if (hooks_ != nullptr) {
      hooks_->ReleaseListener(id);
    }
    return committed.error();
  }
  return Json{{"Listeners", Json::array({Public(doc)})}};
}

Result<Json> ElbApi::DescribeListeners(const Json& in) {
  bool by_lb = in.contains("LoadBalancerArn");
  bool by_arn = in.contains("ListenerArns");
  if (by_lb == by_arn) {
    return Validation(by_lb ? "Listener ARNs and a load balancer ARN cannot be specified at the "
                              "same time"
                            : "You must specify either listener ARNs or a load balancer ARN");
  }
  auto inv = LoadInventory();
  if (!inv.ok()) {
    return inv.error();
  }
  std::vector<const Json*> chosen;
  if (by_lb) {
    std::string lb_arn = in.at("LoadBalancerArn").get<std::string>();
    const Loaded* lb = inv->LoadBalancerById(ArnId(lb_arn));
    if (lb == nullptr || lb->doc.value("LoadBalancerArn", "") != lb_arn) {
      return LoadBalancerNotFound();
    }
    for (const auto& l : inv->listeners) {
      if (l.doc.value("LoadBalancerArn", "") == lb_arn) {
        chosen.push_back(&l.doc);
      }
    }
  } else {
    for (const auto& arn : in.at("ListenerArns")) {
      const Loaded* l = inv->ListenerById(ArnId(arn.get<std::string>()));
      if (l == nullptr || l->doc.value("ListenerArn", "") != arn.get<std::string>()) {
        return ListenerNotFound();
      }
      chosen.push_back(&l->doc);
    }
  }
  std::sort(chosen.begin(), chosen.end(), [](const Json* a, const Json* b) {
    return a->value("Port", 0) < b->value("Port", 0);
  });
  std::vector<Json> items;
  std::vector<std::string> keys;
  for (const Json* d : chosen) {
    items.push_back(Public(*d));
    char key[16];
    std::snprintf(key, sizeof(key), "%05d", d->value("Port", 0));
    keys.push_back(key);
  }
  return Page(items, keys, in, "Listeners");
}

Result<Json> ElbApi::ModifyListener(const Json& in) {
  std::lock_guard lock(mu_);
  auto listener = FindListener(in.at("ListenerArn").get<std::string>());
  if (!listener.ok()) {
    return listener.error();
  }
  auto inv = LoadInventory();
  if (!inv.ok()) {
    return inv.error();
  }
  Json& doc = listener->doc;
  std::string id = ArnId(doc.value("ListenerArn", ""));
  if (in.contains("Protocol") && in.at("Protocol") != "HTTP") {
    return ClientError("UnsupportedProtocol",
                       "Listener protocol '" + in.at("Protocol").get<std::string>() +
                           "' is not supported; berth's load balancer listens on HTTP");
  }
  if (in.contains("DefaultActions")) {
    auto actions = NormalizeActions(in.at("DefaultActions"), *inv, doc.value("LoadBalancerArn", ""));
    if (!actions.ok()) {
      return actions.error();
    }
    doc["DefaultActions"] = *actions;
  }
  bool rebind = false;
  if (in.contains("Port") && in.at("Port") != doc.at("Port")) {
    int port = in.at("Port").get<int>();
    for (const auto& l : inv->listeners) {
      if (l.doc.value("Port", 0) != port) {
        continue;
      }
      if (l.doc.value("_lb_id", "") == doc.value("_lb_id", "")) {
        return ClientError("DuplicateListener",
                           "A listener already exists on this port for this load balancer '" +
                               doc.value("LoadBalancerArn", "") + "'");
      }
      return ClientError("InvalidConfigurationRequest",
                         "Port " + std::to_string(port) + " is already used by load balancer '" +
                             inv->LoadBalancerArnOfListener(l.doc) +
                             "'; berth's load balancers share the address " + bind_address_);
    }
    doc["Port"] = port;
    rebind = true;
  }
  if (rebind && hooks_ != nullptr) {
    Status bound = hooks_->BindListener(id, static_cast<uint16_t>(doc.at("Port").get<int>()));
    if (!bound.ok()) {
      return ClientError("InvalidConfigurationRequest", bound.error().message);
    }
  }
  store::Txn txn;
  txn.IfRevision(listener->entry.key, listener->entry.mod_revision)
      .Put(listener->entry.key, doc.dump());
  BERTH_TRY(Commit(txn));
  return Json{{"Listeners", Json::array({Public(doc)})}};
}

Status ElbApi::DeleteListenerLocked(const Json& listener, const Inventory& inv, store::Txn& txn) {
  std::string id = ArnId(listener.value("ListenerArn", ""));
  for (const auto& r : inv.rules) {
    if (r.doc.value("_listener_id", "") == id) {
      txn.Delete(r.entry.key);
    }
  }
  txn.Delete(Key(kListenerPrefix, id));
  return Ok();
}

Result<Json> ElbApi::DeleteListener(const Json& in) {
  std::lock_guard lock(mu_);
  auto listener = FindListener(in.at("ListenerArn").get<std::string>());
  if (!listener.ok()) {
    return listener.error();
  }
  auto inv = LoadInventory();
  if (!inv.ok()) {
    return inv.error();
  }
  store::Txn txn;
  txn.IfRevision(listener->entry.key, listener->entry.mod_revision);
  BERTH_TRY(DeleteListenerLocked(listener->doc, *inv, txn));
  BERTH_TRY(Commit(txn));
  if (hooks_ != nullptr) {
    hooks_->ReleaseListener(ArnId(listener->doc.value("ListenerArn", "")));
  }
  return Json::object();
}

// ---------------------------------------------------------------------------
// Rules

Result<Json> ElbApi::CreateRule(const Json& in) {
  const std::string listener_arn = in.at("ListenerArn").get<std::string>();
  int priority = in.at("Priority").get<int>();
  Json tags = in.value("Tags", Json::array());
  BERTH_TRY(CheckTags(tags));
  auto conditions = NormalizeConditions(in.at("Conditions"));
  if (!conditions.ok()) {
    return conditions.error();
  }

  std::lock_guard lock(mu_);
  auto listener = FindListener(listener_arn);
  if (!listener.ok()) {
    return listener.error();
  }
  auto inv = LoadInventory();
  if (!inv.ok()) {
    return inv.error();
  }
  std::string listener_id = ArnId(listener_arn);
  std::string lb_id = listener->doc.value("_lb_id", "");
  size_t rules_on_lb = 0;
  for (const auto& r : inv->rules) {
    const Loaded* owner = inv->ListenerById(r.doc.value("_listener_id", ""));
    rules_on_lb += owner != nullptr && owner->doc.value("_lb_id", "") == lb_id;
    if (r.doc.value("_listener_id", "") == listener_id &&
        r.doc.value("Priority", "") == std::to_string(priority)) {
      return ClientError("PriorityInUse",
                         "Priority '" + std::to_string(priority) + "' is currently in use");
    }
  }
  if (rules_on_lb >= kMaxRulesPerLoadBalancer) {
    return ClientError("TooManyRules",
                       "You've reached the limit on the number of rules per load balancer");
  }
  auto actions = NormalizeActions(in.at("Actions"), *inv, listener->doc.value("LoadBalancerArn", ""));
  if (!actions.ok()) {
    return actions.error();
  }
  std::string id = RandomHex(8);
  std::string suffix = listener_arn.substr(listener_arn.find(":listener/") + 10);
  Json doc = {
      {"RuleArn", Arn("listener-rule/" + suffix + "/" + id)},
      {"Priority", std::to_string(priority)},
      {"Conditions", *conditions},
      {"Actions", *actions},
      {"IsDefault", false},
      {"_listener_id", listener_id},
      {"_tags", tags},
  };
  store::Txn txn;
  txn.IfRevision(listener->entry.key, listener->entry.mod_revision)
      .Put(Key(kRulePrefix, id), doc.dump());
  BERTH_TRY(Commit(txn));
  return Json{{"Rules", Json::array({Public(doc)})}};
}

Result<Json> ElbApi::DescribeRules(const Json& in) {
  bool by_listener = in.contains("ListenerArn");
  bool by_arn = in.contains("RuleArns");
  if (by_listener == by_arn) {
    return Validation(by_listener ? "Rule ARNs and a listener ARN cannot be specified at the same "
                                    "time"
                                  : "You must specify either listener rule ARNs or a listener ARN");
  }
  auto inv = LoadInventory();
  if (!inv.ok()) {
    return inv.error();
  }
  std::vector<Json> items;
  if (by_listener) {
    std::string arn = in.at("ListenerArn").get<std::string>();
    const Loaded* l = inv->ListenerById(ArnId(arn));
    if (l == nullptr || l->doc.value("ListenerArn", "") != arn) {
      return ListenerNotFound();
    }
    auto rules = RulesOf(ArnId(arn), *inv);
    if (!rules.ok()) {
      return rules.error();
    }
    items = rules->get<std::vector<Json>>();
  } else {
    for (const auto& arn_json : in.at("RuleArns")) {
      std::string arn = arn_json.get<std::string>();
      bool found = false;
      for (const auto& r : inv->rules) {
        if (r.doc.value("RuleArn", "") == arn) {
          items.push_back(Public(r.doc));
          found = true;
        }
      }
      for (const auto& l : inv->listeners) {
        Json def = DefaultRuleView(l.doc);
        if (!found && def.value("RuleArn", "") == arn) {
          items.push_back(def);
          found = true;
        }
      }
      if (!found) {
        return RuleNotFound();
      }
    }
  }
  std::vector<std::string> keys;
  for (const auto& r : items) {
    keys.push_back(PriorityKey(r) + r.value("RuleArn", ""));
  }
  return Page(items, keys, in, "Rules");
}

Result<Json> ElbApi::ModifyRule(const Json& in) {
  const std::string arn = in.at("RuleArn").get<std::string>();
  std::lock_guard lock(mu_);
  auto inv = LoadInventory();
  if (!inv.ok()) {
    return inv.error();
  }
  for (const auto& r : inv->rules) {
    if (r.doc.value("RuleArn", "") != arn) {
      continue;
    }
    Json doc = r.doc;
    if (in.contains("Conditions")) {
      auto conditions = NormalizeConditions(in.at("Conditions"));
      if (!conditions.ok()) {
        return conditions.error();
      }
      doc["Conditions"] = *conditions;
    }
    if (in.contains("Actions")) {
      const Loaded* listener = inv->ListenerById(doc.value("_listener_id", ""));
      std::string lb_arn = listener == nullptr ? "" : listener->doc.value("LoadBalancerArn", "");
      auto actions = NormalizeActions(in.at("Actions"), *inv, lb_arn);
      if (!actions.ok()) {
        return actions.error();
      }
      doc["Actions"] = *actions;
    }
    store::Txn txn;
    txn.IfRevision(r.entry.key, r.entry.mod_revision).Put(r.entry.key, doc.dump());
    BERTH_TRY(Commit(txn));
    return Json{{"Rules", Json::array({Public(doc)})}};
  }
  // The default rule: its actions are the listener's default actions.
  for (const auto& l : inv->listeners) {
    if (DefaultRuleView(l.doc).value("RuleArn", "") != arn) {
      continue;
    }
    if (in.contains("Conditions")) {
      return ClientError("OperationNotPermitted",
                         "The conditions of default rule '" + arn + "' cannot be modified");
    }
    Json doc = l.doc;
    if (in.contains("Actions")) {
      auto actions = NormalizeActions(in.at("Actions"), *inv, doc.value("LoadBalancerArn", ""));
      if (!actions.ok()) {
        return actions.error();
      }
      doc["DefaultActions"] = *actions;
    }
    store::Txn txn;
    txn.IfRevision(l.entry.key, l.entry.mod_revision).Put(l.entry.key, doc.dump());
    BERTH_TRY(Commit(txn));
    return Json{{"Rules", Json::array({DefaultRuleView(doc)})}};
  }
  return RuleNotFound();
}

Result<Json> ElbApi::DeleteRule(const Json& in) {
  const std::string arn = in.at("RuleArn").get<std::string>();
  std::lock_guard lock(mu_);
  auto inv = LoadInventory();
  if (!inv.ok()) {
    return inv.error();
  }
  for (const auto& r : inv->rules) {
    if (r.doc.value("RuleArn", "") == arn) {
      store::Txn txn;
      txn.IfRevision(r.entry.key, r.entry.mod_revision).Delete(r.entry.key);
      BERTH_TRY(Commit(txn));
      return Json::object();
    }
  }
  for (const auto& l : inv->listeners) {
    if (DefaultRuleView(l.doc).value("RuleArn", "") == arn) {
      return ClientError("OperationNotPermitted", "Default rule '" + arn + "' cannot be deleted");
    }
  }
  return RuleNotFound();
}

Result<Json> ElbApi::SetRulePriorities(const Json& in) {
  std::lock_guard lock(mu_);
  auto inv = LoadInventory();
  if (!inv.ok()) {
    return inv.error();
  }
  // The new priority of each rule named, checked before anything changes.
  std::map<std::string, int> wanted;  // rule key -> priority
  std::map<std::string, std::set<int>> taken;  // listener id -> priorities after the change
  for (const auto& pair : in.at("RulePriorities")) {
    std::string arn = pair.value("RuleArn", "");
    auto it = std::find_if(inv->rules.begin(), inv->rules.end(),
                           [&](const Loaded& r) { return r.doc.value("RuleArn", "") == arn; });
    if (it == inv->rules.end()) {
      for (const auto& l : inv->listeners) {
        if (DefaultRuleView(l.doc).value("RuleArn", "") == arn) {
          return ClientError("OperationNotPermitted",
                             "The priority of default rule '" + arn + "' cannot be changed");
        }
      }
      return RuleNotFound();
    }
    if (!pair.contains("Priority")) {
      return Validation("A priority must be specified for rule '" + arn + "'");
    }
    wanted[it->entry.key] = pair.at("Priority").get<int>();
  }
  for (const auto& r : inv->rules) {
    auto w = wanted.find(r.entry.key);
    int priority = w != wanted.end() ? w->second : std::atoi(r.doc.value("Priority", "0").c_str());
    if (!taken[r.doc.value("_listener_id", "")].insert(priority).second) {
      return ClientError("PriorityInUse",
                         "Priority '" + std::to_string(priority) + "' is currently in use");
    }
  }
  store::Txn txn;
  Json out = Json::array();
  for (const auto& r : inv->rules) {
    auto w = wanted.find(r.entry.key);
    if (w == wanted.end()) {
      continue;
    }
    Json doc = r.doc;
    doc["Priority"] = std::to_string(w->second);
    txn.IfRevision(r.entry.key, r.entry.mod_revision).Put(r.entry.key, doc.dump());
    out.push_back(Public(doc));
  }
  BERTH_TRY(Commit(txn));
  return Json{{"Rules", out}};
}

}  // namespace berth::elb
