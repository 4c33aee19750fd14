#include "server/report_queue.h"

#include <utility>

namespace berth {

ReportQueue::ReportQueue(SendFn send) : send_(std::move(send)) {
  thread_ = std::thread([this] { Run(); });
}

ReportQueue::~ReportQueue() {
  Close();
}

void ReportQueue::Push(agent::TaskReport report) {
  {
    std::lock_guard lock(mu_);
    if (!closed_) {
      auto it = latest_.find(report.task_id);
      if (it == latest_.end()) {
        order_.push_back(report.task_id);
        std::string id = report.task_id;
        latest_.emplace(std::move(id), std::move(report));
      } else if (report.seq > it->second.seq) {
        it->second = std::move(report);
      }
      cv_.notify_one();
      return;
    }
  }
  std::lock_guard send(send_mu_);
  send_(report);
}

void ReportQueue::Close() {
  std::lock_guard close(close_mu_);
  {
    std::lock_guard lock(mu_);
    closing_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) {
    thread_.join();
  }
}

size_t ReportQueue::Waiting() {
  std::lock_guard lock(mu_);
  return latest_.size();
}

void ReportQueue::Run() {
  std::unique_lock lock(mu_);
  while (true) {
    cv_.wait(lock, [this] { return closing_ || !order_.empty(); });
    if (order_.empty()) {
      // Closing with nothing left: from now on Push sends on its caller's thread, so
      // nothing pushed later is stranded here.
      closed_ = true;
      return;
    }
    std::string id = std::move(order_.front());
    order_.pop_front();
    auto node = latest_.extract(id);
    lock.unlock();
    {
      std::lock_guard send(send_mu_);
      send_(node.mapped());
    }
    lock.lock();
  }
}

}  // namespace berth
