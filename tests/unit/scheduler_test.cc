// SPDX-License-Identifier: Apache-2.0
#include "ecs/scheduler.h"

#include <map>
#include <random>
#include <string>

#include <gtest/gtest.h>

namespace berth::ecs {
namespace {

SchedulerNode Node(std::string id, std::string zone, int64_t cpu, int64_t memory) {
  SchedulerNode n;
  n.id = std::move(id);
  n.zone = std::move(zone);
  n.allocatable_cpu = cpu;
  n.allocatable_memory = memory;
  return n;
}

TEST(PlacerTest, PlacesWhereTheTaskFits) {
  Placer placer;
  placer.AddNode(Node("small", "a", 256, 512));
  placer.AddNode(Node("big", "a", 4096, 8192));

  PlacementDecision d = placer.Place(1024, 2048, "family:web");

  ASSERT_TRUE(d.ok());
  EXPECT_EQ("big", placer.nodes()[d.node].id);
  EXPECT_EQ(1024, placer.nodes()[d.node].reserved_cpu);
  EXPECT_EQ(2048, placer.nodes()[d.node].reserved_memory);
}

TEST(PlacerTest, FailsWithResourceCpuWhenNoNodeHasTheCpu) {
  Placer placer;
  placer.AddNode(Node("n1", "a", 512, 65536));

  PlacementDecision d = placer.Place(1024, 2048, "family:web");

  EXPECT_FALSE(d.ok());
  EXPECT_EQ("RESOURCE:CPU", d.failure);
}

TEST(PlacerTest, FailsWithResourceMemoryWhenCpuFitsButMemoryDoesNot) {
  Placer placer;
  placer.AddNode(Node("n1", "a", 4096, 1024));

  PlacementDecision d = placer.Place(256, 2048, "family:web");

  EXPECT_FALSE(d.ok());
  EXPECT_EQ("RESOURCE:MEMORY", d.failure);
}

TEST(PlacerTest, FailsWithResourceCpuWhenThereAreNoNodes) {
  Placer placer;

  EXPECT_EQ("RESOURCE:CPU", placer.Place(256, 512, "g").failure);
}

TEST(PlacerTest, NeverOverbooksANode) {
  Placer placer;
  placer.AddNode(Node("n1", "a", 1024, 2048));

  int placed = 0;
  for (int i = 0; i < 10; ++i) {
    placed += placer.Place(256, 512, "g").ok() ? 1 : 0;
  }

  EXPECT_EQ(4, placed);
  EXPECT_EQ(1024, placer.nodes()[0].reserved_cpu);
  EXPECT_EQ(2048, placer.nodes()[0].reserved_memory);
}

TEST(PlacerTest, SpreadsAGroupAcrossZonesFirst) {
  Placer placer;
  placer.AddNode(Node("a1", "zone-a", 8192, 16384));
  placer.AddNode(Node("a2", "zone-a", 8192, 16384));
  placer.AddNode(Node("b1", "zone-b", 1024, 2048));

  std::map<std::string, int> per_zone;
  for (int i = 0; i < 4; ++i) {
    PlacementDecision d = placer.Place(256, 512, "service:web");
    ASSERT_TRUE(d.ok());
    per_zone[placer.nodes()[d.node].zone] += 1;
  }

  // Zone b has a single small node and still gets half of the group.
  EXPECT_EQ(2, per_zone["zone-a"]);
  EXPECT_EQ(2, per_zone["zone-b"]);
}

TEST(PlacerTest, SpreadsAGroupAcrossNodesWithinAZone) {
  Placer placer;
  placer.AddNode(Node("n1", "a", 4096, 8192));
  placer.AddNode(Node("n2", "a", 4096, 8192));
  placer.AddNode(Node("n3", "a", 4096, 8192));

  std::map<std::string, int> per_node;
  for (int i = 0; i < 6; ++i) {
    PlacementDecision d = placer.Place(256, 512, "service:web");
    ASSERT_TRUE(d.ok());
    per_node[placer.nodes()[d.node].id] += 1;
  }

  EXPECT_EQ(2, per_node["n1"]);
  EXPECT_EQ(2, per_node["n2"]);
  EXPECT_EQ(2, per_node["n3"]);
}

TEST(PlacerTest, PrefersTheLeastLoadedNodeWhenTheGroupIsEven) {
  SchedulerNode busy = Node("busy", "a", 4096, 8192);
  busy.reserved_cpu = 3072;
  busy.reserved_memory = 1024;
  busy.group_tasks["family:other"] = 3;
  Placer placer({busy, Node("idle", "a", 4096, 8192)});

  PlacementDecision d = placer.Place(256, 512, "family:web");

  ASSERT_TRUE(d.ok());
  EXPECT_EQ("idle", placer.nodes()[d.node].id);
}

TEST(PlacerTest, CountsExistingGroupTasksWhenSpreading) {
  SchedulerNode a = Node("a1", "zone-a", 8192, 16384);
  a.group_tasks["service:web"] = 2;
  a.reserved_cpu = 512;
  a.reserved_memory = 1024;
  Placer placer({a, Node("b1", "zone-b", 8192, 16384)});

  PlacementDecision first = placer.Place(256, 512, "service:web");
  PlacementDecision second = placer.Place(256, 512, "service:web");

  EXPECT_EQ("b1", placer.nodes()[first.node].id);
  EXPECT_EQ("b1", placer.nodes()[second.node].id);
}

TEST(PlacerTest, ReleaseGivesTheCapacityBack) {
  Placer placer;
  placer.AddNode(Node("n1", "a", 512, 1024));
  PlacementDecision d = placer.Place(512, 1024, "g");
  ASSERT_TRUE(d.ok());
  ASSERT_FALSE(placer.Place(512, 1024, "g").ok());

  placer.Release(d.node, 512, 1024, "g");

  EXPECT_TRUE(placer.Place(512, 1024, "g").ok());
}

TEST(PlacerTest, RandomFleetStaysWithinCapacity) {
  std::mt19937 rng(7);
  Placer placer;
  for (int i = 0; i < 50; ++i) {
    placer.AddNode(Node("n" + std::to_string(i), "z" + std::to_string(i % 3),
                        1024 * (1 + static_cast<int>(rng() % 8)),
                        2048 * (1 + static_cast<int>(rng() % 8))));
  }
  const int64_t sizes[][2] = {{256, 512}, {512, 1024}, {1024, 2048}, {2048, 4096}, {4096, 8192}};
  int failures = 0;
  for (int i = 0; i < 2000; ++i) {
    const auto& s = sizes[rng() % 5];
    PlacementDecision d = placer.Place(s[0], s[1], "service:s" + std::to_string(rng() % 7));
    failures += d.ok() ? 0 : 1;
  }

  EXPECT_GT(failures, 0);  // the fleet is full by the end
  for (const auto& n : placer.nodes()) {
    EXPECT_LE(n.reserved_cpu, n.allocatable_cpu) << n.id;
    EXPECT_LE(n.reserved_memory, n.allocatable_memory) << n.id;
  }
}

}  // namespace
}  // namespace berth::ecs
