#include "ecs/task_index.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "store/sqlite_store.h"
#include "temp_dir.h"

namespace berth::ecs {
namespace {

std::string Key(const std::string& cluster, const std::string& id) {
  return kTaskIndexPrefix + cluster + "/" + id;
}

std::vector<std::string> Ids(TaskIndex& index, const std::string& cluster,
                             const std::string& after = "") {
  std::vector<std::string> ids;
  auto st = index.ForEach(cluster, after, [&](const std::string& id, const TaskIndexEntry&) {
    ids.push_back(id);
    return true;
  });
  EXPECT_TRUE(st.ok()) << (st.ok() ? "" : st.error().message);
  return ids;
}

TEST(TaskIndex, SeesEveryWriteCommittedBeforeTheRead) {
  testutil::TempDir dir("berth-index");
  auto store = store::OpenSqliteStore(dir.File("state.db"));
  ASSERT_TRUE(store.ok());
  auto& s = **store;
  ASSERT_TRUE(s.Put(Key("a", "t1"), R"({"lastStatus":"RUNNING","startedBy":"me"})").ok());
  ASSERT_TRUE(s.Put("ecs/tasks/a/t1", R"({"unrelated":true})").ok());

  TaskIndex index(s);
  EXPECT_EQ(Ids(index, "a"), std::vector<std::string>({"t1"}));

  // Writes made straight to the store after the first read show on the next.
  ASSERT_TRUE(s.Put(Key("a", "t0"), R"({"lastStatus":"PENDING"})").ok());
  ASSERT_TRUE(s.Put(Key("a", "t2"), R"({"lastStatus":"STOPPED","stoppedAt":12.5})").ok());
  ASSERT_TRUE(s.Put(Key("b", "t9"), R"({"lastStatus":"RUNNING"})").ok());
  EXPECT_EQ(Ids(index, "a"), std::vector<std::string>({"t0", "t1", "t2"}));
  EXPECT_EQ(Ids(index, "a", "t0"), std::vector<std::string>({"t1", "t2"}));
  EXPECT_EQ(Ids(index, "b"), std::vector<std::string>({"t9"}));
  EXPECT_TRUE(Ids(index, "c").empty());

  // Updates replace, deletes remove, and members are parsed.
  ASSERT_TRUE(s.Put(Key("a", "t1"), R"({"lastStatus":"STOPPED","stoppedAt":99})").ok());
  ASSERT_TRUE(s.Delete(Key("a", "t0")).ok());
  std::vector<std::pair<std::string, TaskIndexEntry>> seen;
  ASSERT_TRUE(index
                  .ForEach("a", "",
                           [&](const std::string& id, const TaskIndexEntry& e) {
                             seen.emplace_back(id, e);
                             return true;
                           })
                  .ok());
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].first, "t1");
  EXPECT_EQ(seen[0].second.last_status, "STOPPED");
  EXPECT_EQ(seen[0].second.stopped_at, 99);
  EXPECT_EQ(seen[0].second.started_by, "");
  EXPECT_GT(seen[0].second.mod_revision, 0);
  EXPECT_EQ(seen[1].first, "t2");
  EXPECT_EQ(seen[1].second.stopped_at, 12.5);

  // Stopping the visit early.
  int visits = 0;
  ASSERT_TRUE(index.ForEach("a", "", [&](const std::string&, const TaskIndexEntry&) {
    ++visits;
    return false;
  }).ok());
  EXPECT_EQ(visits, 1);
}

TEST(TaskIndex, ReloadsWhenTheChangeFeedWasCompacted) {
  testutil::TempDir dir("berth-index");
  store::SqliteStoreOptions options;
  options.max_changes = 2;
  auto store = store::OpenSqliteStore(dir.File("state.db"), options);
  ASSERT_TRUE(store.ok());
  auto& s = **store;
  ASSERT_TRUE(s.Put(Key("a", "t1"), R"({"lastStatus":"RUNNING"})").ok());
  TaskIndex index(s);
  EXPECT_EQ(Ids(index, "a"), std::vector<std::string>({"t1"}));
  // Far more writes than the feed keeps: the index cannot follow them one by
  // one and must read the index again.
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(s.Put(Key("a", "u" + std::to_string(i % 10)), R"({"lastStatus":"RUNNING"})").ok());
  }
  ASSERT_TRUE(s.Delete(Key("a", "t1")).ok());
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(s.Put("other/" + std::to_string(i), "{}").ok());
  }
  auto ids = Ids(index, "a");
  ASSERT_EQ(ids.size(), 10u);
  EXPECT_EQ(ids.front(), "u0");
  EXPECT_EQ(ids.back(), "u9");
}

TEST(TaskIndex, ListsByMemberFollowingChanges) {
  testutil::TempDir dir("berth-index");
  auto store = store::OpenSqliteStore(dir.File("state.db"));
  ASSERT_TRUE(store.ok());
  auto& s = **store;
  ASSERT_TRUE(s.Put(Key("a", "t1"), R"({"startedBy":"me","service":"web","family":"f"})").ok());
  ASSERT_TRUE(s.Put(Key("a", "t2"), R"({"startedBy":"you","family":"f"})").ok());
  ASSERT_TRUE(s.Put(Key("a", "t3"), R"({"startedBy":"me","family":"g"})").ok());
  ASSERT_TRUE(s.Put(Key("b", "t4"), R"({"startedBy":"me"})").ok());
  TaskIndex index(s);
  auto with = [&](const std::string& field, const std::string& value,
                  const std::string& after = "") {
    std::vector<std::string> ids;
    EXPECT_TRUE(index
                    .ForEachWith("a", field, value, after,
                                 [&](const std::string& id, const TaskIndexEntry&) {
                                   ids.push_back(id);
                                   return true;
                                 })
                    .ok());
    return ids;
  };
  EXPECT_EQ(with("startedBy", "me"), std::vector<std::string>({"t1", "t3"}));
  EXPECT_EQ(with("startedBy", "me", "t1"), std::vector<std::string>({"t3"}));
  EXPECT_EQ(with("service", "web"), std::vector<std::string>({"t1"}));
  EXPECT_EQ(with("family", "f"), std::vector<std::string>({"t1", "t2"}));
  EXPECT_TRUE(with("startedBy", "nobody").empty());
  // A task that changes members moves between the lists; a deleted one leaves them.
  ASSERT_TRUE(s.Put(Key("a", "t3"), R"({"startedBy":"you","family":"f"})").ok());
  ASSERT_TRUE(s.Delete(Key("a", "t1")).ok());
  EXPECT_TRUE(with("startedBy", "me").empty());
  EXPECT_EQ(with("startedBy", "you"), std::vector<std::string>({"t2", "t3"}));
  EXPECT_EQ(with("family", "f"), std::vector<std::string>({"t2", "t3"}));
  EXPECT_TRUE(with("service", "web").empty());
}

}  // namespace
}  // namespace berth::ecs
