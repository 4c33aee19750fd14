// SPDX-License-Identifier: Apache-2.0
// ElbApi: target groups, their attributes, targets and target health.
#include <arpa/inet.h>

#include <algorithm>
#include <cstdlib>

#include "common/ids.h"
#include "elb/elb_api.h"
#include "elb/elb_api_internal.h"
#include "elb/matching.h"

namespace berth::elb {

using namespace detail;

namespace {

// Attributes of an ALB target group and their defaults.
const Json& DefaultTargetGroupAttributes() {
  static const Json kDefaults = {
      {"deregistration_delay.timeout_seconds", "300"},
      {"load_balancing.algorithm.type", "round_robin"},
      {"load_balancing.cross_zone.enabled", "use_load_balancer_configuration"},
      {"slow_start.duration_seconds", "0"},
      {"stickiness.app_cookie.cookie_name", ""},
      {"stickiness.app_cookie.duration_seconds", "86400"},
      {"stickiness.enabled", "false"},
      {"stickiness.lb_cookie.duration_seconds", "86400"},
      {"stickiness.type", "lb_cookie"},
  };
  return kDefaults;
}

bool IntegerIn(const std::string& value, long low, long high) {
  char* end = nullptr;
  long v = std::strtol(value.c_str(), &end, 10);
  return !value.empty() && *end == '\0' && v >= low && v <= high;
}

Status CheckTargetGroupAttribute(const std::string& key, const std::string& value) {
  if (!DefaultTargetGroupAttributes().contains(key)) {
    return Validation("Target group attribute key '" + key + "' is not recognized");
  }
  auto bad = [&](const std::string& what) {
    return Validation("Target group attribute '" + key + "' " + what);
  };
  if (key == "deregistration_delay.timeout_seconds") {
    return IntegerIn(value, 0, 3600) ? Ok() : bad("must be an integer between 0 and 3600");
  }
  if (key == "load_balancing.algorithm.type") {
    if (value == "round_robin" || value == "least_outstanding_requests") {
      return Ok();
    }
    return bad("must be 'round_robin' or 'least_outstanding_requests'");
  }
  if (key == "load_balancing.cross_zone.enabled") {
    // One node serves every zone, so every setting behaves the same.
    if (value == "true" || value == "false" || value == "use_load_balancer_configuration") {
      return Ok();
    }
    return bad("must be 'true', 'false' or 'use_load_balancer_configuration'");
  }
  if (key == "stickiness.enabled") {
    if (value == "false") {
      return Ok();
    }
    // LIMITATION: the data plane has no sticky sessions.
    return value == "true" ? bad("cannot be enabled: berth's load balancer has no sticky sessions")
                           : bad("must be 'true' or 'false'");
  }
  if (key == "slow_start.duration_seconds") {
    if (value == "0") {
      return Ok();
    }
    // LIMITATION: targets get their full share as soon as they are healthy.
    return IntegerIn(value, 30, 900) ? bad("cannot be set: berth has no slow start mode")
                                     : bad("must be 0 or an integer between 30 and 900");
  }
  if (key == "stickiness.type") {
    return value == "lb_cookie" || value == "app_cookie" ? Ok()
                                                         : bad("must be 'lb_cookie' or "
                                                               "'app_cookie'");
  }
  if (key == "stickiness.lb_cookie.duration_seconds" ||
      key == "stickiness.app_cookie.duration_seconds") {
    return IntegerIn(value, 1, 604800) ? Ok() : bad("must be an integer between 1 and 604800");
  }
  return Ok();
}

// Checks the health check settings of a (merged) target group document.
Status CheckHealthSettings(const Json& tg) {
  std::string protocol = tg.value("HealthCheckProtocol", "HTTP");
  if (protocol != "HTTP") {
    // LIMITATION: health checks run over plain HTTP.
    return Validation("Health check protocol '" + protocol +
                      "' is not supported; berth checks targets over HTTP");
  }
  std::string port = tg.value("HealthCheckPort", "traffic-port");
  if (port != "traffic-port" && !IntegerIn(port, 1, 65535)) {
    return Validation("Health check port '" + port +
                      "' must be 'traffic-port' or an integer between 1 and 65535");
  }
  std::string path = tg.value("HealthCheckPath", "/");
  if (path.empty() || path[0] != '/') {
    return Validation("Health check path '" + path + "' must begin with '/'");
  }
  if (tg.value("HealthCheckIntervalSeconds", 30) <= tg.value("HealthCheckTimeoutSeconds", 5)) {
    return Validation("Health check interval must be greater than the timeout.");
  }
  const Json& matcher = tg.value("Matcher", Json::object());
  if (matcher.contains("GrpcCode")) {
    return Validation("A gRPC matcher requires the GRPC protocol version");
  }
  auto codes = ParseHttpCodes(matcher.value("HttpCode", "200"));
  if (!codes.ok()) {
    return codes.error();
  }
  return Ok();
}

bool ValidIp(const std::string& ip, bool v6) {
  unsigned char buf[16];
  return inet_pton(v6 ? AF_INET6 : AF_INET, ip.c_str(), buf) == 1;
}

Json Health(const std::string& state, const std::string& reason = "",
            const std::string& description = "") {
  Json h = {{"State", state}};
  if (!reason.empty()) {
    h["Reason"] = reason;
  }
  if (!description.empty()) {
    h["Description"] = description;
  }
  return h;
}

Json NotRegistered() {
  return Health("unused", "Target.NotRegistered", "Target is not registered to the target group");
}

constexpr const char* kHealthSettings[] = {
    "HealthCheckProtocol",        "HealthCheckPort",           "HealthCheckEnabled",
    "HealthCheckPath",            "HealthCheckIntervalSeconds", "HealthCheckTimeoutSeconds",
    "HealthyThresholdCount",      "UnhealthyThresholdCount",   "Matcher"};

}  // namespace

Json ElbApi::TargetGroupView(const Json& doc, const Inventory& inv) const {
  Json out = Public(doc);
  Json lbs = Json::array();
  for (const auto& arn : inv.LoadBalancersUsing(doc.value("TargetGroupArn", ""))) {
    lbs.push_back(arn);
  }
  out["LoadBalancerArns"] = lbs;
  return out;
}

Result<Json> ElbApi::CreateTargetGroup(const Json& in) {
  const std::string name = in.at("Name").get<std::string>();
  BERTH_TRY(CheckName("Target group", name));
  const std::string target_type = in.value("TargetType", "instance");
  if (target_type != "ip" && target_type != "instance") {
    // LIMITATION: no Lambda functions or load balancers as targets.
    return Validation("Target type '" + target_type +
                      "' is not supported; berth's target groups hold 'ip' or 'instance' "
                      "targets");
  }
  if (!in.contains("Protocol")) {
    return Validation("A protocol must be specified");
  }
  if (!in.contains("Port")) {
    return Validation("A port must be specified");
  }
  const std::string protocol = in.at("Protocol").get<std::string>();
  if (protocol != "HTTP") {
    // LIMITATION: targets are reached over plain HTTP/1.1.
    return Validation("Target group protocol '" + protocol +
                      "' is not supported; berth's load balancer forwards HTTP");
  }
  const std::string version = in.value("ProtocolVersion", "HTTP1");
  if (version != "HTTP1") {
    return Validation("Protocol version '" + version +
                      "' is not supported; berth's load balancer speaks HTTP/1.1 to targets");
  }
  Json tags = in.value("Tags", Json::array());
  BERTH_TRY(CheckTags(tags));

  Json doc = {
      {"TargetGroupName", name},
      {"Protocol", protocol},
      {"Port", in.at("Port")},
      {"VpcId", in.value("VpcId", vpc_id_)},
      {"HealthCheckProtocol", in.value("HealthCheckProtocol", "HTTP")},
      {"HealthCheckPort", in.value("HealthCheckPort", "traffic-port")},
      {"HealthCheckEnabled", in.value("HealthCheckEnabled", true)},
      {"HealthCheckIntervalSeconds", in.value("HealthCheckIntervalSeconds", 30)},
      {"HealthCheckTimeoutSeconds", in.value("HealthCheckTimeoutSeconds", 5)},
      {"HealthyThresholdCount", in.value("HealthyThresholdCount", 5)},
      {"UnhealthyThresholdCount", in.value("UnhealthyThresholdCount", 2)},
      {"HealthCheckPath", in.value("HealthCheckPath", "/")},
      {"Matcher", {{"HttpCode", in.value("Matcher", Json::object()).value("HttpCode", "200")}}},
      {"TargetType", target_type},
      {"ProtocolVersion", version},
      {"IpAddressType", in.value("IpAddressType", "ipv4")},
  };
  BERTH_TRY(CheckHealthSettings(doc));

  std::lock_guard lock(mu_);
  auto existing_id = Load(Key(kTargetGroupNamePrefix, name));
  if (!existing_id.ok()) {
    return existing_id.error();
  }
  if (existing_id->has_value()) {
    auto existing = Load(Key(kTargetGroupPrefix, (*existing_id)->doc.get<std::string>()));
    if (!existing.ok()) {
      return existing.error();
    }
    if (existing->has_value()) {
      bool same = true;
      for (auto it = doc.begin(); it != doc.end(); ++it) {
        same = same && (*existing)->doc.value(it.key(), Json()) == *it;
      }
      if (same) {
        auto inv = LoadInventory();
        if (!inv.ok()) {
          return inv.error();
        }
        return Json{{"TargetGroups", Json::array({TargetGroupView((*existing)->doc, *inv)})}};
      }
    }
    return ClientError("DuplicateTargetGroupName",
                       "A target group with the same name '" + name +
                           "' exists, but with different settings");
  }

  std::string id = RandomHex(8);
  doc["TargetGroupArn"] = Arn("targetgroup/" + name + "/" + id);
  doc["_attributes"] = DefaultTargetGroupAttributes();
  doc["_tags"] = tags;
  store::Txn txn;
  txn.IfAbsent(Key(kTargetGroupNamePrefix, name))
      .Put(Key(kTargetGroupNamePrefix, name), Json(id).dump())
      .Put(Key(kTargetGroupPrefix, id), doc.dump());
  BERTH_TRY(Commit(txn));
  Json shown = Public(doc);
  shown["LoadBalancerArns"] = Json::array();
  return Json{{"TargetGroups", Json::array({shown})}};
}

Result<Json> ElbApi::DescribeTargetGroups(const Json& in) {
  int selectors = in.contains("LoadBalancerArn") + in.contains("TargetGroupArns") +
                  in.contains("Names");
  if (selectors > 1) {
    return Validation("Only one of load balancer ARN, target group ARNs or names can be "
                      "specified");
  }
  auto inv = LoadInventory();
  if (!inv.ok()) {
    return inv.error();
  }
  std::vector<const Json*> docs;
  for (const auto& t : inv->tgs) {
    docs.push_back(&t.doc);
  }
  std::sort(docs.begin(), docs.end(), [](const Json* a, const Json* b) {
    return a->value("TargetGroupName", "") < b->value("TargetGroupName", "");
  });

  std::vector<const Json*> chosen;
  if (in.contains("LoadBalancerArn")) {
    std::string lb_arn = in.at("LoadBalancerArn").get<std::string>();
    if (inv->LoadBalancerById(ArnId(lb_arn)) == nullptr ||
        inv->LoadBalancerById(ArnId(lb_arn))->doc.value("LoadBalancerArn", "") != lb_arn) {
      return LoadBalancerNotFound();
    }
    for (const Json* d : docs) {
      if (inv->LoadBalancersUsing(d->value("TargetGroupArn", "")).count(lb_arn) != 0) {
        chosen.push_back(d);
      }
    }
  } else if (in.contains("TargetGroupArns") || in.contains("Names")) {
    bool by_arn = in.contains("TargetGroupArns");
    const char* field = by_arn ? "TargetGroupArn" : "TargetGroupName";
    std::vector<std::string> missing;
    for (const auto& wanted : in.at(by_arn ? "TargetGroupArns" : "Names")) {
      auto it = std::find_if(docs.begin(), docs.end(), [&](const Json* d) {
        return d->value(field, "") == wanted.get<std::string>();
      });
      if (it == docs.end()) {
        missing.push_back(wanted.get<std::string>());
      } else if (std::find(chosen.begin(), chosen.end(), *it) == chosen.end()) {
        chosen.push_back(*it);
      }
    }
    if (!missing.empty()) {
      if (by_arn) {
        return TargetGroupNotFound();
      }
      std::string list;
      for (const auto& m : missing) {
        list += (list.empty() ? "" : ", ") + m;
      }
      return ClientError("TargetGroupNotFound", "Target groups '[" + list + "]' not found");
    }
  } else {
    chosen = docs;
  }
  std::vector<Json> items;
  std::vector<std::string> keys;
  for (const Json* d : chosen) {
    items.push_back(TargetGroupView(*d, *inv));
    keys.push_back(d->value("TargetGroupName", ""));
  }
  return Page(items, keys, in, "TargetGroups");
}

Result<Json> ElbApi::ModifyTargetGroup(const Json& in) {
  std::lock_guard lock(mu_);
  auto tg = FindTargetGroup(in.at("TargetGroupArn").get<std::string>());
  if (!tg.ok()) {
    return tg.error();
  }
  for (const char* field : kHealthSettings) {
    if (in.contains(field)) {
      if (std::string(field) == "Matcher") {
        tg->doc["Matcher"] = {{"HttpCode", in.at(field).value("HttpCode", "200")}};
        if (in.at(field).contains("GrpcCode")) {
          tg->doc["Matcher"]["GrpcCode"] = in.at(field).at("GrpcCode");
        }
      } else {
        tg->doc[field] = in.at(field);
      }
    }
  }
  BERTH_TRY(CheckHealthSettings(tg->doc));
  store::Txn txn;
  txn.IfRevision(tg->entry.key, tg->entry.mod_revision).Put(tg->entry.key, tg->doc.dump());
  BERTH_TRY(Commit(txn));
  auto inv = LoadInventory();
  if (!inv.ok()) {
    return inv.error();
  }
  return Json{{"TargetGroups", Json::array({TargetGroupView(tg->doc, *inv)})}};
}

Result<Json> ElbApi::DeleteTargetGroup(const Json& in) {
  const std::string arn = in.at("TargetGroupArn").get<std::string>();
  std::lock_guard lock(mu_);
  auto tg = FindTargetGroup(arn);
  if (!tg.ok()) {
    // Deleting a target group that does not exist succeeds, as in AWS.
    return tg.error().code == "TargetGroupNotFound" ? Result<Json>(Json::object())
                                                    : Result<Json>(tg.error());
  }
  auto inv = LoadInventory();
  if (!inv.ok()) {
    return inv.error();
  }
  if (!inv->LoadBalancersUsing(arn).empty()) {
    return ClientError("ResourceInUse",
                       "Target group '" + arn + "' is currently in use by a listener or a rule");
  }
  std::string tg_id = ArnId(arn);
  auto targets = store_.List(Key(kTargetPrefix, tg_id + "/"));
  if (!targets.ok()) {
    return targets.error();
  }
  store::Txn txn;
  txn.IfRevision(tg->entry.key, tg->entry.mod_revision)
      .Delete(tg->entry.key)
      .Delete(Key(kTargetGroupNamePrefix, tg->doc.value("TargetGroupName", "")));
  for (const auto& t : *targets) {
    txn.Delete(t.key);
  }
  BERTH_TRY(Commit(txn));
  return Json::object();
}

Result<Json> ElbApi::DescribeTargetGroupAttributes(const Json& in) {
  auto tg = FindTargetGroup(in.at("TargetGroupArn").get<std::string>());
  if (!tg.ok()) {
    return tg.error();
  }
  return DescribeAttributes(tg->doc, DefaultTargetGroupAttributes());
}

Result<Json> ElbApi::ModifyTargetGroupAttributes(const Json& in) {
  std::lock_guard lock(mu_);
  auto tg = FindTargetGroup(in.at("TargetGroupArn").get<std::string>());
  if (!tg.ok()) {
    return tg.error();
  }
  return ModifyAttributes(*tg, DefaultTargetGroupAttributes(), CheckTargetGroupAttribute,
                          in.at("Attributes"));
}

// ---------------------------------------------------------------------------
// Targets

Status ElbApi::RegisterLocked(const Json& tg, const std::string& ip, int port, const Json& az) {
  const std::string tg_arn = tg.value("TargetGroupArn", "");
  if (tg.value("TargetType", "") == "instance") {
    // LIMITATION: berth runs no EC2 instances; tasks are reached by IP.
    return ClientError("InvalidTarget",
                       "The following targets are not in a running state and cannot be "
                       "registered: '" + ip + "'");
  }
  bool v6 = tg.value("IpAddressType", "ipv4") == "ipv6";
  if (!ValidIp(ip, v6)) {
    return Validation("The IP address '" + ip + "' is not a valid " +
                      std::string(v6 ? "IPv6" : "IPv4") + " address");
  }
  std::string key = TargetKey(ArnId(tg_arn), ip, port);
  auto existing = Load(key);
  if (!existing.ok()) {
    return existing.error();
  }
  if (existing->has_value() && !(*existing)->doc.contains("DrainUntil")) {
    return Ok();  // already registered
  }
  Json record = {{"Id", ip}, {"Port", port}, {"RegisteredAt", NowMs()}};
  if (!az.is_null()) {
    record["AvailabilityZone"] = az;
  }
  store::Txn txn;
  txn.IfRevision(key, existing->has_value() ? (*existing)->entry.mod_revision : 0)
      .Put(key, record.dump());
  return Commit(txn);
}

Status ElbApi::DeregisterLocked(const Json& tg, bool in_use, const std::string& ip, int port) {
  std::string key = TargetKey(ArnId(tg.value("TargetGroupArn", "")), ip, port);
  auto existing = Load(key);
  if (!existing.ok()) {
    return existing.error();
  }
  // Deregistering a target that is not registered succeeds and changes nothing.
  if (!existing->has_value() || (*existing)->doc.contains("DrainUntil")) {
    return Ok();
  }
  Json attrs = tg.value("_attributes", Json::object());
  int64_t delay_s = std::atoll(attrs.value("deregistration_delay.timeout_seconds", "300").c_str());
  store::Txn txn;
  txn.IfRevision(key, (*existing)->entry.mod_revision);
  if (!in_use || delay_s == 0) {
    // No load balancer sends it traffic: nothing to drain.
    txn.Delete(key);
  } else {
    Json record = (*existing)->doc;
    record["DrainUntil"] = NowMs() + delay_s * 1000;
    txn.Put(key, record.dump());
  }
  return Commit(txn);
}

Result<Json> ElbApi::RegisterTargets(const Json& in) {
  std::lock_guard lock(mu_);
  auto tg = FindTargetGroup(in.at("TargetGroupArn").get<std::string>());
  if (!tg.ok()) {
    return tg.error();
  }
  auto registered = store_.List(Key(kTargetPrefix, ArnId(tg->doc.value("TargetGroupArn", "")) + "/"));
  if (!registered.ok()) {
    return registered.error();
  }
  if (registered->size() + in.at("Targets").size() > 1000) {
    return ClientError("TooManyTargets",
                       "You've reached the limit on the number of targets per target group");
  }
  for (const auto& t : in.at("Targets")) {
    int port = t.value("Port", tg->doc.value("Port", 80));
    BERTH_TRY(RegisterLocked(tg->doc, t.at("Id").get<std::string>(), port,
                             t.value("AvailabilityZone", Json())));
  }
  return Json::object();
}

Result<Json> ElbApi::DeregisterTargets(const Json& in) {
  std::lock_guard lock(mu_);
  const std::string arn = in.at("TargetGroupArn").get<std::string>();
  auto tg = FindTargetGroup(arn);
  if (!tg.ok()) {
    return tg.error();
  }
  auto inv = LoadInventory();
  if (!inv.ok()) {
    return inv.error();
  }
  bool in_use = !inv->LoadBalancersUsing(arn).empty();
  for (const auto& t : in.at("Targets")) {
    int port = t.value("Port", tg->doc.value("Port", 80));
    BERTH_TRY(DeregisterLocked(tg->doc, in_use, t.at("Id").get<std::string>(), port));
  }
  return Json::object();
}

Result<Json> ElbApi::TargetHealthFor(const Json& tg, bool in_use, const std::string& ip,
                                     int port) {
  auto record = Load(TargetKey(ArnId(tg.value("TargetGroupArn", "")), ip, port));
  if (!record.ok()) {
    return record.error();
  }
  if (!record->has_value()) {
    return NotRegistered();
  }
  const Json& doc = (*record)->doc;
  if (doc.contains("DrainUntil")) {
    if (NowMs() < doc.at("DrainUntil").get<int64_t>()) {
      return Health("draining", "Target.DeregistrationInProgress",
                    "Target deregistration is in progress");
    }
    return NotRegistered();
  }
  if (!in_use) {
    return Health("unused", "Target.NotInUse",
                  "Target group is not configured to receive traffic from the load balancer");
  }
  if (!tg.value("HealthCheckEnabled", true)) {
    return Health("unavailable", "Target.HealthCheckDisabled", "Health checks disabled");
  }
  if (hooks_ != nullptr) {
    auto report = hooks_->Health(ArnId(tg.value("TargetGroupArn", "")), ip,
                                 static_cast<uint16_t>(port));
    if (report) {
      return Health(report->state, report->reason, report->description);
    }
  }
  return Health("initial", "Elb.RegistrationInProgress", "Target registration is in progress");
}

Result<Json> ElbApi::DescribeTargetHealth(const Json& in) {
  const std::string arn = in.at("TargetGroupArn").get<std::string>();
  auto tg = FindTargetGroup(arn);
  if (!tg.ok()) {
    return tg.error();
  }
  auto inv = LoadInventory();
  if (!inv.ok()) {
    return inv.error();
  }
  bool in_use = !inv->LoadBalancersUsing(arn).empty();
  int tg_port = tg->doc.value("Port", 80);
  std::string hc_port = tg->doc.value("HealthCheckPort", "traffic-port");

  // The targets asked about, or every registered one.
  std::vector<Json> targets;
  if (in.contains("Targets")) {
    for (const auto& t : in.at("Targets")) {
      Json target = {{"Id", t.at("Id")}, {"Port", t.value("Port", tg_port)}};
      if (t.contains("AvailabilityZone")) {
        target["AvailabilityZone"] = t.at("AvailabilityZone");
      }
      targets.push_back(target);
    }
  } else {
    auto records = LoadAll(Key(kTargetPrefix, ArnId(arn) + "/"));
    if (!records.ok()) {
      return records.error();
    }
    for (const auto& r : *records) {
      if (r.doc.contains("DrainUntil") && NowMs() >= r.doc.at("DrainUntil").get<int64_t>()) {
        continue;
      }
      Json target = {{"Id", r.doc.at("Id")}, {"Port", r.doc.at("Port")}};
      target["AvailabilityZone"] = r.doc.value("AvailabilityZone", account_.region + "a");
      targets.push_back(target);
    }
  }

  Json out = Json::array();
  for (const auto& target : targets) {
    std::string ip = target.at("Id").get<std::string>();
    int port = target.at("Port").get<int>();
    auto health = TargetHealthFor(tg->doc, in_use, ip, port);
    if (!health.ok()) {
      return health.error();
    }
    out.push_back({{"Target", target},
                   {"HealthCheckPort", hc_port == "traffic-port" ? std::to_string(port) : hc_port},
                   {"TargetHealth", *health}});
  }
  return Json{{"TargetHealthDescriptions", out}};
}

Status ElbApi::ExpireDrainedTargets() {
  std::lock_guard lock(mu_);
  auto records = LoadAll(kTargetPrefix);
  if (!records.ok()) {
    return records.error();
  }
  store::Txn txn;
  for (const auto& r : *records) {
    if (r.doc.contains("DrainUntil") && NowMs() >= r.doc.at("DrainUntil").get<int64_t>()) {
      txn.IfRevision(r.entry.key, r.entry.mod_revision).Delete(r.entry.key);
    }
  }
  if (txn.ops.empty()) {
    return Ok();
  }
  return Commit(txn);
}

// ---------------------------------------------------------------------------
// TargetRegistry

Status ElbApi::Register(const std::string& target_group_arn, const std::string& ip, int port) {
  std::lock_guard lock(mu_);
  auto tg = FindTargetGroup(target_group_arn);
  if (!tg.ok()) {
    return tg.error();
  }
  return RegisterLocked(tg->doc, ip, port, Json());
}

Status ElbApi::Deregister(const std::string& target_group_arn, const std::string& ip, int port) {
  std::lock_guard lock(mu_);
  auto tg = FindTargetGroup(target_group_arn);
  if (!tg.ok()) {
    return tg.error();
  }
  auto inv = LoadInventory();
  if (!inv.ok()) {
    return inv.error();
  }
  return DeregisterLocked(tg->doc, !inv->LoadBalancersUsing(target_group_arn).empty(), ip, port);
}

Result<Json> ElbApi::TargetHealthDetail(const std::string& target_group_arn,
                                        const std::string& ip, int port) {
  auto tg = FindTargetGroup(target_group_arn);
  if (!tg.ok()) {
    return tg.error();
  }
  auto inv = LoadInventory();
  if (!inv.ok()) {
    return inv.error();
  }
  return TargetHealthFor(tg->doc, !inv->LoadBalancersUsing(target_group_arn).empty(), ip, port);
}

Result<std::string> ElbApi::TargetHealth(const std::string& target_group_arn,
                                         const std::string& ip, int port) {
  auto detail = TargetHealthDetail(target_group_arn, ip, port);
  if (!detail.ok()) {
    return detail.error();
  }
  return detail->at("State").get<std::string>();
}

Result<Json> ElbApi::DescribeTargetGroup(const std::string& target_group_arn) {
  auto tg = FindTargetGroup(target_group_arn);
  if (!tg.ok()) {
    return tg.error();
  }
  auto inv = LoadInventory();
  if (!inv.ok()) {
    return inv.error();
  }
  return TargetGroupView(tg->doc, *inv);
}

}  // namespace berth::elb
