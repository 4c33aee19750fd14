// SPDX-License-Identifier: Apache-2.0
#include "server/lb_binder.h"

#include <stdlib.h>

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <tuple>

#include <gtest/gtest.h>

#include "ecs/store_task_manager.h"
#include "ecs/taskdef.h"
#include "store/sqlite_store.h"
#include "temp_dir.h"

namespace berth {
namespace {

using berth::testutil::TempDir;

using Json = nlohmann::json;

const char kGroup[] = "arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/tg/1";


// Test double: target groups in memory. A registered target starts
// "initial"; a deregistered one is "draining" until FinishDrains.
class FakeTargets : public elb::TargetRegistry {
 public:
  using Key = std::tuple<std::string, std::string, int>;

  Status Register(const std::string& group, const std::string& ip, int port) override {
    ++register_calls;
    if (!groups.count(group)) {
      return ClientError("TargetGroupNotFound", "One or more target groups not found");
    }
    std::string& state = states[{group, ip, port}];
    if (state.empty() || state == "draining") {
      state = "initial";
    }
    return Ok();
  }

  Status Deregister(const std::string& group, const std::string& ip, int port) override {
    ++deregister_calls;
    if (!groups.count(group)) {
      return ClientError("TargetGroupNotFound", "One or more target groups not found");
    }
    auto it = states.find({group, ip, port});
    if (it != states.end()) {
      it->second = "draining";
    }
    return Ok();
  }

  Result<std::string> TargetHealth(const std::string& group, const std::string& ip,
                                   int port) override {
    auto detail = TargetHealthDetail(group, ip, port);
    if (!detail.ok()) {
      return detail.error();
    }
    return (*detail)["State"].get<std::string>();
  }

  Result<Json> TargetHealthDetail(const std::string& group, const std::string& ip,
                                  int port) override {
    if (on_health) {
      auto hook = std::move(on_health);
      on_health = nullptr;
      hook();
    }
    if (!groups.count(group)) {
      return ClientError("TargetGroupNotFound", "One or more target groups not found");
    }
    auto it = states.find({group, ip, port});
    if (it == states.end()) {
      return Json{{"State", "unused"}, {"Reason", "Target.NotRegistered"}};
    }
    return Json{{"State", it->second}};
  }

  Result<Json> DescribeTargetGroup(const std::string& group) override {
    return Json{{"TargetGroupArn", group}};
  }

  void FinishDrains() {
    for (auto it = states.begin(); it != states.end();) {
      it = it->second == "draining" ? states.erase(it) : std::next(it);
    }
  }

  std::string State(const std::string& ip, int port = 8080) const {
    auto it = states.find({kGroup, ip, port});
    return it == states.end() ? "" : it->second;
  }

  std::set<std::string> groups = {kGroup};
  std::function<void()> on_health;  // runs once, at the next health read
  std::map<Key, std::string> states;
  int register_calls = 0;
  int deregister_calls = 0;
};

Json TaskDefinition() {
  Json request = {
      {"family", "web"},
      {"requiresCompatibilities", {"FARGATE"}},
      {"networkMode", "awsvpc"},
      {"cpu", "256"},
      {"memory", "512"},
      {"containerDefinitions",
       Json::array({{{"name", "app"},
                     {"image", "busybox"},
                     {"portMappings", Json::array({{{"containerPort", 8080}}})}}})}};
  auto td = ecs::NormalizeTaskDefinition(request);
  EXPECT_TRUE(td.ok());
  Json out = *td;
  out["taskDefinitionArn"] = "arn:aws:ecs:us-east-1:000000000000:task-definition/web:1";
  return out;
}

Json LoadBalancers() {
  return Json::array(
      {{{"targetGroupArn", kGroup}, {"containerName", "app"}, {"containerPort", 8080}}});
}

class LoadBalancerBinderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = store::OpenSqliteStore(dir_.File("state.db"));
    ASSERT_TRUE(store.ok()) << store.error().message;
    store_ = std::move(*store);
    ASSERT_TRUE(
        store_->Put("ecs/clusters/c1", Json{{"clusterName", "c1"}, {"status", "ACTIVE"}}.dump())
            .ok());
    Json service = {{"serviceName", "web"},
                    {"clusterArn", "arn:aws:ecs:us-east-1:000000000000:cluster/c1"},
                    {"status", "ACTIVE"},
                    {"healthCheckGracePeriodSeconds", 0},
                    {"loadBalancers", LoadBalancers()}};
    ASSERT_TRUE(store_->Put("ecs/services/c1/web", service.dump()).ok());
    ecs::TaskManagerOptions options;
    tasks_ = std::make_unique<ecs::StoreTaskManager>(*store_, options);
    ecs::NodeRegistration node;
    node.node_id = "n1";
    node.cpu = 4096;
    node.memory = 8192;
    ASSERT_TRUE(tasks_->RegisterNode(node).ok());
    binder_ = std::make_unique<LoadBalancerBinder>(*store_, *tasks_, targets_);
  }

  std::string Start() {
    ecs::StartTasksRequest r;
    r.cluster = "c1";
    r.task_definition = TaskDefinition();
    r.service = "web";
    r.load_balancers = LoadBalancers();
    auto started = tasks_->StartTasks(r);
    EXPECT_TRUE(started.ok());
    std::string arn = started->tasks.front()["taskArn"];
    return arn.substr(arn.rfind('/') + 1);
  }

  void Report(const std::string& id, const std::string& status, const std::string& ip) {
    ecs::TaskReport r;
    r.node_id = "n1";
    r.cluster = "c1";
    r.task_id = id;
    r.seq = ++seq_[id];
    r.last_status = status;
    ecs::NetworkReport net;
    net.private_ipv4_address = ip;
    r.network = net;
    ASSERT_TRUE(tasks_->ApplyReport(r).ok());
  }

  // A task whose containers run at `ip`, registered by a pass.
  std::string Running(const std::string& ip) {
    std::string id = Start();
    Report(id, "RUNNING", ip);
    binder_->Pass();
    EXPECT_EQ("RUNNING", Task(id)["lastStatus"]);
    return id;
  }

  Json Task(const std::string& id) {
    auto t = tasks_->GetTask("c1", id);
    EXPECT_TRUE(t.ok() && t->has_value());
    return **t;
  }

  std::string AgentDesired(const std::string& id) {
    auto desired = store_->Get("ecs/desired/n1/" + id);
    EXPECT_TRUE(desired.ok());
    if (!desired.ok() || !desired->has_value()) {
      return "";
    }
    return Json::parse((*desired)->value)["desiredStatus"];
  }

  TempDir dir_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<ecs::StoreTaskManager> tasks_;
  FakeTargets targets_;
  std::unique_ptr<LoadBalancerBinder> binder_;
  std::map<std::string, int64_t> seq_;
};

TEST_F(LoadBalancerBinderTest, RegistersTheTargetBeforeTheTaskIsRunning) {
  std::string id = Start();
  Report(id, "RUNNING", "172.31.0.5");
  Json held = Task(id);

  binder_->Pass();

  EXPECT_EQ("ACTIVATING", held["lastStatus"]);
  EXPECT_EQ("initial", targets_.State("172.31.0.5"));
  EXPECT_EQ("RUNNING", Task(id)["lastStatus"]);
  EXPECT_EQ("registered", Task(id)["_targets"]);
  EXPECT_FALSE(Task(id)["_targetsHealthy"].get<bool>());
}

TEST_F(LoadBalancerBinderTest, TaskWithoutAddressIsNotRegistered) {
  std::string id = Start();
  ecs::TaskReport r;
  r.node_id = "n1";
  r.cluster = "c1";
  r.task_id = id;
  r.seq = 1;
  r.last_status = "RUNNING";
  ASSERT_TRUE(tasks_->ApplyReport(r).ok());

  binder_->Pass();

  EXPECT_EQ(0, targets_.register_calls);
  EXPECT_EQ("ACTIVATING", Task(id)["lastStatus"]);
}

TEST_F(LoadBalancerBinderTest, CopiesTheTargetHealthIntoTheTask) {
  std::string id = Running("172.31.0.5");

  targets_.states[{kGroup, "172.31.0.5", 8080}] = "healthy";
  binder_->Pass();
  bool healthy = Task(id)["_targetsHealthy"];
  targets_.states[{kGroup, "172.31.0.5", 8080}] = "initial";
  binder_->Pass();

  EXPECT_TRUE(healthy);
  EXPECT_FALSE(Task(id)["_targetsHealthy"].get<bool>());
}

TEST_F(LoadBalancerBinderTest, DeactivatingTaskIsReleasedOnlyOnceItsTargetDrained) {
  std::string id = Running("172.31.0.5");
  targets_.states[{kGroup, "172.31.0.5", 8080}] = "healthy";
  ASSERT_TRUE(tasks_->StopTask("c1", id, "ServiceSchedulerInitiated", "Scaling activity").ok());

  binder_->Pass();
  std::string target_while_draining = targets_.State("172.31.0.5");
  Json task_while_draining = Task(id);
  std::string agent_while_draining = AgentDesired(id);
  binder_->Pass();
  targets_.FinishDrains();
  binder_->Pass();

  EXPECT_EQ("draining", target_while_draining);
  EXPECT_EQ("DEACTIVATING", task_while_draining["lastStatus"]);
  EXPECT_EQ("registered", task_while_draining["_targets"]);
  EXPECT_EQ("RUNNING", agent_while_draining);
  EXPECT_EQ(1, targets_.deregister_calls);
  EXPECT_EQ("released", Task(id)["_targets"]);
  EXPECT_EQ("DEACTIVATING", Task(id)["lastStatus"]);
  EXPECT_EQ("STOPPED", AgentDesired(id));
}

TEST_F(LoadBalancerBinderTest, ATaskStoppedDuringAPassIsStillDrained) {
  std::string id = Running("172.31.0.5");
  targets_.states[{kGroup, "172.31.0.5", 8080}] = "healthy";
  // The service controller stops the task after the pass saw it serving.
  targets_.on_health = [&] {
    ASSERT_TRUE(tasks_->StopTask("c1", id, "ServiceSchedulerInitiated", "Scaling").ok());
  };

  binder_->Pass();
  std::string target_after_first = targets_.State("172.31.0.5");
  std::string held_after_first = Task(id)["_targets"];
  binder_->Pass();
  std::string target_after_second = targets_.State("172.31.0.5");
  std::string held_after_second = Task(id)["_targets"];
  targets_.FinishDrains();
  binder_->Pass();

  EXPECT_EQ("healthy", target_after_first);
  EXPECT_EQ("registered", held_after_first);
  EXPECT_EQ("draining", target_after_second);
  EXPECT_EQ("registered", held_after_second);
  EXPECT_EQ("released", Task(id)["_targets"]);
}

TEST_F(LoadBalancerBinderTest, ARestartedBinderFinishesTheDrain) {
  std::string id = Running("172.31.0.5");
  ASSERT_TRUE(tasks_->StopTask("c1", id, "UserInitiated", "").ok());
  binder_->Pass();

  binder_ = std::make_unique<LoadBalancerBinder>(*store_, *tasks_, targets_);
  binder_->Pass();
  std::string agent_after_restart = AgentDesired(id);
  targets_.FinishDrains();
  binder_->Pass();

  EXPECT_EQ("RUNNING", agent_after_restart);
  EXPECT_EQ("STOPPED", AgentDesired(id));
  EXPECT_EQ("released", Task(id)["_targets"]);
}

TEST_F(LoadBalancerBinderTest, TargetsOfACrashedTaskAreTakenOutAtOnce) {
  std::string id = Running("172.31.0.5");

  Report(id, "STOPPED", "172.31.0.5");
  binder_->Pass();

  EXPECT_EQ("draining", targets_.State("172.31.0.5"));
  EXPECT_EQ("released", Task(id)["_targets"]);
  EXPECT_EQ("STOPPED", Task(id)["lastStatus"]);
}

TEST_F(LoadBalancerBinderTest, AnAddressServingAnotherTaskStaysRegistered) {
  std::string old_task = Running("172.31.0.5");
  Report(old_task, "STOPPED", "172.31.0.5");
  std::string new_task = Start();
  Report(new_task, "RUNNING", "172.31.0.5");

  binder_->Pass();

  EXPECT_EQ("initial", targets_.State("172.31.0.5"));
  EXPECT_EQ(0, targets_.deregister_calls);
  EXPECT_EQ("released", Task(old_task)["_targets"]);
  EXPECT_EQ("RUNNING", Task(new_task)["lastStatus"]);
}

TEST_F(LoadBalancerBinderTest, UnhealthyTaskIsStoppedThroughDeactivating) {
  std::string id = Running("172.31.0.5");
  targets_.states[{kGroup, "172.31.0.5", 8080}] = "unhealthy";

  binder_->Pass();

  Json task = Task(id);
  EXPECT_EQ("DEACTIVATING", task["lastStatus"]);
  EXPECT_EQ("ServiceSchedulerInitiated", task["stopCode"]);
  EXPECT_EQ(std::string("Task failed ELB health checks in (target-group ") + kGroup + ")",
            task["stoppedReason"]);
}

TEST_F(LoadBalancerBinderTest, TasksOfAServiceThatLostItsLoadBalancersAreStillDrained) {
  std::string id = Running("172.31.0.5");
  Json service = Json::parse((*store_->Get("ecs/services/c1/web"))->value);
  service["loadBalancers"] = Json::array();
  ASSERT_TRUE(store_->Put("ecs/services/c1/web", service.dump()).ok());
  ASSERT_TRUE(tasks_->StopTask("c1", id, "UserInitiated", "").ok());

  int passes_to_deregister = 0;
  while (targets_.State("172.31.0.5") != "draining" && passes_to_deregister < 50) {
    binder_->Pass();
    ++passes_to_deregister;
  }
  targets_.FinishDrains();
  int passes_to_release = 0;
  while (Task(id)["_targets"] != "released" && passes_to_release < 50) {
    binder_->Pass();
    ++passes_to_release;
  }

  EXPECT_LE(passes_to_deregister, 20);
  EXPECT_LE(passes_to_release, 20);
  EXPECT_EQ("released", Task(id)["_targets"]);
  EXPECT_EQ("STOPPED", AgentDesired(id));
}

TEST_F(LoadBalancerBinderTest, AMissingTargetGroupDoesNotHoldTheTask) {
  targets_.groups.clear();
  std::string id = Start();
  Report(id, "RUNNING", "172.31.0.5");

  binder_->Pass();
  ASSERT_TRUE(tasks_->StopTask("c1", id, "UserInitiated", "").ok());
  binder_->Pass();

  EXPECT_EQ("released", Task(id)["_targets"]);
  EXPECT_EQ("STOPPED", AgentDesired(id));
}

}  // namespace
}  // namespace berth
