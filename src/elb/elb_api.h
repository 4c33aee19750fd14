// SPDX-License-Identifier: Apache-2.0
// The ELBv2 control plane: the Query API operations of Elastic Load
// Balancing 2015-12-01 over the store (layout in elb/elb_state.h).
//
// The API writes load balancers, target groups, listeners, rules and target
// registrations; the data plane (elb/data_plane.h) follows the store and
// serves them. Two things need the data plane synchronously and go through
// DataPlaneHooks: binding a listener's port (so CreateListener can refuse a
// port that cannot be bound) and the live health of targets.
//
// Thread-safety: every method may be called from any thread; mutating calls
// are serialized by one mutex.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/aws_json_route.h"
#include "api/json_service.h"
#include "common/result.h"
#include "elb/query_route.h"
#include "elb/target_registry.h"
#include "store/store.h"

namespace berth::elb {

using Json = nlohmann::json;

/// A target's health as the data plane's checker sees it.
struct TargetHealthReport {
  std::string state;  // "initial", "healthy" or "unhealthy"
  std::string reason;
  std::string description;
};

/// The data plane's side of the API.
class DataPlaneHooks {
 public:
  virtual ~DataPlaneHooks() = default;

  /// Binds the listener's port now. The error (already in use, no
  /// permission) is answered to CreateListener / ModifyListener.
  virtual Status BindListener(const std::string& listener_id, uint16_t port) = 0;

  /// Closes the listener's socket; no-op for an unknown listener.
  virtual void ReleaseListener(const std::string& listener_id) = 0;

  /// The health of an active target of an in-use target group; nullopt when
  /// the data plane has not started checking it yet.
  virtual std::optional<TargetHealthReport> Health(const std::string& target_group_id,
                                                   const std::string& ip, uint16_t port) = 0;
};

class ElbApi : public TargetRegistry {
 public:
  ElbApi(store::Store& store, api::AccountInfo account, DataPlaneHooks* hooks = nullptr);

  /// The operation table to mount on a QueryRoute.
  std::shared_ptr<QueryService> MakeService();

  /// The address listeners are bound on, for the messages that name it.
  void SetBindAddressForMessages(std::string address) { bind_address_ = std::move(address); }

  /// Replaces the clock (epoch milliseconds), for tests.
  void SetClockForTest(std::function<int64_t()> now_ms) { now_ms_ = std::move(now_ms); }

  // Load balancers.
  Result<Json> CreateLoadBalancer(const Json& in);
  Result<Json> DescribeLoadBalancers(const Json& in);
  Result<Json> DeleteLoadBalancer(const Json& in);
  Result<Json> DescribeLoadBalancerAttributes(const Json& in);
  Result<Json> ModifyLoadBalancerAttributes(const Json& in);

  // Target groups and targets.
  Result<Json> CreateTargetGroup(const Json& in);
  Result<Json> DescribeTargetGroups(const Json& in);
  Result<Json> ModifyTargetGroup(const Json& in);
  Result<Json> DeleteTargetGroup(const Json& in);
  Result<Json> DescribeTargetGroupAttributes(const Json& in);
  Result<Json> ModifyTargetGroupAttributes(const Json& in);
  Result<Json> RegisterTargets(const Json& in);
  Result<Json> DeregisterTargets(const Json& in);
  Result<Json> DescribeTargetHealth(const Json& in);

  // Listeners and rules.
  Result<Json> CreateListener(const Json& in);
  Result<Json> DescribeListeners(const Json& in);
  Result<Json> ModifyListener(const Json& in);
  Result<Json> DeleteListener(const Json& in);
  Result<Json> CreateRule(const Json& in);
  Result<Json> DescribeRules(const Json& in);
  Result<Json> ModifyRule(const Json& in);
  Result<Json> DeleteRule(const Json& in);
  Result<Json> SetRulePriorities(const Json& in);

  // Tags.
  Result<Json> AddTags(const Json& in);
  Result<Json> RemoveTags(const Json& in);
  Result<Json> DescribeTags(const Json& in);

  // TargetRegistry.
  Status Register(const std::string& target_group_arn, const std::string& ip, int port) override;
  Status Deregister(const std::string& target_group_arn, const std::string& ip,
                    int port) override;
  Result<std::string> TargetHealth(const std::string& target_group_arn, const std::string& ip,
                                   int port) override;
  Result<Json> TargetHealthDetail(const std::string& target_group_arn, const std::string& ip,
                                  int port) override;
  Result<Json> DescribeTargetGroup(const std::string& target_group_arn) override;

  /// Deletes the registrations whose deregistration delay has passed. The
  /// data plane calls it when a drain deadline comes; reads already hide them.
  Status ExpireDrainedTargets();

  /// The id of the default VPC berth reports (one per account and region).
  const std::string& vpc_id() const { return vpc_id_; }

 private:
  struct Inventory;
  struct Loaded {
    store::Entry entry;
    Json doc;
  };

  // Store access.
  Result<std::optional<Loaded>> Load(const std::string& key);
  Result<std::vector<Loaded>> LoadAll(std::string_view prefix);
  Result<Inventory> LoadInventory();
  Status Commit(const store::Txn& txn);
  int64_t NowMs() const { return now_ms_(); }

  // Lookups by ARN; NotFound errors with AWS's codes.
  Result<Loaded> FindLoadBalancer(const std::string& arn);
  Result<Loaded> FindTargetGroup(const std::string& arn);
  Result<Loaded> FindListener(const std::string& arn);

  // Shared pieces.
  std::string Arn(const std::string& resource) const;
  Json TargetGroupView(const Json& doc, const Inventory& inv) const;
  Result<Json> NormalizeActions(const Json& actions, const Inventory& inv,
                                const std::string& lb_arn) const;
  Result<Json> NormalizeConditions(const Json& conditions) const;
  Json DefaultRuleView(const Json& listener) const;
  Result<Json> TargetHealthFor(const Json& tg, bool in_use, const std::string& ip, int port);
  Status RegisterLocked(const Json& tg, const std::string& ip, int port, const Json& az);
  Status DeregisterLocked(const Json& tg, bool in_use, const std::string& ip, int port);
  Result<Json> RulesOf(const std::string& listener_id, const Inventory& inv) const;
  Status DeleteListenerLocked(const Json& listener, const Inventory& inv, store::Txn& txn);
  Result<Json> ApplyTagChange(const std::string& arn, const Json& add, const Json& remove);
  // Attributes of a load balancer or target group: `defaults` overlaid with what its
  // document sets. Modify checks each change with `check`, then commits the document guarded
  // by its revision; both answer {"Attributes": [...]}.
  using AttributeCheck = Status (*)(const std::string& key, const std::string& value);
  static Json DescribeAttributes(const Json& doc, const Json& defaults);
  Result<Json> ModifyAttributes(Loaded& resource, const Json& defaults, AttributeCheck check,
                                const Json& changes);

  store::Store& store_;
  api::AccountInfo account_;
  DataPlaneHooks* hooks_;
  std::string vpc_id_;
  std::string bind_address_ = "127.0.0.1";
  std::function<int64_t()> now_ms_;
  std::mutex mu_;  // serializes every mutating operation
};

}  // namespace berth::elb
