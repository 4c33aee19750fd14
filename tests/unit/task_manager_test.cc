// SPDX-License-Identifier: Apache-2.0
#include "ecs/store_task_manager.h"

#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <future>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "ecs/taskdef.h"
#include "store/sqlite_store.h"
#include "temp_dir.h"

namespace berth::ecs {
namespace {

using berth::testutil::TempDir;


Json TaskDefinition(const Json& containers, const std::string& cpu = "256",
                    const std::string& memory = "512") {
  Json request = {{"family", "web"},
                  {"requiresCompatibilities", {"FARGATE"}},
                  {"networkMode", "awsvpc"},
                  {"cpu", cpu},
                  {"memory", memory},
                  {"containerDefinitions", containers}};
  auto td = NormalizeTaskDefinition(request);
  EXPECT_TRUE(td.ok()) << (td.ok() ? "" : td.error().message);
  Json out = *td;
  out["taskDefinitionArn"] = "arn:aws:ecs:us-east-1:000000000000:task-definition/web:1";
  out["revision"] = 1;
  out["status"] = "ACTIVE";
  return out;
}

Json OneContainer() {
  return Json::array({{{"name", "app"}, {"image", "busybox"}}});
}

class TaskManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = store::OpenSqliteStore(dir_.File("state.db"));
    ASSERT_TRUE(store.ok()) << store.error().message;
    store_ = std::move(*store);
    ASSERT_TRUE(store_->Put("ecs/clusters/c1", Json{{"clusterName", "c1"},
                                                    {"status", "ACTIVE"}}.dump())
                    .ok());
    TaskManagerOptions options;
    options.node_timeout_seconds = 10;
    options.stopped_task_retention_seconds = 3600;
    options.clock = [this] { return now_.load(); };
    tasks_ = std::make_unique<StoreTaskManager>(*store_, options);
  }

  void AddNode(const std::string& id, int64_t cpu, int64_t memory, const std::string& zone = "") {
    NodeRegistration reg;
    reg.node_id = id;
    reg.cpu = cpu;
    reg.memory = memory;
    reg.availability_zone = zone;
    ASSERT_TRUE(tasks_->RegisterNode(reg).ok());
  }

  StartTasksRequest Request(int count = 1, Json containers = OneContainer()) {
    StartTasksRequest r;
    r.cluster = "c1";
    r.task_definition = TaskDefinition(containers);
    r.count = count;
    r.network_configuration = {{"awsvpcConfiguration", {{"subnets", {"subnet-1"}}}}};
    return r;
  }

  std::string StartOne(Json containers = OneContainer()) {
    auto started = tasks_->StartTasks(Request(1, std::move(containers)));
    EXPECT_TRUE(started.ok());
    EXPECT_EQ(1u, started->tasks.size());
    return TaskId(started->tasks.front());
  }

  static std::string TaskId(const Json& task) {
    std::string arn = task["taskArn"];
    return arn.substr(arn.rfind('/') + 1);
  }

  Json Task(const std::string& id) {
    auto t = tasks_->GetTask("c1", id);
    EXPECT_TRUE(t.ok());
    EXPECT_TRUE(t->has_value());
    return **t;
  }

  Json NodeDoc(const std::string& id) {
    auto e = store_->Get("ecs/nodes/" + id);
    EXPECT_TRUE(e.ok() && e->has_value());
    return Json::parse((*e)->value);
  }

  Result<Json> Report(const std::string& id, int64_t seq, const std::string& status,
                      std::vector<ContainerReport> containers = {}) {
    TaskReport r;
    r.node_id = "n1";
    r.cluster = "c1";
    r.task_id = id;
    r.seq = seq;
    r.last_status = status;
    r.containers = std::move(containers);
    return tasks_->ApplyReport(r);
  }

  TempDir dir_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<StoreTaskManager> tasks_;
  std::atomic<double> now_{1000000.0};
};

TEST_F(TaskManagerTest, StartTasksReservesTheTaskSizeOnANode) {
  AddNode("n1", 2048, 4096);

  std::string id = StartOne();

  Json task = Task(id);
  EXPECT_EQ("PROVISIONING", task["lastStatus"]);
  EXPECT_EQ("RUNNING", task["desiredStatus"]);
  EXPECT_EQ("n1", task["_node"]);
  EXPECT_EQ("us-east-1a", task["availabilityZone"]);
  EXPECT_EQ("256", task["cpu"]);
  Json node = NodeDoc("n1");
  EXPECT_EQ(256, node["tasks"][id]["cpu"]);
  EXPECT_EQ(512, node["tasks"][id]["memory"]);
}

TEST_F(TaskManagerTest, StartTasksReportsResourceFailuresWhenNothingFits) {
  AddNode("n1", 256, 512);
  StartOne();

  auto second = tasks_->StartTasks(Request(2));

  ASSERT_TRUE(second.ok());
  EXPECT_TRUE(second->tasks.empty());
  ASSERT_EQ(2u, second->failures.size());
  EXPECT_EQ("RESOURCE:CPU", second->failures[0]["reason"]);
}

TEST_F(TaskManagerTest, StartTasksFailsForAnInactiveCluster) {
  AddNode("n1", 2048, 4096);
  ASSERT_TRUE(store_->Put("ecs/clusters/c1", Json{{"status", "INACTIVE"}}.dump()).ok());

  auto started = tasks_->StartTasks(Request());

  ASSERT_FALSE(started.ok());
  EXPECT_EQ("ClusterNotFoundException", started.error().code);
}

TEST_F(TaskManagerTest, ConcurrentStartsNeverDoubleBookANode) {
  AddNode("n1", 1024, 2048);
  AddNode("n2", 1024, 2048);

  std::vector<std::future<Result<StartTasksResult>>> calls;
  for (int i = 0; i < 20; ++i) {
    calls.push_back(std::async(std::launch::async, [this] { return tasks_->StartTasks(Request()); }));
  }
  int placed = 0;
  int failed = 0;
  for (auto& c : calls) {
    auto r = c.get();
    ASSERT_TRUE(r.ok()) << r.error().message;
    placed += static_cast<int>(r->tasks.size());
    failed += static_cast<int>(r->failures.size());
  }

  EXPECT_EQ(8, placed);
  EXPECT_EQ(12, failed);
  EXPECT_EQ(4u, NodeDoc("n1")["tasks"].size());
  EXPECT_EQ(4u, NodeDoc("n2")["tasks"].size());
}

TEST_F(TaskManagerTest, ReportsWalkTheLifecycleWithTimestamps) {
  AddNode("n1", 2048, 4096);
  std::string id = StartOne();

  ASSERT_TRUE(Report(id, 1, "PENDING").ok());
  now_ = now_ + 1;
  NetworkReport net;
  net.private_ipv4_address = "172.31.0.5";
  net.mac_address = "0e:00:00:00:00:05";
  TaskReport running;
  running.node_id = "n1";
  running.cluster = "c1";
  running.task_id = id;
  running.seq = 2;
  running.last_status = "RUNNING";
  running.network = net;
  running.containers = {ContainerReport{"app", "RUNNING", std::nullopt, "", "", "rt-1", ""}};
  ASSERT_TRUE(tasks_->ApplyReport(running).ok());

  Json task = Task(id);
  EXPECT_EQ("RUNNING", task["lastStatus"]);
  EXPECT_EQ("CONNECTED", task["connectivity"]);
  EXPECT_DOUBLE_EQ(1000000.0, task["connectivityAt"].get<double>());
  EXPECT_DOUBLE_EQ(1000001.0, task["startedAt"].get<double>());
  EXPECT_EQ("ATTACHED", task["attachments"][0]["status"]);
  EXPECT_EQ("RUNNING", task["containers"][0]["lastStatus"]);
  EXPECT_EQ("rt-1", task["containers"][0]["runtimeId"]);
  EXPECT_EQ("172.31.0.5", task["containers"][0]["networkInterfaces"][0]["privateIpv4Address"]);
  EXPECT_EQ(3, task["version"]);
}

TEST_F(TaskManagerTest, OlderOrRepeatedReportsAreIgnored) {
  AddNode("n1", 2048, 4096);
  std::string id = StartOne();
  ASSERT_TRUE(Report(id, 5, "RUNNING").ok());

  auto stale = Report(id, 4, "PENDING");
  auto repeated = Report(id, 5, "STOPPED");

  ASSERT_TRUE(stale.ok());
  ASSERT_TRUE(repeated.ok());
  EXPECT_FALSE((*stale)["applied"].get<bool>());
  EXPECT_FALSE((*repeated)["applied"].get<bool>());
  EXPECT_EQ("RUNNING", Task(id)["lastStatus"]);
  EXPECT_EQ(5, Task(id)["_seq"]);
}

TEST_F(TaskManagerTest, ReportsFromAnotherNodeAreRefused) {
  AddNode("n1", 2048, 4096);
  std::string id = StartOne();
  TaskReport r;
  r.node_id = "n2";
  r.cluster = "c1";
  r.task_id = id;
  r.seq = 1;
  r.last_status = "RUNNING";

  auto answer = tasks_->ApplyReport(r);

  ASSERT_FALSE(answer.ok());
  EXPECT_EQ(409, answer.error().status);
}

TEST_F(TaskManagerTest, EssentialContainerExitStopsTheTaskAndReleasesTheNode) {
  AddNode("n1", 2048, 4096);
  std::string id = StartOne();
  ASSERT_TRUE(Report(id, 1, "RUNNING").ok());

  ASSERT_TRUE(Report(id, 2, "RUNNING", {ContainerReport{"app", "STOPPED", 3, "", "", "", ""}}).ok());
  Json stopping = Task(id);
  ASSERT_TRUE(Report(id, 3, "STOPPED").ok());

  EXPECT_EQ("STOPPED", stopping["desiredStatus"]);
  EXPECT_EQ("EssentialContainerExited", stopping["stopCode"]);
  EXPECT_EQ("Essential container in task exited", stopping["stoppedReason"]);
  Json stopped = Task(id);
  EXPECT_EQ("STOPPED", stopped["lastStatus"]);
  EXPECT_EQ(3, stopped["containers"][0]["exitCode"]);
  EXPECT_TRUE(stopped.contains("stoppedAt"));
  EXPECT_TRUE(stopped.contains("executionStoppedAt"));
  EXPECT_TRUE(NodeDoc("n1")["tasks"].empty());
  auto desired = store_->Get("ecs/desired/n1/" + id);
  ASSERT_TRUE(desired.ok());
  EXPECT_FALSE(desired->has_value());
}

TEST_F(TaskManagerTest, NonEssentialContainerExitKeepsTheTaskRunning) {
  AddNode("n1", 2048, 4096);
  Json containers = Json::array({{{"name", "app"}, {"image", "busybox"}},
                                 {{"name", "side"}, {"image", "busybox"}, {"essential", false}}});
  std::string id = StartOne(containers);
  ASSERT_TRUE(Report(id, 1, "RUNNING").ok());

  ASSERT_TRUE(Report(id, 2, "RUNNING", {ContainerReport{"side", "STOPPED", 0, "", "", "", ""}}).ok());

  Json task = Task(id);
  EXPECT_EQ("RUNNING", task["desiredStatus"]);
  EXPECT_FALSE(task.contains("stopCode"));
  EXPECT_EQ("STOPPED", task["containers"][1]["lastStatus"]);
}

TEST_F(TaskManagerTest, FailureToStartRecordsTheAgentsReason) {
  AddNode("n1", 2048, 4096);
  std::string id = StartOne();
  TaskReport r;
  r.node_id = "n1";
  r.cluster = "c1";
  r.task_id = id;
  r.seq = 1;
  r.last_status = "STOPPED";
  r.stop_code = "TaskFailedToStart";
  r.stopped_reason = "CannotPullContainerError: pull access denied";

  ASSERT_TRUE(tasks_->ApplyReport(r).ok());

  Json task = Task(id);
  EXPECT_EQ("STOPPED", task["lastStatus"]);
  EXPECT_EQ("STOPPED", task["desiredStatus"]);
  EXPECT_EQ("TaskFailedToStart", task["stopCode"]);
  EXPECT_EQ("CannotPullContainerError: pull access denied", task["stoppedReason"]);
  EXPECT_FALSE(task.contains("startedAt"));
}

TEST_F(TaskManagerTest, StopTaskSetsDesiredStatusOnceAndTellsTheNode) {
  AddNode("n1", 2048, 4096);
  std::string id = StartOne();
  ASSERT_TRUE(Report(id, 1, "RUNNING").ok());

  auto first = tasks_->StopTask("c1", id, "UserInitiated", "maintenance");
  auto second = tasks_->StopTask("c1", id, "UserInitiated", "other");

  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(second.ok());
  EXPECT_EQ("STOPPED", (*first)["desiredStatus"]);
  EXPECT_EQ("RUNNING", (*first)["lastStatus"]);
  EXPECT_EQ("maintenance", (*second)["stoppedReason"]);
  EXPECT_EQ("UserInitiated", (*second)["stopCode"]);
  auto desired = store_->Get("ecs/desired/n1/" + id);
  ASSERT_TRUE(desired.ok() && desired->has_value());
  EXPECT_EQ("STOPPED", Json::parse((*desired)->value)["desiredStatus"]);
}

TEST_F(TaskManagerTest, StopTaskOfAnUnknownTaskIsNotFound) {
  auto stopped = tasks_->StopTask("c1", "0123456789abcdef0123456789abcdef", "UserInitiated", "");

  ASSERT_FALSE(stopped.ok());
  EXPECT_EQ("TaskNotFound", stopped.error().code);
}

TEST_F(TaskManagerTest, StoppedTasksArePrunedOnlyAfterTheRetention) {
  AddNode("n1", 2048, 4096);
  std::string id = StartOne();
  ASSERT_TRUE(Report(id, 1, "STOPPED").ok());

  now_ = now_ + 3599;
  auto early = tasks_->PruneStoppedTasks();
  now_ = now_ + 2;
  auto late = tasks_->PruneStoppedTasks();

  ASSERT_TRUE(early.ok());
  ASSERT_TRUE(late.ok());
  EXPECT_EQ(0, *early);
  EXPECT_EQ(1, *late);
  auto gone = tasks_->GetTask("c1", id);
  ASSERT_TRUE(gone.ok());
  EXPECT_FALSE(gone->has_value());
}

TEST_F(TaskManagerTest, LostNodesHaveTheirTasksStopped) {
  AddNode("n1", 2048, 4096);
  std::string id = StartOne();
  ASSERT_TRUE(Report(id, 1, "RUNNING").ok());

  now_ = now_ + 5;
  auto early = tasks_->SweepLostNodes();
  now_ = now_ + 20;
  auto late = tasks_->SweepLostNodes();

  ASSERT_TRUE(early.ok());
  ASSERT_TRUE(late.ok());
  EXPECT_EQ(0, *early);
  EXPECT_EQ(1, *late);
  Json task = Task(id);
  EXPECT_EQ("STOPPED", task["lastStatus"]);
  EXPECT_EQ("TerminationNotice", task["stopCode"]);
  Json node = NodeDoc("n1");
  EXPECT_EQ("LOST", node["status"]);
  EXPECT_TRUE(node["tasks"].empty());
  auto desired = tasks_->Desired("n1", 0, std::chrono::milliseconds(0));
  ASSERT_FALSE(desired.ok());
  EXPECT_EQ("NodeNotRegistered", desired.error().code);
}

TEST_F(TaskManagerTest, DesiredLongPollWakesWhenATaskIsPlaced) {
  AddNode("n1", 2048, 4096);
  auto initial = tasks_->Desired("n1", 0, std::chrono::milliseconds(0));
  ASSERT_TRUE(initial.ok());
  EXPECT_TRUE(initial->tasks.empty());

  auto poll = std::async(std::launch::async, [&] {
    return tasks_->Desired("n1", initial->revision, std::chrono::seconds(10));
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto started_at = std::chrono::steady_clock::now();
  std::string id = StartOne();
  auto state = poll.get();

  ASSERT_TRUE(state.ok());
  EXPECT_LT(std::chrono::steady_clock::now() - started_at, std::chrono::seconds(5));
  ASSERT_EQ(1u, state->tasks.size());
  EXPECT_EQ(id, state->tasks[0].task_id);
  EXPECT_EQ("RUNNING", state->tasks[0].desired_status);
  EXPECT_EQ("web", state->tasks[0].task_definition["family"]);
  EXPECT_GT(state->revision, initial->revision);
}

TEST_F(TaskManagerTest, LongPollsBeyondTheLimitAnswerAtOnceWithARetryDelay) {
  AddNode("n1", 2048, 4096);
  TaskManagerOptions options;
  options.max_long_polls = 1;
  StoreTaskManager limited(*store_, options);
  int64_t revision = store_->Revision();

  auto holder = std::async(std::launch::async, [&] {
    return limited.Desired("n1", revision, std::chrono::seconds(2));
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto started_at = std::chrono::steady_clock::now();
  auto refused = limited.Desired("n1", revision, std::chrono::seconds(2));
  auto refused_after = std::chrono::steady_clock::now() - started_at;
  auto held = holder.get();

  ASSERT_TRUE(refused.ok());
  ASSERT_TRUE(held.ok());
  EXPECT_LT(refused_after, std::chrono::milliseconds(500));
  EXPECT_EQ(1000, refused->retry_after_ms);
  EXPECT_EQ(0, held->retry_after_ms);
}

TEST_F(TaskManagerTest, FindTasksFiltersByDesiredStatusAndFamily) {
  AddNode("n1", 4096, 8192);
  std::string running = StartOne();
  std::string stopped = StartOne();
  ASSERT_TRUE(tasks_->StopTask("c1", stopped, "UserInitiated", "").ok());

  TaskFilter filter;
  filter.cluster = "c1";
  filter.desired_status = "RUNNING";
  filter.family = "web";
  auto found = tasks_->FindTasks(filter);
  filter.desired_status = "STOPPED";
  auto found_stopped = tasks_->FindTasks(filter);
  filter.family = "other";
  auto none = tasks_->FindTasks(filter);

  ASSERT_TRUE(found.ok() && found_stopped.ok() && none.ok());
  ASSERT_EQ(1u, found->size());
  EXPECT_EQ(running, TaskId(found->front()));
  ASSERT_EQ(1u, found_stopped->size());
  EXPECT_EQ(stopped, TaskId(found_stopped->front()));
  EXPECT_TRUE(none->empty());
}

TEST_F(TaskManagerTest, CountTasksFollowsLastStatus) {
  AddNode("n1", 4096, 8192);
  std::string a = StartOne();
  std::string b = StartOne();
  std::string c = StartOne();
  ASSERT_TRUE(Report(a, 1, "RUNNING").ok());
  ASSERT_TRUE(Report(c, 1, "STOPPED").ok());

  auto counts = tasks_->CountTasks("c1");

  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(1, counts->running);
  EXPECT_EQ(1, counts->pending);
  EXPECT_EQ(2, counts->active);
}

// Tasks behind a load balancer: ACTIVATING until the targets are registered,
// DEACTIVATING until they are drained.

Json OneLoadBalancer() {
  return Json::array({{{"targetGroupArn",
                        "arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/tg/1"},
                       {"containerName", "app"},
                       {"containerPort", 8080}}});
}

class TaskBehindLoadBalancerTest : public TaskManagerTest {
 protected:
  std::string StartBehindLoadBalancer() {
    StartTasksRequest r = Request();
    r.service = "web";
    r.load_balancers = OneLoadBalancer();
    auto started = tasks_->StartTasks(r);
    EXPECT_TRUE(started.ok());
    EXPECT_EQ(1u, started->tasks.size());
    return TaskId(started->tasks.front());
  }

  // What the node's agent is told to do with the task.
  std::string AgentDesired(const std::string& id) {
    auto desired = store_->Get("ecs/desired/n1/" + id);
    EXPECT_TRUE(desired.ok());
    if (!desired.ok() || !desired->has_value()) {
      return "";
    }
    std::string in_doc = Json::parse((*desired)->value)["desiredStatus"];
    auto state = tasks_->Desired("n1", 0, std::chrono::milliseconds(0));
    EXPECT_TRUE(state.ok());
    for (const auto& t : state->tasks) {
      if (t.task_id == id) {
        EXPECT_EQ(in_doc, t.desired_status);
      }
    }
    return in_doc;
  }

  std::string RunningRegistered() {
    std::string id = StartBehindLoadBalancer();
    EXPECT_TRUE(Report(id, 1, "RUNNING").ok());
    EXPECT_TRUE(tasks_->MarkTargetsRegistered("c1", id).ok());
    return id;
  }
};

TEST_F(TaskBehindLoadBalancerTest, RunningContainersWaitInActivatingForTheTargets) {
  AddNode("n1", 2048, 4096);
  std::string id = StartBehindLoadBalancer();

  ASSERT_TRUE(Report(id, 1, "RUNNING").ok());
  Json held = Task(id);
  now_ = now_ + 2;
  auto registered = tasks_->MarkTargetsRegistered("c1", id);

  EXPECT_EQ("ACTIVATING", held["lastStatus"]);
  EXPECT_EQ("pending", held["_targets"]);
  EXPECT_FALSE(held.contains("startedAt"));
  EXPECT_EQ(OneLoadBalancer(), held["_loadBalancers"]);
  ASSERT_TRUE(registered.ok());
  EXPECT_EQ("RUNNING", (*registered)["lastStatus"]);
  EXPECT_EQ("registered", (*registered)["_targets"]);
  EXPECT_DOUBLE_EQ(1000002.0, (*registered)["startedAt"].get<double>());
  EXPECT_EQ("RUNNING", AgentDesired(id));
}

TEST_F(TaskBehindLoadBalancerTest, LaterRunningReportsDoNotSkipTheRegistration) {
  AddNode("n1", 2048, 4096);
  std::string id = StartBehindLoadBalancer();

  ASSERT_TRUE(Report(id, 1, "ACTIVATING").ok());
  ASSERT_TRUE(Report(id, 2, "RUNNING").ok());
  ASSERT_TRUE(Report(id, 3, "RUNNING",
                     {ContainerReport{"app", "RUNNING", std::nullopt, "", "HEALTHY", "", ""}})
                  .ok());

  EXPECT_EQ("ACTIVATING", Task(id)["lastStatus"]);
  EXPECT_EQ("HEALTHY", Task(id)["containers"][0]["healthStatus"]);
}

TEST_F(TaskBehindLoadBalancerTest, StopTaskDeactivatesUntilTheTargetsAreReleased) {
  AddNode("n1", 2048, 4096);
  std::string id = RunningRegistered();

  auto stopped = tasks_->StopTask("c1", id, "ServiceSchedulerInitiated", "Scaling activity");
  ASSERT_TRUE(stopped.ok());
  std::string agent_while_draining = AgentDesired(id);
  TaskFilter filter;
  filter.cluster = "c1";
  filter.targets = "registered";
  auto holding = tasks_->FindTasks(filter);
  auto released = tasks_->MarkTargetsReleased("c1", id);

  EXPECT_EQ("DEACTIVATING", (*stopped)["lastStatus"]);
  EXPECT_EQ("STOPPED", (*stopped)["desiredStatus"]);
  EXPECT_EQ("ServiceSchedulerInitiated", (*stopped)["stopCode"]);
  EXPECT_TRUE((*stopped).contains("stoppingAt"));
  EXPECT_EQ("RUNNING", agent_while_draining);
  ASSERT_TRUE(holding.ok());
  ASSERT_EQ(1u, holding->size());
  EXPECT_EQ(id, TaskId(holding->front()));
  ASSERT_TRUE(released.ok());
  EXPECT_EQ("DEACTIVATING", (*released)["lastStatus"]);
  EXPECT_EQ("released", (*released)["_targets"]);
  EXPECT_EQ("STOPPED", AgentDesired(id));
}

TEST_F(TaskBehindLoadBalancerTest, ReleasedTaskWalksOnToStopped) {
  AddNode("n1", 2048, 4096);
  std::string id = RunningRegistered();
  ASSERT_TRUE(tasks_->StopTask("c1", id, "UserInitiated", "").ok());
  ASSERT_TRUE(tasks_->MarkTargetsReleased("c1", id).ok());

  ASSERT_TRUE(Report(id, 2, "STOPPING").ok());
  std::string stopping = Task(id)["lastStatus"];
  ASSERT_TRUE(Report(id, 3, "STOPPED").ok());

  EXPECT_EQ("STOPPING", stopping);
  EXPECT_EQ("STOPPED", Task(id)["lastStatus"]);
  EXPECT_EQ("UserInitiated", Task(id)["stopCode"]);
  EXPECT_EQ("Task stopped by user", Task(id)["stoppedReason"]);
  EXPECT_FALSE(NodeDoc("n1")["tasks"].contains(id));
}

TEST_F(TaskBehindLoadBalancerTest, ADeactivationOutlivesARestart) {
  AddNode("n1", 2048, 4096);
  std::string id = RunningRegistered();
  ASSERT_TRUE(tasks_->StopTask("c1", id, "UserInitiated", "").ok());

  TaskManagerOptions options;
  options.clock = [this] { return now_.load(); };
  tasks_ = std::make_unique<StoreTaskManager>(*store_, options);
  std::string after_restart = AgentDesired(id);
  ASSERT_TRUE(tasks_->MarkTargetsReleased("c1", id).ok());

  EXPECT_EQ("RUNNING", after_restart);
  EXPECT_EQ("DEACTIVATING", Task(id)["lastStatus"]);
  EXPECT_EQ("STOPPED", AgentDesired(id));
}

TEST_F(TaskBehindLoadBalancerTest, TaskWithoutRegisteredTargetsStopsAtOnce) {
  AddNode("n1", 2048, 4096);
  std::string activating = StartBehindLoadBalancer();
  ASSERT_TRUE(Report(activating, 1, "RUNNING").ok());
  std::string plain = StartOne();
  ASSERT_TRUE(Report(plain, 1, "RUNNING").ok());

  auto a = tasks_->StopTask("c1", activating, "UserInitiated", "");
  auto p = tasks_->StopTask("c1", plain, "UserInitiated", "");

  ASSERT_TRUE(a.ok() && p.ok());
  EXPECT_EQ("ACTIVATING", (*a)["lastStatus"]);
  EXPECT_EQ("STOPPED", AgentDesired(activating));
  EXPECT_EQ("RUNNING", (*p)["lastStatus"]);
  EXPECT_EQ("STOPPED", AgentDesired(plain));
}

TEST_F(TaskBehindLoadBalancerTest, RegistrationOfAStoppedTaskIsStillRecorded) {
  AddNode("n1", 2048, 4096);
  std::string id = StartBehindLoadBalancer();
  ASSERT_TRUE(Report(id, 1, "RUNNING").ok());
  ASSERT_TRUE(Report(id, 2, "STOPPED").ok());

  auto marked = tasks_->MarkTargetsRegistered("c1", id);

  ASSERT_TRUE(marked.ok());
  EXPECT_EQ("STOPPED", (*marked)["lastStatus"]);
  EXPECT_EQ("registered", (*marked)["_targets"]);
}

TEST_F(TaskBehindLoadBalancerTest, TargetHealthIsWrittenOnlyWhenItChanges) {
  AddNode("n1", 2048, 4096);
  std::string id = RunningRegistered();

  auto first = tasks_->SetTargetsHealthy("c1", id, true);
  int64_t version_after_first = (*store_->Get("ecs/tasks/c1/" + id))->mod_revision;
  auto again = tasks_->SetTargetsHealthy("c1", id, true);
  int64_t version_after_again = (*store_->Get("ecs/tasks/c1/" + id))->mod_revision;

  ASSERT_TRUE(first.ok() && again.ok());
  EXPECT_TRUE((*first)["_targetsHealthy"].get<bool>());
  EXPECT_EQ(version_after_first, version_after_again);
}

}  // namespace
}  // namespace berth::ecs
