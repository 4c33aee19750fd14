// DeleteTaskDefinitions and the purge of DELETE_IN_PROGRESS revisions, in-process.
#include <gtest/gtest.h>

#include "ecs/ecs_api.h"
#include "store/sqlite_store.h"
#include "temp_dir.h"

namespace berth::ecs {
namespace {

class TaskDefinitionDelete : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = store::OpenSqliteStore(dir_.File("state.db"));
    ASSERT_TRUE(store.ok());
    store_ = std::move(*store);
    api_ = std::make_unique<EcsApi>(*store_, account_);
  }

  Json Call(Result<Json> r) {
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().code + ": " + r.error().message);
    return r.ok() ? *r : Json();
  }

  void Register(const std::string& family) {
    Call(api_->RegisterTaskDefinition(
        {{"family", family},
         {"requiresCompatibilities", {"FARGATE"}},
         {"networkMode", "awsvpc"},
         {"cpu", "256"},
         {"memory", "512"},
         {"containerDefinitions", {{{"name", "app"}, {"image", "busybox"}}}}},
        ctx_));
  }

  std::string Status(const std::string& ref) {
    auto r = api_->DescribeTaskDefinition({{"taskDefinition", ref}}, ctx_);
    return r.ok() ? (*r)["taskDefinition"]["status"].get<std::string>() : r.error().message;
  }

  testutil::TempDir dir_{"berth-tddel"};
  api::AccountInfo account_;
  api::CallContext ctx_{"000000000000", "us-east-1", "req", "key"};
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<EcsApi> api_;
};

TEST_F(TaskDefinitionDelete, PurgeRemovesOnlyWhatNothingUses) {
  Register("web");
  Register("web");
  Register("web");
  Call(api_->CreateCluster({{"clusterName", "c"}}, ctx_));
  NodeRegistration node;
  node.node_id = "n1";
  node.cpu = 4096;
  node.memory = 8192;
  ASSERT_TRUE(api_->tasks().RegisterNode(node).ok());
  Json net = {{"awsvpcConfiguration", {{"subnets", {"subnet-1"}}}}};
  Json run = Call(api_->RunTask(
      {{"cluster", "c"},
       {"taskDefinition", "web:2"},
       {"launchType", "FARGATE"},
       {"networkConfiguration", net}},
      ctx_));
  ASSERT_EQ(run["tasks"].size(), 1u);
  std::string task_arn = run["tasks"][0]["taskArn"];

  for (const char* ref : {"web:1", "web:2"}) {
    Call(api_->DeregisterTaskDefinition({{"taskDefinition", ref}}, ctx_));
  }
  Json out = Call(api_->DeleteTaskDefinitions({{"taskDefinitions", {"web:1", "web:2"}}}, ctx_));
  ASSERT_EQ(out["taskDefinitions"].size(), 2u);
  EXPECT_TRUE(out["failures"].empty());

  // web:1 is used by nothing; web:2 by a task that has not stopped.
  auto purged = api_->PurgeDeletedTaskDefinitions();
  ASSERT_TRUE(purged.ok());
  EXPECT_EQ(*purged, 1);
  EXPECT_EQ(Status("web:1"), "Unable to describe task definition.");
  EXPECT_EQ(Status("web:2"), "DELETE_IN_PROGRESS");
  EXPECT_EQ(Status("web:3"), "ACTIVE");

  // Once the task has stopped, web:2 goes too.
  std::string task_id = task_arn.substr(task_arn.rfind('/') + 1);
  ASSERT_TRUE(api_->tasks().StopTask("c", task_id, "UserInitiated", "done").ok());
  // Desired STOPPED is not enough: the task still runs until its node says it stopped.
  auto waiting = api_->PurgeDeletedTaskDefinitions();
  ASSERT_TRUE(waiting.ok());
  EXPECT_EQ(*waiting, 0);
  EXPECT_EQ(Status("web:2"), "DELETE_IN_PROGRESS");
  TaskReport report;
  report.node_id = "n1";
  report.cluster = "c";
  report.task_id = task_id;
  report.seq = 1;
  report.last_status = "STOPPED";
  ASSERT_TRUE(api_->tasks().ApplyReport(report).ok());
  auto second = api_->PurgeDeletedTaskDefinitions();
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(*second, 1);
  EXPECT_EQ(Status("web:2"), "Unable to describe task definition.");

  // The family keeps counting.
  Register("web");
  EXPECT_EQ(Status("web:4"), "ACTIVE");
}

}  // namespace
}  // namespace berth::ecs
