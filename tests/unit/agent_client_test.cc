// SPDX-License-Identifier: Apache-2.0
//
// The agent protocol end to end: AgentControlClient against AgentRoute on a
// real HTTP server bound to a loopback port.
#include "ecs/agent_client.h"

#include <stdlib.h>

#include <filesystem>
#include <future>

#include <gtest/gtest.h>

#include "ecs/agent_route.h"
#include "ecs/taskdef.h"
#include "server/http_server.h"
#include "store/sqlite_store.h"
#include "temp_dir.h"

namespace berth::ecs {
namespace {

using berth::testutil::TempDir;


class AgentProtocolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = store::OpenSqliteStore(dir_.File("state.db"));
    ASSERT_TRUE(store.ok());
    store_ = std::move(*store);
    ASSERT_TRUE(store_->Put("ecs/clusters/c1", R"({"status":"ACTIVE"})").ok());
    tasks_ = std::make_unique<StoreTaskManager>(*store_, TaskManagerOptions());
    auto token = EnsureNodeToken(dir_.path());
    ASSERT_TRUE(token.ok());
    token_ = *token;

    http::ServerOptions options;
    options.listen = "127.0.0.1:0";
    options.worker_threads = 4;
    server_ = std::make_unique<http::Server>(options);
    server_->AddRoute(std::make_shared<AgentRoute>(*tasks_, token_));
    auto bound = server_->Listen();
    ASSERT_TRUE(bound.ok());
    endpoint_ = "http://" + *bound;
    server_->Start();
  }

  void TearDown() override {
    tasks_->Shutdown();
    server_->Stop();
  }

  std::string StartTask() {
    StartTasksRequest r;
    r.cluster = "c1";
    auto td = NormalizeTaskDefinition({{"family", "web"},
                                       {"requiresCompatibilities", {"FARGATE"}},
                                       {"networkMode", "awsvpc"},
                                       {"cpu", "256"},
                                       {"memory", "512"},
                                       {"containerDefinitions",
                                        {{{"name", "app"}, {"image", "busybox"}}}}});
    EXPECT_TRUE(td.ok());
    r.task_definition = *td;
    r.task_definition["taskDefinitionArn"] =
        "arn:aws:ecs:us-east-1:000000000000:task-definition/web:1";
    auto started = tasks_->StartTasks(r);
    EXPECT_TRUE(started.ok() && started->tasks.size() == 1);
    std::string arn = started->tasks[0]["taskArn"];
    return arn.substr(arn.rfind('/') + 1);
  }

  NodeRegistration Node() {
    NodeRegistration reg;
    reg.node_id = "node-a";
    reg.cpu = 2048;
    reg.memory = 4096;
    reg.availability_zone = "us-east-1b";
    reg.allocation_factor = 0.5;
    return reg;
  }

  TempDir dir_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<StoreTaskManager> tasks_;
  std::unique_ptr<http::Server> server_;
  std::string token_;
  std::string endpoint_;
};

TEST_F(AgentProtocolTest, NodeTokenIsPrivateAndStable) {
  auto again = EnsureNodeToken(dir_.path());

  ASSERT_TRUE(again.ok());
  EXPECT_EQ(token_, *again);
  EXPECT_EQ(64u, token_.size());
  auto perms = std::filesystem::status(dir_.File("node-token")).permissions();
  EXPECT_EQ(std::filesystem::perms::owner_read | std::filesystem::perms::owner_write, perms);
}

TEST_F(AgentProtocolTest, RegisterAppliesTheAllocationFactor) {
  AgentControlClient client(endpoint_, token_);

  auto node = client.Register(Node());

  ASSERT_TRUE(node.ok()) << node.error().message;
  EXPECT_EQ("node-a", (*node)["nodeId"]);
  EXPECT_EQ("us-east-1b", (*node)["availabilityZone"]);
  EXPECT_EQ(1024, (*node)["allocatable"]["cpu"]);
  EXPECT_EQ(2048, (*node)["allocatable"]["memory"]);
  EXPECT_EQ("ACTIVE", (*node)["status"]);
}

TEST_F(AgentProtocolTest, AWrongTokenIsRefused) {
  AgentControlClient client(endpoint_, "not-the-token");

  auto node = client.Register(Node());

  ASSERT_FALSE(node.ok());
  EXPECT_EQ(401, node.error().status);
}

TEST_F(AgentProtocolTest, DesiredOfAnUnknownNodeAsksToRegister) {
  AgentControlClient client(endpoint_, token_);

  auto state = client.Desired("nobody", 0, std::chrono::seconds(0));

  ASSERT_FALSE(state.ok());
  EXPECT_EQ(404, state.error().status);
  EXPECT_EQ("NodeNotRegistered", state.error().code);
}

TEST_F(AgentProtocolTest, LongPollReturnsNewTasksAndReportsMoveThem) {
  AgentControlClient client(endpoint_, token_);
  ASSERT_TRUE(client.Register(Node()).ok());
  auto empty = client.Desired("node-a", 0, std::chrono::seconds(0));
  ASSERT_TRUE(empty.ok());
  ASSERT_TRUE(empty->tasks.empty());

  auto poll = std::async(std::launch::async, [&] {
    return client.Desired("node-a", empty->revision, std::chrono::seconds(10));
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::string id = StartTask();
  auto state = poll.get();
  ASSERT_TRUE(state.ok()) << state.error().message;
  ASSERT_EQ(1u, state->tasks.size());
  const DesiredTask& task = state->tasks[0];

  TaskReport report;
  report.node_id = "node-a";
  report.cluster = task.cluster;
  report.task_id = task.task_id;
  report.seq = task.seq + 1;
  report.last_status = "RUNNING";
  report.containers = {ContainerReport{"app", "RUNNING", std::nullopt, "", "", "rt", ""}};
  auto answer = client.Report(report);

  EXPECT_EQ(id, task.task_id);
  EXPECT_EQ("c1", task.cluster);
  EXPECT_EQ("256", task.cpu);
  EXPECT_EQ("us-east-1b", task.availability_zone);
  ASSERT_TRUE(answer.ok()) << answer.error().message;
  EXPECT_TRUE((*answer)["applied"].get<bool>());
  EXPECT_EQ("RUNNING", (*answer)["lastStatus"]);
  auto again = client.Desired("node-a", 0, std::chrono::seconds(0));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(1, again->tasks[0].seq);
  EXPECT_EQ("RUNNING", again->tasks[0].last_status);
}

TEST_F(AgentProtocolTest, ReportOfAnUnknownTaskIsNotFound) {
  AgentControlClient client(endpoint_, token_);
  ASSERT_TRUE(client.Register(Node()).ok());
  TaskReport report;
  report.node_id = "node-a";
  report.cluster = "c1";
  report.task_id = "0123456789abcdef0123456789abcdef";
  report.seq = 1;
  report.last_status = "RUNNING";

  auto answer = client.Report(report);

  ASSERT_FALSE(answer.ok());
  EXPECT_EQ(404, answer.error().status);
}

TEST_F(AgentProtocolTest, UnreachableControlPlaneIsUnavailable) {
  AgentControlClient client("http://127.0.0.1:1", token_, std::chrono::seconds(2));

  auto node = client.Register(Node());

  ASSERT_FALSE(node.ok());
  EXPECT_EQ(503, node.error().status);
}

}  // namespace
}  // namespace berth::ecs
