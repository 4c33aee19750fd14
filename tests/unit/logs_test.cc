// Tests for the log store (durability, time order, retention, followers) and
// the CloudWatch Logs API handlers built on it.
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "api/json_service.h"
#include "logs/filter_pattern.h"
#include "logs/log_segment.h"
#include "logs/log_store.h"
#include "logs/logs_api.h"
#include "temp_dir.h"

namespace berth::logs {
namespace {

using berth::testutil::TempDir;

namespace fs = std::filesystem;
using api::Json;

constexpr int64_t kDay = 86'400'000;
constexpr int64_t kHour = 3'600'000;


std::unique_ptr<LogStore> OpenStore(const std::string& dir, LogStoreOptions options = {}) {
  auto store = LogStore::Open(dir, options);
  EXPECT_TRUE(store.ok()) << (store.ok() ? "" : store.error().message);
  return store.ok() ? std::move(store).value() : nullptr;
}

std::vector<InputEvent> Batch(int64_t first_ts, int count, const std::string& tag,
                              int64_t step = 1) {
  std::vector<InputEvent> out;
  for (int i = 0; i < count; ++i) {
    out.push_back({first_ts + i * step, tag + "-" + std::to_string(i)});
  }
  return out;
}

std::vector<std::string> Messages(const std::vector<LogEvent>& events) {
  std::vector<std::string> out;
  for (const auto& e : events) {
    out.push_back(e.message);
  }
  return out;
}

// Reads a whole stream forward in pages of `page` events.
std::vector<LogEvent> ReadAll(LogStore& store, const std::string& g, const std::string& s,
                              size_t page = 10000) {
  std::vector<LogEvent> all;
  ReadQuery q;
  q.limit = page;
  while (true) {
    auto r = store.Read(g, s, q);
    EXPECT_TRUE(r.ok());
    if (!r.ok() || r->events.empty()) {
      break;
    }
    all.insert(all.end(), r->events.begin(), r->events.end());
    q.after = r->events.back().key();
  }
  return all;
}

// ---------------------------------------------------------------------------
// Segment format

TEST(LogSegmentTest, Crc32cMatchesKnownValue) {
  // The CRC32C check value from the iSCSI specification.
  EXPECT_EQ(0xE3069283u, Crc32c("123456789"));
  EXPECT_EQ(Crc32c("123456789"), Crc32c("6789", Crc32c("12345")));
}

TEST(LogSegmentTest, BlockRoundTrips) {
  std::vector<InputEvent> events = {{10, "a"}, {10, "bb"}, {12, std::string(300, 'x')}};
  std::string block = EncodeBlock(events, 41, 99);
  ASSERT_EQ(kBlockHeaderSize + 3 * kRecordOverhead + 1 + 2 + 300, block.size());
  BlockHeader h;
  h.payload_len = static_cast<uint32_t>(block.size() - kBlockHeaderSize);
  h.count = 3;
  h.first_id = 41;
  std::vector<RecordView> recs;
  ASSERT_TRUE(DecodeBlock(std::string_view(block).substr(kBlockHeaderSize), h, &recs));
  ASSERT_EQ(3u, recs.size());
  EXPECT_EQ(41, recs[0].id);
  EXPECT_EQ(43, recs[2].id);
  EXPECT_EQ("bb", recs[1].message);
  EXPECT_EQ(12, recs[2].timestamp);
  h.count = 4;
  recs.clear();
  EXPECT_FALSE(DecodeBlock(std::string_view(block).substr(kBlockHeaderSize), h, &recs));
}

// ---------------------------------------------------------------------------
// Filter patterns

TEST(FilterPatternTest, EmptyMatchesEverything) {
  auto p = FilterPattern::Parse("  ");
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->MatchesAll());
  EXPECT_TRUE(p->Matches("anything"));
}

TEST(FilterPatternTest, TermsMustAllMatchCaseSensitively) {
  auto p = FilterPattern::Parse("ERROR timeout");
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->Matches("[ERROR] request timeout after 5s"));
  EXPECT_FALSE(p->Matches("[ERROR] request failed"));
  EXPECT_FALSE(p->Matches("[error] request timeout"));
}

TEST(FilterPatternTest, QuotedPhraseIsOneTerm) {
  auto p = FilterPattern::Parse("\"Internal Server Error\"");
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->Matches("500 Internal Server Error"));
  EXPECT_FALSE(p->Matches("Internal Error on Server"));
}

TEST(FilterPatternTest, QuestionMarkTermsAreAlternatives) {
  auto p = FilterPattern::Parse("?ERROR ?WARN");
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->Matches("WARN disk"));
  EXPECT_TRUE(p->Matches("ERROR disk"));
  EXPECT_FALSE(p->Matches("INFO disk"));
}

TEST(FilterPatternTest, MinusTermsExclude) {
  auto p = FilterPattern::Parse("ERROR -retrying");
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->Matches("ERROR giving up"));
  EXPECT_FALSE(p->Matches("ERROR retrying in 1s"));
}

TEST(FilterPatternTest, RejectsStructuredAndBrokenPatterns) {
  EXPECT_FALSE(FilterPattern::Parse("{ $.level = \"error\" }").ok());
  EXPECT_FALSE(FilterPattern::Parse("[ip, user]").ok());
  EXPECT_FALSE(FilterPattern::Parse("\"unterminated").ok());
  EXPECT_FALSE(FilterPattern::Parse("ERROR ?").ok());
  EXPECT_EQ("InvalidParameterException", FilterPattern::Parse("{x}").error().code);
}

// ---------------------------------------------------------------------------
// Store

TEST(LogStoreTest, GroupsAndStreamsReportAwsErrors) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  ASSERT_TRUE(store->CreateGroup("g", {}, 1000).ok());
  auto dup = store->CreateGroup("g", {}, 1000);
  EXPECT_EQ("ResourceAlreadyExistsException", dup.error().code);
  EXPECT_EQ("The specified log group already exists", dup.error().message);
  EXPECT_EQ("The specified log group does not exist.",
            store->CreateStream("nope", "s", 1).error().message);
  ASSERT_TRUE(store->CreateStream("g", "s", 2000).ok());
  EXPECT_EQ("The specified log stream already exists",
            store->CreateStream("g", "s", 1).error().message);
  EXPECT_EQ("The specified log stream does not exist.",
            store->Append("g", "other", Batch(1, 1, "m")).error().message);
  EXPECT_EQ("ResourceNotFoundException", store->DeleteStream("g", "other").error().code);

  auto info = store->GetStream("g", "s");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(2000, info->creation_time);
  EXPECT_EQ(0u, info->event_count);
}

TEST(LogStoreTest, ReadsForwardAndBackwardInTimeOrder) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  ASSERT_TRUE(store->EnsureStream("g", "s", 1).ok());
  ASSERT_TRUE(store->Append("g", "s", Batch(100, 5, "a"), 5000).ok());
  ASSERT_TRUE(store->Append("g", "s", Batch(105, 5, "b"), 6000).ok());

  ReadQuery fwd;
  fwd.limit = 3;
  auto first = store->Read("g", "s", fwd);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ((std::vector<std::string>{"a-0", "a-1", "a-2"}), Messages(first->events));
  EXPECT_TRUE(first->more);
  EXPECT_EQ(5000, first->events[0].ingestion_time);

  ReadQuery back;
  back.forward = false;
  back.limit = 3;
  auto last = store->Read("g", "s", back);
  ASSERT_TRUE(last.ok());
  EXPECT_EQ((std::vector<std::string>{"b-2", "b-3", "b-4"}), Messages(last->events));

  ReadQuery range;
  range.start_time = 103;
  range.end_time = 106;
  auto mid = store->Read("g", "s", range);
  ASSERT_TRUE(mid.ok());
  EXPECT_EQ((std::vector<std::string>{"a-3", "a-4", "b-0"}), Messages(mid->events));
  EXPECT_FALSE(mid->more);

  auto info = store->GetStream("g", "s");
  EXPECT_EQ(100, info->first_event_timestamp);
  EXPECT_EQ(109, info->last_event_timestamp);
  EXPECT_EQ(6000, info->last_ingestion_time);
  EXPECT_EQ(10u, info->event_count);
  EXPECT_EQ(10, info->last_event_id);
}

TEST(LogStoreTest, UnsortedAndOverlappingBatchesReadInTimeOrder) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  ASSERT_TRUE(store->EnsureStream("g", "s", 1).ok());
  std::mt19937_64 rng(7);
  std::vector<std::pair<int64_t, std::string>> all;
  for (int b = 0; b < 40; ++b) {
    std::vector<InputEvent> batch;
    int n = 1 + static_cast<int>(rng() % 60);
    for (int i = 0; i < n; ++i) {
      int64_t ts = static_cast<int64_t>(rng() % 500);
      std::string msg = "b" + std::to_string(b) + "e" + std::to_string(i);
      batch.push_back({ts, msg});
    }
    ASSERT_TRUE(store->Append("g", "s", batch).ok());
    std::stable_sort(batch.begin(), batch.end(),
                     [](const auto& x, const auto& y) { return x.timestamp < y.timestamp; });
    for (auto& e : batch) {
      all.emplace_back(e.timestamp, e.message);
    }
  }
  // Ids grow with ingestion, so time order is (timestamp, batch order).
  std::stable_sort(all.begin(), all.end(),
                   [](const auto& x, const auto& y) { return x.first < y.first; });
  std::vector<std::string> expected;
  for (auto& [_, m] : all) {
    expected.push_back(m);
  }

  for (size_t page : {1ul, 7ul, 64ul, 10000ul}) {
    EXPECT_EQ(expected, Messages(ReadAll(*store, "g", "s", page))) << "page " << page;
  }
  // Backward, page by page.
  std::vector<LogEvent> backward;
  ReadQuery q;
  q.forward = false;
  q.limit = 13;
  while (true) {
    auto r = store->Read("g", "s", q);
    ASSERT_TRUE(r.ok());
    if (r->events.empty()) {
      break;
    }
    backward.insert(backward.begin(), r->events.begin(), r->events.end());
    q.before = r->events.front().key();
  }
  EXPECT_EQ(expected, Messages(backward));
}

TEST(LogStoreTest, ReopenKeepsEventsAndIdsKeepGrowing) {
  TempDir dir;
  LogStoreOptions small;
  small.segment_bytes = 512;  // a segment per batch
  int64_t last_id = 0;
  {
    auto store = OpenStore(dir.path(), small);
    ASSERT_TRUE(store->CreateGroup("g", {"key", {{"team", "a"}}, "arn:x"}, 10).ok());
    ASSERT_TRUE(store->SetRetention("g", 7).ok());
    ASSERT_TRUE(store->CreateStream("g", "s", 11).ok());
    for (int b = 0; b < 30; ++b) {
      auto r = store->Append("g", "s", Batch(b * 100, 20, "b" + std::to_string(b)));
      ASSERT_TRUE(r.ok());
      last_id = r->last_event_id;
    }
    ASSERT_TRUE(store->CreateStream("g", "gone", 12).ok());
    auto gone = store->Append("g", "gone", Batch(0, 50, "x"));
    ASSERT_TRUE(gone.ok());
    last_id = gone->last_event_id;
    ASSERT_TRUE(store->DeleteStream("g", "gone").ok());
  }
  EXPECT_GT(
      std::distance(fs::directory_iterator(dir.path() + "/streams/1"), fs::directory_iterator{}),
      10);
  auto store = OpenStore(dir.path(), small);
  auto info = store->GetGroup("g");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(7, info->retention_days.value_or(0));
  EXPECT_EQ("key", info->kms_key_id);
  EXPECT_EQ("a", info->tags["team"]);
  EXPECT_EQ("arn:x", info->arn);
  EXPECT_EQ(600u, ReadAll(*store, "g", "s").size());
  EXPECT_EQ("ResourceNotFoundException", store->GetStream("g", "gone").error().code);
  EXPECT_FALSE(fs::exists(dir.path() + "/streams/2"));
  // The deleted stream held the highest ids; they are not handed out again.
  auto next = store->Append("g", "s", Batch(5000, 1, "after"));
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(last_id + 1, next->first_event_id);
}

TEST(LogStoreTest, RefusesASecondOpenOfTheSameDirectory) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  auto second = LogStore::Open(dir.path());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ("ServerException", second.error().code);
  store.reset();
  EXPECT_TRUE(LogStore::Open(dir.path()).ok());
}

TEST(LogStoreTest, TornTailIsCutOffOnOpen) {
  TempDir dir;
  {
    auto store = OpenStore(dir.path());
    ASSERT_TRUE(store->EnsureStream("g", "s", 1).ok());
    ASSERT_TRUE(store->Append("g", "s", Batch(1, 10, "ok")).ok());
  }
  // A block whose payload never fully reached the disk.
  std::string segment = dir.path() + "/streams/1/0000000000000001.seg";
  auto size_before = fs::file_size(segment);
  std::string block = EncodeBlock(Batch(50, 10, "torn"), 11, 5);
  block[block.size() - 3] ^= 0x5a;
  int fd = ::open(segment.c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(static_cast<ssize_t>(block.size()), ::write(fd, block.data(), block.size()));
  ::close(fd);

  auto store = OpenStore(dir.path());
  EXPECT_EQ(size_before, fs::file_size(segment));
  auto events = ReadAll(*store, "g", "s");
  ASSERT_EQ(10u, events.size());
  EXPECT_EQ("ok-9", events.back().message);
  ASSERT_TRUE(store->Append("g", "s", Batch(60, 1, "later")).ok());
  EXPECT_EQ(11u, ReadAll(*store, "g", "s").size());
}

TEST(LogStoreTest, AcknowledgedEventsSurviveKill9) {
  TempDir dir;
  {
    auto store = OpenStore(dir.path());
    ASSERT_TRUE(store->EnsureStream("g", "s", 1).ok());
    ASSERT_TRUE(store->EnsureStream("g", "t", 1).ok());
  }
  int pipefd[2];
  ASSERT_EQ(0, ::pipe(pipefd));
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // The child appends from two threads and reports each acknowledged batch,
    // then dies without any cleanup.
    ::close(pipefd[0]);
    auto opened = LogStore::Open(dir.path());
    if (!opened.ok()) {
      ::_exit(3);
    }
    LogStore& store = **opened;
    std::atomic<int> failures{0};
    auto writer = [&](const std::string& stream, char tag) {
      for (int b = 0; b < 40; ++b) {
        auto r = store.Append("g", stream,
                              Batch(b * 1000, 250, std::string(1, tag) + std::to_string(b)));
        if (!r.ok()) {
          ++failures;
          return;
        }
        char ack[2] = {tag, static_cast<char>(b)};
        if (::write(pipefd[1], ack, 2) != 2) {
          ++failures;
        }
      }
    };
    std::thread a(writer, "s", 's');
    std::thread b(writer, "t", 't');
    a.join();
    b.join();
    ::raise(SIGKILL);
    ::_exit(failures.load() == 0 ? 0 : 4);
  }
  ::close(pipefd[1]);
  std::map<char, int> acked;
  char ack[2];
  while (::read(pipefd[0], ack, 2) == 2) {
    acked[ack[0]] = std::max(acked[ack[0]], ack[1] + 1);
  }
  ::close(pipefd[0]);
  int status = 0;
  ASSERT_EQ(pid, ::waitpid(pid, &status, 0));
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(SIGKILL, WTERMSIG(status));
  ASSERT_EQ(40, acked['s']);
  ASSERT_EQ(40, acked['t']);

  auto store = OpenStore(dir.path());
  for (auto [stream, tag] : {std::pair{"s", 's'}, std::pair{"t", 't'}}) {
    auto events = ReadAll(*store, "g", stream);
    ASSERT_EQ(40u * 250u, events.size());
    auto messages = Messages(events);
    std::set<std::string> seen(messages.begin(), messages.end());
    EXPECT_EQ(10000u, seen.size());
    EXPECT_EQ(1u, seen.count(std::string(1, tag) + "39-249"));
  }
}

TEST(LogStoreTest, FilterMergesStreamsExactlyOnceAcrossPartialPages) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  std::vector<std::tuple<int64_t, int64_t, std::string>> expected;  // ts, id, message
  for (const char* s : {"a", "b", "c"}) {
    ASSERT_TRUE(store->EnsureStream("g", s, 1).ok());
  }
  std::mt19937 rng(3);
  for (int b = 0; b < 30; ++b) {
    std::string stream(1, "abc"[b % 3]);
    auto batch = Batch(static_cast<int64_t>(rng() % 2000), 100, stream + std::to_string(b),
                       static_cast<int64_t>(rng() % 3));
    auto r = store->Append("g", stream, batch);
    ASSERT_TRUE(r.ok());
    for (size_t i = 0; i < batch.size(); ++i) {
      expected.emplace_back(batch[i].timestamp, r->first_event_id + static_cast<int64_t>(i),
                            batch[i].message);
    }
  }
  std::sort(expected.begin(), expected.end());

  FilterQuery q;
  q.limit = 450;
  q.scan_budget = 700;  // forces pages cut by the budget as well as the limit
  q.matcher = [](std::string_view m) {
    return m.back() != '7';
  };
  std::vector<std::string> got;
  int pages = 0;
  while (true) {
    auto page = store->Filter("g", q);
    ASSERT_TRUE(page.ok());
    ++pages;
    int64_t prev_ts = -1;
    for (const auto& fe : page->events) {
      EXPECT_LE(prev_ts, fe.event.timestamp);
      prev_ts = fe.event.timestamp;
      EXPECT_EQ(page->streams[fe.stream][0], fe.event.message[0]);
      got.push_back(fe.event.message);
    }
    if (!page->resume_after) {
      break;
    }
    q.after = page->resume_after;
  }
  std::vector<std::string> want;
  for (auto& [ts, id, m] : expected) {
    if (m.back() != '7') {
      want.push_back(m);
    }
  }
  EXPECT_EQ(want, got);
  EXPECT_GT(pages, 5);

  FilterQuery only_b;
  only_b.stream_names = {"b", "missing"};
  auto page = store->Filter("g", only_b);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(std::vector<std::string>{"b"}, page->streams);
  EXPECT_EQ(1000u, page->events.size());
}

TEST(LogStoreTest, FollowReturnsNewEventsInIngestionOrder) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  ASSERT_TRUE(store->EnsureStream("g", "web/1", 1).ok());
  ASSERT_TRUE(store->EnsureStream("g", "db/1", 1).ok());
  ASSERT_TRUE(store->Append("g", "web/1", Batch(500, 2, "w")).ok());
  ASSERT_TRUE(store->Append("g", "db/1", Batch(100, 2, "d")).ok());

  FollowQuery q;
  auto page = store->Follow("g", q);
  ASSERT_TRUE(page.ok());
  std::vector<std::string> got;
  for (const auto& fe : page->events) {
    got.push_back(fe.event.message);
  }
  EXPECT_EQ((std::vector<std::string>{"w-0", "w-1", "d-0", "d-1"}), got);
  EXPECT_EQ(4, page->next_after);

  // Nothing new: returns after the wait, empty.
  q.after_event_id = page->next_after;
  q.wait = std::chrono::milliseconds(50);
  auto idle = store->Follow("g", q);
  ASSERT_TRUE(idle.ok());
  EXPECT_TRUE(idle->events.empty());
  EXPECT_EQ(4, idle->next_after);

  // A waiting follower wakes up for an append in another thread; the prefix
  // filter skips the other stream.
  q.wait = std::chrono::seconds(10);
  q.stream_prefix = "db/";
  std::thread writer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ASSERT_TRUE(store->Append("g", "web/1", Batch(600, 1, "w2")).ok());
    ASSERT_TRUE(store->Append("g", "db/1", Batch(700, 1, "d2")).ok());
  });
  auto start = std::chrono::steady_clock::now();
  auto woke = store->Follow("g", q);
  writer.join();
  ASSERT_TRUE(woke.ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  ASSERT_EQ(1u, woke->events.size());
  EXPECT_EQ("d2-0", woke->events[0].event.message);
  EXPECT_EQ(6, woke->next_after);
  EXPECT_EQ("ResourceNotFoundException", store->Follow("nope", FollowQuery{}).error().code);
}

TEST(LogStoreTest, ConcurrentAppendsGetUniqueIncreasingIds) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  for (int s = 0; s < 4; ++s) {
    ASSERT_TRUE(store->EnsureStream("g", "s" + std::to_string(s), 1).ok());
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      std::string stream = "s" + std::to_string(t % 4);
      for (int b = 0; b < 25; ++b) {
        EXPECT_TRUE(store->Append("g", stream, Batch(b * 10, 40, "t" + std::to_string(t))).ok());
      }
    });
  }
  std::thread reader([&] {
    for (int i = 0; i < 50; ++i) {
      FilterQuery q;
      EXPECT_TRUE(store->Filter("g", q).ok());
    }
  });
  for (auto& t : threads) {
    t.join();
  }
  reader.join();
  std::set<int64_t> ids;
  for (int s = 0; s < 4; ++s) {
    auto events = ReadAll(*store, "g", "s" + std::to_string(s));
    EXPECT_EQ(2000u, events.size());
    for (const auto& e : events) {
      ids.insert(e.event_id);
    }
  }
  EXPECT_EQ(8000u, ids.size());
  EXPECT_EQ(1, *ids.begin());
  EXPECT_EQ(8000, *ids.rbegin());
  EXPECT_EQ(8000, store->VisibleEventId());
}

TEST(LogStoreTest, ConcurrentAppendsToOneStreamShareSyncsAndKeepIdOrder) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  ASSERT_TRUE(store->EnsureStream("g", "s", 1).ok());
  std::vector<std::thread> threads;
  std::vector<std::vector<AppendResult>> results(6);
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      for (int b = 0; b < 30; ++b) {
        auto r = store->Append("g", "s", Batch(1000 + b, 10, fmt::format("t{}b{}", t, b)));
        ASSERT_TRUE(r.ok());
        results[static_cast<size_t>(t)].push_back(*r);
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  // Each acknowledged batch is readable under the ids it was given.
  std::map<int64_t, std::string> by_id;
  for (const auto& e : ReadAll(*store, "g", "s")) {
    by_id[e.event_id] = e.message;
  }
  ASSERT_EQ(1800u, by_id.size());
  for (int t = 0; t < 6; ++t) {
    for (int b = 0; b < 30; ++b) {
      const AppendResult& r = results[static_cast<size_t>(t)][static_cast<size_t>(b)];
      EXPECT_EQ(fmt::format("t{}b{}-0", t, b), by_id[r.first_event_id]);
      EXPECT_EQ(fmt::format("t{}b{}-9", t, b), by_id[r.last_event_id]);
    }
  }
  // Followers see the stream in id order.
  FollowQuery q;
  auto page = store->Follow("g", q);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(1800u, page->events.size());
  for (size_t i = 0; i < page->events.size(); ++i) {
    EXPECT_EQ(static_cast<int64_t>(i + 1), page->events[i].event.event_id);
  }
}

TEST(LogStoreTest, DeletingAStreamUnderConcurrentAppendsFailsThemCleanly) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  ASSERT_TRUE(store->EnsureStream("g", "s", 1).ok());
  std::atomic<int> ok{0};
  std::atomic<int> not_found{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    // Each writer appends until the stream is gone.
    threads.emplace_back([&] {
      for (int b = 0;; ++b) {
        auto r = store->Append("g", "s", Batch(b, 20, "m"));
        if (!r.ok()) {
          EXPECT_EQ("ResourceNotFoundException", r.error().code);
          ++not_found;
          return;
        }
        ++ok;
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_TRUE(store->DeleteStream("g", "s").ok());
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(4, not_found.load());
  EXPECT_GT(ok.load(), 0);
  EXPECT_FALSE(fs::exists(dir.path() + "/streams/1"));
  // Every id handed out is settled, so followers are not held back.
  ASSERT_TRUE(store->EnsureStream("g", "s", 2).ok());
  auto r = store->Append("g", "s", Batch(1, 1, "again"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->last_event_id, store->VisibleEventId());
}

TEST(LogStoreTest, SweepExpiresOldEventsAndDeletesTheirSegments) {
  TempDir dir;
  LogStoreOptions small;
  small.segment_bytes = 1024;  // each old batch fills a segment
  const int64_t now = 100 * kDay;
  {
    auto store = OpenStore(dir.path(), small);
    ASSERT_TRUE(store->EnsureStream("g", "s", 1).ok());
    ASSERT_TRUE(store->EnsureStream("keep", "s", 1).ok());
    // Ten old batches (each fills a segment), then a batch straddling the
    // cutoff, then recent events.
    for (int b = 0; b < 10; ++b) {
      ASSERT_TRUE(store->Append("g", "s", Batch(now - 5 * kDay + b, 60, "old"), now).ok());
    }
    ASSERT_TRUE(store->Append("g", "s", Batch(now - 3 * kDay - 2, 4, "edge"), now).ok());
    ASSERT_TRUE(store->Append("g", "s", Batch(now - kHour, 5, "new"), now).ok());
    ASSERT_TRUE(store->Append("keep", "s", Batch(now - 50 * kDay, 5, "ancient"), now).ok());
    ASSERT_TRUE(store->SetRetention("g", 3).ok());

    auto before = store->GetGroup("g");
    auto stats = store->SweepExpired(now);
    ASSERT_TRUE(stats.ok());
    EXPECT_EQ(1u, stats->groups_swept);
    EXPECT_EQ(10u, stats->segments_deleted);
    EXPECT_GT(stats->bytes_freed, 10u * 600u);

    auto events = ReadAll(*store, "g", "s");
    EXPECT_EQ(
        (std::vector<std::string>{"edge-2", "edge-3", "new-0", "new-1", "new-2", "new-3", "new-4"}),
        Messages(events));
    auto info = store->GetStream("g", "s");
    EXPECT_EQ(7u, info->event_count);
    EXPECT_EQ(now - 3 * kDay, info->first_event_timestamp);
    EXPECT_LT(store->GetGroup("g")->stored_bytes, before->stored_bytes);
    EXPECT_EQ(5u, ReadAll(*store, "keep", "s").size());

    // Events appended after the sweep are judged by the policy at the next
    // sweep, not hidden by the last one.
    ASSERT_TRUE(store->SetRetention("g", std::nullopt).ok());
    ASSERT_TRUE(store->Append("g", "s", Batch(now - 4 * kDay, 1, "late"), now).ok());
    EXPECT_EQ(8u, ReadAll(*store, "g", "s").size());
  }
  auto store = OpenStore(dir.path(), small);
  auto events = ReadAll(*store, "g", "s");
  ASSERT_EQ(8u, events.size());
  EXPECT_EQ("late-0", events.front().message);
  EXPECT_EQ("edge-2", events[1].message);
}

// ---------------------------------------------------------------------------
// API

class LogsApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = OpenStore(dir_.path());
    service_ =
        std::make_unique<api::JsonService>(MakeLogsService(*store_, [this] { return now_; }));
    ctx_.account_id = "123456789012";
    ctx_.region = "us-east-1";
  }

  Result<Json> Call(const std::string& op, const Json& in) {
    const api::JsonHandler* h = service_->Find(op);
    EXPECT_NE(nullptr, h) << op;
    if (h == nullptr) {
      return ServerError("no handler");
    }
    return (*h)(in, ctx_);
  }

  Json Must(const std::string& op, const Json& in) {
    auto r = Call(op, in);
    EXPECT_TRUE(r.ok()) << op << ": " << (r.ok() ? "" : r.error().code + ": " + r.error().message);
    return r.ok() ? *r : Json();
  }

  void ExpectError(const std::string& op, const Json& in, const std::string& code,
                   const std::string& message) {
    auto r = Call(op, in);
    ASSERT_FALSE(r.ok()) << op << " " << in.dump();
    EXPECT_EQ(400, r.error().status);
    EXPECT_EQ(code, r.error().code);
    if (!message.empty()) {
      EXPECT_EQ(message, r.error().message);
    }
  }

  void MakeStream(const std::string& g, const std::string& s) {
    if (!store_->GetGroup(g).ok()) {
      Must("CreateLogGroup", {{"logGroupName", g}});
    }
    Must("CreateLogStream", {{"logGroupName", g}, {"logStreamName", s}});
  }

  // Puts `count` events of about 100 bytes, `per_ts` sharing each timestamp.
  void PutMany(const std::string& g, const std::string& s, int count, int64_t first_ts, int per_ts,
               const std::string& tag) {
    for (int done = 0; done < count;) {
      Json events = Json::array();
      for (int i = 0; i < 5000 && done < count; ++i, ++done) {
        std::string msg = fmt::format("{}-{:06d} ", tag, done);
        msg.resize(100, 'x');
        events.push_back({{"timestamp", first_ts + done / per_ts}, {"message", msg}});
      }
      Must("PutLogEvents", {{"logGroupName", g}, {"logStreamName", s}, {"logEvents", events}});
    }
  }

  TempDir dir_;
  std::unique_ptr<LogStore> store_;
  std::unique_ptr<api::JsonService> service_;
  api::CallContext ctx_;
  int64_t now_ = 1'700'000'000'000;
};

TEST_F(LogsApiTest, ServesEveryOperationUnderTheLogsTarget) {
  EXPECT_EQ("Logs_20140328", service_->target_prefix());
  EXPECT_EQ("logs", service_->model_name());
  for (const char* op :
       {"CreateLogGroup", "DeleteLogGroup", "DescribeLogGroups", "CreateLogStream",
        "DeleteLogStream", "DescribeLogStreams", "PutLogEvents", "GetLogEvents", "FilterLogEvents",
        "PutRetentionPolicy", "DeleteRetentionPolicy", "TagLogGroup", "UntagLogGroup",
        "ListTagsLogGroup", "TagResource", "UntagResource", "ListTagsForResource"}) {
    EXPECT_NE(nullptr, service_->Find(op)) << op;
  }
}

TEST_F(LogsApiTest, CreateLogGroupChecksNamesAndDuplicates) {
  EXPECT_EQ(Json::object(), Must("CreateLogGroup", {{"logGroupName", "/ecs/web_app-1.#x"}}));
  ExpectError("CreateLogGroup", {{"logGroupName", "/ecs/web_app-1.#x"}},
              "ResourceAlreadyExistsException", "The specified log group already exists");
  ExpectError("CreateLogGroup", {{"logGroupName", "bad:name"}}, "InvalidParameterException",
              "1 validation error detected: Value 'bad:name' at 'logGroupName' failed to satisfy "
              "constraint: Member must satisfy regular expression pattern: [\\.\\-_/#A-Za-z0-9]+");
  ExpectError("CreateLogGroup", {{"logGroupName", std::string(513, 'a')}},
              "InvalidParameterException",
              "Invalid LogGroup or LogStream, both must have length less than or equal to 512.");
  EXPECT_TRUE(Call("CreateLogGroup", {{"logGroupName", std::string(512, 'a')}}).ok());
  ExpectError("CreateLogGroup", {{"logGroupName", ""}}, "InvalidParameterException", "");
  ExpectError("CreateLogGroup", {}, "InvalidParameterException", "");
}

TEST_F(LogsApiTest, DeleteLogGroupRemovesItsStreams) {
  MakeStream("g", "s");
  Must("DeleteLogGroup", {{"logGroupName", "g"}});
  ExpectError("DeleteLogGroup", {{"logGroupName", "g"}}, "ResourceNotFoundException",
              "The specified log group does not exist.");
  ExpectError("DescribeLogStreams", {{"logGroupName", "g"}}, "ResourceNotFoundException",
              "The specified log group does not exist.");
  Must("CreateLogGroup", {{"logGroupName", "g"}});
  EXPECT_TRUE(Must("DescribeLogStreams", {{"logGroupName", "g"}})["logStreams"].empty());
}

TEST_F(LogsApiTest, DescribeLogGroupsPaginatesAndFilters) {
  for (const char* n : {"/b/two", "/a/one", "/b/one", "/c", "/b/three"}) {
    Must("CreateLogGroup", {{"logGroupName", n}, {"kmsKeyId", "k1"}});
  }
  Must("PutRetentionPolicy", {{"logGroupName", "/c"}, {"retentionInDays", 30}});

  std::vector<std::string> names;
  Json in{{"limit", 2}};
  int pages = 0;
  while (true) {
    Json out = Must("DescribeLogGroups", in);
    ++pages;
    EXPECT_LE(out["logGroups"].size(), 2u);
    for (const auto& g : out["logGroups"]) {
      names.push_back(g["logGroupName"]);
    }
    if (!out.contains("nextToken")) {
      break;
    }
    in["nextToken"] = out["nextToken"];
  }
  EXPECT_EQ(3, pages);
  EXPECT_EQ((std::vector<std::string>{"/a/one", "/b/one", "/b/three", "/b/two", "/c"}), names);

  Json prefixed = Must("DescribeLogGroups", {{"logGroupNamePrefix", "/b/"}});
  EXPECT_EQ(3u, prefixed["logGroups"].size());
  Json patterned = Must("DescribeLogGroups", {{"logGroupNamePattern", "one"}});
  EXPECT_EQ(2u, patterned["logGroups"].size());
  EXPECT_EQ(0u, Must("DescribeLogGroups", {{"logGroupNamePattern", "ONE"}})["logGroups"].size());

  Json c = Must("DescribeLogGroups", {{"logGroupNamePrefix", "/c"}})["logGroups"][0];
  EXPECT_EQ("arn:aws:logs:us-east-1:123456789012:log-group:/c:*", c["arn"]);
  EXPECT_EQ("arn:aws:logs:us-east-1:123456789012:log-group:/c", c["logGroupArn"]);
  EXPECT_EQ(30, c["retentionInDays"]);
  EXPECT_EQ(now_, c["creationTime"]);
  EXPECT_EQ("k1", c["kmsKeyId"]);
  EXPECT_EQ(0, c["metricFilterCount"]);
  EXPECT_EQ(0, c["storedBytes"]);
  EXPECT_FALSE(Must("DescribeLogGroups", {{"logGroupNamePrefix", "/a"}})["logGroups"][0].contains(
      "retentionInDays"));

  ExpectError("DescribeLogGroups", {{"logGroupNamePrefix", "/b"}, {"logGroupNamePattern", "x"}},
              "InvalidParameterException",
              "LogGroup name prefix and LogGroup name pattern are mutually exclusive parameters.");
  ExpectError("DescribeLogGroups", {{"limit", 51}}, "InvalidParameterException",
              "1 validation error detected: Value '51' at 'limit' failed to satisfy constraint: "
              "Member must have value less than or equal to 50");
  ExpectError("DescribeLogGroups", {{"limit", 0}}, "InvalidParameterException", "");
  ExpectError("DescribeLogGroups", {{"nextToken", "garbage!"}}, "InvalidParameterException",
              "The specified nextToken is invalid.");
}

TEST_F(LogsApiTest, LogStreamsCreateDeleteAndErrors) {
  Must("CreateLogGroup", {{"logGroupName", "g"}});
  ExpectError("CreateLogStream", {{"logGroupName", "nope"}, {"logStreamName", "s"}},
              "ResourceNotFoundException", "The specified log group does not exist.");
  Must("CreateLogStream", {{"logGroupName", "g"}, {"logStreamName", "app/web/0123abc"}});
  ExpectError("CreateLogStream", {{"logGroupName", "g"}, {"logStreamName", "app/web/0123abc"}},
              "ResourceAlreadyExistsException", "The specified log stream already exists");
  ExpectError("CreateLogStream", {{"logGroupName", "g"}, {"logStreamName", "a:b"}},
              "InvalidParameterException",
              "1 validation error detected: Value 'a:b' at 'logStreamName' failed to satisfy "
              "constraint: Member must satisfy regular expression pattern: [^:*]*");
  ExpectError("CreateLogStream", {{"logGroupName", "g"}, {"logStreamName", "a*"}},
              "InvalidParameterException", "");
  ExpectError("DeleteLogStream", {{"logGroupName", "g"}, {"logStreamName", "other"}},
              "ResourceNotFoundException", "The specified log stream does not exist.");
  Must("DeleteLogStream", {{"logGroupName", "g"}, {"logStreamName", "app/web/0123abc"}});
  EXPECT_TRUE(Must("DescribeLogStreams", {{"logGroupName", "g"}})["logStreams"].empty());
}

TEST_F(LogsApiTest, DescribeLogStreamsOrdersAndPaginates) {
  Must("CreateLogGroup", {{"logGroupName", "g"}});
  // Streams named so that name order and last-event order differ.
  const std::vector<std::pair<std::string, int64_t>> streams = {
      {"d", now_ - 4000}, {"a", now_ - 1000}, {"c", now_ - 3000}, {"b", now_ - 2000}, {"e", 0}};
  for (const auto& [name, ts] : streams) {
    Must("CreateLogStream", {{"logGroupName", "g"}, {"logStreamName", name}});
    if (ts != 0) {
      Must("PutLogEvents", {{"logGroupName", "g"},
                            {"logStreamName", name},
                            {"logEvents", {{{"timestamp", ts}, {"message", "m"}}}}});
    }
  }
  auto list = [&](Json in) {
    std::vector<std::string> names;
    in["logGroupName"] = "g";
    in["limit"] = 2;
    while (true) {
      Json out = Must("DescribeLogStreams", in);
      for (const auto& s : out["logStreams"]) {
        names.push_back(s["logStreamName"]);
      }
      if (!out.contains("nextToken")) {
        return names;
      }
      in["nextToken"] = out["nextToken"];
    }
  };
  EXPECT_EQ((std::vector<std::string>{"a", "b", "c", "d", "e"}), list(Json::object()));
  EXPECT_EQ((std::vector<std::string>{"e", "d", "c", "b", "a"}), list({{"descending", true}}));
  EXPECT_EQ((std::vector<std::string>{"e", "d", "c", "b", "a"}),
            list({{"orderBy", "LastEventTime"}}));
  EXPECT_EQ((std::vector<std::string>{"a", "b", "c", "d", "e"}),
            list({{"orderBy", "LastEventTime"}, {"descending", true}}));

  ExpectError("DescribeLogStreams",
              {{"logGroupName", "g"}, {"orderBy", "LastEventTime"}, {"logStreamNamePrefix", "a"}},
              "InvalidParameterException",
              "Cannot order by LastEventTime with a logStreamNamePrefix.");
  ExpectError("DescribeLogStreams", {{"logGroupName", "g"}, {"logGroupIdentifier", "g"}},
              "ValidationException",
              "LogGroup name and LogGroup ARN are mutually exclusive parameters.");
  ExpectError("DescribeLogStreams", {{"logGroupName", "g"}, {"orderBy", "Size"}},
              "InvalidParameterException", "");

  Json by_arn = Must("DescribeLogStreams",
                     {{"logGroupIdentifier", "arn:aws:logs:us-east-1:123456789012:log-group:g:*"},
                      {"logStreamNamePrefix", "a"}});
  ASSERT_EQ(1u, by_arn["logStreams"].size());
  Json a = by_arn["logStreams"][0];
  EXPECT_EQ("arn:aws:logs:us-east-1:123456789012:log-group:g:log-stream:a", a["arn"]);
  EXPECT_EQ(now_ - 1000, a["firstEventTimestamp"]);
  EXPECT_EQ(now_ - 1000, a["lastEventTimestamp"]);
  EXPECT_EQ(now_, a["lastIngestionTime"]);
  EXPECT_EQ(now_, a["creationTime"]);
  EXPECT_EQ(0, a["storedBytes"]);
  EXPECT_EQ(56u, a["uploadSequenceToken"].get<std::string>().size());
  Json e = Must("DescribeLogStreams", {{"logGroupIdentifier", "g"}, {"logStreamNamePrefix", "e"}});
  EXPECT_FALSE(e["logStreams"][0].contains("lastEventTimestamp"));
  EXPECT_FALSE(e["logStreams"][0].contains("uploadSequenceToken"));
}

TEST_F(LogsApiTest, PutLogEventsAppliesBatchRules) {
  MakeStream("g", "s");
  auto put = [&](Json events) {
    return Call(
        "PutLogEvents",
        {{"logGroupName", "g"},
         {"logStreamName", "s"},
         {"logEvents", events},
         {"sequenceToken", "ignored-49590338271490256608559692538361571095921575989136588898"}});
  };
  auto ok = put({{{"timestamp", now_ - 10}, {"message", "one"}},
                 {{"timestamp", now_ - 10}, {"message", "two"}}});
  ASSERT_TRUE(ok.ok());
  std::string token = (*ok)["nextSequenceToken"];
  EXPECT_EQ(56u, token.size());
  EXPECT_EQ(std::string(55, '0') + "2", token);
  EXPECT_FALSE(ok->contains("rejectedLogEventsInfo"));

  auto unordered =
      put({{{"timestamp", now_}, {"message", "a"}}, {{"timestamp", now_ - 1}, {"message", "b"}}});
  ASSERT_FALSE(unordered.ok());
  EXPECT_EQ("Log events in a single PutLogEvents request must be in chronological order.",
            unordered.error().message);
  auto span = put({{{"timestamp", now_ - 25 * kHour}, {"message", "a"}},
                   {{"timestamp", now_}, {"message", "b"}}});
  EXPECT_EQ(
      "The batch of log events in a single PutLogEvents request cannot span more than 24 "
      "hours.",
      span.error().message);
  Json big = Json::array();
  for (int i = 0; i < 9; ++i) {
    big.push_back({{"timestamp", now_}, {"message", std::string(120'000, 'x')}});
  }
  EXPECT_EQ("Upload too large: 1080234 bytes exceeds limit of 1048576", put(big).error().message);
  Json many = Json::array();
  for (int i = 0; i < 10001; ++i) {
    many.push_back({{"timestamp", now_}, {"message", "m"}});
  }
  EXPECT_EQ("InvalidParameterException", put(many).error().code);
  EXPECT_EQ("InvalidParameterException", put(Json::array()).error().code);
  EXPECT_EQ(
      "1 validation error detected: Value '' at 'logEvents.2.member.message' failed to "
      "satisfy constraint: Member must have length greater than or equal to 1",
      put({{{"timestamp", now_}, {"message", "a"}}, {{"timestamp", now_}, {"message", ""}}})
          .error()
          .message);

  ExpectError("PutLogEvents",
              {{"logGroupName", "g"},
               {"logStreamName", "nope"},
               {"logEvents", {{{"timestamp", now_}, {"message", "a"}}}}},
              "ResourceNotFoundException", "The specified log stream does not exist.");
  ExpectError("PutLogEvents",
              {{"logGroupName", "nope"},
               {"logStreamName", "s"},
               {"logEvents", {{{"timestamp", now_}, {"message", "a"}}}}},
              "ResourceNotFoundException", "The specified log group does not exist.");
  // Nothing from the failed calls was stored.
  EXPECT_EQ(2u, store_->GetStream("g", "s")->event_count);
}

TEST_F(LogsApiTest, PutLogEventsRejectsTooOldTooNewAndExpired) {
  MakeStream("g", "s");
  // A batch may not span a day, so old and new events go in separate batches.
  Json out =
      Must("PutLogEvents", {{"logGroupName", "g"},
                            {"logStreamName", "s"},
                            {"logEvents",
                             {{{"timestamp", now_ - 14 * kDay - 5}, {"message", "old0"}},
                              {{"timestamp", now_ - 14 * kDay - 1}, {"message", "old1"}},
                              {{"timestamp", now_ - 14 * kDay + 1}, {"message", "keep0"}}}}});
  EXPECT_EQ((Json{{"tooOldLogEventEndIndex", 1}}), out["rejectedLogEventsInfo"]);
  EXPECT_EQ(std::string(55, '0') + "1", out["nextSequenceToken"]);
  out = Must("PutLogEvents", {{"logGroupName", "g"},
                              {"logStreamName", "s"},
                              {"logEvents",
                               {{{"timestamp", now_ - kHour}, {"message", "keep1"}},
                                {{"timestamp", now_ + 2 * kHour}, {"message", "keep2"}},
                                {{"timestamp", now_ + 2 * kHour + 1}, {"message", "new0"}},
                                {{"timestamp", now_ + 3 * kHour}, {"message", "new1"}}}}});
  EXPECT_EQ((Json{{"tooNewLogEventStartIndex", 2}}), out["rejectedLogEventsInfo"]);
  EXPECT_EQ(std::string(55, '0') + "3", out["nextSequenceToken"]);
  EXPECT_EQ((std::vector<std::string>{"keep0", "keep1", "keep2"}),
            Messages(ReadAll(*store_, "g", "s")));

  Must("PutRetentionPolicy", {{"logGroupName", "g"}, {"retentionInDays", 3}});
  Json expired =
      Must("PutLogEvents", {{"logGroupName", "g"},
                            {"logStreamName", "s"},
                            {"logEvents",
                             {{{"timestamp", now_ - 3 * kDay - 1}, {"message", "gone"}},
                              {{"timestamp", now_ - 3 * kDay + 1}, {"message", "kept"}}}}});
  EXPECT_EQ(0, expired["rejectedLogEventsInfo"]["expiredLogEventEndIndex"]);
  EXPECT_FALSE(expired["rejectedLogEventsInfo"].contains("tooOldLogEventEndIndex"));

  // Everything rejected: still a success, with the unchanged sequence token.
  Json none =
      Must("PutLogEvents", {{"logGroupName", "g"},
                            {"logStreamName", "s"},
                            {"logEvents", {{{"timestamp", now_ + kDay}, {"message", "x"}}}}});
  EXPECT_EQ(0, none["rejectedLogEventsInfo"]["tooNewLogEventStartIndex"]);
  EXPECT_EQ(std::string(55, '0') + "4", none["nextSequenceToken"]);
}

TEST_F(LogsApiTest, GetLogEventsPagesForwardAndBackwardExactlyOnce) {
  MakeStream("g", "s");
  const int kEvents = 10000;
  PutMany("g", "s", kEvents, now_ - kHour, 3, "ev");

  // Forward from the head, following nextForwardToken until it repeats.
  std::vector<std::string> forward;
  Json in{{"logGroupName", "g"}, {"logStreamName", "s"}, {"startFromHead", true}, {"limit", 777}};
  std::string last_token;
  int empty_pages = 0;
  for (int guard = 0; guard < 100; ++guard) {
    Json out = Must("GetLogEvents", in);
    for (const auto& e : out["events"]) {
      forward.push_back(e["message"].get<std::string>().substr(0, 9));
      EXPECT_EQ(now_, e["ingestionTime"]);
    }
    std::string token = out["nextForwardToken"];
    EXPECT_EQ(58u, token.size());
    EXPECT_EQ("f/", token.substr(0, 2));
    EXPECT_EQ("b/", out["nextBackwardToken"].get<std::string>().substr(0, 2));
    if (token == last_token) {
      EXPECT_TRUE(out["events"].empty());
      ++empty_pages;
      break;
    }
    last_token = token;
    in["nextToken"] = token;
  }
  EXPECT_EQ(1, empty_pages);
  ASSERT_EQ(static_cast<size_t>(kEvents), forward.size());
  for (int i = 0; i < kEvents; ++i) {
    ASSERT_EQ(fmt::format("ev-{:06d}", i), forward[static_cast<size_t>(i)]);
  }

  // The default (no token, startFromHead false) is the newest page; walk back.
  Json newest = Must("GetLogEvents", {{"logGroupName", "g"}, {"logStreamName", "s"}});
  // 1 MB at 126 bytes an event caps the page below the 10,000-event limit.
  EXPECT_EQ(8322u, newest["events"].size());
  EXPECT_EQ(fmt::format("ev-{:06d}", kEvents - 1),
            newest["events"].back()["message"].get<std::string>().substr(0, 9));
  std::vector<std::string> backward;
  for (const auto& e : newest["events"]) {
    backward.push_back(e["message"].get<std::string>().substr(0, 9));
  }
  Json back{{"logGroupName", "g"},
            {"logStreamName", "s"},
            {"limit", 1000},
            {"nextToken", newest["nextBackwardToken"]}};
  for (int guard = 0; guard < 100; ++guard) {
    Json out = Must("GetLogEvents", back);
    if (out["events"].empty()) {
      EXPECT_EQ(back["nextToken"], out["nextBackwardToken"]);
      break;
    }
    std::vector<std::string> page;
    for (const auto& e : out["events"]) {
      page.push_back(e["message"].get<std::string>().substr(0, 9));
    }
    backward.insert(backward.begin(), page.begin(), page.end());
    back["nextToken"] = out["nextBackwardToken"];
  }
  EXPECT_EQ(forward, backward);

  // New events show up behind the end token of a forward reader.
  Json tail = Must("GetLogEvents",
                   {{"logGroupName", "g"}, {"logStreamName", "s"}, {"nextToken", last_token}});
  EXPECT_TRUE(tail["events"].empty());
  EXPECT_EQ(last_token, tail["nextForwardToken"]);
  Must("PutLogEvents", {{"logGroupName", "g"},
                        {"logStreamName", "s"},
                        {"logEvents", {{{"timestamp", now_}, {"message", "fresh"}}}}});
  tail = Must("GetLogEvents",
              {{"logGroupName", "g"}, {"logStreamName", "s"}, {"nextToken", last_token}});
  ASSERT_EQ(1u, tail["events"].size());
  EXPECT_EQ("fresh", tail["events"][0]["message"]);
}

TEST_F(LogsApiTest, GetLogEventsTimeRangeAndTokenErrors) {
  MakeStream("g", "s");
  MakeStream("g", "t");
  Json events = Json::array();
  for (int i = 0; i < 10; ++i) {
    events.push_back({{"timestamp", now_ - 100 + i * 10}, {"message", "m" + std::to_string(i)}});
  }
  Must("PutLogEvents", {{"logGroupName", "g"}, {"logStreamName", "s"}, {"logEvents", events}});
  Json out = Must("GetLogEvents", {{"logGroupName", "g"},
                                   {"logStreamName", "s"},
                                   {"startFromHead", true},
                                   {"startTime", now_ - 80},
                                   {"endTime", now_ - 40}});
  std::vector<std::string> got;
  for (const auto& e : out["events"]) {
    got.push_back(e["message"]);
  }
  // startTime is inclusive and endTime exclusive.
  EXPECT_EQ((std::vector<std::string>{"m2", "m3", "m4", "m5"}), got);

  ExpectError("GetLogEvents", {{"logGroupName", "g"}, {"logStreamName", "s"}, {"nextToken", "x"}},
              "InvalidParameterException", "The specified nextToken is invalid.");
  std::string token = out["nextForwardToken"];
  ExpectError("GetLogEvents", {{"logGroupName", "g"}, {"logStreamName", "t"}, {"nextToken", token}},
              "InvalidParameterException", "The specified nextToken is invalid.");
  token[10] = token[10] == '9' ? '8' : '9';
  ExpectError("GetLogEvents", {{"logGroupName", "g"}, {"logStreamName", "s"}, {"nextToken", token}},
              "InvalidParameterException", "The specified nextToken is invalid.");
  ExpectError("GetLogEvents", {{"logGroupName", "g"}, {"logStreamName", "s"}, {"limit", 10001}},
              "InvalidParameterException",
              "1 validation error detected: Value '10001' at 'limit' failed to satisfy "
              "constraint: Member must have value less than or equal to 10000");
  ExpectError("GetLogEvents", {{"logGroupName", "g"}, {"logStreamName", "x"}},
              "ResourceNotFoundException", "The specified log stream does not exist.");
  ExpectError("GetLogEvents", {{"logGroupName", "x"}, {"logStreamName", "s"}},
              "ResourceNotFoundException", "The specified log group does not exist.");

  // An empty stream still answers with tokens, and the forward one repeats.
  Json empty = Must("GetLogEvents", {{"logGroupName", "g"}, {"logStreamName", "t"}});
  EXPECT_TRUE(empty["events"].empty());
  Json again = Must(
      "GetLogEvents",
      {{"logGroupName", "g"}, {"logStreamName", "t"}, {"nextToken", empty["nextForwardToken"]}});
  EXPECT_EQ(empty["nextForwardToken"], again["nextForwardToken"]);
  Json by_arn = Must("GetLogEvents",
                     {{"logGroupIdentifier", "arn:aws:logs:us-east-1:123456789012:log-group:g"},
                      {"logStreamName", "s"}});
  EXPECT_EQ(10u, by_arn["events"].size());
}

TEST_F(LogsApiTest, FilterLogEventsPaginatesEveryEventOnce) {
  for (const char* s : {"web/1", "web/2", "db/1"}) {
    MakeStream("g", s);
  }
  PutMany("g", "web/1", 4000, now_ - kHour, 2, "w1");
  PutMany("g", "web/2", 3000, now_ - kHour, 1, "w2");
  PutMany("g", "db/1", 3000, now_ - kHour + 500, 1, "d1");

  std::vector<std::string> got;
  std::set<std::string> ids;
  Json in{{"logGroupName", "g"}, {"limit", 1000}, {"interleaved", true}};
  int64_t prev_ts = 0;
  int pages = 0;
  while (true) {
    Json out = Must("FilterLogEvents", in);
    ++pages;
    EXPECT_EQ(Json::array(), out["searchedLogStreams"]);
    for (const auto& e : out["events"]) {
      EXPECT_LE(prev_ts, e["timestamp"].get<int64_t>());
      prev_ts = e["timestamp"];
      std::string msg = e["message"].get<std::string>().substr(0, 9);
      EXPECT_EQ(msg.substr(0, 1) == "d" ? "db/1" : "web/" + msg.substr(1, 1), e["logStreamName"]);
      EXPECT_EQ(56u, e["eventId"].get<std::string>().size());
      EXPECT_EQ(now_, e["ingestionTime"]);
      ids.insert(e["eventId"]);
      got.push_back(msg);
    }
    if (!out.contains("nextToken")) {
      break;
    }
    in["nextToken"] = out["nextToken"];
  }
  EXPECT_EQ(10, pages);
  EXPECT_EQ(10000u, got.size());
  EXPECT_EQ(10000u, std::set<std::string>(got.begin(), got.end()).size());
  EXPECT_EQ(10000u, ids.size());

  ExpectError("FilterLogEvents", {{"logGroupName", "g"}, {"nextToken", "AAAA"}},
              "InvalidParameterException", "The specified nextToken is invalid.");
  ExpectError("FilterLogEvents", {{"logGroupName", "g"}, {"limit", 10001}},
              "InvalidParameterException",
              "1 validation error detected: Value '10001' at 'limit' failed to satisfy "
              "constraint: Member must have value less than or equal to 10000");
  ExpectError("FilterLogEvents", {{"logGroupName", "nope"}}, "ResourceNotFoundException",
              "The specified log group does not exist.");
}

TEST_F(LogsApiTest, FilterLogEventsSelectsStreamsTimesAndPatterns) {
  MakeStream("g", "api/1");
  MakeStream("g", "api/2");
  MakeStream("g", "worker");
  auto put = [&](const std::string& s, int64_t ts, const std::string& m) {
    Must("PutLogEvents", {{"logGroupName", "g"},
                          {"logStreamName", s},
                          {"logEvents", {{{"timestamp", ts}, {"message", m}}}}});
  };
  put("api/1", now_ - 50, "ERROR Internal Server Error id=1");
  put("api/2", now_ - 40, "WARN slow request id=2");
  put("worker", now_ - 30, "ERROR retrying job id=3");
  put("api/1", now_ - 20, "INFO ok id=4");
  put("worker", now_ - 10, "error lowercase id=5");

  auto ids = [&](Json in) {
    if (!in.contains("logGroupIdentifier")) {
      in["logGroupName"] = "g";
    }
    Json page = Must("FilterLogEvents", in);
    std::string out;
    for (const auto& e : page["events"]) {
      std::string m = e["message"];
      out += m.substr(m.size() - 1);
    }
    return out;
  };
  EXPECT_EQ("12345", ids(Json::object()));
  EXPECT_EQ("12345", ids({{"filterPattern", ""}}));
  EXPECT_EQ("13", ids({{"filterPattern", "ERROR"}}));
  EXPECT_EQ("1", ids({{"filterPattern", "\"Internal Server Error\""}}));
  EXPECT_EQ("123", ids({{"filterPattern", "?ERROR ?WARN"}}));
  EXPECT_EQ("1", ids({{"filterPattern", "ERROR -retrying"}}));
  EXPECT_EQ("3", ids({{"filterPattern", "ERROR id=3"}}));
  EXPECT_EQ("124", ids({{"logStreamNamePrefix", "api/"}}));
  EXPECT_EQ("235", ids({{"logStreamNames", Json::array({"api/2", "worker"})}}));
  // Both ends inclusive.
  EXPECT_EQ("234", ids({{"startTime", now_ - 40}, {"endTime", now_ - 20}}));
  EXPECT_EQ("5", ids({{"startTime", now_ - 10}}));
  EXPECT_EQ("13", ids({{"logGroupIdentifier", "g"}, {"filterPattern", "ERROR"}}));

  ExpectError("FilterLogEvents",
              {{"logGroupName", "g"},
               {"logStreamNames", Json::array({"worker"})},
               {"logStreamNamePrefix", "w"}},
              "InvalidParameterException", "");
  ExpectError("FilterLogEvents", {{"logGroupName", "g"}, {"filterPattern", "{ $.x = 1 }"}},
              "InvalidParameterException", "");
  ExpectError("FilterLogEvents", {{"logGroupName", "g"}, {"logGroupIdentifier", "g"}},
              "ValidationException", "");
}

TEST_F(LogsApiTest, RetentionPolicies) {
  Must("CreateLogGroup", {{"logGroupName", "g"}});
  for (int days : {1,   3,   5,   7,   14,   30,   60,   90,   120,  150,  180,
                   365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}) {
    Must("PutRetentionPolicy", {{"logGroupName", "g"}, {"retentionInDays", days}});
    EXPECT_EQ(days, store_->GetGroup("g")->retention_days.value_or(-1));
  }
  for (int days : {0, 2, 8, 366, 4000}) {
    ExpectError("PutRetentionPolicy", {{"logGroupName", "g"}, {"retentionInDays", days}},
                "InvalidParameterException", "");
  }
  ExpectError("PutRetentionPolicy", {{"logGroupName", "x"}, {"retentionInDays", 1}},
              "ResourceNotFoundException", "The specified log group does not exist.");
  Must("DeleteRetentionPolicy", {{"logGroupName", "g"}});
  EXPECT_FALSE(store_->GetGroup("g")->retention_days.has_value());
  Must("DeleteRetentionPolicy", {{"logGroupName", "g"}});
  ExpectError("DeleteRetentionPolicy", {{"logGroupName", "x"}}, "ResourceNotFoundException",
              "The specified log group does not exist.");
}

TEST_F(LogsApiTest, TagsThroughBothApis) {
  Must("CreateLogGroup", {{"logGroupName", "/g"}, {"tags", {{"env", "testing1"}}}});
  const std::string arn = "arn:aws:logs:us-east-1:123456789012:log-group:/g";
  EXPECT_EQ((Json{{"env", "testing1"}}),
            Must("ListTagsLogGroup", {{"logGroupName", "/g"}})["tags"]);
  Must("TagResource", {{"resourceArn", arn}, {"tags", {{"test1", "val1"}, {"test2", "val2"}}}});
  Must("TagLogGroup", {{"logGroupName", "/g"}, {"tags", {{"test3", "val3"}}}});
  Json all{{"env", "testing1"}, {"test1", "val1"}, {"test2", "val2"}, {"test3", "val3"}};
  EXPECT_EQ(all, Must("ListTagsLogGroup", {{"logGroupName", "/g"}})["tags"]);
  EXPECT_EQ(all, Must("ListTagsForResource", {{"resourceArn", arn}})["tags"]);
  EXPECT_EQ(all, Must("ListTagsForResource", {{"resourceArn", arn + ":*"}})["tags"]);
  Must("UntagResource", {{"resourceArn", arn}, {"tagKeys", Json::array({"env", "test1"})}});
  Must("UntagLogGroup", {{"logGroupName", "/g"}, {"tags", Json::array({"test3"})}});
  EXPECT_EQ((Json{{"test2", "val2"}}), Must("ListTagsForResource", {{"resourceArn", arn}})["tags"]);
  Must("UntagLogGroup", {{"logGroupName", "/g"}, {"tags", Json::array({"test2"})}});
  EXPECT_EQ(Json::object(), Must("ListTagsLogGroup", {{"logGroupName", "/g"}})["tags"]);

  Json fifty = Json::object();
  for (int i = 0; i < 50; ++i) {
    fifty["k" + std::to_string(i)] = "v";
  }
  Must("TagResource", {{"resourceArn", arn}, {"tags", fifty}});
  ExpectError("TagResource", {{"resourceArn", arn}, {"tags", {{"one-more", "v"}}}},
              "TooManyTagsException", "");
  ExpectError("TagLogGroup", {{"logGroupName", "/g"}, {"tags", {{"one-more", "v"}}}},
              "InvalidParameterException", "");

  ExpectError("ListTagsForResource",
              {{"resourceArn", "arn:aws:logs:us-east-1:123456789012:log-group:/none"}},
              "ResourceNotFoundException", "The specified log group does not exist.");
  ExpectError("ListTagsLogGroup", {{"logGroupName", "/none"}}, "ResourceNotFoundException",
              "The specified log group does not exist.");
  ExpectError("TagResource", {{"resourceArn", "not-an-arn"}, {"tags", {{"a", "b"}}}},
              "InvalidParameterException", "");
  ExpectError("TagResource",
              {{"resourceArn", "arn:aws:logs:us-east-1:123456789012:destination:d"},
               {"tags", {{"a", "b"}}}},
              "ResourceNotFoundException", "");
}

TEST_F(LogsApiTest, StoredBytesAndRetentionSweepThroughTheApi) {
  MakeStream("g", "s");
  Must("PutLogEvents", {{"logGroupName", "g"},
                        {"logStreamName", "s"},
                        {"logEvents", {{{"timestamp", now_ - 2 * kDay}, {"message", "12345"}}}}});
  Must("PutLogEvents", {{"logGroupName", "g"},
                        {"logStreamName", "s"},
                        {"logEvents", {{{"timestamp", now_ - kHour}, {"message", "1234567890"}}}}});
  EXPECT_EQ(15, Must("DescribeLogGroups", Json::object())["logGroups"][0]["storedBytes"]);
  Must("PutRetentionPolicy", {{"logGroupName", "g"}, {"retentionInDays", 1}});
  ASSERT_TRUE(store_->SweepExpired(now_).ok());
  EXPECT_EQ(10, Must("DescribeLogGroups", Json::object())["logGroups"][0]["storedBytes"]);
  Json out = Must("FilterLogEvents", {{"logGroupName", "g"}});
  ASSERT_EQ(1u, out["events"].size());
  EXPECT_EQ("1234567890", out["events"][0]["message"]);
}

}  // namespace
}  // namespace berth::logs
