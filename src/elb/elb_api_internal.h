// SPDX-License-Identifier: Apache-2.0
// Pieces shared by the files implementing ElbApi; not part of its interface.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "elb/elb_api.h"
#include "elb/elb_state.h"

namespace berth::elb {

// Every load balancer, target group, listener and rule, read at once.
struct ElbApi::Inventory {
  std::vector<Loaded> lbs;
  std::vector<Loaded> tgs;
  std::vector<Loaded> listeners;
  std::vector<Loaded> rules;

  const Loaded* LoadBalancerById(const std::string& id) const;
  const Loaded* ListenerById(const std::string& id) const;
  // The ARNs of the load balancers whose listeners or rules forward to the group.
  std::set<std::string> LoadBalancersUsing(const std::string& tg_arn) const;
  // The load balancer a listener belongs to ("" when gone).
  std::string LoadBalancerArnOfListener(const Json& listener) const;
};

namespace detail {

// AWS's not-found errors.
Error LoadBalancerNotFound();
Error TargetGroupNotFound();
Error ListenerNotFound();
Error RuleNotFound();
Error Validation(const std::string& message);

// Copies `doc` without the internal members (names starting with '_').
Json Public(const Json& doc);

// Checks a load balancer or target group name ("Load balancer", "Target group").
Status CheckName(const std::string& what, const std::string& name);

// Checks a tag list: duplicate keys, reserved prefixes.
Status CheckTags(const Json& tags);

// Merges tags into `current` (by key) and removes `remove_keys`.
Json MergeTags(const Json& current, const Json& add, const Json& remove_keys);

// One page of `items` (already sorted by `keys`), with NextMarker when more remain.
Result<Json> Page(const std::vector<Json>& items, const std::vector<std::string>& keys,
                  const Json& in, const std::string& list_name);

// Attribute maps <-> [{"Key", "Value"}] lists.
Json AttributeList(const Json& attributes);

}  // namespace detail
}  // namespace berth::elb
