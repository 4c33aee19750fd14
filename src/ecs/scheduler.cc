// SPDX-License-Identifier: Apache-2.0
#include "ecs/scheduler.h"

#include <algorithm>

namespace berth::ecs {

namespace {

// The larger of the node's cpu and memory shares in use, 0..1 (1 when the
// node offers nothing, so empty nodes never look attractive).
double Load(const SchedulerNode& n) {
  if (n.allocatable_cpu <= 0 || n.allocatable_memory <= 0) {
    return 1.0;
  }
  double cpu = static_cast<double>(n.reserved_cpu) / static_cast<double>(n.allocatable_cpu);
  double mem = static_cast<double>(n.reserved_memory) / static_cast<double>(n.allocatable_memory);
  return std::max(cpu, mem);
}

}  // namespace

Placer::Placer(std::vector<SchedulerNode> nodes) {
  for (auto& n : nodes) {
    AddNode(std::move(n));
  }
}

int Placer::AddNode(SchedulerNode node) {
  auto [it, inserted] = zone_index_.emplace(node.zone, static_cast<int>(zone_index_.size()));
  zone_of_.push_back(it->second);
  nodes_.push_back(std::move(node));
  // Group counts are derived from the nodes; rebuild them lazily.
  groups_.clear();
  return static_cast<int>(nodes_.size()) - 1;
}

Placer::GroupCounts& Placer::Counts(const std::string& group) {
  auto it = groups_.find(group);
  if (it != groups_.end()) {
    return it->second;
  }
  GroupCounts counts;
  counts.per_node.assign(nodes_.size(), 0);
  for (size_t i = 0; i < nodes_.size(); ++i) {
    auto g = nodes_[i].group_tasks.find(group);
    if (g != nodes_[i].group_tasks.end()) {
      counts.per_node[i] = g->second;
      counts.per_zone[zone_of_[i]] += g->second;
    }
  }
  return groups_.emplace(group, std::move(counts)).first->second;
}

PlacementDecision Placer::Place(int64_t cpu, int64_t memory, const std::string& group) {
  GroupCounts& counts = Counts(group);
  std::vector<int> zone_tasks(zone_index_.size(), 0);
  for (const auto& [zone, tasks] : counts.per_zone) {
    zone_tasks[zone] = tasks;
  }

  int best = -1;
  int best_zone_tasks = 0;
  int best_node_tasks = 0;
  double best_load = 0;
  bool cpu_somewhere = false;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    const SchedulerNode& n = nodes_[i];
    if (n.allocatable_cpu - n.reserved_cpu < cpu) {
      continue;
    }
    cpu_somewhere = true;
    if (n.allocatable_memory - n.reserved_memory < memory) {
      continue;
    }
    int zt = zone_tasks[zone_of_[i]];
    int nt = counts.per_node[i];
    double load = Load(n);
    bool better = best < 0;
    if (!better) {
      if (zt != best_zone_tasks) {
        better = zt < best_zone_tasks;
      } else if (nt != best_node_tasks) {
        better = nt < best_node_tasks;
      } else if (load != best_load) {
        better = load < best_load;
      } else {
        better = n.id < nodes_[best].id;
      }
    }
    if (better) {
      best = static_cast<int>(i);
      best_zone_tasks = zt;
      best_node_tasks = nt;
      best_load = load;
    }
  }

  PlacementDecision decision;
  if (best < 0) {
    decision.failure = cpu_somewhere ? kResourceMemory : kResourceCpu;
    return decision;
  }
  SchedulerNode& chosen = nodes_[best];
  chosen.reserved_cpu += cpu;
  chosen.reserved_memory += memory;
  chosen.group_tasks[group] += 1;
  counts.per_node[best] += 1;
  counts.per_zone[zone_of_[best]] += 1;
  decision.node = best;
  return decision;
}

void Placer::Release(int node, int64_t cpu, int64_t memory, const std::string& group) {
  if (node < 0 || node >= static_cast<int>(nodes_.size())) {
    return;
  }
  SchedulerNode& n = nodes_[node];
  n.reserved_cpu = std::max<int64_t>(0, n.reserved_cpu - cpu);
  n.reserved_memory = std::max<int64_t>(0, n.reserved_memory - memory);
  auto g = n.group_tasks.find(group);
  if (g != n.group_tasks.end() && --g->second <= 0) {
    n.group_tasks.erase(g);
  }
  auto counts = groups_.find(group);
  if (counts != groups_.end()) {
    if (counts->second.per_node[node] > 0) {
      counts->second.per_node[node] -= 1;
      counts->second.per_zone[zone_of_[node]] -= 1;
    }
  }
}

}  // namespace berth::ecs
