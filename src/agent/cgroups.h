// SPDX-License-Identifier: Apache-2.0
//
// Task cgroups. Every task gets a parent cgroup `<parent>/<task_id>` (parent "berth" by default)
// that carries the task-level limits of its size (cpu, memory, pids). Each container of the task
// runs in a child `<parent>/<task_id>/<container>` that runc creates from the OCI spec's
// linux.cgroupsPath and fills with the container-level resources.
//
// Three layouts exist: cgroup v1 (one hierarchy per controller), hybrid (v1 controllers plus a
// cgroup2 mount at <root>/unified, which runc also populates), and pure cgroup v2. v1 and hybrid
// share one implementation; v2 has its own.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"

namespace berth::agent {

enum class CgroupLayout { kV1, kHybrid, kV2 };

const char* CgroupLayoutName(CgroupLayout layout);

/// Decides the layout from /proc/self/mountinfo text: the file system mounted at `root`
/// (cgroup2 -> v2), else v1 controllers below it, plus cgroup2 at `<root>/unified` -> hybrid.
/// kNotFound when no cgroup file system is mounted there.
Result<CgroupLayout> DetectCgroupLayoutFromMountinfo(const std::string& mountinfo,
                                                     const std::string& root);

/// Reads /proc/self/mountinfo and calls the function above.
Result<CgroupLayout> DetectCgroupLayout(const std::string& root = "/sys/fs/cgroup");

/// A limit that is not set ("max" / the v1 page-counter maximum).
inline constexpr uint64_t kCgroupUnlimited = UINT64_MAX;

/// Resource usage of one cgroup (a task or one of its containers), read from the interface
/// files. Fields a layout does not provide stay zero (per-cpu usage on v2, for example).
struct CgroupStats {
  uint64_t memory_usage_bytes = 0;
  uint64_t memory_max_usage_bytes = 0;  // v1 max_usage_in_bytes, v2 memory.peak
  uint64_t memory_limit_bytes = kCgroupUnlimited;
  std::map<std::string, uint64_t> memory_stat;  // memory.stat as key/value pairs
  uint64_t memory_failcnt = 0;                  // v1 only
  uint64_t oom_kill_count = 0;

  uint64_t cpu_usage_total_ns = 0;
  uint64_t cpu_usage_user_ns = 0;
  uint64_t cpu_usage_system_ns = 0;
  std::vector<uint64_t> cpu_usage_per_cpu_ns;  // v1 only
  uint64_t cpu_periods = 0;
  uint64_t cpu_throttled_periods = 0;
  uint64_t cpu_throttled_time_ns = 0;

  uint64_t pids_current = 0;
  uint64_t pids_limit = kCgroupUnlimited;
};

/// The task-level size of a task.
struct TaskCgroupLimits {
  /// ECS cpu units; 1024 = one core. Sets the CFS quota (units/1024 of a core per period) and
  /// the cpu weight. 0 leaves cpu unlimited.
  uint32_t cpu_units = 0;
  /// Hard memory limit (swap included, so no swap is used). 0 leaves memory unlimited.
  uint64_t memory_mib = 0;
  /// Maximum number of processes. 0 leaves it unlimited.
  uint64_t pids_max = 0;
};

struct CgroupOptions {
  /// Where the cgroup file systems are mounted.
  std::string root = "/sys/fs/cgroup";
  /// Name of the cgroup that holds all task cgroups.
  std::string parent = "berth";
  /// Source of the mount table, for layout detection and v1 controller discovery.
  std::string mountinfo_path = "/proc/self/mountinfo";
  /// How long DestroyTask waits for processes to leave before giving up.
  std::chrono::milliseconds remove_timeout{5000};
};

/// Creates, inspects and removes task cgroups. Task ids and container names must be safe path
/// components ([A-Za-z0-9_.-]); anything else is kInvalidArgument. Thread-safe as long as
/// callers do not operate on the same task concurrently.
class CgroupManager {
 public:
  virtual ~CgroupManager() = default;

  virtual CgroupLayout layout() const = 0;

  /// Creates `<parent>/<task_id>` (and the parent on first use) with the limits. Creating a
  /// task that exists rewrites its limits.
  virtual Status CreateTask(const std::string& task_id, const TaskCgroupLimits& limits) = 0;

  /// Convenience overload with the limits spelled out.
  Status CreateTask(const std::string& task_id, uint32_t cpu_units, uint64_t memory_mib,
                    uint64_t pids_max) {
    return CreateTask(task_id, TaskCgroupLimits{cpu_units, memory_mib, pids_max});
  }

  /// The value for the OCI spec's linux.cgroupsPath: "/<parent>/<task_id>/<container>".
  std::string ContainerCgroupPath(const std::string& task_id, const std::string& container) const;

  /// Usage of the whole task.
  virtual Result<CgroupStats> Stats(const std::string& task_id) = 0;

  /// Usage of one container (kNotFound once runc has deleted its cgroup).
  virtual Result<CgroupStats> ContainerStats(const std::string& task_id,
                                             const std::string& container) = 0;

  /// True when the kernel OOM-killed a process of the container. Must be asked before the
  /// container is deleted, since its cgroup goes with it.
  virtual Result<bool> OomKilled(const std::string& task_id, const std::string& container) = 0;

  /// Processes (tgids) in the task's cgroup tree.
  virtual Result<std::vector<pid_t>> TaskPids(const std::string& task_id) = 0;

  /// Removes the task's cgroups, children first, in every hierarchy. With `kill_processes`,
  /// processes still inside get SIGKILL first; otherwise removal retries for a short while
  /// and fails with kUnavailable if they stay. Removing a missing task succeeds. The parent
  /// cgroup is removed when it becomes empty.
  virtual Status DestroyTask(const std::string& task_id, bool kill_processes) = 0;

  /// Task ids that have a cgroup.
  virtual Result<std::vector<std::string>> ListTasks() = 0;

  /// The directory of the task's cgroup for a controller ("" for v2), for diagnostics and
  /// tests. Empty when the controller is not mounted.
  virtual std::string TaskDir(const std::string& task_id, const std::string& controller) const = 0;

 protected:
  explicit CgroupManager(CgroupOptions options) : options_(std::move(options)) {}
  const CgroupOptions options_;
};

/// Detects the layout and returns the matching manager.
Result<std::unique_ptr<CgroupManager>> NewCgroupManager(CgroupOptions options = {});

/// A manager for v1 or hybrid trees (controllers found through mountinfo).
Result<std::unique_ptr<CgroupManager>> NewCgroupV1Manager(CgroupOptions options, bool hybrid);

/// A manager for a cgroup2 tree at options.root. Works on any directory laid out like one,
/// which is how it is tested on machines without cgroup2.
std::unique_ptr<CgroupManager> NewCgroupV2Manager(CgroupOptions options);

}  // namespace berth::agent
