// SPDX-License-Identifier: Apache-2.0
//
// ecs_bench: scheduler placement throughput.
//
//   1. The placement decision alone: a simulated fleet of 1,000 nodes in three
//      zones places 100,000 tasks of mixed Fargate sizes from 200 services;
//      prints placements per second and the p50/p99 time of one placement.
//   2. Placement through the task manager: RunTask's path with every
//      reservation committed to the SQLite store (durable, compare-and-set on
//      the node documents), on a smaller fleet.
//
// Usage: ecs_bench [nodes tasks] (defaults 1000 100000).
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "ecs/scheduler.h"
#include "ecs/store_task_manager.h"
#include "ecs/taskdef.h"
#include "store/sqlite_store.h"

namespace {

using berth::ecs::Json;
using Clock = std::chrono::steady_clock;

struct Size {
  int64_t cpu;
  int64_t memory;
};

constexpr Size kSizes[] = {{256, 512}, {256, 1024}, {512, 1024}, {512, 2048},
                           {1024, 2048}, {1024, 4096}, {2048, 4096}, {4096, 8192}};
// Small tasks dominate real fleets; weights for kSizes.
constexpr int kWeights[] = {30, 15, 20, 10, 12, 6, 5, 2};

double Percentile(std::vector<double>& v, double p) {
  if (v.empty()) {
    return 0;
  }
  size_t k = static_cast<size_t>(p * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

void PlacementOnly(int nodes, int tasks) {
  berth::ecs::Placer placer;
  for (int i = 0; i < nodes; ++i) {
    berth::ecs::SchedulerNode n;
    n.id = "node-" + std::to_string(i);
    n.zone = std::string("us-east-1") + static_cast<char>('a' + i % 3);
    n.allocatable_cpu = 64 * 1024;
    n.allocatable_memory = 256 * 1024;
    placer.AddNode(std::move(n));
  }
  std::vector<std::string> groups;
  for (int i = 0; i < 200; ++i) {
    groups.push_back("service:svc-" + std::to_string(i));
  }
  std::mt19937 rng(42);
  std::discrete_distribution<int> size_of(std::begin(kWeights), std::end(kWeights));
  std::uniform_int_distribution<int> group_of(0, static_cast<int>(groups.size()) - 1);

  std::vector<double> micros;
  micros.reserve(static_cast<size_t>(tasks));
  int failed = 0;
  auto start = Clock::now();
  for (int i = 0; i < tasks; ++i) {
    const Size& s = kSizes[size_of(rng)];
    const std::string& g = groups[group_of(rng)];
    auto t0 = Clock::now();
    auto decision = placer.Place(s.cpu, s.memory, g);
    micros.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    failed += decision.ok() ? 0 : 1;
  }
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf("placement: %d nodes, %d tasks, %d unplaced, %.0f placements/s, "
              "p50 %.1f us, p99 %.1f us per placement\n",
              nodes, tasks, failed, tasks / seconds, Percentile(micros, 0.50),
              Percentile(micros, 0.99));
}

void ThroughTheStore(int nodes, int tasks) {
  std::string dir = (std::filesystem::temp_directory_path() / "berth-bench-XXXXXX").string();
  if (mkdtemp(dir.data()) == nullptr) {
    std::perror("mkdtemp");
    return;
  }
  {
    auto store = berth::store::OpenSqliteStore(dir + "/state.db");
    if (!store.ok()) {
      std::fprintf(stderr, "open store: %s\n", store.error().message.c_str());
      return;
    }
    (void)(*store)->Put("ecs/clusters/bench", R"({"status":"ACTIVE"})");
    berth::ecs::StoreTaskManager manager(**store, berth::ecs::TaskManagerOptions());
    for (int i = 0; i < nodes; ++i) {
      berth::ecs::NodeRegistration reg;
      reg.node_id = "node-" + std::to_string(i);
      reg.cpu = 64 * 1024;
      reg.memory = 256 * 1024;
      reg.availability_zone = std::string("us-east-1") + static_cast<char>('a' + i % 3);
      (void)manager.RegisterNode(reg);
    }
    auto td = berth::ecs::NormalizeTaskDefinition(
        {{"family", "bench"},
         {"requiresCompatibilities", {"FARGATE"}},
         {"networkMode", "awsvpc"},
         {"cpu", "256"},
         {"memory", "512"},
         {"containerDefinitions", {{{"name", "app"}, {"image", "busybox"}}}}});
    berth::ecs::StartTasksRequest req;
    req.cluster = "bench";
    req.task_definition = *td;
    req.task_definition["taskDefinitionArn"] =
        "arn:aws:ecs:us-east-1:000000000000:task-definition/bench:1";
    std::vector<double> millis;
    auto start = Clock::now();
    for (int i = 0; i < tasks; ++i) {
      req.group = "service:svc-" + std::to_string(i % 20);
      auto t0 = Clock::now();
      auto started = manager.StartTasks(req);
      millis.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      if (!started.ok() || started->tasks.size() != 1) {
        std::fprintf(stderr, "placement %d failed\n", i);
        break;
      }
    }
    double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    std::printf("durable placement (RunTask path, SQLite): %d nodes, %zu tasks, "
                "%.0f placements/s, p50 %.2f ms, p99 %.2f ms\n",
                nodes, millis.size(), static_cast<double>(millis.size()) / seconds,
                Percentile(millis, 0.50), Percentile(millis, 0.99));
  }
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
}

}  // namespace

int main(int argc, char** argv) {
  int nodes = argc > 2 ? std::atoi(argv[1]) : 1000;
  int tasks = argc > 2 ? std::atoi(argv[2]) : 100000;
  PlacementOnly(nodes, tasks);
  ThroughTheStore(100, 1000);
  return 0;
}
