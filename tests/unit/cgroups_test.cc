// SPDX-License-Identifier: Apache-2.0
#include "agent/cgroups.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "agent/runtime_util.h"

namespace berth::agent {
namespace {

namespace fs = std::filesystem;

std::string Read(const std::string& path) {
  auto text = rtutil::ReadFile(path);
  return text.ok() ? std::string(rtutil::Trim(*text)) : "<missing " + path + ">";
}

void Write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

constexpr const char* kHybridMountinfo =
    "22 27 0:21 / /proc rw,relatime - proc proc rw\n"
    "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n"
    "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
    "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
    "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";

TEST(CgroupLayoutTest, DetectsHybrid) {
  auto layout = DetectCgroupLayoutFromMountinfo(kHybridMountinfo, "/sys/fs/cgroup");
  ASSERT_TRUE(layout.ok());
  EXPECT_EQ(CgroupLayout::kHybrid, *layout);
}

TEST(CgroupLayoutTest, DetectsPureV1) {
  std::string text = kHybridMountinfo;
  text = text.substr(0, text.find("41 31"));
  auto layout = DetectCgroupLayoutFromMountinfo(text, "/sys/fs/cgroup/");
  ASSERT_TRUE(layout.ok());
  EXPECT_EQ(CgroupLayout::kV1, *layout);
}

TEST(CgroupLayoutTest, DetectsPureV2) {
  auto layout = DetectCgroupLayoutFromMountinfo(
      "25 23 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 "
      "rw,nsdelegate,memory_recursiveprot\n",
      "/sys/fs/cgroup");
  ASSERT_TRUE(layout.ok());
  EXPECT_EQ(CgroupLayout::kV2, *layout);
}

TEST(CgroupLayoutTest, NothingMountedIsNotFound) {
  auto layout =
      DetectCgroupLayoutFromMountinfo("22 27 0:21 / /proc rw - proc proc rw\n", "/sys/fs/cgroup");
  ASSERT_FALSE(layout.ok());
  EXPECT_EQ(rtutil::kNotFound, layout.error().code);
}

TEST(CgroupLayoutTest, ThisMachineIsDetected) {
  auto layout = DetectCgroupLayout();
  ASSERT_TRUE(layout.ok()) << layout.error().message;
  auto mountinfo = rtutil::ReadFile("/proc/self/mountinfo");
  ASSERT_TRUE(mountinfo.ok());
  bool unified = mountinfo->find(" /sys/fs/cgroup/unified ") != std::string::npos;
  bool root_v2 = mountinfo->find(" /sys/fs/cgroup rw") != std::string::npos &&
                 mountinfo->find("- cgroup2 cgroup2") != std::string::npos && !unified;
  if (root_v2) {
    EXPECT_EQ(CgroupLayout::kV2, *layout);
  } else {
    EXPECT_EQ(unified ? CgroupLayout::kHybrid : CgroupLayout::kV1, *layout);
  }
}

TEST(CgroupManagerTest, ContainerPathIsBelowTheTask) {
  auto manager = NewCgroupV2Manager(CgroupOptions{"/nonexistent", "berth", "/proc/self/mountinfo"});
  EXPECT_EQ("/berth/t-1/web", manager->ContainerCgroupPath("t-1", "web"));
}

// A directory laid out like a cgroup2 root. The kernel would create interface files in new
// cgroup directories; here the manager's writes create them as plain files, and the test plays
// the kernel for the files it reads.
class CgroupV2FakeTreeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/berth-cg2-XXXXXX";
    ASSERT_NE(nullptr, mkdtemp(tmpl));
    root_ = tmpl;
    Write(root_ + "/cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n");
    Write(root_ + "/cgroup.subtree_control", "");
    manager_ = NewCgroupV2Manager(CgroupOptions{root_, "berth", "/proc/self/mountinfo"});
  }
  void TearDown() override { fs::remove_all(root_); }

  // Removes the plain files, which a real cgroup2 rmdir does not mind but plain rmdir does.
  void StripInterfaceFiles(const std::string& dir) {
    for (const auto& e : fs::recursive_directory_iterator(dir)) {
      if (e.is_regular_file()) {
        fs::remove(e.path());
      }
    }
  }

  std::string root_;
  std::unique_ptr<CgroupManager> manager_;
};

TEST_F(CgroupV2FakeTreeTest, CreateTaskWritesLimits) {
  ASSERT_EQ(CgroupLayout::kV2, manager_->layout());
  Status s = manager_->CreateTask("task1", 256, 512, 1000);
  ASSERT_TRUE(s.ok()) << s.error().message;
  std::string task = root_ + "/berth/task1";
  EXPECT_EQ(task, manager_->TaskDir("task1", ""));
  EXPECT_EQ("25000 100000", Read(task + "/cpu.max"));
  EXPECT_EQ("10", Read(task + "/cpu.weight"));
  EXPECT_EQ("536870912", Read(task + "/memory.max"));
  EXPECT_EQ("0", Read(task + "/memory.swap.max"));
  EXPECT_EQ("1000", Read(task + "/pids.max"));
  // Controllers are delegated at every level down to the containers' cgroups.
  for (const std::string& dir : {root_, root_ + "/berth", task}) {
    EXPECT_EQ("+cpuset +cpu +io +memory +hugetlb +pids", Read(dir + "/cgroup.subtree_control"))
        << dir;
  }
}

TEST_F(CgroupV2FakeTreeTest, ZeroMeansUnlimited) {
  ASSERT_TRUE(manager_->CreateTask("task2", TaskCgroupLimits{}).ok());
  std::string task = root_ + "/berth/task2";
  EXPECT_EQ("max 100000", Read(task + "/cpu.max"));
  EXPECT_EQ("max", Read(task + "/memory.max"));
  EXPECT_EQ("max", Read(task + "/pids.max"));
}

TEST_F(CgroupV2FakeTreeTest, SmallCpuGetsTheMinimumQuota) {
  ASSERT_TRUE(manager_->CreateTask("task3", 2, 0, 0).ok());
  EXPECT_EQ("1000 100000", Read(root_ + "/berth/task3/cpu.max"));
}

TEST_F(CgroupV2FakeTreeTest, MissingRequiredControllerFails) {
  Write(root_ + "/cgroup.controllers", "cpu io\n");
  Status s = manager_->CreateTask("task4", 256, 512, 0);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(std::string::npos, s.error().message.find("memory"));
  EXPECT_FALSE(fs::exists(root_ + "/berth/task4"));
}

TEST_F(CgroupV2FakeTreeTest, StatsReadTheInterfaceFiles) {
  ASSERT_TRUE(manager_->CreateTask("task5", 1024, 256, 0).ok());
  std::string c = root_ + "/berth/task5/web";
  fs::create_directories(c);
  Write(c + "/memory.current", "1048576\n");
  Write(c + "/memory.peak", "2097152\n");
  Write(c + "/memory.max", "max\n");
  Write(c + "/memory.stat", "anon 4096\nfile 8192\n");
  Write(c + "/memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n");
  Write(c + "/cpu.stat",
        "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 10\nnr_throttled 2\n"
        "throttled_usec 300\n");
  Write(c + "/pids.current", "3\n");
  Write(c + "/pids.max", "max\n");

  auto stats = manager_->ContainerStats("task5", "web");
  ASSERT_TRUE(stats.ok()) << stats.error().message;
  EXPECT_EQ(1048576u, stats->memory_usage_bytes);
  EXPECT_EQ(2097152u, stats->memory_max_usage_bytes);
  EXPECT_EQ(kCgroupUnlimited, stats->memory_limit_bytes);
  EXPECT_EQ(8192u, stats->memory_stat["file"]);
  EXPECT_EQ(1u, stats->oom_kill_count);
  EXPECT_EQ(1500000u, stats->cpu_usage_total_ns);
  EXPECT_EQ(1000000u, stats->cpu_usage_user_ns);
  EXPECT_EQ(500000u, stats->cpu_usage_system_ns);
  EXPECT_TRUE(stats->cpu_usage_per_cpu_ns.empty());
  EXPECT_EQ(10u, stats->cpu_periods);
  EXPECT_EQ(2u, stats->cpu_throttled_periods);
  EXPECT_EQ(300000u, stats->cpu_throttled_time_ns);
  EXPECT_EQ(3u, stats->pids_current);
  EXPECT_EQ(kCgroupUnlimited, stats->pids_limit);

  auto task_stats = manager_->Stats("task5");
  ASSERT_TRUE(task_stats.ok());
  EXPECT_EQ(268435456u, task_stats->memory_limit_bytes);

  EXPECT_EQ(rtutil::kNotFound, manager_->ContainerStats("task5", "gone").error().code);
}

TEST_F(CgroupV2FakeTreeTest, OomKilledReadsMemoryEvents) {
  ASSERT_TRUE(manager_->CreateTask("task6", 256, 64, 0).ok());
  std::string base = root_ + "/berth/task6";
  fs::create_directories(base + "/a");
  fs::create_directories(base + "/b");
  Write(base + "/a/memory.events", "low 0\nhigh 0\nmax 9\noom 1\noom_kill 1\n");
  Write(base + "/b/memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n");
  auto a = manager_->OomKilled("task6", "a");
  auto b = manager_->OomKilled("task6", "b");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_TRUE(*a);
  EXPECT_FALSE(*b);
  EXPECT_FALSE(manager_->OomKilled("task6", "missing").ok());
}

TEST_F(CgroupV2FakeTreeTest, PidsAndListing) {
  ASSERT_TRUE(manager_->CreateTask("task7", 256, 64, 0).ok());
  ASSERT_TRUE(manager_->CreateTask("task8", 256, 64, 0).ok());
  std::string base = root_ + "/berth/task7";
  fs::create_directories(base + "/web");
  Write(base + "/cgroup.procs", "");
  Write(base + "/web/cgroup.procs", "4242\n4243\n");
  auto pids = manager_->TaskPids("task7");
  ASSERT_TRUE(pids.ok());
  EXPECT_EQ(std::vector<pid_t>({4242, 4243}), *pids);
  auto tasks = manager_->ListTasks();
  ASSERT_TRUE(tasks.ok());
  EXPECT_EQ(std::vector<std::string>({"task7", "task8"}), *tasks);
}

TEST_F(CgroupV2FakeTreeTest, DestroyRemovesChildrenThenParent) {
  ASSERT_TRUE(manager_->CreateTask("task9", 256, 64, 0).ok());
  fs::create_directories(root_ + "/berth/task9/web/nested");
  StripInterfaceFiles(root_ + "/berth");
  Status s = manager_->DestroyTask("task9", false);
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_FALSE(fs::exists(root_ + "/berth/task9"));
  // The parent goes with its last task.
  EXPECT_FALSE(fs::exists(root_ + "/berth"));
  // Destroying again is fine.
  EXPECT_TRUE(manager_->DestroyTask("task9", true).ok());
}

TEST_F(CgroupV2FakeTreeTest, RejectsUnsafeNames) {
  EXPECT_EQ(rtutil::kInvalidArgument, manager_->CreateTask("../etc", 1, 1, 1).error().code);
  EXPECT_EQ(rtutil::kInvalidArgument, manager_->CreateTask("a/b", 1, 1, 1).error().code);
  EXPECT_EQ(rtutil::kInvalidArgument, manager_->ContainerStats("ok", "..").error().code);
  EXPECT_FALSE(fs::exists(root_ + "/etc"));
}

// The v1 implementation against this machine's real cgroup tree.
class CgroupV1RealTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) {
      GTEST_SKIP() << "needs root to create cgroups";
    }
    auto layout = DetectCgroupLayout();
    if (!layout.ok() || *layout == CgroupLayout::kV2) {
      GTEST_SKIP() << "the machine has no cgroup v1 controllers";
    }
    auto manager = NewCgroupManager();
    ASSERT_TRUE(manager.ok()) << manager.error().message;
    manager_ = std::move(*manager);
    task_ = "cgtest-" + std::to_string(getpid());
  }
  void TearDown() override {
    if (manager_) {
      EXPECT_TRUE(manager_->DestroyTask(task_, true).ok());
      for (const char* c : {"cpu", "memory", "pids", "cpuset", "cpuacct"}) {
        EXPECT_FALSE(fs::exists("/sys/fs/cgroup/" + std::string(c) + "/berth/" + task_)) << c;
      }
    }
  }

  std::unique_ptr<CgroupManager> manager_;
  std::string task_;
};

TEST_F(CgroupV1RealTest, CreateTaskWritesLimitFiles) {
  Status s = manager_->CreateTask(task_, 256, 512, 500);
  ASSERT_TRUE(s.ok()) << s.error().message;
  std::string cpu = manager_->TaskDir(task_, "cpu");
  std::string mem = manager_->TaskDir(task_, "memory");
  EXPECT_EQ("25000", Read(cpu + "/cpu.cfs_quota_us"));
  EXPECT_EQ("100000", Read(cpu + "/cpu.cfs_period_us"));
  EXPECT_EQ("256", Read(cpu + "/cpu.shares"));
  EXPECT_EQ("536870912", Read(mem + "/memory.limit_in_bytes"));
  if (fs::exists(mem + "/memory.memsw.limit_in_bytes")) {
    EXPECT_EQ("536870912", Read(mem + "/memory.memsw.limit_in_bytes"));
  }
  EXPECT_EQ("500", Read(manager_->TaskDir(task_, "pids") + "/pids.max"));
  std::string cpuset = manager_->TaskDir(task_, "cpuset");
  if (!cpuset.empty()) {
    EXPECT_EQ(Read("/sys/fs/cgroup/cpuset/cpuset.cpus"), Read(cpuset + "/cpuset.cpus"));
  }

  auto stats = manager_->Stats(task_);
  ASSERT_TRUE(stats.ok()) << stats.error().message;
  EXPECT_EQ(536870912u, stats->memory_limit_bytes);
  EXPECT_EQ(500u, stats->pids_limit);
  EXPECT_EQ(0u, stats->pids_current);

  auto tasks = manager_->ListTasks();
  ASSERT_TRUE(tasks.ok());
  EXPECT_NE(tasks->end(), std::find(tasks->begin(), tasks->end(), task_));
}

TEST_F(CgroupV1RealTest, LimitsCanBeRewrittenUpAndDown) {
  ASSERT_TRUE(manager_->CreateTask(task_, 1024, 256, 0).ok());
  ASSERT_TRUE(manager_->CreateTask(task_, 2048, 1024, 0).ok());
  std::string mem = manager_->TaskDir(task_, "memory");
  EXPECT_EQ("1073741824", Read(mem + "/memory.limit_in_bytes"));
  ASSERT_TRUE(manager_->CreateTask(task_, 512, 128, 0).ok());
  EXPECT_EQ("134217728", Read(mem + "/memory.limit_in_bytes"));
  EXPECT_EQ("50000", Read(manager_->TaskDir(task_, "cpu") + "/cpu.cfs_quota_us"));
  EXPECT_EQ("max", Read(manager_->TaskDir(task_, "pids") + "/pids.max"));
}

}  // namespace
}  // namespace berth::agent
