#include "elb/elb_api.h"

#include <stdlib.h>

#include <filesystem>
#include <map>
#include <set>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "elb/elb_state.h"
#include "elb/health_checker.h"
#include "elb/lb_config.h"
#include "temp_dir.h"

namespace berth::elb {
namespace {

using berth::testutil::TempDir;

using ::testing::HasSubstr;
using ::testing::MatchesRegex;


// Stands in for the data plane: records bound ports, reports set healths.
class FakeHooks : public DataPlaneHooks {
 public:
  Status BindListener(const std::string& listener_id, uint16_t port) override {
    if (refused.count(port) != 0) {
      return ClientError("InvalidConfigurationRequest",
                         "Port " + std::to_string(port) + " cannot be bound on 127.0.0.1: "
                         "Address already in use");
    }
    bound[listener_id] = port;
    return Ok();
  }
  void ReleaseListener(const std::string& listener_id) override { bound.erase(listener_id); }
  std::optional<TargetHealthReport> Health(const std::string& tg_id, const std::string& ip,
                                           uint16_t port) override {
    auto it = health.find(ip + ":" + std::to_string(port));
    if (it == health.end()) {
      return std::nullopt;
    }
    return it->second;
  }

  std::map<std::string, uint16_t> bound;
  std::set<uint16_t> refused;
  std::map<std::string, TargetHealthReport> health;
};

class ElbApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = store::OpenSqliteStore(dir_.File("state.db"));
    ASSERT_TRUE(opened.ok());
    store_ = std::move(*opened);
    api_ = std::make_unique<ElbApi>(*store_, api::AccountInfo{"123456789012", "eu-west-1"},
                                    &hooks_);
    api_->SetClockForTest([this] { return now_ms_; });
  }

  Json Ok(Result<Json> r) {
    EXPECT_TRUE(r.ok()) << r.error().code << ": " << r.error().message;
    return r.ok() ? *r : Json();
  }
  Error Fails(Result<Json> r) {
    EXPECT_FALSE(r.ok());
    return r.ok() ? Error{} : r.error();
  }

  std::string MakeLb(const std::string& name) {
    return Ok(api_->CreateLoadBalancer({{"Name", name}}))["LoadBalancers"][0]["LoadBalancerArn"];
  }
  std::string MakeTg(const std::string& name, const std::string& type = "ip") {
    return Ok(api_->CreateTargetGroup({{"Name", name}, {"Protocol", "HTTP"}, {"Port", 80},
                                       {"TargetType", type}}))["TargetGroups"][0]
        ["TargetGroupArn"];
  }
  std::string MakeListener(const std::string& lb, const std::string& tg, int port) {
    return Ok(api_->CreateListener(
        {{"LoadBalancerArn", lb},
         {"Port", port},
         {"DefaultActions", {{{"Type", "forward"}, {"TargetGroupArn", tg}}}}}))["Listeners"][0]
        ["ListenerArn"];
  }
  Json HealthOf(const std::string& tg, const std::string& ip, int port) {
    Json out = Ok(api_->DescribeTargetHealth(
        {{"TargetGroupArn", tg}, {"Targets", {{{"Id", ip}, {"Port", port}}}}}));
    return out["TargetHealthDescriptions"][0]["TargetHealth"];
  }

  TempDir dir_;
  std::unique_ptr<store::Store> store_;
  FakeHooks hooks_;
  std::unique_ptr<ElbApi> api_;
  int64_t now_ms_ = 1767225600000;
};

TEST_F(ElbApiTest, CreatesLoadBalancersWithAwsArnsAndDnsNames) {
  Json lb = Ok(api_->CreateLoadBalancer({{"Name", "web"}, {"Scheme", "internal"}}))
                ["LoadBalancers"][0];
  EXPECT_THAT(lb["LoadBalancerArn"].get<std::string>(),
              MatchesRegex("arn:aws:elasticloadbalancing:eu-west-1:123456789012:"
                           "loadbalancer/app/web/[0-9a-f]{16}"));
  EXPECT_THAT(lb["DNSName"].get<std::string>(),
              MatchesRegex("internal-web-[0-9]{10}\\.eu-west-1\\.elb\\.localhost"));
  EXPECT_EQ("provisioning", lb["State"]["Code"]);
  EXPECT_DOUBLE_EQ(1767225600.0, lb["CreatedTime"].get<double>());
  Json described = Ok(api_->DescribeLoadBalancers(Json::object()))["LoadBalancers"];
  ASSERT_EQ(1u, described.size());
  EXPECT_EQ("active", described[0]["State"]["Code"]);
  EXPECT_FALSE(described[0].contains("_attributes"));
  EXPECT_EQ("DuplicateLoadBalancerName",
            Fails(api_->CreateLoadBalancer({{"Name", "web"}})).code);
  EXPECT_EQ("ValidationError", Fails(api_->CreateLoadBalancer({{"Name", "internal-x"}})).code);
  EXPECT_EQ("ValidationError",
            Fails(api_->CreateLoadBalancer({{"Name", "a_b"}})).code);
}

TEST_F(ElbApiTest, PagesDescribeResultsWithMarkers) {
  for (const char* name : {"c", "a", "e", "b", "d"}) {
    MakeTg(name);
  }
  Json first = Ok(api_->DescribeTargetGroups({{"PageSize", 2}}));
  ASSERT_EQ(2u, first["TargetGroups"].size());
  EXPECT_EQ("a", first["TargetGroups"][0]["TargetGroupName"]);
  Json second = Ok(api_->DescribeTargetGroups({{"PageSize", 2}, {"Marker", first["NextMarker"]}}));
  EXPECT_EQ("c", second["TargetGroups"][0]["TargetGroupName"]);
  Json third = Ok(api_->DescribeTargetGroups({{"PageSize", 2}, {"Marker", second["NextMarker"]}}));
  EXPECT_EQ(1u, third["TargetGroups"].size());
  EXPECT_FALSE(third.contains("NextMarker"));
}

TEST_F(ElbApiTest, TargetHealthFollowsRegistrationUseAndDraining) {
  std::string lb = MakeLb("lb");
  std::string tg = MakeTg("tg");
  std::string lonely = MakeTg("lonely");
  MakeListener(lb, tg, 8080);
  EXPECT_EQ(8080, hooks_.bound.begin()->second);

  Ok(api_->RegisterTargets({{"TargetGroupArn", tg}, {"Targets", {{{"Id", "10.0.0.5"}}}}}));
  EXPECT_EQ(Json::parse(R"({"State":"initial","Reason":"Elb.RegistrationInProgress",
      "Description":"Target registration is in progress"})"),
            HealthOf(tg, "10.0.0.5", 80));
  hooks_.health["10.0.0.5:80"] = {"healthy", "", ""};
  EXPECT_EQ(Json::parse(R"({"State":"healthy"})"), HealthOf(tg, "10.0.0.5", 80));
  EXPECT_EQ("unused", HealthOf(tg, "10.0.0.99", 80)["State"]);
  EXPECT_EQ("Target.NotRegistered", HealthOf(tg, "10.0.0.99", 80)["Reason"]);

  Ok(api_->RegisterTargets({{"TargetGroupArn", lonely}, {"Targets", {{{"Id", "10.0.0.5"}}}}}));
  EXPECT_EQ("Target.NotInUse", HealthOf(lonely, "10.0.0.5", 80)["Reason"]);

  // Deregistered: draining for the delay (300 s by default), then gone.
  Ok(api_->DeregisterTargets({{"TargetGroupArn", tg}, {"Targets", {{{"Id", "10.0.0.5"}}}}}));
  EXPECT_EQ("draining", HealthOf(tg, "10.0.0.5", 80)["State"]);
  EXPECT_EQ("Target.DeregistrationInProgress", HealthOf(tg, "10.0.0.5", 80)["Reason"]);
  now_ms_ += 299 * 1000;
  EXPECT_EQ("draining", HealthOf(tg, "10.0.0.5", 80)["State"]);
  now_ms_ += 1000;
  EXPECT_EQ("Target.NotRegistered", HealthOf(tg, "10.0.0.5", 80)["Reason"]);
  EXPECT_TRUE(Ok(api_->DescribeTargetHealth({{"TargetGroupArn", tg}}))
                  ["TargetHealthDescriptions"].empty());
  ASSERT_TRUE(api_->ExpireDrainedTargets().ok());
  EXPECT_TRUE(store_->List("elb/target/" + ArnId(tg) + "/")->empty());

  // A group nobody uses has nothing to drain: deregistration is immediate.
  Ok(api_->DeregisterTargets({{"TargetGroupArn", lonely}, {"Targets", {{{"Id", "10.0.0.5"}}}}}));
  EXPECT_TRUE(store_->List("elb/target/" + ArnId(lonely) + "/")->empty());
}

TEST_F(ElbApiTest, ListenersNeedABindablePortAndAFreeOne) {
  std::string lb = MakeLb("lb");
  std::string other = MakeLb("other");
  std::string tg = MakeTg("tg");
  hooks_.refused.insert(81);
  Error e = Fails(api_->CreateListener(
      {{"LoadBalancerArn", lb},
       {"Port", 81},
       {"DefaultActions", {{{"Type", "forward"}, {"TargetGroupArn", tg}}}}}));
  EXPECT_EQ("InvalidConfigurationRequest", e.code);
  EXPECT_THAT(e.message, HasSubstr("Port 81 cannot be bound"));
  EXPECT_TRUE(store_->List("elb/listener/")->empty());

  std::string listener = MakeListener(lb, tg, 80);
  e = Fails(api_->CreateListener({{"LoadBalancerArn", lb},
                                  {"Port", 80},
                                  {"DefaultActions",
                                   {{{"Type", "forward"}, {"TargetGroupArn", tg}}}}}));
  EXPECT_EQ("DuplicateListener", e.code);
  // Every load balancer shares the bind address, so a port serves one of them,
  // and a target group belongs to one load balancer.
  e = Fails(api_->CreateListener({{"LoadBalancerArn", other},
                                  {"Port", 80},
                                  {"DefaultActions",
                                   {{{"Type", "fixed-response"},
                                     {"FixedResponseConfig", {{"StatusCode", "200"}}}}}}}));
  EXPECT_EQ("InvalidConfigurationRequest", e.code);
  e = Fails(api_->CreateListener({{"LoadBalancerArn", other},
                                  {"Port", 90},
                                  {"DefaultActions",
                                   {{{"Type", "forward"}, {"TargetGroupArn", tg}}}}}));
  EXPECT_EQ("TargetGroupAssociationLimit", e.code);

  EXPECT_EQ("ResourceInUse", Fails(api_->DeleteTargetGroup({{"TargetGroupArn", tg}})).code);
  Ok(api_->DeleteLoadBalancer({{"LoadBalancerArn", lb}}));
  EXPECT_TRUE(hooks_.bound.empty());
  EXPECT_EQ("ListenerNotFound",
            Fails(api_->DescribeListeners({{"ListenerArns", {listener}}})).code);
  Ok(api_->DeleteTargetGroup({{"TargetGroupArn", tg}}));
}

TEST_F(ElbApiTest, RulesKeepPrioritiesUniqueAndTheDefaultRuleLast) {
  std::string lb = MakeLb("lb");
  std::string tg = MakeTg("tg");
  std::string listener = MakeListener(lb, tg, 80);
  auto rule = [&](int priority, const std::string& path) {
    return api_->CreateRule({{"ListenerArn", listener},
                             {"Priority", priority},
                             {"Conditions", {{{"Field", "path-pattern"}, {"Values", {path}}}}},
                             {"Actions", {{{"Type", "forward"}, {"TargetGroupArn", tg}}}}});
  };
  std::string r20 = Ok(rule(20, "/b/*"))["Rules"][0]["RuleArn"];
  std::string r10 = Ok(rule(10, "/a/*"))["Rules"][0]["RuleArn"];
  Error e = Fails(rule(10, "/c/*"));
  EXPECT_EQ("PriorityInUse", e.code);
  EXPECT_EQ("Priority '10' is currently in use", e.message);

  Json rules = Ok(api_->DescribeRules({{"ListenerArn", listener}}))["Rules"];
  ASSERT_EQ(3u, rules.size());
  EXPECT_EQ("10", rules[0]["Priority"]);
  EXPECT_EQ("20", rules[1]["Priority"]);
  EXPECT_EQ("default", rules[2]["Priority"]);
  EXPECT_EQ(true, rules[2]["IsDefault"]);

  e = Fails(api_->SetRulePriorities({{"RulePriorities", {{{"RuleArn", r20}, {"Priority", 10}}}}}));
  EXPECT_EQ("PriorityInUse", e.code);
  Ok(api_->SetRulePriorities({{"RulePriorities",
                               {{{"RuleArn", r20}, {"Priority", 10}},
                                {{"RuleArn", r10}, {"Priority", 20}}}}}));
  rules = Ok(api_->DescribeRules({{"ListenerArn", listener}}))["Rules"];
  EXPECT_EQ(r20, rules[0]["RuleArn"]);

  EXPECT_EQ("OperationNotPermitted",
            Fails(api_->DeleteRule({{"RuleArn", rules[2]["RuleArn"]}})).code);
  EXPECT_EQ("ValidationError",
            Fails(api_->CreateRule({{"ListenerArn", listener},
                                    {"Priority", 30},
                                    {"Conditions",
                                     {{{"Field", "query-string"},
                                       {"QueryStringConfig", Json::object()}}}},
                                    {"Actions", {{{"Type", "forward"}, {"TargetGroupArn", tg}}}}}))
                .code);
}

TEST_F(ElbApiTest, TheRegistryServesTheEcsSide) {
  std::string lb = MakeLb("lb");
  std::string tg = MakeTg("tg");
  std::string instances = MakeTg("inst", "instance");
  MakeListener(lb, tg, 80);

  ASSERT_TRUE(api_->Register(tg, "172.31.0.7", 8080).ok());
  EXPECT_EQ("initial", *api_->TargetHealth(tg, "172.31.0.7", 8080));
  hooks_.health["172.31.0.7:8080"] = {"unhealthy", "Target.Timeout", "Request timed out"};
  EXPECT_EQ("Target.Timeout", (*api_->TargetHealthDetail(tg, "172.31.0.7", 8080))["Reason"]);
  ASSERT_TRUE(api_->Deregister(tg, "172.31.0.7", 8080).ok());
  EXPECT_EQ("draining", *api_->TargetHealth(tg, "172.31.0.7", 8080));
  now_ms_ += 301 * 1000;
  EXPECT_EQ("unused", *api_->TargetHealth(tg, "172.31.0.7", 8080));

  Json described = *api_->DescribeTargetGroup(tg);
  EXPECT_EQ("ip", described["TargetType"]);
  EXPECT_EQ(Json::array({lb}), described["LoadBalancerArns"]);
  EXPECT_EQ("instance", (*api_->DescribeTargetGroup(instances))["TargetType"]);
  EXPECT_EQ("InvalidTarget", api_->Register(instances, "172.31.0.7", 80).error().code);
  EXPECT_EQ("TargetGroupNotFound",
            api_->Register(tg + "0", "172.31.0.7", 80).error().code);
  EXPECT_EQ("ValidationError", api_->Register(tg, "nope", 80).error().code);
}

TEST_F(ElbApiTest, TheDataPlaneConfigFollowsTheDocuments) {
  std::string lb = MakeLb("lb");
  std::string a = MakeTg("a");
  std::string b = MakeTg("b");
  MakeTg("unused");
  std::string listener = MakeListener(lb, a, 8080);
  Ok(api_->CreateRule({{"ListenerArn", listener},
                       {"Priority", 5},
                       {"Conditions",
                        {{{"Field", "host-header"}, {"Values", {"*.example.com"}}},
                         {{"Field", "path-pattern"}, {"Values", {"/x/*", "/y"}}}}},
                       {"Actions",
                        {{{"Type", "forward"},
                          {"ForwardConfig",
                           {{"TargetGroups",
                             {{{"TargetGroupArn", a}, {"Weight", 1}},
                              {{"TargetGroupArn", b}, {"Weight", 3}}}}}}}}}}));
  Ok(api_->ModifyTargetGroupAttributes(
      {{"TargetGroupArn", b},
       {"Attributes", {{{"Key", "load_balancing.algorithm.type"},
                        {"Value", "least_outstanding_requests"}}}}}));
  Ok(api_->RegisterTargets({{"TargetGroupArn", b},
                            {"Targets", {{{"Id", "10.0.0.1"}, {"Port", 81}},
                                         {{"Id", "10.0.0.2"}}}}}));
  Ok(api_->DeregisterTargets({{"TargetGroupArn", b}, {"Targets", {{{"Id", "10.0.0.2"}}}}}));

  LbConfig config = BuildLbConfig(*store_->List("elb/"), now_ms_);
  ASSERT_EQ(1u, config.listeners.size());
  const ListenerSpec& l = config.listeners[0];
  EXPECT_EQ(8080, l.port);
  EXPECT_EQ(60, l.idle_timeout_seconds);
  ASSERT_EQ(1u, l.rules.size());
  EXPECT_EQ(5, l.rules[0].priority);
  ASSERT_EQ(2u, l.rules[0].action.groups.size());
  EXPECT_EQ(3, l.rules[0].action.groups[1].second);
  const TargetGroupSpec& gb = config.groups.at(ArnId(b));
  EXPECT_TRUE(gb.in_use);
  EXPECT_FALSE(config.groups.begin()->second.id.empty());
  EXPECT_EQ(Algorithm::kLeastOutstandingRequests, gb.algorithm);
  ASSERT_EQ(2u, gb.targets.size());
  EXPECT_EQ(81, gb.targets[0].port);
  EXPECT_TRUE(gb.targets[1].draining);
  EXPECT_EQ(now_ms_ + 300 * 1000, config.next_drain_deadline_ms);
  int unused = 0;
  for (const auto& [id, g] : config.groups) {
    unused += !g.in_use;
  }
  EXPECT_EQ(1, unused);

  RequestFacts hit{"GET", "/x/1", "www.example.com"};
  RequestFacts wrong_host{"GET", "/x/1", "example.com"};
  RequestFacts wrong_path{"GET", "/z", "www.example.com"};
  EXPECT_TRUE(RuleMatches(l.rules[0], hit));
  EXPECT_FALSE(RuleMatches(l.rules[0], wrong_host));
  EXPECT_FALSE(RuleMatches(l.rules[0], wrong_path));

  // After the delay the drained target is left out.
  config = BuildLbConfig(*store_->List("elb/"), now_ms_ + 300 * 1000);
  EXPECT_EQ(1u, config.groups.at(ArnId(b)).targets.size());
  EXPECT_EQ(0, config.next_drain_deadline_ms);
}

TEST(HealthStateTest, ThresholdsMoveTargetsBetweenStates) {
  TargetRuntime t("tg", "10.0.0.1", 80, {});
  HealthCheckSpec spec;
  spec.healthy_threshold = 3;
  spec.unhealthy_threshold = 2;
  std::lock_guard lock(t.mu);
  t.in_use = true;
  t.UpdateRoutableLocked();
  ProbeResult pass{ProbeResult::Kind::kPass, 200};
  ProbeResult mismatch{ProbeResult::Kind::kCodeMismatch, 404};
  ProbeResult timeout{ProbeResult::Kind::kTimeout, 0};

  EXPECT_FALSE(ApplyProbeResult(t, spec, pass));
  EXPECT_EQ(HealthState::kInitial, t.state);
  EXPECT_EQ("Elb.InitialHealthChecking", t.reason);
  EXPECT_FALSE(ApplyProbeResult(t, spec, pass));
  EXPECT_FALSE(t.routable);
  EXPECT_TRUE(ApplyProbeResult(t, spec, pass));
  EXPECT_EQ(HealthState::kHealthy, t.state);
  EXPECT_EQ("", t.reason);
  EXPECT_TRUE(t.routable);

  // One failure is tolerated; the second in a row turns it unhealthy.
  EXPECT_FALSE(ApplyProbeResult(t, spec, mismatch));
  EXPECT_TRUE(t.routable);
  EXPECT_TRUE(ApplyProbeResult(t, spec, mismatch));
  EXPECT_EQ(HealthState::kUnhealthy, t.state);
  EXPECT_EQ("Target.ResponseCodeMismatch", t.reason);
  EXPECT_EQ("Health checks failed with these codes: [404]", t.description);
  EXPECT_FALSE(t.routable);
  EXPECT_FALSE(ApplyProbeResult(t, spec, timeout));
  EXPECT_EQ("Target.Timeout", t.reason);

  // A pass interrupts the streak; recovery needs three in a row.
  EXPECT_FALSE(ApplyProbeResult(t, spec, pass));
  EXPECT_FALSE(ApplyProbeResult(t, spec, pass));
  EXPECT_TRUE(ApplyProbeResult(t, spec, pass));
  EXPECT_TRUE(t.routable);

  t.draining = true;
  t.UpdateRoutableLocked();
  EXPECT_FALSE(t.routable);
}

}  // namespace
}  // namespace berth::elb
