// SPDX-License-Identifier: Apache-2.0
//
// The scheduler's placement decision: which node a task of a given size goes
// to. A pure, in-memory computation over a snapshot of the nodes; the task
// manager loads the snapshot from the store, places a batch of tasks, and
// commits the reservations guarded by each node document's revision, so two
// concurrent placements can never book the same capacity twice.
//
// Policy: a task fits a node when its full task size (cpu units and MiB)
// fits in the node's free allocatable capacity. Among the nodes it fits,
// the task goes to the zone holding the fewest tasks of its group
// ("service:<name>" or "family:<family>"), then to the node there holding the
// fewest tasks of its group, then to the least loaded node (the highest of
// its cpu and memory shares in use), then to the lowest node id. When it
// fits nowhere, the reason is RESOURCE:CPU when no node has the cpu free, and
// RESOURCE:MEMORY when some node has the cpu but none has both.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace berth::ecs {

/// Failure reasons of RunTask when a task fits on no node.
inline constexpr const char* kResourceCpu = "RESOURCE:CPU";
inline constexpr const char* kResourceMemory = "RESOURCE:MEMORY";

/// One node as the scheduler sees it.
struct SchedulerNode {
  std::string id;
  std::string zone;
  int64_t allocatable_cpu = 0;     // cpu units offered to tasks
  int64_t allocatable_memory = 0;  // MiB offered to tasks
  int64_t reserved_cpu = 0;        // held by the tasks placed on it
  int64_t reserved_memory = 0;
  /// Tasks placed on the node, by group.
  std::unordered_map<std::string, int> group_tasks;
};

/// The outcome of placing one task: the index of the chosen node, or a
/// failure reason (kResourceCpu / kResourceMemory).
struct PlacementDecision {
  int node = -1;
  std::string failure;
  bool ok() const { return node >= 0; }
};

/// A snapshot of the fleet that tasks are placed into one at a time; every
/// successful placement reserves the task's size on the chosen node so the
/// next decision sees it. Not thread-safe: one placement batch per instance.
class Placer {
 public:
  Placer() = default;
  explicit Placer(std::vector<SchedulerNode> nodes);

  /// Adds a node to the snapshot; returns its index.
  int AddNode(SchedulerNode node);

  /// Chooses a node for a task of `cpu` units and `memory` MiB in `group`,
  /// and reserves the size there. Sizes must be positive.
  PlacementDecision Place(int64_t cpu, int64_t memory, const std::string& group);

  /// Gives back a reservation made on node `node` (for a task that stopped).
  void Release(int node, int64_t cpu, int64_t memory, const std::string& group);

  const std::vector<SchedulerNode>& nodes() const { return nodes_; }

 private:
  struct GroupCounts {
    std::vector<int> per_node;
    std::unordered_map<int, int> per_zone;  // zone index -> tasks
  };
  GroupCounts& Counts(const std::string& group);

  std::vector<SchedulerNode> nodes_;
  std::vector<int> zone_of_;  // node index -> zone index
  std::unordered_map<std::string, int> zone_index_;
  std::unordered_map<std::string, GroupCounts> groups_;
};

}  // namespace berth::ecs
