// SPDX-License-Identifier: Apache-2.0
#include "ecs/service_controller.h"

#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/time_util.h"
#include "ecs/ecs_api.h"
#include "ecs/services.h"
#include "store/store.h"
#include "temp_dir.h"

namespace berth::ecs {
namespace {

using berth::testutil::TempDir;

using ::testing::ElementsAre;
using ::testing::HasSubstr;

const char kCluster[] = "c1";

// A fresh directory, removed with everything in it at the end of the test.

// Test double: an in-memory TaskManager. Tasks it starts stay PROVISIONING
// until the test moves them on (Run, Crash, FailToStart, FinishStopping),
// the way the agent would.
class FakeTaskManager : public TaskManager {
 public:
  explicit FakeTaskManager(const double& now) : now_(now) {}

  Result<StartTasksResult> StartTasks(const StartTasksRequest& request) override {
    ++start_calls;
    requests.push_back(request);
    StartTasksResult result;
    for (int i = 0; i < request.count; ++i) {
      if (capacity >= 0 && ActiveCount() >= capacity) {
        result.failures.push_back({{"reason", "RESOURCE:CPU"}});
        continue;
      }
      char id[33];
      snprintf(id, sizeof(id), "%032x", ++next_id_);
      Json task = {
          {"taskArn", std::string("arn:aws:ecs:us-east-1:000000000000:task/") + request.cluster +
                          "/" + id},
          {"lastStatus", "PROVISIONING"},
          {"desiredStatus", "RUNNING"},
          {"createdAt", now_},
          {"startedBy", request.started_by},
          {"group", request.group},
          {"healthStatus", "UNKNOWN"},
          {"_cluster", request.cluster},
          {"_service", request.service},
          {"_deployment", request.deployment_id},
      };
      if (!request.load_balancers.empty()) {
        task["_loadBalancers"] = request.load_balancers;
      }
      order_.push_back(id);
      tasks_[id] = task;
      result.tasks.push_back(task);
    }
    return result;
  }

  Result<Json> StopTask(const std::string& cluster, const std::string& task_id,
                        const std::string& stop_code, const std::string& reason) override {
    auto it = tasks_.find(task_id);
    if (it == tasks_.end()) {
      return ClientError("InvalidParameterException", "The referenced task was not found.");
    }
    Json& t = it->second;
    if (t["desiredStatus"] != "STOPPED") {
      t["desiredStatus"] = "STOPPED";
      t["stopCode"] = stop_code;
      t["stoppedReason"] = reason;
      t["stoppingAt"] = now_;
    }
    return t;
  }

  Result<std::vector<Json>> FindTasks(const TaskFilter& filter) override {
    std::vector<Json> out;
    for (const auto& id : order_) {
      const Json& t = tasks_.at(id);
      if (t["_cluster"] != filter.cluster) {
        continue;
      }
      if (filter.service && t["_service"] != *filter.service) {
        continue;
      }
      out.push_back(t);
    }
    return out;
  }

  Result<Json> MarkTargetsRegistered(const std::string&, const std::string& task_id) override {
    tasks_.at(task_id)["_targets"] = "registered";
    return tasks_.at(task_id);
  }
  Result<Json> SetTargetsHealthy(const std::string&, const std::string& task_id,
                                 bool healthy) override {
    tasks_.at(task_id)["_targetsHealthy"] = healthy;
    return tasks_.at(task_id);
  }
  Result<Json> MarkTargetsReleased(const std::string&, const std::string& task_id) override {
    tasks_.at(task_id)["_targets"] = "released";
    return tasks_.at(task_id);
  }

  // Agent-side moves.
  void Run(const std::string& id, const std::string& health = "UNKNOWN") {
    Json& t = tasks_.at(id);
    t["lastStatus"] = "RUNNING";
    t["startedAt"] = now_;
    t["healthStatus"] = health;
  }
  void RunPending(const std::string& health = "UNKNOWN") {
    for (const auto& id : order_) {
      Json& t = tasks_.at(id);
      if (t["desiredStatus"] == "RUNNING" && t["lastStatus"] == "PROVISIONING") {
        Run(id, health);
      }
    }
  }
  void SetHealth(const std::string& id, const std::string& health) {
    tasks_.at(id)["healthStatus"] = health;
  }
  void Crash(const std::string& id) {
    Json& t = tasks_.at(id);
    t["lastStatus"] = "STOPPED";
    t["desiredStatus"] = "STOPPED";
    t["stopCode"] = "EssentialContainerExited";
    t["stoppedReason"] = "Essential container in task exited";
    t["stoppedAt"] = now_;
  }
  void FailToStart(const std::string& id) {
    Json& t = tasks_.at(id);
    t["lastStatus"] = "STOPPED";
    t["desiredStatus"] = "STOPPED";
    t["stopCode"] = "TaskFailedToStart";
    t["stoppedReason"] = "CannotPullContainerError: pull access denied";
    t["stoppedAt"] = now_;
  }
  void FailPending() {
    for (const auto& id : order_) {
      Json& t = tasks_.at(id);
      if (t["desiredStatus"] == "RUNNING" && t["lastStatus"] == "PROVISIONING") {
        FailToStart(id);
      }
    }
  }
  void FinishStopping() {
    for (auto& [id, t] : tasks_) {
      if (t["desiredStatus"] == "STOPPED" && t["lastStatus"] != "STOPPED") {
        t["lastStatus"] = "STOPPED";
        t["stoppedAt"] = now_;
      }
    }
  }
  void Forget(const std::string& id) {
    tasks_.erase(id);
    order_.erase(std::find(order_.begin(), order_.end(), id));
  }

  // Views for assertions.
  const Json& Task(const std::string& id) const { return tasks_.at(id); }
  std::vector<std::string> Ids(const std::string& deployment = "",
                               bool active_only = true) const {
    std::vector<std::string> out;
    for (const auto& id : order_) {
      const Json& t = tasks_.at(id);
      if (active_only && t["desiredStatus"] != "RUNNING") {
        continue;
      }
      if (!deployment.empty() && t["_deployment"] != deployment) {
        continue;
      }
      out.push_back(id);
    }
    return out;
  }
  int ActiveCount() const { return static_cast<int>(Ids().size()); }
  int NotStoppedCount() const {
    int n = 0;
    for (const auto& [id, t] : tasks_) {
      n += t["lastStatus"] != "STOPPED";
    }
    return n;
  }
  int HealthyRunning() const {
    int n = 0;
    for (const auto& [id, t] : tasks_) {
      n += t["desiredStatus"] == "RUNNING" && t["lastStatus"] == "RUNNING";
    }
    return n;
  }

  int capacity = -1;  // most active tasks; -1: unlimited
  int start_calls = 0;
  std::vector<StartTasksRequest> requests;

 private:
  const double& now_;
  int next_id_ = 0;
  std::vector<std::string> order_;
  std::map<std::string, Json> tasks_;
};

Json TaskDefinition(const std::string& family, int revision, bool health_check = false) {
  Json app = {{"name", "app"},
              {"image", "nginx"},
              {"essential", true},
              {"portMappings",
               Json::array({{{"containerPort", 80}, {"hostPort", 80}, {"protocol", "tcp"}}})}};
  if (health_check) {
    app["healthCheck"] = {{"command", {"CMD-SHELL", "true"}}, {"interval", 5}};
  }
  return {{"taskDefinitionArn", "arn:aws:ecs:us-east-1:000000000000:task-definition/" + family +
                                    ":" + std::to_string(revision)},
          {"family", family},
          {"revision", revision},
          {"status", "ACTIVE"},
          {"networkMode", "awsvpc"},
          {"compatibilities", {"EC2", "FARGATE"}},
          {"requiresCompatibilities", {"FARGATE"}},
          {"cpu", "256"},
          {"memory", "512"},
          {"containerDefinitions", Json::array({app})}};
}

struct ServiceSpec {
  std::string name = "web";
  int desired = 2;
  int max_percent = 200;
  int min_percent = 100;
  bool breaker = false;
  bool rollback = false;
  bool health_check = false;
  int grace = 0;
  std::string launch_type = "FARGATE";
  bool load_balancer = false;
};

Json LoadBalancers() {
  return Json::array({{{"targetGroupArn",
                        "arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/tg/1"},
                       {"containerName", "app"},
                       {"containerPort", 80}}});
}

class ServiceControllerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = store::OpenSqliteStore(dir_.File("state.db"));
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    store_ = std::move(opened.value());
    api_ = std::make_unique<EcsApi>(*store_, api::AccountInfo{});
    ASSERT_TRUE(api_->CreateCluster({{"clusterName", kCluster}}, ctx_).ok());
    controller_ = MakeController();
  }

  std::unique_ptr<ServiceController> MakeController() {
    ServiceControllerOptions options;
    options.tick = std::chrono::milliseconds(50);
    options.backoff_base_seconds = 1;
    options.backoff_max_seconds = 8;
    return std::make_unique<ServiceController>(*store_, fake_, options, [this] { return now_; });
  }

  // Writes a service document the way CreateService stores it.
  void CreateService(const ServiceSpec& spec) {
    Json td = TaskDefinition("web", 1, spec.health_check);
    Json network = {{"awsvpcConfiguration",
                     {{"subnets", Json::array({"subnet-1"})}, {"assignPublicIp", "DISABLED"}}}};
    Json deployment = {{"id", "ecs-svc/1000000000000000001"},
                       {"status", "PRIMARY"},
                       {"taskDefinition", td["taskDefinitionArn"]},
                       {"desiredCount", spec.desired},
                       {"pendingCount", 0},
                       {"runningCount", 0},
                       {"failedTasks", 0},
                       {"createdAt", now_},
                       {"updatedAt", now_},
                       {"launchType", spec.launch_type},
                       {"platformVersion", "1.4.0"},
                       {"platformFamily", "Linux"},
                       {"networkConfiguration", network},
                       {"rolloutState", "IN_PROGRESS"},
                       {"rolloutStateReason",
                        "ECS deployment ecs-svc/1000000000000000001 in progress."},
                       {"_taskDefinition", td}};
    Json service = {
        {"serviceArn", "arn:aws:ecs:us-east-1:000000000000:service/c1/" + spec.name},
        {"serviceName", spec.name},
        {"clusterArn", "arn:aws:ecs:us-east-1:000000000000:cluster/c1"},
        {"status", "ACTIVE"},
        {"desiredCount", spec.desired},
        {"runningCount", 0},
        {"pendingCount", 0},
        {"launchType", spec.launch_type},
        {"platformVersion", "LATEST"},
        {"taskDefinition", td["taskDefinitionArn"]},
        {"deploymentConfiguration",
         {{"maximumPercent", spec.max_percent},
          {"minimumHealthyPercent", spec.min_percent},
          {"deploymentCircuitBreaker", {{"enable", spec.breaker}, {"rollback", spec.rollback}}}}},
        {"networkConfiguration", network},
        {"healthCheckGracePeriodSeconds", spec.grace},
        {"schedulingStrategy", "REPLICA"},
        {"loadBalancers", spec.load_balancer ? LoadBalancers() : Json::array()},
        {"placementConstraints", Json::array()},
        {"placementStrategy", Json::array()},
        {"events", Json::array()},
        {"tags", Json::array({{{"key", "team"}, {"value", "blue"}}})},
        {"propagateTags", "SERVICE"},
        {"enableECSManagedTags", true},
        {"createdAt", now_},
        {"deployments", Json::array({deployment})},
    };
    ASSERT_TRUE(store_->Put(ServiceKey(kCluster, spec.name), service.dump()).ok());
  }

  Json Service(const std::string& name = "web") {
    auto entry = store_->Get(ServiceKey(kCluster, name));
    EXPECT_TRUE(entry.ok() && entry->has_value());
    return Json::parse((*entry)->value);
  }

  void Reconcile(const std::string& name = "web") {
    auto done = controller_->ReconcileService(kCluster, name);
    ASSERT_TRUE(done.ok()) << done.error().message;
  }

  std::vector<std::string> Messages(const std::string& name = "web") {
    std::vector<std::string> out;
    Json svc = Service(name);
    for (const auto& e : svc["events"]) {
      out.push_back(e["message"]);
    }
    return out;
  }

  Json Primary(const std::string& name = "web") {
    Json svc = Service(name);
    for (const auto& d : svc["deployments"]) {
      if (d["status"] == "PRIMARY") {
        return d;
      }
    }
    return Json();
  }

  Result<Json> ForceNewDeployment(const std::string& name = "web") {
    return api_->UpdateService(
        {{"cluster", kCluster}, {"service", name}, {"forceNewDeployment", true}}, ctx_);
  }

  // Brings a fresh service to its first steady state with every task running.
  void Steady(const ServiceSpec& spec) {
    CreateService(spec);
    Reconcile(spec.name);
    fake_.RunPending(spec.health_check ? "HEALTHY" : "UNKNOWN");
    Reconcile(spec.name);
    ASSERT_EQ("COMPLETED", Primary(spec.name)["rolloutState"]);
  }

  TempDir dir_;
  double now_ = NowEpochSeconds();
  FakeTaskManager fake_{now_};
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<EcsApi> api_;
  std::unique_ptr<ServiceController> controller_;
  api::CallContext ctx_{"000000000000", "us-east-1", "req", "AKID"};
};

// --- arithmetic -----------------------------------------------------------

TEST(ServiceRulesTest, MaximumPercentRoundsDown) {
  EXPECT_EQ(4, MaxTasksDuringDeployment(2, 200));
  EXPECT_EQ(4, MaxTasksDuringDeployment(3, 150));  // 4.5
  EXPECT_EQ(3, MaxTasksDuringDeployment(3, 100));
  EXPECT_EQ(0, MaxTasksDuringDeployment(0, 200));
  EXPECT_EQ(10000, MaxTasksDuringDeployment(5000, 200));
}

TEST(ServiceRulesTest, MinimumHealthyPercentRoundsUp) {
  EXPECT_EQ(2, MinHealthyTasks(3, 50));  // 1.5
  EXPECT_EQ(2, MinHealthyTasks(2, 100));
  EXPECT_EQ(0, MinHealthyTasks(4, 0));
  EXPECT_EQ(1, MinHealthyTasks(1, 50));
  EXPECT_EQ(1, MinHealthyTasks(1, 1));
  EXPECT_EQ(0, MinHealthyTasks(0, 100));
}

TEST(ServiceRulesTest, CircuitBreakerThresholdIsHalfDesiredBetween3And200) {
  EXPECT_EQ(3, CircuitBreakerThreshold(0));
  EXPECT_EQ(3, CircuitBreakerThreshold(1));
  EXPECT_EQ(3, CircuitBreakerThreshold(6));
  EXPECT_EQ(4, CircuitBreakerThreshold(7));
  EXPECT_EQ(13, CircuitBreakerThreshold(25));
  EXPECT_EQ(200, CircuitBreakerThreshold(399));
  EXPECT_EQ(200, CircuitBreakerThreshold(400));
  EXPECT_EQ(200, CircuitBreakerThreshold(5000));
}

TEST(ServiceRulesTest, DeploymentIdsHaveNineteenDigits) {
  std::set<std::string> seen;
  for (int i = 0; i < 200; ++i) {
    std::string id = NewDeploymentId();
    EXPECT_TRUE(std::regex_match(id, std::regex("^ecs-svc/[1-9][0-9]{18}$"))) << id;
    seen.insert(id);
  }
  EXPECT_EQ(200u, seen.size());
}

TEST(ServiceRulesTest, EventsAreNewestFirstAndCappedAt100) {
  Json svc = {{"events", Json::array()}};
  for (int i = 0; i < 130; ++i) {
    AddServiceEvent(svc, "event " + std::to_string(i), 1000.0 + i);
  }
  ASSERT_EQ(100u, svc["events"].size());
  EXPECT_EQ("event 129", svc["events"][0]["message"]);
  EXPECT_EQ("event 30", svc["events"][99]["message"]);
  EXPECT_EQ(1129.0, svc["events"][0]["createdAt"].get<double>());
  EXPECT_EQ(36u, svc["events"][0]["id"].get<std::string>().size());
}

TEST(ServiceRulesTest, PublicViewDropsInternalMembers) {
  Json svc = {{"serviceName", "a"},
              {"_steady", true},
              {"deployments", {{{"id", "x"}, {"_taskDefinition", Json::object()}}}}};
  Json view = PublicServiceView(svc);
  EXPECT_FALSE(view.contains("_steady"));
  EXPECT_FALSE(view["deployments"][0].contains("_taskDefinition"));
  EXPECT_EQ("x", view["deployments"][0]["id"]);
}

// --- scaling and steady state ----------------------------------------------

TEST_F(ServiceControllerTest, StartsDesiredTasksThenCompletesWithSteadyState) {
  CreateService({});
  Reconcile();

  std::vector<std::string> ids = fake_.Ids();
  ASSERT_EQ(2u, ids.size());
  EXPECT_THAT(Messages(), ElementsAre("(service web) has started 2 tasks: (task " + ids[0] +
                                      ") (task " + ids[1] + ")."));
  const StartTasksRequest& req = fake_.requests.at(0);
  EXPECT_EQ("ecs-svc/1000000000000000001", req.started_by);
  EXPECT_EQ("ecs-svc/1000000000000000001", req.deployment_id);
  EXPECT_EQ("service:web", req.group);
  EXPECT_EQ("web", req.service);
  EXPECT_EQ("subnet-1", req.network_configuration["awsvpcConfiguration"]["subnets"][0]);
  EXPECT_EQ("arn:aws:ecs:us-east-1:000000000000:task-definition/web:1",
            req.task_definition["taskDefinitionArn"]);
  // propagateTags SERVICE and managed tags.
  EXPECT_EQ(3u, req.tags.size());
  EXPECT_EQ("team", req.tags[0]["key"]);
  EXPECT_EQ("aws:ecs:serviceName", req.tags[1]["key"]);
  EXPECT_EQ("web", req.tags[1]["value"]);

  Reconcile();  // observes the PROVISIONING tasks as pending
  Json svc = Service();
  EXPECT_EQ(2, svc["pendingCount"]);
  EXPECT_EQ(0, svc["runningCount"]);
  EXPECT_EQ("IN_PROGRESS", Primary()["rolloutState"]);

  fake_.RunPending();
  Reconcile();
  svc = Service();
  EXPECT_EQ(2, svc["runningCount"]);
  EXPECT_EQ(0, svc["pendingCount"]);
  ASSERT_EQ(1u, svc["deployments"].size());
  EXPECT_EQ("COMPLETED", Primary()["rolloutState"]);
  EXPECT_EQ("ECS deployment ecs-svc/1000000000000000001 completed.",
            Primary()["rolloutStateReason"]);
  EXPECT_EQ(2, Primary()["runningCount"]);
  std::vector<std::string> messages = Messages();
  ASSERT_EQ(3u, messages.size());
  EXPECT_EQ("(service web) has reached a steady state.", messages[0]);
  EXPECT_EQ("(service web) (deployment ecs-svc/1000000000000000001) deployment completed.",
            messages[1]);

  // A pass over a steady service writes nothing.
  int64_t revision = store_->Revision();
  Reconcile();
  EXPECT_EQ(revision, store_->Revision());
  EXPECT_EQ(1, fake_.start_calls);
}

TEST_F(ServiceControllerTest, ReplacesCrashedTaskAndCountsTheFailure) {
  Steady({});
  std::string crashed = fake_.Ids()[0];
  fake_.Crash(crashed);
  Reconcile();

  std::vector<std::string> ids = fake_.Ids();
  ASSERT_EQ(2u, ids.size());
  EXPECT_EQ(ids.end(), std::find(ids.begin(), ids.end(), crashed));
  EXPECT_EQ("(service web) has started 1 tasks: (task " + ids[1] + ").", Messages()[0]);
  EXPECT_EQ(1, Primary()["failedTasks"]);
  EXPECT_EQ(1, Service()["runningCount"]);

  fake_.RunPending();
  Reconcile();
  EXPECT_EQ("(service web) has reached a steady state.", Messages()[0]);
  EXPECT_EQ(2, Service()["runningCount"]);
  EXPECT_EQ("COMPLETED", Primary()["rolloutState"]);

  // Counted once, however many passes and controllers look at it.
  controller_ = MakeController();
  Reconcile();
  Reconcile();
  EXPECT_EQ(1, Primary()["failedTasks"]);
}

TEST_F(ServiceControllerTest, ScalesInStoppingPendingTasksFirst) {
  Steady({.desired = 2});
  ASSERT_TRUE(api_->UpdateService({{"cluster", kCluster}, {"service", "web"}, {"desiredCount", 3}},
                                  ctx_)
                  .ok());
  Reconcile();
  ASSERT_EQ(3, fake_.ActiveCount());
  std::string pending = fake_.Ids().back();

  ASSERT_TRUE(api_->UpdateService({{"cluster", kCluster}, {"service", "web"}, {"desiredCount", 1}},
                                  ctx_)
                  .ok());
  Reconcile();
  EXPECT_EQ(1, fake_.ActiveCount());
  EXPECT_EQ("STOPPED", fake_.Task(pending)["desiredStatus"]);
  EXPECT_EQ("ServiceSchedulerInitiated", fake_.Task(pending)["stopCode"]);
  EXPECT_EQ("Scaling activity initiated by (deployment ecs-svc/1000000000000000001)",
            fake_.Task(pending)["stoppedReason"]);
  std::vector<std::string> messages = Messages();
  EXPECT_THAT(messages[0], HasSubstr("has stopped 1 pending tasks: (task " + pending + ")."));
  EXPECT_THAT(messages[1], HasSubstr("has stopped 1 running tasks"));

  fake_.FinishStopping();
  Reconcile();
  EXPECT_EQ("(service web) has reached a steady state.", Messages()[0]);
  EXPECT_EQ(1, Service()["runningCount"]);
  EXPECT_EQ(1u, Service()["deployments"].size());
}

// --- deployments -----------------------------------------------------------

TEST_F(ServiceControllerTest, ForceNewDeploymentReplacesEveryTask) {
  Steady({.desired = 2});
  std::vector<std::string> old = fake_.Ids();

  auto updated = ForceNewDeployment();
  ASSERT_TRUE(updated.ok()) << updated.error().message;
  const Json& deployments = (*updated)["service"]["deployments"];
  ASSERT_EQ(2u, deployments.size());
  std::string fresh = deployments[0]["id"];
  EXPECT_NE("ecs-svc/1000000000000000001", fresh);
  EXPECT_EQ("PRIMARY", deployments[0]["status"]);
  EXPECT_EQ("IN_PROGRESS", deployments[0]["rolloutState"]);
  EXPECT_EQ("ECS deployment " + fresh + " in progress.", deployments[0]["rolloutStateReason"]);
  EXPECT_EQ(deployments[1]["taskDefinition"], deployments[0]["taskDefinition"]);
  EXPECT_EQ("ACTIVE", deployments[1]["status"]);
  EXPECT_LE(now_, deployments[0]["createdAt"].get<double>());
  EXPECT_LE(deployments[1]["createdAt"].get<double>(), deployments[0]["createdAt"].get<double>());
  EXPECT_FALSE(deployments[0].contains("_taskDefinition"));

  // Up to 200%: two new tasks next to the two old ones, which stay.
  Reconcile();
  EXPECT_EQ(2u, fake_.Ids(fresh).size());
  EXPECT_EQ(4, fake_.ActiveCount());
  EXPECT_EQ(fresh, Primary()["id"]);

  // New tasks running: the old ones are stopped by the scheduler.
  fake_.RunPending();
  Reconcile();
  for (const auto& id : old) {
    EXPECT_EQ("STOPPED", fake_.Task(id)["desiredStatus"]);
    EXPECT_EQ("ServiceSchedulerInitiated", fake_.Task(id)["stopCode"]);
    EXPECT_EQ("Scaling activity initiated by (deployment " + fresh + ")",
              fake_.Task(id)["stoppedReason"]);
  }
  EXPECT_EQ("(service web) has stopped 2 running tasks: (task " + old[0] + ") (task " + old[1] +
                ").",
            Messages()[0]);
  // Still two deployments until the old tasks are really gone.
  EXPECT_EQ(2u, Service()["deployments"].size());

  fake_.FinishStopping();
  Reconcile();
  Json svc = Service();
  ASSERT_EQ(1u, svc["deployments"].size());
  EXPECT_EQ(fresh, svc["deployments"][0]["id"]);
  EXPECT_EQ("COMPLETED", svc["deployments"][0]["rolloutState"]);
  EXPECT_EQ(2, svc["runningCount"]);
  EXPECT_EQ("(service web) has reached a steady state.", Messages()[0]);
  EXPECT_EQ("(service web) (deployment " + fresh + ") deployment completed.", Messages()[1]);
}

TEST_F(ServiceControllerTest, MinimumHealthyPercentIsHeldThroughoutARollingDeployment) {
  Steady({.desired = 4, .max_percent = 100, .min_percent = 50});
  ASSERT_TRUE(ForceNewDeployment().ok());
  std::string fresh = Primary()["id"];

  for (int step = 0; step < 10 && Service()["deployments"].size() > 1; ++step) {
    Reconcile();
    EXPECT_LE(fake_.NotStoppedCount(), 4) << "maximumPercent 100 exceeded at step " << step;
    EXPECT_GE(fake_.HealthyRunning(), 2) << "minimumHealthyPercent 50 broken at step " << step;
    fake_.FinishStopping();
    fake_.RunPending();
  }
  Reconcile();
  EXPECT_EQ(1u, Service()["deployments"].size());
  EXPECT_EQ("COMPLETED", Primary()["rolloutState"]);
  EXPECT_EQ(4u, fake_.Ids(fresh).size());
}

TEST_F(ServiceControllerTest, FirstStepOfHalfHealthyDeploymentStopsHalfTheOldTasks) {
  Steady({.desired = 4, .max_percent = 100, .min_percent = 50});
  ASSERT_TRUE(ForceNewDeployment().ok());
  Reconcile();
  // No room to start (4 of 4 in flight), so two old tasks go first.
  EXPECT_EQ(2, fake_.ActiveCount());
  EXPECT_EQ(0u, fake_.Ids(Primary()["id"]).size());
  fake_.FinishStopping();
  Reconcile();
  EXPECT_EQ(2u, fake_.Ids(Primary()["id"]).size());
}

TEST_F(ServiceControllerTest, MaximumPercentCapsTheNewTasks) {
  Steady({.desired = 3, .max_percent = 150, .min_percent = 100});
  ASSERT_TRUE(ForceNewDeployment().ok());
  Reconcile();
  // floor(3 * 1.5) = 4 in flight: one new task.
  EXPECT_EQ(1u, fake_.Ids(Primary()["id"]).size());
  EXPECT_EQ(4, fake_.ActiveCount());
}

TEST_F(ServiceControllerTest, ConfigurationThatCannotMoveSaysSoOnce) {
  Steady({.desired = 2, .max_percent = 100, .min_percent = 100});
  ASSERT_TRUE(ForceNewDeployment().ok());
  Reconcile();
  Reconcile();
  Reconcile();
  int count = 0;
  for (const auto& m : Messages()) {
    count += m == "(service web) was unable to stop or start tasks during a deployment because "
                  "of the service deployment configuration. Update the minimumHealthyPercent or "
                  "maximumPercent value and try again.";
  }
  EXPECT_EQ(1, count);
  EXPECT_EQ(2, fake_.ActiveCount());
}

TEST_F(ServiceControllerTest, WaitsForHealthyTasksWhenTheTaskDefinitionChecksHealth) {
  CreateService({.desired = 2, .health_check = true});
  Reconcile();
  fake_.RunPending("UNKNOWN");
  Reconcile();
  EXPECT_EQ("IN_PROGRESS", Primary()["rolloutState"]);
  EXPECT_EQ(2, Service()["runningCount"]);

  for (const auto& id : fake_.Ids()) {
    fake_.SetHealth(id, "HEALTHY");
  }
  Reconcile();
  EXPECT_EQ("COMPLETED", Primary()["rolloutState"]);
}

TEST_F(ServiceControllerTest, BehindALoadBalancerOldTasksStayUntilNewTargetsAreHealthy) {
  CreateService({.desired = 2, .load_balancer = true});
  Reconcile();
  fake_.RunPending();
  Reconcile();
  std::string before_healthy = Primary()["rolloutState"];
  std::vector<std::string> old = fake_.Ids();
  for (const auto& id : old) {
    ASSERT_TRUE(fake_.SetTargetsHealthy(kCluster, id, true).ok());
  }
  Reconcile();
  ASSERT_EQ("COMPLETED", Primary()["rolloutState"]);

  ASSERT_TRUE(ForceNewDeployment().ok());
  std::string fresh = Primary()["id"];
  Reconcile();
  fake_.RunPending();
  Reconcile();
  int old_kept_while_new_unhealthy = 0;
  for (const auto& id : old) {
    old_kept_while_new_unhealthy += fake_.Task(id)["desiredStatus"] == "RUNNING";
  }
  for (const auto& id : fake_.Ids(fresh)) {
    ASSERT_TRUE(fake_.SetTargetsHealthy(kCluster, id, true).ok());
  }
  Reconcile();

  EXPECT_EQ("IN_PROGRESS", before_healthy);
  EXPECT_EQ(LoadBalancers(), fake_.requests.back().load_balancers);
  EXPECT_EQ(LoadBalancers(), fake_.Task(fake_.Ids(fresh)[0])["_loadBalancers"]);
  EXPECT_EQ(2, old_kept_while_new_unhealthy);
  for (const auto& id : old) {
    EXPECT_EQ("STOPPED", fake_.Task(id)["desiredStatus"]);
  }
}

TEST_F(ServiceControllerTest, ReplacesTasksThatFailHealthChecksAfterTheGracePeriod) {
  Steady({.desired = 2, .health_check = true, .grace = 60});
  std::string sick = fake_.Ids()[0];
  now_ += 10;
  fake_.SetHealth(sick, "UNHEALTHY");
  Reconcile();
  EXPECT_EQ("RUNNING", fake_.Task(sick)["desiredStatus"]) << "stopped within the grace period";

  now_ += 60;
  Reconcile();
  EXPECT_EQ("STOPPED", fake_.Task(sick)["desiredStatus"]);
  EXPECT_EQ("ServiceSchedulerInitiated", fake_.Task(sick)["stopCode"]);
  EXPECT_EQ("Task failed container health checks", fake_.Task(sick)["stoppedReason"]);
  std::vector<std::string> messages = Messages();
  EXPECT_NE(messages.end(), std::find(messages.begin(), messages.end(),
                                      "(service web) (task " + sick +
                                          ") failed container health checks."));
  EXPECT_EQ(2, fake_.ActiveCount()) << "a replacement starts in the same pass";

  Reconcile();
  EXPECT_EQ(1, Primary()["failedTasks"]);
}

// --- circuit breaker -------------------------------------------------------

TEST_F(ServiceControllerTest, CircuitBreakerFailsTheDeploymentAtThreshold) {
  Steady({.desired = 2, .breaker = true, .rollback = false});
  ASSERT_TRUE(ForceNewDeployment().ok());
  std::string bad = Primary()["id"];

  Reconcile();  // two new tasks
  fake_.FailPending();
  Reconcile();  // two failures counted, two more started
  EXPECT_EQ(2, Primary()["failedTasks"]);
  EXPECT_EQ("IN_PROGRESS", Primary()["rolloutState"]);
  fake_.FailPending();
  Reconcile();  // threshold 3 reached

  Json primary = Primary();
  EXPECT_EQ(bad, primary["id"]);
  EXPECT_EQ("FAILED", primary["rolloutState"]);
  EXPECT_EQ("ECS deployment circuit breaker: tasks failed to start.",
            primary["rolloutStateReason"]);
  EXPECT_EQ(4, primary["failedTasks"]);
  std::vector<std::string> messages = Messages();
  EXPECT_NE(messages.end(),
            std::find(messages.begin(), messages.end(),
                      "(service web) (deployment " + bad +
                          ") deployment failed: tasks failed to start."));

  // A failed deployment launches nothing more; the old tasks keep serving.
  int calls = fake_.start_calls;
  now_ += 120;
  Reconcile();
  Reconcile();
  EXPECT_EQ(calls, fake_.start_calls);
  EXPECT_EQ(2, fake_.ActiveCount());
  EXPECT_EQ(2u, Service()["deployments"].size());
}

TEST_F(ServiceControllerTest, CircuitBreakerThresholdGrowsWithDesiredCount) {
  Steady({.desired = 8, .breaker = true});
  ASSERT_TRUE(ForceNewDeployment().ok());
  Reconcile();  // 8 new tasks (200%)
  std::vector<std::string> fresh = fake_.Ids(Primary()["id"]);
  ASSERT_EQ(8u, fresh.size());
  for (int i = 0; i < 3; ++i) {
    fake_.FailToStart(fresh[i]);
  }
  Reconcile();
  EXPECT_EQ(3, Primary()["failedTasks"]);
  EXPECT_EQ("IN_PROGRESS", Primary()["rolloutState"]) << "threshold for 8 tasks is 4";
  fake_.FailToStart(fresh[3]);
  Reconcile();
  EXPECT_EQ("FAILED", Primary()["rolloutState"]);
}

TEST_F(ServiceControllerTest, CircuitBreakerRollsBackToTheLastCompletedDeployment) {
  Steady({.desired = 2, .breaker = true, .rollback = true});
  std::string good = Primary()["id"];
  std::vector<std::string> good_tasks = fake_.Ids();
  ASSERT_TRUE(ForceNewDeployment().ok());
  std::string bad = Primary()["id"];

  Reconcile();  // two new tasks
  fake_.FailPending();
  Reconcile();  // two failures counted, two more tasks
  std::vector<std::string> second = fake_.Ids(bad);
  ASSERT_EQ(2u, second.size());
  fake_.FailToStart(second[0]);
  Reconcile();  // the third failure trips the breaker

  Json svc = Service();
  ASSERT_EQ(2u, svc["deployments"].size());
  Json primary = svc["deployments"][0];
  EXPECT_EQ(good, primary["id"]) << "the completed deployment comes back with its id";
  EXPECT_EQ("PRIMARY", primary["status"]);
  EXPECT_EQ("IN_PROGRESS", primary["rolloutState"]);
  EXPECT_EQ("ECS deployment circuit breaker: rolling back to deploymentId " + good + ".",
            primary["rolloutStateReason"]);
  Json failed = svc["deployments"][1];
  EXPECT_EQ(bad, failed["id"]);
  EXPECT_EQ("ACTIVE", failed["status"]);
  EXPECT_EQ("FAILED", failed["rolloutState"]);
  std::vector<std::string> messages = Messages();
  ASSERT_GE(messages.size(), 3u);
  EXPECT_EQ("(service web) has stopped 1 pending tasks: (task " + second[1] + ").", messages[0]);
  EXPECT_EQ("(service web) rolling back to deployment " + good + ".", messages[1]);
  EXPECT_EQ("(service web) (deployment " + bad + ") deployment failed: tasks failed to start.",
            messages[2]);

  // The failed deployment's last task is stopped; the old tasks were never
  // touched, and the rollback completes on its own.
  EXPECT_EQ("STOPPED", fake_.Task(second[1])["desiredStatus"]);
  for (const auto& id : good_tasks) {
    EXPECT_EQ("RUNNING", fake_.Task(id)["desiredStatus"]);
  }
  fake_.FinishStopping();
  Reconcile();
  svc = Service();
  ASSERT_EQ(1u, svc["deployments"].size());
  EXPECT_EQ(good, svc["deployments"][0]["id"]);
  EXPECT_EQ("COMPLETED", svc["deployments"][0]["rolloutState"]);
  EXPECT_EQ(2, svc["runningCount"]);
  EXPECT_EQ("(service web) has reached a steady state.", Messages()[0]);
}

TEST_F(ServiceControllerTest, CircuitBreakerWithoutACompletedDeploymentOnlyFails) {
  CreateService({.desired = 1, .breaker = true, .rollback = true});
  for (int i = 0; i < 6 && Primary()["rolloutState"] == "IN_PROGRESS"; ++i) {
    Reconcile();
    fake_.FailPending();
    now_ += 100;  // past any backoff
  }
  Reconcile();
  Json svc = Service();
  ASSERT_EQ(1u, svc["deployments"].size());
  EXPECT_EQ("FAILED", svc["deployments"][0]["rolloutState"]);
  EXPECT_EQ(3, svc["deployments"][0]["failedTasks"]);
}

// --- backoff ---------------------------------------------------------------

TEST_F(ServiceControllerTest, PlacementFailuresBackOffWithAnEvent) {
  fake_.capacity = 1;
  CreateService({.desired = 2});
  Reconcile();
  EXPECT_EQ(1, fake_.ActiveCount());
  EXPECT_EQ("(service web) was unable to place a task. Reason: Capacity is unavailable at this "
            "time. Please try again later or in a different availability zone. For more "
            "information, see the Troubleshooting section of the Amazon ECS Developer Guide.",
            Messages()[0]);

  int calls = fake_.start_calls;
  Reconcile();
  EXPECT_EQ(calls, fake_.start_calls) << "retried within the backoff";
  now_ += 1.1;
  Reconcile();
  EXPECT_EQ(calls + 1, fake_.start_calls);
  // The second failure doubles the wait and does not repeat the event.
  now_ += 1.1;
  Reconcile();
  EXPECT_EQ(calls + 1, fake_.start_calls);
  now_ += 1.0;
  fake_.capacity = 5;
  Reconcile();
  EXPECT_EQ(2, fake_.ActiveCount());
  int placement_events = 0;
  for (const auto& m : Messages()) {
    placement_events += m.find("was unable to place a task") != std::string::npos;
  }
  EXPECT_EQ(1, placement_events);
}

TEST_F(ServiceControllerTest, TasksThatKeepFailingToStartAreThrottled) {
  CreateService({.desired = 1});
  for (int i = 0; i < 3; ++i) {
    Reconcile();
    fake_.FailPending();
  }
  Reconcile();
  std::vector<std::string> messages = Messages();
  EXPECT_NE(messages.end(), std::find(messages.begin(), messages.end(),
                                      "(service web) is unable to consistently start tasks "
                                      "successfully."));
  EXPECT_EQ(0, fake_.ActiveCount()) << "relaunch waits for the backoff";
  now_ += 1.1;
  Reconcile();
  EXPECT_EQ(1, fake_.ActiveCount());
  EXPECT_EQ("IN_PROGRESS", Primary()["rolloutState"]) << "no circuit breaker configured";
}

TEST_F(ServiceControllerTest, Ec2ServicesFindNoContainerInstances) {
  CreateService({.desired = 1, .launch_type = "EC2"});
  Reconcile();
  EXPECT_EQ(0, fake_.start_calls);
  EXPECT_THAT(Messages()[0], HasSubstr("(service web) was unable to place a task because no "
                                       "container instance met all of its requirements."));
}

// --- deletion ----------------------------------------------------------------

TEST_F(ServiceControllerTest, DeleteServiceDrainsThenGoesInactive) {
  Steady({.desired = 2});
  auto refused = api_->DeleteService({{"cluster", kCluster}, {"service", "web"}}, ctx_);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ("InvalidParameterException", refused.error().code);
  EXPECT_EQ("The service cannot be stopped while it is scaled above 0.", refused.error().message);

  auto deleted =
      api_->DeleteService({{"cluster", kCluster}, {"service", "web"}, {"force", true}}, ctx_);
  ASSERT_TRUE(deleted.ok()) << deleted.error().message;
  EXPECT_EQ("DRAINING", (*deleted)["service"]["status"]);
  EXPECT_EQ(0, (*deleted)["service"]["desiredCount"]);

  // The cluster cannot go while the service drains.
  auto cluster_delete = api_->DeleteCluster({{"cluster", kCluster}}, ctx_);
  ASSERT_FALSE(cluster_delete.ok());
  EXPECT_EQ("ClusterContainsServicesException", cluster_delete.error().code);

  Reconcile();
  EXPECT_EQ(0, fake_.ActiveCount());
  EXPECT_EQ("DRAINING", Service()["status"]);
  fake_.FinishStopping();
  Reconcile();
  EXPECT_EQ("INACTIVE", Service()["status"]);
  EXPECT_EQ(0, Service()["runningCount"]);

  auto again = api_->DeleteService({{"cluster", kCluster}, {"service", "web"}}, ctx_);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ("INACTIVE", (*again)["service"]["status"]);
  auto update = api_->UpdateService(
      {{"cluster", kCluster}, {"service", "web"}, {"desiredCount", 1}}, ctx_);
  ASSERT_FALSE(update.ok());
  EXPECT_EQ("ServiceNotActiveException", update.error().code);

  // INACTIVE services are kept for an hour, then removed.
  now_ += 3601;
  Reconcile();
  EXPECT_FALSE(store_->Get(ServiceKey(kCluster, "web"))->has_value());
  EXPECT_TRUE(api_->DeleteCluster({{"cluster", kCluster}}, ctx_).ok());
}

// --- API over stored services -------------------------------------------------

TEST_F(ServiceControllerTest, ClusterCountsActiveServices) {
  CreateService({.name = "a"});
  CreateService({.name = "b"});
  auto described = api_->DescribeClusters({{"clusters", Json::array({kCluster})}}, ctx_);
  ASSERT_TRUE(described.ok());
  EXPECT_EQ(2, (*described)["clusters"][0]["activeServicesCount"]);
  auto counts = CountClusterServices(*store_, kCluster);
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(2, counts->active);
  EXPECT_EQ(0, counts->draining);
}

TEST_F(ServiceControllerTest, DescribeServicesReportsMissingAndLimitsNames) {
  CreateService({.name = "a"});
  auto described = api_->DescribeServices(
      {{"cluster", kCluster},
       {"services", {"a", "arn:aws:ecs:us-east-1:000000000000:service/c1/nope"}}},
      ctx_);
  ASSERT_TRUE(described.ok());
  ASSERT_EQ(1u, (*described)["services"].size());
  EXPECT_EQ("a", (*described)["services"][0]["serviceName"]);
  EXPECT_FALSE((*described)["services"][0].contains("tags"));
  EXPECT_FALSE((*described)["services"][0].contains("_steady"));
  ASSERT_EQ(1u, (*described)["failures"].size());
  EXPECT_EQ("arn:aws:ecs:us-east-1:000000000000:service/c1/nope",
            (*described)["failures"][0]["arn"]);
  EXPECT_EQ("MISSING", (*described)["failures"][0]["reason"]);

  auto with_tags = api_->DescribeServices(
      {{"cluster", kCluster},
       {"services", Json::array({"a"})},
       {"include", Json::array({"TAGS"})}},
      ctx_);
  ASSERT_TRUE(with_tags.ok());
  EXPECT_EQ("team", (*with_tags)["services"][0]["tags"][0]["key"]);

  Json eleven = Json::array();
  for (int i = 0; i < 11; ++i) {
    eleven.push_back("s" + std::to_string(i));
  }
  auto too_many = api_->DescribeServices({{"cluster", kCluster}, {"services", eleven}}, ctx_);
  ASSERT_FALSE(too_many.ok());
  EXPECT_EQ("InvalidParameterException", too_many.error().code);
  EXPECT_EQ("service names can have at most 10 items.", too_many.error().message);

  auto no_cluster =
      api_->DescribeServices({{"cluster", "nope"}, {"services", Json::array({"a"})}}, ctx_);
  ASSERT_FALSE(no_cluster.ok());
  EXPECT_EQ("ClusterNotFoundException", no_cluster.error().code);
}

TEST_F(ServiceControllerTest, ListServicesPagesAndFilters) {
  for (const char* name : {"a", "b", "c"}) {
    CreateService({.name = name});
  }
  CreateService({.name = "d", .launch_type = "EC2"});
  auto first = api_->ListServices({{"cluster", kCluster}, {"maxResults", 2}}, ctx_);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(2u, (*first)["serviceArns"].size());
  ASSERT_TRUE((*first).contains("nextToken"));
  auto second = api_->ListServices(
      {{"cluster", kCluster}, {"maxResults", 2}, {"nextToken", (*first)["nextToken"]}}, ctx_);
  ASSERT_TRUE(second.ok());
  EXPECT_THAT((*second)["serviceArns"],
              ElementsAre("arn:aws:ecs:us-east-1:000000000000:service/c1/c",
                          "arn:aws:ecs:us-east-1:000000000000:service/c1/d"));
  EXPECT_FALSE((*second).contains("nextToken"));

  auto fargate = api_->ListServices({{"cluster", kCluster}, {"launchType", "FARGATE"}}, ctx_);
  ASSERT_TRUE(fargate.ok());
  EXPECT_EQ(3u, (*fargate)["serviceArns"].size());
}

TEST_F(ServiceControllerTest, UpdateServiceErrors) {
  auto missing = api_->UpdateService(
      {{"cluster", kCluster}, {"service", "nope"}, {"desiredCount", 1}}, ctx_);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ("ServiceNotFoundException", missing.error().code);
  EXPECT_EQ("Service not found.", missing.error().message);

  CreateService({});
  auto bad_config = api_->UpdateService(
      {{"cluster", kCluster},
       {"service", "web"},
       {"deploymentConfiguration", {{"minimumHealthyPercent", 150}}}},
      ctx_);
  ASSERT_FALSE(bad_config.ok());
  EXPECT_EQ("InvalidParameterException", bad_config.error().code);

  auto no_network = api_->UpdateService(
      {{"cluster", kCluster}, {"service", "web"}, {"networkConfiguration", Json::object()}},
      ctx_);
  ASSERT_FALSE(no_network.ok());
  EXPECT_EQ("Network Configuration must be provided when networkMode 'awsvpc' is specified.",
            no_network.error().message);

  auto placement = api_->UpdateService(
      {{"cluster", kCluster},
       {"service", "web"},
       {"placementStrategy",
        Json::array({{{"type", "spread"}, {"field", "attribute:ecs.availability-zone"}}})}},
      ctx_);
  ASSERT_FALSE(placement.ok());
  EXPECT_EQ("Placement strategies are not supported with FARGATE launch type.",
            placement.error().message);

  // A desiredCount change keeps the deployment.
  auto scaled = api_->UpdateService(
      {{"cluster", "arn:aws:ecs:us-east-1:000000000000:cluster/c1"},
       {"service", "arn:aws:ecs:us-east-1:000000000000:service/c1/web"},
       {"desiredCount", 5}},
      ctx_);
  ASSERT_TRUE(scaled.ok()) << scaled.error().message;
  ASSERT_EQ(1u, (*scaled)["service"]["deployments"].size());
  EXPECT_EQ(5, (*scaled)["service"]["deployments"][0]["desiredCount"]);
  EXPECT_EQ("ecs-svc/1000000000000000001", (*scaled)["service"]["deployments"][0]["id"]);
}

// --- through CreateService --------------------------------------------------------

Json RegisterRequest(const std::string& family) {
  return {{"family", family},
          {"requiresCompatibilities", Json::array({"FARGATE"})},
          {"networkMode", "awsvpc"},
          {"cpu", "256"},
          {"memory", "512"},
          {"containerDefinitions",
           Json::array({{{"name", "app"},
                         {"image", "nginx"},
                         {"portMappings", Json::array({{{"containerPort", 80}}})}}})}};
}

Json CreateRequest(const std::string& td) {
  return {{"cluster", kCluster},
          {"serviceName", "api"},
          {"taskDefinition", td},
          {"desiredCount", 2},
          {"launchType", "FARGATE"},
          {"networkConfiguration",
           {{"awsvpcConfiguration", {{"subnets", Json::array({"subnet-1"})}}}}}};
}

TEST_F(ServiceControllerTest, CreatedServiceRunsThroughTheController) {
  auto td = api_->RegisterTaskDefinition(RegisterRequest("api"), ctx_);
  ASSERT_TRUE(td.ok()) << td.error().message;
  auto created = api_->CreateService(CreateRequest("api"), ctx_);
  ASSERT_TRUE(created.ok()) << created.error().message;
  const Json& svc = (*created)["service"];
  EXPECT_EQ("arn:aws:ecs:us-east-1:000000000000:service/c1/api", svc["serviceArn"]);
  EXPECT_EQ("arn:aws:ecs:us-east-1:000000000000:task-definition/api:1", svc["taskDefinition"]);
  EXPECT_EQ("DISABLED",
            svc["networkConfiguration"]["awsvpcConfiguration"]["assignPublicIp"]);
  EXPECT_FALSE(svc["deployments"][0].contains("_taskDefinition"));

  Reconcile("api");
  ASSERT_EQ(1u, fake_.requests.size());
  EXPECT_EQ("api", fake_.requests[0].task_definition["family"]);
  EXPECT_FALSE(fake_.requests[0].task_definition.contains("_tags"));
  EXPECT_EQ(2, fake_.requests[0].count);
  fake_.RunPending();
  Reconcile("api");
  EXPECT_EQ("COMPLETED", Primary("api")["rolloutState"]);

  // The same request again is answered with the same service.
  auto again = api_->CreateService(CreateRequest("api"), ctx_);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(svc["deployments"][0]["id"], (*again)["service"]["deployments"][0]["id"]);
  Json changed = CreateRequest("api");
  changed["desiredCount"] = 3;
  auto conflict = api_->CreateService(changed, ctx_);
  ASSERT_FALSE(conflict.ok());
  EXPECT_EQ("Creation of service was not idempotent.", conflict.error().message);
}

TEST_F(ServiceControllerTest, TargetGroupValidatorDecidesOnLoadBalancers) {
  ASSERT_TRUE(api_->RegisterTaskDefinition(RegisterRequest("lb"), ctx_).ok());
  Json seen;
  api_->SetTargetGroupValidator([&](const Json& load_balancers, const Json& td) -> Status {
    seen = load_balancers;
    return ClientError("InvalidParameterException",
                       "The provided target group " +
                           load_balancers[0]["targetGroupArn"].get<std::string>() +
                           " has target type instance, which is incompatible with the awsvpc "
                           "network mode specified in the task definition.");
  });
  Json request = CreateRequest("lb");
  request["loadBalancers"] = Json::array({{{"targetGroupArn", "arn:tg"},
                                           {"containerName", "app"},
                                           {"containerPort", 80}}});
  auto created = api_->CreateService(request, ctx_);
  ASSERT_FALSE(created.ok());
  EXPECT_EQ("InvalidParameterException", created.error().code);
  EXPECT_THAT(created.error().message, HasSubstr("has target type instance"));
  EXPECT_EQ("arn:tg", seen[0]["targetGroupArn"]);
  EXPECT_FALSE(store_->Get(ServiceKey(kCluster, "api"))->has_value());
}

// --- the controller thread ----------------------------------------------------

TEST_F(ServiceControllerTest, ThreadReactsToStoreChanges) {
  controller_ = std::make_unique<ServiceController>(*store_, fake_, ServiceControllerOptions{});
  controller_->Start();
  CreateService({.desired = 3});
  // The fake is not thread-safe: watch the store, look at the fake only once
  // the thread has stopped.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (Service()["pendingCount"] != 3 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  controller_->Stop();
  EXPECT_EQ(3, Service()["pendingCount"]);
  EXPECT_EQ(3, fake_.ActiveCount());
  EXPECT_EQ(1, fake_.start_calls);
}

}  // namespace
}  // namespace berth::ecs
