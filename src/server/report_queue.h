// Task reports on their way from the node agent to the control plane.
//
// The agent reports every state change of a task. Sending a report waits for the control
// plane to store it, so a task thread that sent its own reports would wait for a durable
// commit before each next step of its start. A ReportQueue takes reports from the task threads
// without blocking them and sends them from its own thread.
//
// Reports are snapshots of a task's whole state, ordered by their seq, and the control plane
// walks a task through every state a report skips. So when several reports of one task are
// waiting, only the newest is sent. Tasks are served in the order their first waiting report
// arrived.
//
// Thread-safety: Push and Close may be called from any thread. The send function is called
// from the queue's thread only, one report at a time.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "agent/node_agent.h"

namespace berth {

class ReportQueue {
 public:
  using SendFn = std::function<void(const agent::TaskReport&)>;

  explicit ReportQueue(SendFn send);
  /// Closes the queue (sending what waits).
  ~ReportQueue();
  ReportQueue(const ReportQueue&) = delete;
  ReportQueue& operator=(const ReportQueue&) = delete;

  /// Queues a report; replaces a waiting report of the same task with a lower seq and is
  /// ignored when the waiting one is newer. After Close, sends on the caller's thread.
  void Push(agent::TaskReport report);

  /// Sends every waiting report, then stops the queue's thread.
  void Close();

  /// Reports waiting to be sent (not counting one being sent).
  size_t Waiting();

 private:
  void Run();

  SendFn send_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> order_;                    // task ids, first come first served
  std::map<std::string, agent::TaskReport> latest_;  // by task id
  bool closing_ = false;
  bool closed_ = false;
  std::mutex send_mu_;   // one send at a time, also after Close
  std::mutex close_mu_;  // serializes Close
  std::thread thread_;
};

}  // namespace berth
