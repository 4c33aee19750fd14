#include "store/store.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include "store/sqlite_store.h"
#include "temp_dir.h"

namespace berth::store {
namespace {

using berth::testutil::TempDir;

using std::chrono::milliseconds;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A fresh directory, removed with everything in it at the end of the test.

std::vector<std::string> Keys(const std::vector<Entry>& entries) {
  std::vector<std::string> keys;
  for (const Entry& entry : entries) {
    keys.push_back(entry.key);
  }
  return keys;
}

std::vector<std::string> Keys(const std::vector<Event>& events) {
  std::vector<std::string> keys;
  for (const Event& event : events) {
    keys.push_back(event.key);
  }
  return keys;
}

// Reads one integer with a separate, plain SQLite connection.
int64_t QueryInt(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(SQLITE_OK, sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr));
  sqlite3_stmt* stmt = nullptr;
  EXPECT_EQ(SQLITE_OK, sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr));
  int64_t value = -1;
  if (sqlite3_step(stmt) == SQLITE_ROW) {
    value = sqlite3_column_int64(stmt, 0);
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return value;
}

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(); }

  void Open(SqliteStoreOptions options = {}) {
    store_.reset();
    auto opened = OpenSqliteStore(path_, options);
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    store_ = std::move(*opened);
  }

  int64_t MustPut(const std::string& key, const std::string& value) {
    auto revision = store_->Put(key, value);
    EXPECT_TRUE(revision.ok()) << revision.error().message;
    return revision.ok() ? *revision : -1;
  }

  Entry MustGet(const std::string& key) {
    auto entry = store_->Get(key);
    EXPECT_TRUE(entry.ok()) << entry.error().message;
    EXPECT_TRUE(entry.ok() && entry->has_value()) << key << " is missing";
    return entry.ok() && entry->has_value() ? **entry : Entry{};
  }

  bool Exists(const std::string& key) {
    auto entry = store_->Get(key);
    EXPECT_TRUE(entry.ok()) << entry.error().message;
    return entry.ok() && entry->has_value();
  }

  TempDir dir_;
  std::string path_ = dir_.File("state.db");
  std::unique_ptr<Store> store_;
};

TEST_F(StoreTest, PutGetDelete) {
  EXPECT_EQ(0, store_->Revision());
  EXPECT_FALSE(Exists("clusters/default"));

  EXPECT_EQ(1, MustPut("clusters/default", R"({"status":"ACTIVE"})"));
  EXPECT_EQ(R"({"status":"ACTIVE"})", MustGet("clusters/default").value);

  auto deleted = store_->Delete("clusters/default");
  ASSERT_TRUE(deleted.ok()) << deleted.error().message;
  EXPECT_EQ(2, *deleted);
  EXPECT_FALSE(Exists("clusters/default"));
  EXPECT_EQ(2, store_->Revision());
}

TEST_F(StoreTest, KeepsBinaryKeysAndEmptyValues) {
  std::string key("bin/\0\xff\x01", 7);
  std::string value("\0\x02\0", 3);
  MustPut(key, value);
  MustPut("empty", "");

  EXPECT_EQ(value, MustGet(key).value);
  EXPECT_EQ(key, MustGet(key).key);
  EXPECT_EQ("", MustGet("empty").value);
  EXPECT_FALSE(Exists(std::string("bin/\0", 5)));
}

TEST_F(StoreTest, RejectsEmptyKey) {
  auto revision = store_->Put("", "x");
  ASSERT_FALSE(revision.ok());
  EXPECT_EQ("StoreInvalidKey", revision.error().code);
  EXPECT_EQ(0, store_->Revision());
}

TEST_F(StoreTest, TracksCreateAndModRevisions) {
  MustPut("a", "1");  // revision 1
  MustPut("b", "1");  // revision 2
  MustPut("a", "2");  // revision 3

  Entry a = MustGet("a");
  EXPECT_EQ(1, a.create_revision);
  EXPECT_EQ(3, a.mod_revision);
  Entry b = MustGet("b");
  EXPECT_EQ(2, b.create_revision);
  EXPECT_EQ(2, b.mod_revision);

  // Deleting and writing again starts a new life for the key.
  ASSERT_TRUE(store_->Delete("a").ok());
  MustPut("a", "3");
  a = MustGet("a");
  EXPECT_EQ(5, a.create_revision);
  EXPECT_EQ(5, a.mod_revision);
}

TEST_F(StoreTest, OneTransactionIsOneRevision) {
  Txn txn;
  txn.Put("x", "1").Put("y", "2").Put("z", "3");
  auto revision = store_->Commit(txn);
  ASSERT_TRUE(revision.ok()) << revision.error().message;
  EXPECT_EQ(1, *revision);
  EXPECT_EQ(1, MustGet("x").mod_revision);
  EXPECT_EQ(1, MustGet("z").mod_revision);
  EXPECT_EQ(1, store_->Revision());
}

TEST_F(StoreTest, CommitWithoutChangesKeepsRevision) {
  MustPut("a", "1");

  auto empty = store_->Commit(Txn{});
  ASSERT_TRUE(empty.ok()) << empty.error().message;
  EXPECT_EQ(1, *empty);

  auto absent = store_->Delete("never-written");
  ASSERT_TRUE(absent.ok()) << absent.error().message;
  EXPECT_EQ(1, *absent);
  EXPECT_EQ(1, store_->Revision());
}

TEST_F(StoreTest, CompareAndSetSucceedsOnMatchingRevision) {
  int64_t written = MustPut("service/web", "v1");

  Txn txn;
  txn.IfRevision("service/web", written).Put("service/web", "v2").Put("service/web/event", "e");
  auto revision = store_->Commit(txn);
  ASSERT_TRUE(revision.ok()) << revision.error().message;
  EXPECT_EQ(written + 1, *revision);
  EXPECT_EQ("v2", MustGet("service/web").value);
  EXPECT_EQ("e", MustGet("service/web/event").value);
}

TEST_F(StoreTest, ConflictWritesNothing) {
  int64_t written = MustPut("service/web", "v1");
  MustPut("other", "o");

  Txn txn;
  txn.IfRevision("other", 2)
      .IfRevision("service/web", written + 5)
      .Put("service/web", "v2")
      .Put("new-key", "n")
      .Delete("other");
  auto revision = store_->Commit(txn);
  ASSERT_FALSE(revision.ok());
  EXPECT_EQ(kConflict, revision.error().code);
  EXPECT_THAT(revision.error().message, HasSubstr("service/web"));

  EXPECT_EQ("v1", MustGet("service/web").value);
  EXPECT_FALSE(Exists("new-key"));
  EXPECT_TRUE(Exists("other"));
  EXPECT_EQ(2, store_->Revision());
  auto changes = store_->Changes(2, "", milliseconds(0));
  ASSERT_TRUE(changes.ok()) << changes.error().message;
  EXPECT_TRUE(changes->empty());
}

TEST_F(StoreTest, IfAbsentCreatesOnlyOnce) {
  Txn first;
  first.IfAbsent("lock").Put("lock", "holder-1");
  ASSERT_TRUE(store_->Commit(first).ok());

  Txn second;
  second.IfAbsent("lock").Put("lock", "holder-2");
  auto revision = store_->Commit(second);
  ASSERT_FALSE(revision.ok());
  EXPECT_EQ(kConflict, revision.error().code);
  EXPECT_EQ("holder-1", MustGet("lock").value);

  // A compare on a deleted key holds again for "absent".
  ASSERT_TRUE(store_->Delete("lock").ok());
  auto third = store_->Commit(Txn{}.IfAbsent("lock").Put("lock", "holder-3"));
  ASSERT_TRUE(third.ok()) << third.error().message;
  EXPECT_EQ("holder-3", MustGet("lock").value);
}

TEST_F(StoreTest, ListsByPrefixInKeyOrder) {
  for (const char* key : {"a/bc/1", "a/b/2", "b", "a/b", "a/c", "a/b/1", "a/bc"}) {
    MustPut(key, std::string("value of ") + key);
  }

  auto slash = store_->List("a/b/");
  ASSERT_TRUE(slash.ok()) << slash.error().message;
  EXPECT_THAT(Keys(*slash), ElementsAre("a/b/1", "a/b/2"));
  EXPECT_EQ("value of a/b/1", (*slash)[0].value);
  EXPECT_EQ(6, (*slash)[0].mod_revision);

  auto bare = store_->List("a/b");
  ASSERT_TRUE(bare.ok());
  EXPECT_THAT(Keys(*bare), ElementsAre("a/b", "a/b/1", "a/b/2", "a/bc", "a/bc/1"));

  auto all = store_->List("");
  ASSERT_TRUE(all.ok());
  EXPECT_THAT(Keys(*all), ElementsAre("a/b", "a/b/1", "a/b/2", "a/bc", "a/bc/1", "a/c", "b"));

  auto none = store_->List("a/d");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST_F(StoreTest, ListPagesWithStartAfterAndLimit) {
  for (const char* key : {"t/1", "t/2", "t/3", "t/4", "t/5", "u/1", "s/9"}) {
    MustPut(key, "v");
  }

  auto page1 = store_->List("t/", "", 2);
  ASSERT_TRUE(page1.ok());
  EXPECT_THAT(Keys(*page1), ElementsAre("t/1", "t/2"));
  auto page2 = store_->List("t/", page1->back().key, 2);
  ASSERT_TRUE(page2.ok());
  EXPECT_THAT(Keys(*page2), ElementsAre("t/3", "t/4"));
  auto page3 = store_->List("t/", page2->back().key, 2);
  ASSERT_TRUE(page3.ok());
  EXPECT_THAT(Keys(*page3), ElementsAre("t/5"));
  auto page4 = store_->List("t/", page3->back().key, 2);
  ASSERT_TRUE(page4.ok());
  EXPECT_TRUE(page4->empty());

  // start_after need not be a stored key, and one before the prefix is moot.
  auto between = store_->List("t/", "t/2x");
  ASSERT_TRUE(between.ok());
  EXPECT_THAT(Keys(*between), ElementsAre("t/3", "t/4", "t/5"));
  auto before = store_->List("t/", "s/9", 1);
  ASSERT_TRUE(before.ok());
  EXPECT_THAT(Keys(*before), ElementsAre("t/1"));
  auto across = store_->List("", "t/4");
  ASSERT_TRUE(across.ok());
  EXPECT_THAT(Keys(*across), ElementsAre("t/5", "u/1"));
}

TEST_F(StoreTest, ListHandlesPrefixEndingInFfBytes) {
  std::string prefix = "p\xff";
  MustPut(prefix + "a", "1");
  MustPut(prefix + "\xff", "2");
  MustPut("q", "3");
  MustPut("p", "4");

  auto listed = store_->List(prefix);
  ASSERT_TRUE(listed.ok());
  EXPECT_THAT(Keys(*listed), ElementsAre(prefix + "a", prefix + "\xff"));
}

TEST_F(StoreTest, ChangesReturnsWritesInOrder) {
  MustPut("tasks/1", "pending");                  // 1
  MustPut("clusters/c", "active");                // 2
  MustPut("tasks/1", "running");                  // 3
  ASSERT_TRUE(store_->Delete("tasks/1").ok());    // 4
  ASSERT_TRUE(store_->Commit(Txn{}.Put("tasks/2", "a").Put("tasks/3", "b")).ok());  // 5

  auto all = store_->Changes(0, "", milliseconds(0));
  ASSERT_TRUE(all.ok()) << all.error().message;
  ASSERT_EQ(6u, all->size());
  EXPECT_THAT(Keys(*all),
              ElementsAre("tasks/1", "clusters/c", "tasks/1", "tasks/1", "tasks/2", "tasks/3"));
  std::vector<int64_t> revisions;
  for (const Event& event : *all) {
    revisions.push_back(event.revision);
  }
  EXPECT_THAT(revisions, ElementsAre(1, 2, 3, 4, 5, 5));
  EXPECT_EQ(Event::Kind::kPut, (*all)[2].kind);
  EXPECT_EQ("running", (*all)[2].value);
  EXPECT_EQ(Event::Kind::kDelete, (*all)[3].kind);
  EXPECT_EQ("", (*all)[3].value);

  auto tasks = store_->Changes(2, "tasks/", milliseconds(0));
  ASSERT_TRUE(tasks.ok());
  EXPECT_THAT(Keys(*tasks), ElementsAre("tasks/1", "tasks/1", "tasks/2", "tasks/3"));
  EXPECT_EQ(3, tasks->front().revision);

  auto clusters = store_->Changes(0, "clusters/", milliseconds(0));
  ASSERT_TRUE(clusters.ok());
  EXPECT_THAT(Keys(*clusters), ElementsAre("clusters/c"));

  auto latest = store_->Changes(5, "", milliseconds(0));
  ASSERT_TRUE(latest.ok());
  EXPECT_TRUE(latest->empty());
}

TEST_F(StoreTest, ChangesWaitWakesOnCommitFromAnotherThread) {
  MustPut("tasks/1", "pending");

  auto started = std::chrono::steady_clock::now();
  std::thread writer([&] {
    std::this_thread::sleep_for(milliseconds(100));
    // A write outside the prefix must not end the wait by itself.
    MustPut("clusters/c", "active");
    std::this_thread::sleep_for(milliseconds(100));
    MustPut("tasks/2", "pending");
  });
  auto changes = store_->Changes(1, "tasks/", milliseconds(10000));
  auto waited = std::chrono::steady_clock::now() - started;
  writer.join();

  ASSERT_TRUE(changes.ok()) << changes.error().message;
  EXPECT_THAT(Keys(*changes), ElementsAre("tasks/2"));
  EXPECT_EQ(3, changes->front().revision);
  EXPECT_GE(waited, milliseconds(180));
  EXPECT_LT(waited, milliseconds(5000));
}

TEST_F(StoreTest, ChangesWaitTimesOutWithoutCommits) {
  MustPut("tasks/1", "pending");

  auto started = std::chrono::steady_clock::now();
  auto changes = store_->Changes(1, "", milliseconds(200));
  auto waited = std::chrono::steady_clock::now() - started;

  ASSERT_TRUE(changes.ok()) << changes.error().message;
  EXPECT_TRUE(changes->empty());
  EXPECT_GE(waited, milliseconds(200));
  EXPECT_LT(waited, milliseconds(3000));
}

TEST_F(StoreTest, CompactedChangesAreAnError) {
  Open(SqliteStoreOptions{.max_changes = 10});
  for (int i = 1; i <= 30; ++i) {
    MustPut("k/" + std::to_string(i), "v");
  }

  auto old = store_->Changes(0, "", milliseconds(0));
  ASSERT_FALSE(old.ok());
  EXPECT_EQ("StoreCompacted", old.error().code);
  auto just_dropped = store_->Changes(19, "", milliseconds(0));
  ASSERT_FALSE(just_dropped.ok());
  EXPECT_EQ("StoreCompacted", just_dropped.error().code);

  auto kept = store_->Changes(20, "", milliseconds(0));
  ASSERT_TRUE(kept.ok()) << kept.error().message;
  ASSERT_EQ(10u, kept->size());
  EXPECT_EQ(21, kept->front().revision);
  EXPECT_EQ("k/30", kept->back().key);
  EXPECT_EQ(10, QueryInt(path_, "SELECT COUNT(*) FROM changes"));

  // The mark survives a reopen.
  Open(SqliteStoreOptions{.max_changes = 10});
  auto reopened = store_->Changes(5, "", milliseconds(0));
  ASSERT_FALSE(reopened.ok());
  EXPECT_EQ("StoreCompacted", reopened.error().code);
}

TEST_F(StoreTest, CompactionDropsWholeRevisionsOnly) {
  Open(SqliteStoreOptions{.max_changes = 3});
  Txn big;
  for (int i = 0; i < 5; ++i) {
    big.Put("big/" + std::to_string(i), "v");
  }
  ASSERT_TRUE(store_->Commit(big).ok());  // revision 1: five changes
  MustPut("small", "v");                  // revision 2

  // Fewer than all of revision 1 would be over the limit, but it goes whole
  // or stays whole: here it stays, as dropping it would leave only 1.
  auto all = store_->Changes(0, "", milliseconds(0));
  ASSERT_TRUE(all.ok()) << all.error().message;
  EXPECT_EQ(6u, all->size());

  MustPut("small", "w");  // revision 3
  MustPut("small", "x");  // revision 4: now revision 1 can go
  auto rest = store_->Changes(1, "", milliseconds(0));
  ASSERT_TRUE(rest.ok()) << rest.error().message;
  EXPECT_EQ(3u, rest->size());
  EXPECT_FALSE(store_->Changes(0, "", milliseconds(0)).ok());
}

TEST_F(StoreTest, ChangesBatchNeverSplitsARevision) {
  Open(SqliteStoreOptions{.max_events_per_call = 2});
  MustPut("a", "1");                                                         // 1
  ASSERT_TRUE(store_->Commit(Txn{}.Put("b", "1").Put("c", "1").Put("d", "1")).ok());  // 2
  MustPut("e", "1");                                                         // 3

  auto first = store_->Changes(0, "", milliseconds(0));
  ASSERT_TRUE(first.ok());
  EXPECT_THAT(Keys(*first), ElementsAre("a", "b", "c", "d"));
  auto second = store_->Changes(first->back().revision, "", milliseconds(0));
  ASSERT_TRUE(second.ok());
  EXPECT_THAT(Keys(*second), ElementsAre("e"));
}

TEST_F(StoreTest, ReopenKeepsDataAndRevision) {
  MustPut("a", "1");
  MustPut("b", "2");
  MustPut("a", "3");
  ASSERT_TRUE(store_->Delete("b").ok());
  ASSERT_EQ(4, store_->Revision());

  Open();
  EXPECT_EQ(4, store_->Revision());
  Entry a = MustGet("a");
  EXPECT_EQ("3", a.value);
  EXPECT_EQ(1, a.create_revision);
  EXPECT_EQ(3, a.mod_revision);
  EXPECT_FALSE(Exists("b"));

  // The revision continues, and the feed still holds the old writes.
  EXPECT_EQ(5, MustPut("c", "4"));
  auto changes = store_->Changes(0, "", milliseconds(0));
  ASSERT_TRUE(changes.ok());
  EXPECT_THAT(Keys(*changes), ElementsAre("a", "b", "a", "b", "c"));
}

TEST_F(StoreTest, RefusesASecondOpenOfTheSameDatabase) {
  auto second = OpenSqliteStore(path_);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(500, second.error().status);
  EXPECT_THAT(second.error().message, HasSubstr("already open"));

  store_.reset();
  auto third = OpenSqliteStore(path_);
  EXPECT_TRUE(third.ok()) << third.error().message;
}

TEST_F(StoreTest, CommitsSurviveSigkill) {
  constexpr int kEntries = 50;
  std::string crash_path = dir_.File("crash.db");

  pid_t child = fork();
  ASSERT_NE(-1, child);
  if (child == 0) {
    auto store = OpenSqliteStore(crash_path);
    if (!store.ok()) {
      _exit(2);
    }
    for (int i = 0; i < kEntries; ++i) {
      if (!(*store)->Put("entry/" + std::to_string(i), "value " + std::to_string(i)).ok()) {
        _exit(3);
      }
    }
    raise(SIGKILL);
    _exit(4);
  }

  int status = 0;
  ASSERT_EQ(child, waitpid(child, &status, 0));
  ASSERT_TRUE(WIFSIGNALED(status)) << "child exited with " << WEXITSTATUS(status);
  EXPECT_EQ(SIGKILL, WTERMSIG(status));

  auto reopened = OpenSqliteStore(crash_path);
  ASSERT_TRUE(reopened.ok()) << reopened.error().message;
  EXPECT_EQ(kEntries, (*reopened)->Revision());
  auto entries = (*reopened)->List("entry/");
  ASSERT_TRUE(entries.ok());
  ASSERT_EQ(static_cast<size_t>(kEntries), entries->size());
  for (int i = 0; i < kEntries; ++i) {
    auto entry = (*reopened)->Get("entry/" + std::to_string(i));
    ASSERT_TRUE(entry.ok() && entry->has_value()) << "entry " << i;
    EXPECT_EQ("value " + std::to_string(i), (*entry)->value);
  }
}

TEST_F(StoreTest, ConcurrentReadModifyWriteLosesNoIncrement) {
  constexpr int kThreads = 4;
  constexpr int kIncrements = 500;
  std::atomic<int> failures{0};

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kIncrements; ++i) {
        auto revision = ReadModifyWrite(
            *store_, "counter",
            [](const std::optional<Entry>& entry) -> Result<std::optional<std::string>> {
              int64_t count = entry ? std::stoll(entry->value) : 0;
              return std::optional<std::string>(std::to_string(count + 1));
            });
        if (!revision.ok()) {
          ++failures;
        }
      }
    });
  }
  for (std::thread& thread : threads) {
    thread.join();
  }

  EXPECT_EQ(0, failures.load());
  Entry counter = MustGet("counter");
  EXPECT_EQ(std::to_string(kThreads * kIncrements), counter.value);
  EXPECT_EQ(kThreads * kIncrements, counter.mod_revision);
  EXPECT_EQ(1, counter.create_revision);
}

TEST_F(StoreTest, ReadModifyWriteDeletesAndPassesErrorsOn) {
  MustPut("k", "v");

  auto failed = ReadModifyWrite(*store_, "k", [](const std::optional<Entry>&) {
    return Result<std::optional<std::string>>(ClientError("InvalidParameterException", "no"));
  });
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ("InvalidParameterException", failed.error().code);
  EXPECT_EQ("v", MustGet("k").value);

  std::optional<std::string> seen;
  auto deleted = ReadModifyWrite(*store_, "k", [&](const std::optional<Entry>& entry) {
    seen = entry ? entry->value : "absent";
    return Result<std::optional<std::string>>(std::nullopt);
  });
  ASSERT_TRUE(deleted.ok()) << deleted.error().message;
  EXPECT_EQ("v", seen);
  EXPECT_FALSE(Exists("k"));
}

TEST_F(StoreTest, ReadsProceedWhileWriting) {
  MustPut("shared", "0");
  std::atomic<bool> stop{false};
  std::atomic<int> read_errors{0};
  std::atomic<int64_t> reads{0};

  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&] {
      while (!stop.load()) {
        auto entry = store_->Get("shared");
        auto listed = store_->List("");
        if (!entry.ok() || !entry->has_value() || !listed.ok() || listed->empty()) {
          ++read_errors;
        }
        ++reads;
      }
    });
  }
  for (int i = 1; i <= 50; ++i) {
    MustPut("shared", std::to_string(i));
  }
  stop = true;
  for (std::thread& reader : readers) {
    reader.join();
  }

  EXPECT_EQ(0, read_errors.load());
  EXPECT_GT(reads.load(), 0);
  EXPECT_EQ("50", MustGet("shared").value);
}

TEST_F(StoreTest, OpeningSetsTheSchemaVersion) {
  EXPECT_EQ(kSqliteSchemaVersion, QueryInt(path_, "SELECT MAX(version) FROM schema_version"));
  EXPECT_EQ(kSqliteSchemaVersion, QueryInt(path_, "SELECT COUNT(*) FROM schema_version"));
  EXPECT_EQ(1, QueryInt(path_, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'kv'"));
  EXPECT_EQ(1, QueryInt(path_, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'changes'"));

  // Migrations run once: a reopen adds no rows.
  Open();
  EXPECT_EQ(kSqliteSchemaVersion, QueryInt(path_, "SELECT COUNT(*) FROM schema_version"));
  EXPECT_EQ("wal", [&] {
    sqlite3* db = nullptr;
    sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
    sqlite3_stmt* stmt = nullptr;
    sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &stmt, nullptr);
    std::string mode;
    if (sqlite3_step(stmt) == SQLITE_ROW) {
      mode = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    }
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return mode;
  }());
}

TEST_F(StoreTest, RefusesANewerSchema) {
  store_.reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(SQLITE_OK, sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr));
  EXPECT_EQ(SQLITE_OK, sqlite3_exec(db, "INSERT INTO schema_version VALUES (999, 0)", nullptr,
                                    nullptr, nullptr));
  sqlite3_close(db);

  auto opened = OpenSqliteStore(path_);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ("ServerException", opened.error().code);
  EXPECT_THAT(opened.error().message, HasSubstr("schema version 999"));
}

}  // namespace
}  // namespace berth::store
