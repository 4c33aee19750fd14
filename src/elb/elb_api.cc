// SPDX-License-Identifier: Apache-2.0
// ElbApi: the operation table, store access, load balancers and tags.
#include "elb/elb_api.h"

#include <algorithm>
#include <cstdio>
#include <set>

#include "api/sigv4.h"
#include "common/ids.h"
#include "common/paging.h"
#include "common/time_util.h"
#include "elb/elb_api_internal.h"

namespace berth::elb {

std::vector<std::string> ForwardTargetGroupArns(const Json& actions) {
  std::vector<std::string> arns;
  auto add = [&](const std::string& arn) {
    if (!arn.empty() && std::find(arns.begin(), arns.end(), arn) == arns.end()) {
      arns.push_back(arn);
    }
  };
  if (!actions.is_array()) {
    return arns;
  }
  for (const auto& action : actions) {
    if (action.value("Type", "") != "forward") {
      continue;
    }
    add(action.value("TargetGroupArn", ""));
    auto fc = action.find("ForwardConfig");
    if (fc != action.end() && fc->contains("TargetGroups")) {
      for (const auto& t : fc->at("TargetGroups")) {
        add(t.value("TargetGroupArn", ""));
      }
    }
  }
  return arns;
}

namespace detail {

Error LoadBalancerNotFound() {
  return ClientError("LoadBalancerNotFound", "One or more load balancers not found");
}
Error TargetGroupNotFound() {
  return ClientError("TargetGroupNotFound", "One or more target groups not found");
}
Error ListenerNotFound() {
  return ClientError("ListenerNotFound", "One or more listeners not found");
}
Error RuleNotFound() { return ClientError("RuleNotFound", "One or more rules not found"); }
Error Validation(const std::string& message) { return ClientError("ValidationError", message); }

Json Public(const Json& doc) {
  Json out = Json::object();
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    if (!it.key().empty() && it.key()[0] != '_') {
      out[it.key()] = *it;
    }
  }
  return out;
}

Status CheckName(const std::string& what, const std::string& name) {
  if (name.empty() || name.size() > 32) {
    return Validation(what + " name '" + name + "' cannot be longer than '32' characters");
  }
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-';
    if (!ok) {
      return Validation(what + " name '" + name +
                        "' can only contain characters that are alphanumeric characters or "
                        "hyphens(-)");
    }
  }
  if (name.front() == '-' || name.back() == '-') {
    return Validation(what + " name '" + name + "' cannot begin or end with '-'");
  }
  return Ok();
}

Status CheckTags(const Json& tags) {
  std::set<std::string> seen;
  for (const auto& tag : tags) {
    std::string key = tag.value("Key", "");
    if (!seen.insert(key).second) {
      return ClientError("DuplicateTagKeys", "Tag key '" + key + "' is duplicated");
    }
    if (key.rfind("aws:", 0) == 0) {
      return Validation("Tag keys starting with 'aws:' are reserved for AWS use");
    }
  }
  return Ok();
}

Json MergeTags(const Json& current, const Json& add, const Json& remove_keys) {
  std::vector<std::pair<std::string, std::string>> tags;
  auto put = [&](const std::string& k, const std::string& v) {
    for (auto& [tk, tv] : tags) {
      if (tk == k) {
        tv = v;
        return;
      }
    }
    tags.emplace_back(k, v);
  };
  for (const auto& t : current) {
    put(t.value("Key", ""), t.value("Value", ""));
  }
  for (const auto& t : add) {
    put(t.value("Key", ""), t.value("Value", ""));
  }
  Json out = Json::array();
  for (const auto& [k, v] : tags) {
    bool removed = false;
    for (const auto& r : remove_keys) {
      removed = removed || r.get<std::string>() == k;
    }
    if (!removed) {
      out.push_back({{"Key", k}, {"Value", v}});
    }
  }
  return out;
}

Result<Json> Page(const std::vector<Json>& items, const std::vector<std::string>& keys,
                  const Json& in, const std::string& list_name) {
  size_t start = 0;
  if (in.contains("Marker")) {
    auto after = DecodePageToken(in.at("Marker").get<std::string>());
    if (!after) {
      return Validation("Invalid marker");
    }
    while (start < keys.size() && keys[start] <= *after) {
      ++start;
    }
  }
  size_t size = in.value("PageSize", 400);
  Json out = {{list_name, Json::array()}};
  size_t end = std::min(items.size(), start + size);
  for (size_t i = start; i < end; ++i) {
    out[list_name].push_back(items[i]);
  }
  if (end < items.size() && end > start) {
    out["NextMarker"] = EncodePageToken(keys[end - 1]);
  }
  return out;
}

Json AttributeList(const Json& attributes) {
  Json out = Json::array();
  for (auto it = attributes.begin(); it != attributes.end(); ++it) {
    out.push_back({{"Key", it.key()}, {"Value", it->get<std::string>()}});
  }
  return out;
}

}  // namespace detail

using namespace detail;

namespace {

// Attributes of an application load balancer and their defaults. berth acts
// on idle_timeout and deletion_protection; the others may only be set to the
// value berth behaves as.
const Json& DefaultLoadBalancerAttributes() {
  static const Json kDefaults = {
      {"access_logs.s3.enabled", "false"},
      {"access_logs.s3.bucket", ""},
      {"access_logs.s3.prefix", ""},
      {"deletion_protection.enabled", "false"},
      {"idle_timeout.timeout_seconds", "60"},
      {"routing.http.desync_mitigation_mode", "defensive"},
      {"routing.http.drop_invalid_header_fields.enabled", "false"},
      {"routing.http.preserve_host_header.enabled", "true"},
      {"routing.http.x_amzn_tls_version_and_cipher_suite.enabled", "false"},
      {"routing.http.xff_client_port.enabled", "false"},
      {"routing.http.xff_header_processing.mode", "append"},
      {"routing.http2.enabled", "true"},
      {"waf.fail_open.enabled", "false"},
  };
  return kDefaults;
}

Status CheckLoadBalancerAttribute(const std::string& key, const std::string& value) {
  const Json& defaults = DefaultLoadBalancerAttributes();
  if (!defaults.contains(key)) {
    return Validation("Load balancer attribute key '" + key + "' is not recognized");
  }
  if (key == "idle_timeout.timeout_seconds") {
    char* end = nullptr;
    long v = std::strtol(value.c_str(), &end, 10);
    if (value.empty() || *end != '\0' || v < 1 || v > 4000) {
      return Validation("Load balancer attribute 'idle_timeout.timeout_seconds' must be an "
                        "integer between 1 and 4000");
    }
    return Ok();
  }
  if (key == "deletion_protection.enabled") {
    if (value != "true" && value != "false") {
      return Validation("Load balancer attribute 'deletion_protection.enabled' must be 'true' "
                        "or 'false'");
    }
    return Ok();
  }
  if (value != defaults.at(key).get<std::string>()) {
    // LIMITATION: the data plane has no access logs, WAF, HTTP/2 or header
    // rewriting options; it only accepts the value it behaves as.
    return Validation("Load balancer attribute '" + key + "' can only be '" +
                      defaults.at(key).get<std::string>() + "' in berth");
  }
  return Ok();
}

std::string ZoneName(const std::string& region, size_t index) {
  return region + static_cast<char>('a' + index % 6);
}

}  // namespace

ElbApi::ElbApi(store::Store& store, api::AccountInfo account, DataPlaneHooks* hooks)
    : store_(store),
      account_(std::move(account)),
      hooks_(hooks),
      now_ms_([] { return NowEpochMillis(); }) {
  vpc_id_ = "vpc-" + api::Sha256Hex(account_.account_id + "/" + account_.region).substr(0, 17);
}

std::shared_ptr<QueryService> ElbApi::MakeService() {
  auto svc = std::make_shared<QueryService>("elbv2");
  auto add = [&](const std::string& name, Result<Json> (ElbApi::*op)(const Json&)) {
    svc->Add(name, [this, op](const Json& in, const api::CallContext&) { return (this->*op)(in); });
  };
  add("CreateLoadBalancer", &ElbApi::CreateLoadBalancer);
  add("DescribeLoadBalancers", &ElbApi::DescribeLoadBalancers);
  add("DeleteLoadBalancer", &ElbApi::DeleteLoadBalancer);
  add("DescribeLoadBalancerAttributes", &ElbApi::DescribeLoadBalancerAttributes);
  add("ModifyLoadBalancerAttributes", &ElbApi::ModifyLoadBalancerAttributes);
  add("CreateTargetGroup", &ElbApi::CreateTargetGroup);
  add("DescribeTargetGroups", &ElbApi::DescribeTargetGroups);
  add("ModifyTargetGroup", &ElbApi::ModifyTargetGroup);
  add("DeleteTargetGroup", &ElbApi::DeleteTargetGroup);
  add("DescribeTargetGroupAttributes", &ElbApi::DescribeTargetGroupAttributes);
  add("ModifyTargetGroupAttributes", &ElbApi::ModifyTargetGroupAttributes);
  add("RegisterTargets", &ElbApi::RegisterTargets);
  add("DeregisterTargets", &ElbApi::DeregisterTargets);
  add("DescribeTargetHealth", &ElbApi::DescribeTargetHealth);
  add("CreateListener", &ElbApi::CreateListener);
  add("DescribeListeners", &ElbApi::DescribeListeners);
  add("ModifyListener", &ElbApi::ModifyListener);
  add("DeleteListener", &ElbApi::DeleteListener);
  add("CreateRule", &ElbApi::CreateRule);
  add("DescribeRules", &ElbApi::DescribeRules);
  add("ModifyRule", &ElbApi::ModifyRule);
  add("DeleteRule", &ElbApi::DeleteRule);
  add("SetRulePriorities", &ElbApi::SetRulePriorities);
  add("AddTags", &ElbApi::AddTags);
  add("RemoveTags", &ElbApi::RemoveTags);
  add("DescribeTags", &ElbApi::DescribeTags);
  return svc;
}

std::string ElbApi::Arn(const std::string& resource) const {
  return "arn:aws:elasticloadbalancing:" + account_.region + ":" + account_.account_id + ":" +
         resource;
}

// ---------------------------------------------------------------------------
// Store access

Result<std::optional<ElbApi::Loaded>> ElbApi::Load(const std::string& key) {
  auto entry = store_.Get(key);
  if (!entry.ok()) {
    return entry.error();
  }
  if (!entry->has_value()) {
    return std::optional<Loaded>();
  }
  Json doc = Json::parse((*entry)->value, nullptr, false);
  if (doc.is_discarded()) {
    return ServerError("corrupt document at " + key);
  }
  return std::optional<Loaded>(Loaded{std::move(**entry), std::move(doc)});
}

Result<std::vector<ElbApi::Loaded>> ElbApi::LoadAll(std::string_view prefix) {
  auto entries = store_.List(prefix);
  if (!entries.ok()) {
    return entries.error();
  }
  std::vector<Loaded> out;
  out.reserve(entries->size());
  for (auto& e : *entries) {
    Json doc = Json::parse(e.value, nullptr, false);
    if (doc.is_discarded()) {
      return ServerError("corrupt document at " + e.key);
    }
    out.push_back(Loaded{std::move(e), std::move(doc)});
  }
  return out;
}

Result<ElbApi::Inventory> ElbApi::LoadInventory() {
  Inventory inv;
  auto lbs = LoadAll(kLoadBalancerPrefix);
  auto tgs = LoadAll(kTargetGroupPrefix);
  auto listeners = LoadAll(kListenerPrefix);
  auto rules = LoadAll(kRulePrefix);
  for (auto* r : {&lbs, &tgs, &listeners, &rules}) {
    if (!r->ok()) {
      return r->error();
    }
  }
  inv.lbs = std::move(*lbs);
  inv.tgs = std::move(*tgs);
  inv.listeners = std::move(*listeners);
  inv.rules = std::move(*rules);
  return inv;
}

Status ElbApi::Commit(const store::Txn& txn) {
  auto rev = store_.Commit(txn);
  if (!rev.ok()) {
    if (rev.error().code == store::kConflict) {
      return ServerError("concurrent change to the load balancer configuration");
    }
    return rev.error();
  }
  return Ok();
}

const ElbApi::Loaded* ElbApi::Inventory::LoadBalancerById(const std::string& id) const {
  for (const auto& l : lbs) {
    if (ArnId(l.doc.value("LoadBalancerArn", "")) == id) {
      return &l;
    }
  }
  return nullptr;
}

const ElbApi::Loaded* ElbApi::Inventory::ListenerById(const std::string& id) const {
  for (const auto& l : listeners) {
    if (ArnId(l.doc.value("ListenerArn", "")) == id) {
      return &l;
    }
  }
  return nullptr;
}

std::string ElbApi::Inventory::LoadBalancerArnOfListener(const Json& listener) const {
  const Loaded* lb = LoadBalancerById(listener.value("_lb_id", ""));
  return lb == nullptr ? "" : lb->doc.value("LoadBalancerArn", "");
}

std::set<std::string> ElbApi::Inventory::LoadBalancersUsing(const std::string& tg_arn) const {
  std::set<std::string> out;
  auto uses = [&](const Json& actions) {
    auto arns = ForwardTargetGroupArns(actions);
    return std::find(arns.begin(), arns.end(), tg_arn) != arns.end();
  };
  for (const auto& l : listeners) {
    if (uses(l.doc.value("DefaultActions", Json::array()))) {
      std::string lb = LoadBalancerArnOfListener(l.doc);
      if (!lb.empty()) {
        out.insert(lb);
      }
    }
  }
  for (const auto& r : rules) {
    if (!uses(r.doc.value("Actions", Json::array()))) {
      continue;
    }
    const Loaded* listener = ListenerById(r.doc.value("_listener_id", ""));
    if (listener != nullptr) {
      std::string lb = LoadBalancerArnOfListener(listener->doc);
      if (!lb.empty()) {
        out.insert(lb);
      }
    }
  }
  return out;
}

Result<ElbApi::Loaded> ElbApi::FindLoadBalancer(const std::string& arn) {
  auto loaded = Load(Key(kLoadBalancerPrefix, ArnId(arn)));
  if (!loaded.ok()) {
    return loaded.error();
  }
  if (!loaded->has_value() || (*loaded)->doc.value("LoadBalancerArn", "") != arn) {
    return LoadBalancerNotFound();
  }
  return std::move(**loaded);
}

Result<ElbApi::Loaded> ElbApi::FindTargetGroup(const std::string& arn) {
  auto loaded = Load(Key(kTargetGroupPrefix, ArnId(arn)));
  if (!loaded.ok()) {
    return loaded.error();
  }
  if (!loaded->has_value() || (*loaded)->doc.value("TargetGroupArn", "") != arn) {
    return TargetGroupNotFound();
  }
  return std::move(**loaded);
}

Result<ElbApi::Loaded> ElbApi::FindListener(const std::string& arn) {
  auto loaded = Load(Key(kListenerPrefix, ArnId(arn)));
  if (!loaded.ok()) {
    return loaded.error();
  }
  if (!loaded->has_value() || (*loaded)->doc.value("ListenerArn", "") != arn) {
    return ListenerNotFound();
  }
  return std::move(**loaded);
}

// ---------------------------------------------------------------------------
// Load balancers

Result<Json> ElbApi::CreateLoadBalancer(const Json& in) {
  const std::string name = in.at("Name").get<std::string>();
  BERTH_TRY(CheckName("Load balancer", name));
  if (name.rfind("internal-", 0) == 0) {
    return Validation("Load balancer name '" + name + "' cannot begin with 'internal-'");
  }
  const std::string type = in.value("Type", "application");
  if (type != "application") {
    // LIMITATION: berth's data plane is an HTTP proxy; it has no layer-4
    // (network) or GENEVE (gateway) load balancer.
    return Validation("Load balancer type '" + type +
                      "' is not supported; berth offers application load balancers");
  }
  const std::string scheme = in.value("Scheme", "internet-facing");
  const std::string ip_type = in.value("IpAddressType", "ipv4");
  if (in.contains("Subnets") && in.contains("SubnetMappings")) {
    return Validation("You can specify subnets or subnet mappings, not both");
  }
  Json tags = in.value("Tags", Json::array());
  BERTH_TRY(CheckTags(tags));
  if (tags.size() > 50) {
    return ClientError("TooManyTags", "The quota for the number of tags that can be assigned to "
                                      "a load balancer has been reached");
  }

  std::vector<std::string> subnets;
  for (const auto& s : in.value("Subnets", Json::array())) {
    subnets.push_back(s.get<std::string>());
  }
  for (const auto& m : in.value("SubnetMappings", Json::array())) {
    subnets.push_back(m.value("SubnetId", ""));
  }
  Json zones = Json::array();
  for (size_t i = 0; i < subnets.size(); ++i) {
    zones.push_back({{"ZoneName", ZoneName(account_.region, i)},
                     {"SubnetId", subnets[i]},
                     {"LoadBalancerAddresses", Json::array()}});
  }
  Json groups = in.value("SecurityGroups", Json::array());

  std::lock_guard lock(mu_);
  auto existing_id = Load(Key(kLoadBalancerNamePrefix, name));
  if (!existing_id.ok()) {
    return existing_id.error();
  }
  if (existing_id->has_value()) {
    auto existing = Load(Key(kLoadBalancerPrefix, (*existing_id)->doc.get<std::string>()));
    if (!existing.ok()) {
      return existing.error();
    }
    if (existing->has_value()) {
      const Json& doc = (*existing)->doc;
      if (doc.value("Scheme", "") == scheme && doc.value("IpAddressType", "") == ip_type &&
          doc.value("AvailabilityZones", Json::array()) == zones &&
          doc.value("SecurityGroups", Json::array()) == groups) {
        return Json{{"LoadBalancers", Json::array({Public(doc)})}};
      }
    }
    return ClientError("DuplicateLoadBalancerName",
                       "A load balancer with the same name '" + name +
                           "' exists, but with different settings");
  }

  std::string id = RandomHex(8);
  char digits[16];
  std::snprintf(digits, sizeof(digits), "%010llu",
                static_cast<unsigned long long>(std::stoull(id.substr(0, 12), nullptr, 16) %
                                                10000000000ULL));
  std::string dns = (scheme == "internal" ? "internal-" : "") + name + "-" + digits + "." +
                    account_.region + ".elb.localhost";
  Json doc = {
      {"LoadBalancerArn", Arn("loadbalancer/app/" + name + "/" + id)},
      {"DNSName", dns},
      {"CanonicalHostedZoneId", "Z3BERTHLOCALELB"},
      {"CreatedTime", static_cast<double>(NowMs()) / 1000.0},
      {"LoadBalancerName", name},
      {"Scheme", scheme},
      {"VpcId", vpc_id_},
      {"State", {{"Code", "active"}}},
      {"Type", type},
      {"AvailabilityZones", zones},
      {"SecurityGroups", groups},
      {"IpAddressType", ip_type},
      {"_attributes", DefaultLoadBalancerAttributes()},
      {"_tags", tags},
  };
  store::Txn txn;
  txn.IfAbsent(Key(kLoadBalancerNamePrefix, name))
      .Put(Key(kLoadBalancerNamePrefix, name), Json(id).dump())
      .Put(Key(kLoadBalancerPrefix, id), doc.dump());
  BERTH_TRY(Commit(txn));

  // Answered as AWS does for a new load balancer; berth's is ready at once,
  // so the next Describe shows it active.
  Json shown = Public(doc);
  shown["State"] = {{"Code", "provisioning"}};
  return Json{{"LoadBalancers", Json::array({shown})}};
}

Result<Json> ElbApi::DescribeLoadBalancers(const Json& in) {
  bool by_arn = in.contains("LoadBalancerArns");
  bool by_name = in.contains("Names");
  if (by_arn && by_name) {
    return Validation("Load balancer names and load balancer ARNs cannot be specified at the "
                      "same time");
  }
  auto all = LoadAll(kLoadBalancerPrefix);
  if (!all.ok()) {
    return all.error();
  }
  std::vector<Json> docs;
  for (auto& l : *all) {
    docs.push_back(std::move(l.doc));
  }
  std::sort(docs.begin(), docs.end(), [](const Json& a, const Json& b) {
    return a.value("LoadBalancerName", "") < b.value("LoadBalancerName", "");
  });

  std::vector<Json> chosen;
  if (by_arn || by_name) {
    const char* field = by_arn ? "LoadBalancerArn" : "LoadBalancerName";
    std::vector<std::string> missing;
    for (const auto& wanted : in.at(by_arn ? "LoadBalancerArns" : "Names")) {
      auto it = std::find_if(docs.begin(), docs.end(), [&](const Json& d) {
        return d.value(field, "") == wanted.get<std::string>();
      });
      if (it == docs.end()) {
        missing.push_back(wanted.get<std::string>());
      } else if (std::find(chosen.begin(), chosen.end(), *it) == chosen.end()) {
        chosen.push_back(*it);
      }
    }
    if (!missing.empty()) {
      if (by_arn) {
        return LoadBalancerNotFound();
      }
      std::string list;
      for (const auto& m : missing) {
        list += (list.empty() ? "" : ", ") + m;
      }
      return ClientError("LoadBalancerNotFound", "Load balancers '[" + list + "]' not found");
    }
  } else {
    chosen = std::move(docs);
  }
  std::vector<Json> items;
  std::vector<std::string> keys;
  for (const auto& d : chosen) {
    items.push_back(Public(d));
    keys.push_back(d.value("LoadBalancerName", ""));
  }
  return Page(items, keys, in, "LoadBalancers");
}

Result<Json> ElbApi::DeleteLoadBalancer(const Json& in) {
  const std::string arn = in.at("LoadBalancerArn").get<std::string>();
  std::lock_guard lock(mu_);
  auto lb = FindLoadBalancer(arn);
  if (!lb.ok()) {
    // Deleting a load balancer that does not exist succeeds, as in AWS.
    return lb.error().code == "LoadBalancerNotFound" ? Result<Json>(Json::object())
                                                     : Result<Json>(lb.error());
  }
  if (lb->doc.value("_attributes", Json::object()).value("deletion_protection.enabled", "") ==
      "true") {
    return ClientError("OperationNotPermitted",
                       "Load balancer '" + arn +
                           "' cannot be deleted because deletion protection is enabled");
  }
  auto inv = LoadInventory();
  if (!inv.ok()) {
    return inv.error();
  }
  store::Txn txn;
  std::string lb_id = ArnId(arn);
  std::vector<std::string> listener_ids;
  for (const auto& l : inv->listeners) {
    if (l.doc.value("_lb_id", "") == lb_id) {
      BERTH_TRY(DeleteListenerLocked(l.doc, *inv, txn));
      listener_ids.push_back(ArnId(l.doc.value("ListenerArn", "")));
    }
  }
  txn.IfRevision(lb->entry.key, lb->entry.mod_revision)
      .Delete(lb->entry.key)
      .Delete(Key(kLoadBalancerNamePrefix, lb->doc.value("LoadBalancerName", "")));
  BERTH_TRY(Commit(txn));
  if (hooks_ != nullptr) {
    for (const auto& id : listener_ids) {
      hooks_->ReleaseListener(id);
    }
  }
  return Json::object();
}

Json ElbApi::DescribeAttributes(const Json& doc, const Json& defaults) {
  Json attrs = defaults;
  attrs.update(doc.value("_attributes", Json::object()));
  return Json{{"Attributes", AttributeList(attrs)}};
}

Result<Json> ElbApi::ModifyAttributes(Loaded& resource, const Json& defaults,
                                      AttributeCheck check, const Json& changes) {
  Json attrs = defaults;
  attrs.update(resource.doc.value("_attributes", Json::object()));
  for (const auto& a : changes) {
    std::string key = a.value("Key", "");
    std::string value = a.value("Value", "");
    BERTH_TRY(check(key, value));
    attrs[key] = value;
  }
  resource.doc["_attributes"] = attrs;
  store::Txn txn;
  txn.IfRevision(resource.entry.key, resource.entry.mod_revision)
      .Put(resource.entry.key, resource.doc.dump());
  BERTH_TRY(Commit(txn));
  return Json{{"Attributes", AttributeList(attrs)}};
}

Result<Json> ElbApi::DescribeLoadBalancerAttributes(const Json& in) {
  auto lb = FindLoadBalancer(in.at("LoadBalancerArn").get<std::string>());
  if (!lb.ok()) {
    return lb.error();
  }
  return DescribeAttributes(lb->doc, DefaultLoadBalancerAttributes());
}

Result<Json> ElbApi::ModifyLoadBalancerAttributes(const Json& in) {
  std::lock_guard lock(mu_);
  auto lb = FindLoadBalancer(in.at("LoadBalancerArn").get<std::string>());
  if (!lb.ok()) {
    return lb.error();
  }
  return ModifyAttributes(*lb, DefaultLoadBalancerAttributes(), CheckLoadBalancerAttribute,
                          in.at("Attributes"));
}

// ---------------------------------------------------------------------------
// Tags

Result<Json> ElbApi::ApplyTagChange(const std::string& arn, const Json& add, const Json& remove) {
  // Which document holds the tags: the resource's own, or, for a default
  // rule, its listener's.
  std::string key;
  std::string own_field;
  std::string member = "_tags";
  Error not_found = ClientError("ValidationError", "Invalid resource ARN '" + arn + "'");
  if (arn.find(":loadbalancer/") != std::string::npos) {
    key = Key(kLoadBalancerPrefix, ArnId(arn));
    own_field = "LoadBalancerArn";
    not_found = LoadBalancerNotFound();
  } else if (arn.find(":targetgroup/") != std::string::npos) {
    key = Key(kTargetGroupPrefix, ArnId(arn));
    own_field = "TargetGroupArn";
    not_found = TargetGroupNotFound();
  } else if (arn.find(":listener/") != std::string::npos) {
    key = Key(kListenerPrefix, ArnId(arn));
    own_field = "ListenerArn";
    not_found = ListenerNotFound();
  } else if (arn.find(":listener-rule/") != std::string::npos) {
    key = Key(kRulePrefix, ArnId(arn));
    own_field = "RuleArn";
    not_found = RuleNotFound();
  } else {
    return not_found;
  }
  auto loaded = Load(key);
  if (!loaded.ok()) {
    return loaded.error();
  }
  if (!loaded->has_value() && own_field == "RuleArn") {
    // A default rule: "listener-rule/app/<lb>/<lb-id>/<listener-id>/<rule-id>".
    std::string prefix = arn.substr(0, arn.rfind('/'));
    loaded = Load(Key(kListenerPrefix, ArnId(prefix)));
    if (!loaded.ok()) {
      return loaded.error();
    }
    if (loaded->has_value() && (*loaded)->doc.value("_default_rule_id", "") == ArnId(arn)) {
      member = "_default_rule_tags";
    } else {
      loaded = std::optional<Loaded>();
    }
  }
  if (!loaded->has_value()) {
    return not_found;
  }
  Loaded& l = **loaded;
  if (member == "_tags" && l.doc.value(own_field, "") != arn) {
    return not_found;
  }
  Json tags = MergeTags(l.doc.value(member, Json::array()), add, remove);
  if (tags.size() > 50) {
    return ClientError("TooManyTags",
                       "The quota for the number of tags that can be assigned to a resource has "
                       "been reached");
  }
  if (add.empty() && remove.empty()) {
    return tags;
  }
  l.doc[member] = tags;
  store::Txn txn;
  txn.IfRevision(l.entry.key, l.entry.mod_revision).Put(l.entry.key, l.doc.dump());
  BERTH_TRY(Commit(txn));
  return tags;
}

Result<Json> ElbApi::AddTags(const Json& in) {
  const Json& tags = in.at("Tags");
  BERTH_TRY(CheckTags(tags));
  std::lock_guard lock(mu_);
  for (const auto& arn : in.at("ResourceArns")) {
    auto r = ApplyTagChange(arn.get<std::string>(), tags, Json::array());
    if (!r.ok()) {
      return r.error();
    }
  }
  return Json::object();
}

Result<Json> ElbApi::RemoveTags(const Json& in) {
  std::lock_guard lock(mu_);
  for (const auto& arn : in.at("ResourceArns")) {
    auto r = ApplyTagChange(arn.get<std::string>(), Json::array(), in.at("TagKeys"));
    if (!r.ok()) {
      return r.error();
    }
  }
  return Json::object();
}

Result<Json> ElbApi::DescribeTags(const Json& in) {
  if (in.at("ResourceArns").size() > 20) {
    return Validation("You can specify up to 20 resource ARNs");
  }
  Json out = Json::array();
  for (const auto& arn : in.at("ResourceArns")) {
    auto tags = ApplyTagChange(arn.get<std::string>(), Json::array(), Json::array());
    if (!tags.ok()) {
      return tags.error();
    }
    out.push_back({{"ResourceArn", arn}, {"Tags", *tags}});
  }
  return Json{{"TagDescriptions", out}};
}

}  // namespace berth::elb
