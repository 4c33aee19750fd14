#include "server/report_queue.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace berth {
namespace {

agent::TaskReport Report(const std::string& task, uint64_t seq, const std::string& status) {
  agent::TaskReport r;
  r.task_id = task;
  r.seq = seq;
  r.last_status = status;
  return r;
}

// Records what was sent; the first send can be held until released.
class Recorder {
 public:
  void Send(const agent::TaskReport& r) {
    std::unique_lock lock(mu_);
    sent_.emplace_back(r.task_id, r.seq);
    cv_.notify_all();
    cv_.wait(lock, [this] { return !hold_; });
  }

  void Hold() {
    std::lock_guard lock(mu_);
    hold_ = true;
  }

  void Release() {
    std::lock_guard lock(mu_);
    hold_ = false;
    cv_.notify_all();
  }

  void WaitForSends(size_t n) {
    std::unique_lock lock(mu_);
    ASSERT_TRUE(cv_.wait_for(lock, std::chrono::seconds(10), [&] { return sent_.size() >= n; }));
  }

  std::vector<std::pair<std::string, uint64_t>> sent() {
    std::lock_guard lock(mu_);
    return sent_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool hold_ = false;
  std::vector<std::pair<std::string, uint64_t>> sent_;
};

TEST(ReportQueueTest, SendsOnlyTheNewestWaitingReportOfATaskInArrivalOrder) {
  Recorder rec;
  rec.Hold();
  ReportQueue q([&](const agent::TaskReport& r) { rec.Send(r); });
  q.Push(Report("a", 1, "PENDING"));
  rec.WaitForSends(1);  // the sender now holds a/1
  q.Push(Report("a", 2, "ACTIVATING"));
  q.Push(Report("b", 1, "PENDING"));
  q.Push(Report("a", 4, "RUNNING"));
  q.Push(Report("a", 3, "RUNNING"));  // older than the waiting one: ignored
  EXPECT_EQ(q.Waiting(), 2u);
  rec.Release();
  q.Close();
  using Sent = std::vector<std::pair<std::string, uint64_t>>;
  EXPECT_EQ(rec.sent(), (Sent{{"a", 1}, {"a", 4}, {"b", 1}}));
  EXPECT_EQ(q.Waiting(), 0u);
}

TEST(ReportQueueTest, PushDoesNotWaitForTheSend) {
  Recorder rec;
  rec.Hold();
  ReportQueue q([&](const agent::TaskReport& r) { rec.Send(r); });
  q.Push(Report("a", 1, "PENDING"));
  rec.WaitForSends(1);
  auto start = std::chrono::steady_clock::now();
  for (uint64_t seq = 2; seq < 100; ++seq) {
    q.Push(Report("a", seq, "RUNNING"));
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  rec.Release();
  q.Close();
  ASSERT_EQ(rec.sent().size(), 2u);
  EXPECT_EQ(rec.sent()[1].second, 99u);
}

TEST(ReportQueueTest, CloseSendsEverythingWaitingAndLaterPushesSendInline) {
  Recorder rec;
  rec.Hold();
  ReportQueue q([&](const agent::TaskReport& r) { rec.Send(r); });
  q.Push(Report("t0", 1, "PENDING"));
  rec.WaitForSends(1);
  for (int i = 1; i < 20; ++i) {
    q.Push(Report("t" + std::to_string(i), 1, "PENDING"));
  }
  std::thread releaser([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    rec.Release();
  });
  q.Close();  // returns only once all 20 went out
  releaser.join();
  EXPECT_EQ(rec.sent().size(), 20u);
  q.Push(Report("late", 7, "STOPPED"));
  ASSERT_EQ(rec.sent().size(), 21u);
  EXPECT_EQ(rec.sent().back(), (std::pair<std::string, uint64_t>{"late", 7}));
}

}  // namespace
}  // namespace berth
