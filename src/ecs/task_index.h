// The task index (ecs/task-index/<cluster>/<id>: the few members ListTasks,
// the cluster counters and housekeeping filter on) held in memory and kept
// current by following the store's change feed.
//
// Every read first catches up with the store: when the store's revision has
// moved since the last read, the index applies the changes to its prefix in
// revision order (or reloads when the feed was compacted), so a reader sees
// every write committed before it asked, whoever wrote it. Reads then cost a
// walk over a sorted map instead of parsing each stored entry.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <shared_mutex>
#include <string>

#include "common/result.h"
#include "store/store.h"

namespace berth::ecs {

inline const std::string kTaskIndexPrefix = "ecs/task-index/";

struct TaskIndexEntry {
  std::string family;
  std::string desired_status;
  std::string last_status;
  std::string launch_type;
  std::string node;
  std::string started_by;
  std::string service;
  std::string targets;    // where a task's load balancer targets stand ("registered", ...)
  double stopped_at = 0;  // 0: not stopped
  int64_t mod_revision = 0;
};

class TaskIndex {
 public:
  explicit TaskIndex(store::Store& store) : store_(store) {}

  /// Calls `visit` for the cluster's tasks with an id after `after` ("" for
  /// all), in id order, until it returns false.
  Status ForEach(const std::string& cluster, const std::string& after,
                 const std::function<bool(const std::string& id, const TaskIndexEntry&)>& visit);

  /// Like ForEach, over only the tasks whose `field` ("startedBy", "service" or "family")
  /// equals `value`: a filtered listing costs the tasks it matches, not the cluster's size.
  /// An empty `field` walks every task of the cluster.
  Status ForEachWith(const std::string& cluster, const std::string& field,
                     const std::string& value, const std::string& after,
                     const std::function<bool(const std::string& id, const TaskIndexEntry&)>& visit);

  /// Calls `visit` for every task of every cluster, in key order.
  Status ForAll(const std::function<void(const std::string& cluster, const std::string& id,
                                         const TaskIndexEntry&)>& visit);

  /// Parses a stored index document.
  static Result<TaskIndexEntry> ParseEntry(const std::string& text);

 private:
  Status CatchUp();
  Status ReloadLocked();
  void ApplyLocked(const std::string& key, const std::string* value, int64_t revision);

  // One cluster's tasks by id, and the ids by the members ListTasks filters on.
  struct Cluster {
    std::map<std::string, TaskIndexEntry> tasks;
    std::map<std::string, std::set<std::string>> by_started_by;
    std::map<std::string, std::set<std::string>> by_service;
    std::map<std::string, std::set<std::string>> by_family;
  };
  static void Unlink(Cluster& c, const std::string& id, const TaskIndexEntry& e);
  static void Link(Cluster& c, const std::string& id, const TaskIndexEntry& e);

  store::Store& store_;
  std::shared_mutex mu_;
  int64_t revision_ = -1;  // the store revision the index reflects; -1 before the first load
  std::map<std::string, Cluster> clusters_;
};

}  // namespace berth::ecs
