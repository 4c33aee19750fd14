// SPDX-License-Identifier: Apache-2.0
//
// The TaskManager over the store: task documents, their lifecycle as driven
// by agent reports, nodes and their reservations, and the housekeeping
// sweeps (pruning stopped tasks, stopping the tasks of lost nodes).
//
// Every change is one store transaction that writes the task, its index
// entry, its desired entry and, when capacity is taken or given back, the
// node document, guarded by compare-and-set on the revisions it read; on a
// conflict the whole step is recomputed. So concurrent RunTask calls, StopTask
// calls and agent reports never lose an update or double-book a node.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "ecs/agent_protocol.h"
#include "ecs/scheduler.h"
#include "ecs/task_index.h"
#include "ecs/tasks.h"
#include "store/store.h"

namespace berth::ecs {

struct TaskManagerOptions {
  std::string region = "us-east-1";
  std::string account_id = "000000000000";
  /// Share of a node's capacity offered to tasks when the node does not say.
  double allocation_factor = 1.0;
  /// How long STOPPED tasks stay describable before PruneStoppedTasks removes them.
  double stopped_task_retention_seconds = 3600;
  /// A node not heard from (desired polls, reports) for this long is lost.
  double node_timeout_seconds = 60;
  /// Most desired long polls waiting at once; each holds an HTTP worker
  /// thread, so the rest are answered at once with a retry delay.
  int max_long_polls = 8;
  /// Epoch seconds; NowEpochSeconds when unset (tests inject their own).
  std::function<double()> clock;
};

/// Counts of a cluster's tasks by lastStatus, for DescribeClusters.
struct ClusterTaskCounts {
  int running = 0;  // lastStatus RUNNING
  int pending = 0;  // lastStatus PROVISIONING, PENDING or ACTIVATING
  int active = 0;   // every task not STOPPED
};

/// One page of task ids.
struct TaskIdPage {
  std::vector<std::string> ids;
  std::string next_after;  // "" when this is the last page
};

class StoreTaskManager : public TaskManager {
 public:
  StoreTaskManager(store::Store& store, TaskManagerOptions options);
  ~StoreTaskManager() override;

  // TaskManager.
  Result<StartTasksResult> StartTasks(const StartTasksRequest& request) override;
  Result<Json> StopTask(const std::string& cluster, const std::string& task_id,
                        const std::string& stop_code, const std::string& reason) override;
  Result<std::vector<Json>> FindTasks(const TaskFilter& filter) override;
  Result<Json> MarkTargetsRegistered(const std::string& cluster,
                                     const std::string& task_id) override;
  Result<Json> SetTargetsHealthy(const std::string& cluster, const std::string& task_id,
                                 bool healthy) override;
  Result<Json> MarkTargetsReleased(const std::string& cluster,
                                   const std::string& task_id) override;

  /// The full task document, or nullopt when there is none.
  Result<std::optional<Json>> GetTask(const std::string& cluster, const std::string& task_id);

  /// Ids of the cluster's tasks matching `filter` (all filters AND), in id
  /// order, starting after `after`, at most `limit` of them.
  Result<TaskIdPage> ListTaskIds(const TaskFilter& filter, const std::string& after, int limit);

  Result<ClusterTaskCounts> CountTasks(const std::string& cluster);

  // Nodes and the agent protocol.

  /// Creates or updates the node; its reservations survive re-registration.
  /// Returns the node document.
  Result<Json> RegisterNode(const NodeRegistration& registration);

  /// The node's desired tasks. Waits up to `wait` for a change after `after`
  /// (no wait when `after` is 0). Errors: 404 NodeNotRegistered when the
  /// node is unknown or was declared lost.
  Result<DesiredState> Desired(const std::string& node_id, int64_t after,
                               std::chrono::milliseconds wait);

  /// Applies an agent report. Returns {"applied", "seq", "desiredStatus"}.
  /// Errors: 404 TaskNotFound, 409 TaskNotOnNode.
  Result<Json> ApplyReport(const TaskReport& report);

  /// Records that the node's agent was heard from now.
  void Touch(const std::string& node_id);

  /// All node documents.
  Result<std::vector<Json>> ListNodes();

  // Housekeeping.

  /// Deletes STOPPED tasks whose stoppedAt is older than the retention.
  /// Returns how many were deleted.
  Result<int> PruneStoppedTasks();

  /// Declares nodes not heard from within the node timeout LOST and stops
  /// their tasks. Returns how many nodes were declared lost.
  Result<int> SweepLostNodes();

  /// Runs both sweeps on a background thread (lost nodes every
  /// `node_interval`, pruning every `prune_interval`) until Shutdown.
  void StartHousekeeping(std::chrono::milliseconds node_interval,
                         std::chrono::milliseconds prune_interval);

  /// Ends long polls and the housekeeping thread; safe to call twice.
  void Shutdown();

  std::string TaskArn(const std::string& cluster, const std::string& task_id) const;
  std::string ClusterArn(const std::string& cluster) const;

  /// The task as DescribeTasks shows it: internal members removed, `tags`
  /// kept only when `include_tags`.
  static Json PublicView(const Json& task, bool include_tags);

 private:
  // What a task mutation asks for besides rewriting the task.
  using Mutation = std::function<Result<bool>(Json& task)>;

  // A node document parsed once per revision: placement reads every node on
  // every RunTask, and most of them have not changed since the last one.
  struct CachedNode {
    int64_t mod_revision = 0;
    Json doc;
    SchedulerNode scheduler;
  };
  Result<std::shared_ptr<const CachedNode>> ParsedNode(const store::Entry& entry);

  Result<Json> MutateTask(const std::string& cluster, const std::string& task_id,
                          const Mutation& mutate);
  Json NewTask(const StartTasksRequest& request, const std::string& task_id, int64_t cpu,
               int64_t memory, double now) const;
  Json DesiredDoc(const Json& task) const;
  void ApplyReportToTask(const TaskReport& report, Json& task, double now) const;
  void MarkStopped(Json& task, const std::string& stop_code, const std::string& reason,
                   double now) const;
  double Now() const;

  store::Store& store_;
  TaskManagerOptions options_;
  double started_at_;
  TaskIndex index_{store_};

  std::mutex node_cache_mu_;
  std::unordered_map<std::string, std::shared_ptr<const CachedNode>> node_cache_;

  std::mutex seen_mu_;
  std::unordered_map<std::string, double> last_seen_;

  std::atomic<int> long_polls_{0};
  std::atomic<bool> stopping_{false};
  std::mutex housekeeping_mu_;
  std::condition_variable housekeeping_cv_;
  std::thread housekeeping_;
};

}  // namespace berth::ecs
