// SPDX-License-Identifier: Apache-2.0
#include "agent/cgroups.h"

#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <set>
#include <thread>

#include "agent/runtime_util.h"

namespace berth::agent {

using rtutil::ErrnoError;
using rtutil::InternalError;
using rtutil::InvalidArgumentError;
using rtutil::NotFoundError;
using rtutil::ParseU64;
using rtutil::ReadFile;
using rtutil::Split;
using rtutil::Trim;
using rtutil::WriteFile;

namespace {

constexpr uint64_t kCfsPeriodUs = 100000;
// The kernel refuses CFS quotas below 1 ms.
constexpr uint64_t kMinCfsQuotaUs = 1000;
// v1 reports "no limit" as the page counter maximum, a little under 2^63.
constexpr uint64_t kV1UnlimitedThreshold = uint64_t{1} << 62;

struct MountEntry {
  std::string mountpoint;
  std::string fstype;
  std::vector<std::string> super_options;
};

// Mount points in mountinfo escape space, tab, newline and backslash as octal.
std::string UnescapeMountField(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      int v = 0;
      bool octal = true;
      for (size_t j = 1; j <= 3; ++j) {
        if (i + j >= s.size() || s[i + j] < '0' || s[i + j] > '7') {
          octal = false;
          break;
        }
        v = v * 8 + (s[i + j] - '0');
      }
      if (octal) {
        out.push_back(static_cast<char>(v));
        i += 3;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

std::vector<MountEntry> ParseMountinfo(const std::string& text) {
  std::vector<MountEntry> out;
  for (const std::string& line : Split(text, '\n')) {
    std::vector<std::string> f = Split(line, ' ');
    auto dash = std::find(f.begin(), f.end(), "-");
    if (f.size() < 7 || dash == f.end() || dash + 2 >= f.end()) {
      continue;
    }
    MountEntry e;
    e.mountpoint = UnescapeMountField(f[4]);
    e.fstype = *(dash + 1);
    if (dash + 3 < f.end()) {
      e.super_options = Split(*(dash + 3), ',');
    }
    out.push_back(std::move(e));
  }
  return out;
}

std::string StripTrailingSlash(std::string path) {
  while (path.size() > 1 && path.back() == '/') {
    path.pop_back();
  }
  return path;
}

Status CheckName(const std::string& what, const std::string& name) {
  if (!rtutil::IsSafeName(name)) {
    return InvalidArgumentError("invalid " + what + " '" + name + "' for a cgroup name");
  }
  return Ok();
}

// mkdir that tolerates an existing directory.
Status MakeCgroupDir(const std::string& dir) {
  if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return ErrnoError("create cgroup " + dir, errno);
  }
  return Ok();
}

std::vector<std::string> SubDirs(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) {
    return out;
  }
  while (struct dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") {
      continue;
    }
    if (e->d_type == DT_DIR || (e->d_type == DT_UNKNOWN && rtutil::IsDirectory(dir + "/" + name))) {
      out.push_back(name);
    }
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

uint64_t ReadU64Or(const std::string& path, uint64_t fallback) {
  auto text = ReadFile(path);
  uint64_t v = 0;
  if (!text.ok() || !ParseU64(*text, &v)) {
    return fallback;
  }
  return v;
}

// A limit file holding a number or "max".
uint64_t ReadLimit(const std::string& path) {
  auto text = ReadFile(path);
  if (!text.ok()) {
    return kCgroupUnlimited;
  }
  uint64_t v = 0;
  if (Trim(*text) == "max" || !ParseU64(*text, &v) || v >= kV1UnlimitedThreshold) {
    return kCgroupUnlimited;
  }
  return v;
}

// "key value" lines (memory.stat, cpu.stat, memory.events, memory.oom_control).
std::map<std::string, uint64_t> ReadKeyValues(const std::string& path) {
  std::map<std::string, uint64_t> out;
  auto text = ReadFile(path);
  if (!text.ok()) {
    return out;
  }
  for (const std::string& line : Split(*text, '\n')) {
    std::vector<std::string> kv = Split(line, ' ');
    uint64_t v = 0;
    if (kv.size() == 2 && ParseU64(kv[1], &v)) {
      out[kv[0]] = v;
    }
  }
  return out;
}

uint64_t Get(const std::map<std::string, uint64_t>& m, const std::string& key) {
  auto it = m.find(key);
  return it == m.end() ? 0 : it->second;
}

void CollectPids(const std::string& dir, std::set<pid_t>* pids) {
  auto text = ReadFile(dir + "/cgroup.procs");
  if (text.ok()) {
    for (const std::string& line : Split(*text, '\n')) {
      uint64_t v = 0;
      if (ParseU64(line, &v) && v > 0) {
        pids->insert(static_cast<pid_t>(v));
      }
    }
  }
  for (const std::string& sub : SubDirs(dir)) {
    CollectPids(dir + "/" + sub, pids);
  }
}

void KillTree(const std::string& dir) {
  std::set<pid_t> pids;
  CollectPids(dir, &pids);
  for (pid_t pid : pids) {
    kill(pid, SIGKILL);
  }
}

// Removes a cgroup directory and its children. cgroup directories can be removed while they
// still list interface files, but not while processes are inside (EBUSY): those are killed
// when asked, or waited for until the deadline.
Status RemoveCgroupTree(const std::string& dir, bool kill_processes,
                        std::chrono::steady_clock::time_point deadline) {
  for (const std::string& sub : SubDirs(dir)) {
    BERTH_TRY(RemoveCgroupTree(dir + "/" + sub, kill_processes, deadline));
  }
  for (;;) {
    if (rmdir(dir.c_str()) == 0 || errno == ENOENT) {
      return Ok();
    }
    int err = errno;
    if (err != EBUSY || std::chrono::steady_clock::now() >= deadline) {
      if (err == EBUSY) {
        return rtutil::MakeError(503, rtutil::kUnavailable,
                                 "remove cgroup " + dir + ": processes are still inside");
      }
      return ErrnoError("remove cgroup " + dir, err);
    }
    if (kill_processes) {
      KillTree(dir);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

uint64_t CfsQuotaUs(uint32_t cpu_units) {
  return std::max<uint64_t>(kMinCfsQuotaUs, uint64_t{cpu_units} * kCfsPeriodUs / 1024);
}

// ---------------------------------------------------------------------------------------------
// cgroup v1 (and hybrid)

class CgroupV1Manager : public CgroupManager {
 public:
  CgroupV1Manager(CgroupOptions options, bool hybrid,
                  std::map<std::string, std::string> controller_mounts,
                  std::vector<std::string> hierarchies)
      : CgroupManager(std::move(options)),
        hybrid_(hybrid),
        controller_mounts_(std::move(controller_mounts)),
        hierarchies_(std::move(hierarchies)) {}

  CgroupLayout layout() const override {
    return hybrid_ ? CgroupLayout::kHybrid : CgroupLayout::kV1;
  }

  Status CreateTask(const std::string& task_id, const TaskCgroupLimits& limits) override;
  Result<CgroupStats> Stats(const std::string& task_id) override;
  Result<CgroupStats> ContainerStats(const std::string& task_id,
                                     const std::string& container) override;
  Result<bool> OomKilled(const std::string& task_id, const std::string& container) override;
  Result<std::vector<pid_t>> TaskPids(const std::string& task_id) override;
  Status DestroyTask(const std::string& task_id, bool kill_processes) override;
  Result<std::vector<std::string>> ListTasks() override;
  std::string TaskDir(const std::string& task_id, const std::string& controller) const override;

 private:
  std::string Mount(const std::string& controller) const {
    auto it = controller_mounts_.find(controller);
    return it == controller_mounts_.end() ? std::string() : it->second;
  }
  std::string Dir(const std::string& controller, const std::string& rel) const {
    std::string mnt = Mount(controller);
    return mnt.empty() ? std::string() : mnt + "/" + rel;
  }
  Status MakeTaskDirs(const std::string& task_id);
  Status ApplyLimits(const std::string& task_id, const TaskCgroupLimits& limits);
  Status ApplyMemoryLimit(const std::string& dir, uint64_t bytes);
  Result<CgroupStats> ReadStats(const std::string& rel);

  bool hybrid_;
  std::map<std::string, std::string> controller_mounts_;
  // Every hierarchy runc may create directories in: all v1 mounts and, in hybrid mode, the
  // cgroup2 mount.
  std::vector<std::string> hierarchies_;
};

// A new v1 cpuset cgroup starts with no cpus and no memory nodes, and no process can join it
// until both are set; copy them from the parent.
Status InitCpuset(const std::string& dir, const std::string& parent) {
  for (const char* file : {"cpuset.cpus", "cpuset.mems"}) {
    auto current = ReadFile(dir + "/" + file);
    if (current.ok() && !Trim(*current).empty()) {
      continue;
    }
    auto from_parent = ReadFile(parent + "/" + file);
    if (!from_parent.ok()) {
      return from_parent.error();
    }
    BERTH_TRY(WriteFile(dir + "/" + file, Trim(*from_parent)));
  }
  return Ok();
}

Status CgroupV1Manager::MakeTaskDirs(const std::string& task_id) {
  std::set<std::string> done;
  for (const char* controller : {"cpu", "cpuacct", "cpuset", "memory", "pids"}) {
    std::string mnt = Mount(controller);
    if (mnt.empty() || !done.insert(mnt).second) {
      continue;
    }
    std::string parent = mnt + "/" + options_.parent;
    std::string task = parent + "/" + task_id;
    bool cpuset = Mount("cpuset") == mnt;
    // Another task's removal may delete the empty parent between the two mkdirs; retry.
    Status made = Ok();
    for (int attempt = 0; attempt < 5; ++attempt) {
      BERTH_TRY(MakeCgroupDir(parent));
      if (cpuset) {
        BERTH_TRY(InitCpuset(parent, mnt));
      }
      made = MakeCgroupDir(task);
      if (made.ok() || made.error().code != rtutil::kNotFound) {
        break;
      }
    }
    BERTH_TRY(made);
    if (cpuset) {
      BERTH_TRY(InitCpuset(task, parent));
    }
  }
  return Ok();
}

Status CgroupV1Manager::ApplyMemoryLimit(const std::string& dir, uint64_t bytes) {
  std::string value = bytes == 0 ? "-1" : std::to_string(bytes);
  std::string limit_file = dir + "/memory.limit_in_bytes";
  std::string memsw_file = dir + "/memory.memsw.limit_in_bytes";
  if (!rtutil::PathExists(memsw_file)) {
    return WriteFile(limit_file, value);
  }
  // memory+swap may never be below memory: raise memsw first when growing, memory first when
  // shrinking.
  uint64_t current_memsw = ReadLimit(memsw_file);
  uint64_t wanted = bytes == 0 ? kCgroupUnlimited : bytes;
  if (wanted >= current_memsw) {
    BERTH_TRY(WriteFile(memsw_file, value));
    return WriteFile(limit_file, value);
  }
  BERTH_TRY(WriteFile(limit_file, value));
  return WriteFile(memsw_file, value);
}

Status CgroupV1Manager::ApplyLimits(const std::string& task_id, const TaskCgroupLimits& limits) {
  std::string rel = options_.parent + "/" + task_id;
  std::string cpu = Dir("cpu", rel);
  if (limits.cpu_units > 0) {
    BERTH_TRY(
        WriteFile(cpu + "/cpu.shares", std::to_string(std::max<uint32_t>(2, limits.cpu_units))));
    BERTH_TRY(WriteFile(cpu + "/cpu.cfs_period_us", std::to_string(kCfsPeriodUs)));
    BERTH_TRY(WriteFile(cpu + "/cpu.cfs_quota_us", std::to_string(CfsQuotaUs(limits.cpu_units))));
  } else {
    BERTH_TRY(WriteFile(cpu + "/cpu.cfs_quota_us", "-1"));
  }

  BERTH_TRY(ApplyMemoryLimit(Dir("memory", rel), limits.memory_mib * 1024 * 1024));

  std::string pids = Dir("pids", rel);
  if (pids.empty()) {
    if (limits.pids_max > 0) {
      return InternalError("pids limit requested but the pids controller is not mounted");
    }
    return Ok();
  }
  return WriteFile(pids + "/pids.max",
                   limits.pids_max > 0 ? std::to_string(limits.pids_max) : "max");
}

Status CgroupV1Manager::CreateTask(const std::string& task_id, const TaskCgroupLimits& limits) {
  BERTH_TRY(CheckName("task id", task_id));
  if (Mount("cpu").empty() || Mount("memory").empty()) {
    return InternalError("cgroup v1: the cpu and memory controllers must be mounted");
  }
  Status made = MakeTaskDirs(task_id);
  if (made.ok()) {
    made = ApplyLimits(task_id, limits);
  }
  if (!made.ok()) {
    (void)DestroyTask(task_id, false);
    return Error{made.error().status,
                 made.error().code,
                 "create task cgroup " + task_id + ": " + made.error().message,
                 {}};
  }
  return Ok();
}

Result<CgroupStats> CgroupV1Manager::ReadStats(const std::string& rel) {
  std::string mem = Dir("memory", rel);
  if (mem.empty() || !rtutil::IsDirectory(mem)) {
    return NotFoundError("cgroup " + rel + " does not exist");
  }
  CgroupStats s;
  s.memory_usage_bytes = ReadU64Or(mem + "/memory.usage_in_bytes", 0);
  s.memory_max_usage_bytes = ReadU64Or(mem + "/memory.max_usage_in_bytes", 0);
  s.memory_limit_bytes = ReadLimit(mem + "/memory.limit_in_bytes");
  s.memory_failcnt = ReadU64Or(mem + "/memory.failcnt", 0);
  s.memory_stat = ReadKeyValues(mem + "/memory.stat");
  s.oom_kill_count = Get(ReadKeyValues(mem + "/memory.oom_control"), "oom_kill");

  std::string acct = Dir("cpuacct", rel);
  if (!acct.empty()) {
    s.cpu_usage_total_ns = ReadU64Or(acct + "/cpuacct.usage", 0);
    if (auto percpu = ReadFile(acct + "/cpuacct.usage_percpu"); percpu.ok()) {
      for (const std::string& v : Split(Trim(*percpu), ' ')) {
        uint64_t n = 0;
        if (ParseU64(v, &n)) {
          s.cpu_usage_per_cpu_ns.push_back(n);
        }
      }
    }
    if (rtutil::PathExists(acct + "/cpuacct.usage_user")) {
      s.cpu_usage_user_ns = ReadU64Or(acct + "/cpuacct.usage_user", 0);
      s.cpu_usage_system_ns = ReadU64Or(acct + "/cpuacct.usage_sys", 0);
    } else {
      // Older kernels only have cpuacct.stat, in clock ticks.
      auto ticks = ReadKeyValues(acct + "/cpuacct.stat");
      uint64_t ns_per_tick = 1000000000ull / static_cast<uint64_t>(sysconf(_SC_CLK_TCK));
      s.cpu_usage_user_ns = Get(ticks, "user") * ns_per_tick;
      s.cpu_usage_system_ns = Get(ticks, "system") * ns_per_tick;
    }
  }
  if (std::string cpu = Dir("cpu", rel); !cpu.empty()) {
    auto stat = ReadKeyValues(cpu + "/cpu.stat");
    s.cpu_periods = Get(stat, "nr_periods");
    s.cpu_throttled_periods = Get(stat, "nr_throttled");
    s.cpu_throttled_time_ns = Get(stat, "throttled_time");
  }
  if (std::string pids = Dir("pids", rel); !pids.empty()) {
    s.pids_current = ReadU64Or(pids + "/pids.current", 0);
    s.pids_limit = ReadLimit(pids + "/pids.max");
  }
  return s;
}

Result<CgroupStats> CgroupV1Manager::Stats(const std::string& task_id) {
  BERTH_TRY(CheckName("task id", task_id));
  return ReadStats(options_.parent + "/" + task_id);
}

Result<CgroupStats> CgroupV1Manager::ContainerStats(const std::string& task_id,
                                                    const std::string& container) {
  BERTH_TRY(CheckName("task id", task_id));
  BERTH_TRY(CheckName("container name", container));
  return ReadStats(options_.parent + "/" + task_id + "/" + container);
}

Result<bool> CgroupV1Manager::OomKilled(const std::string& task_id, const std::string& container) {
  BERTH_TRY(CheckName("task id", task_id));
  BERTH_TRY(CheckName("container name", container));
  std::string dir = Dir("memory", options_.parent + "/" + task_id + "/" + container);
  auto control = ReadFile(dir + "/memory.oom_control");
  if (!control.ok()) {
    return control.error();
  }
  auto values = ReadKeyValues(dir + "/memory.oom_control");
  if (values.count("oom_kill") > 0) {
    return values["oom_kill"] > 0;
  }
  // Kernels before 4.13 have no oom_kill counter. A failed charge is the best remaining sign;
  // it can also count charges that reclaim later satisfied.
  return ReadU64Or(dir + "/memory.failcnt", 0) > 0;
}

Result<std::vector<pid_t>> CgroupV1Manager::TaskPids(const std::string& task_id) {
  BERTH_TRY(CheckName("task id", task_id));
  std::set<pid_t> pids;
  for (const std::string& mnt : hierarchies_) {
    std::string dir = mnt + "/" + options_.parent + "/" + task_id;
    if (rtutil::IsDirectory(dir)) {
      CollectPids(dir, &pids);
    }
  }
  return std::vector<pid_t>(pids.begin(), pids.end());
}

Status CgroupV1Manager::DestroyTask(const std::string& task_id, bool kill_processes) {
  BERTH_TRY(CheckName("task id", task_id));
  std::vector<std::string> dirs;
  for (const std::string& mnt : hierarchies_) {
    std::string dir = mnt + "/" + options_.parent + "/" + task_id;
    if (rtutil::IsDirectory(dir)) {
      dirs.push_back(dir);
    }
  }
  if (kill_processes) {
    // A frozen process does not die until thawed.
    if (std::string freezer = Dir("freezer", options_.parent + "/" + task_id);
        !freezer.empty() && rtutil::PathExists(freezer + "/freezer.state")) {
      (void)WriteFile(freezer + "/freezer.state", "THAWED");
    }
    for (const std::string& dir : dirs) {
      KillTree(dir);
    }
  }
  auto deadline = std::chrono::steady_clock::now() + options_.remove_timeout;
  Status result = Ok();
  for (const std::string& dir : dirs) {
    Status removed = RemoveCgroupTree(dir, kill_processes, deadline);
    if (!removed.ok() && result.ok()) {
      result = removed;
    }
  }
  // The shared parent goes away with its last task; a busy parent is simply still in use.
  for (const std::string& mnt : hierarchies_) {
    rmdir((mnt + "/" + options_.parent).c_str());
  }
  return result;
}

Result<std::vector<std::string>> CgroupV1Manager::ListTasks() {
  return SubDirs(Mount("memory") + "/" + options_.parent);
}

std::string CgroupV1Manager::TaskDir(const std::string& task_id,
                                     const std::string& controller) const {
  return Dir(controller, options_.parent + "/" + task_id);
}

// ---------------------------------------------------------------------------------------------
// cgroup v2

// Controllers berth delegates down to containers when the kernel offers them.
const char* const kV2Controllers[] = {"cpuset", "cpu", "io", "memory", "hugetlb", "pids"};
const std::set<std::string> kV2Required = {"cpu", "memory", "pids"};

class CgroupV2Manager : public CgroupManager {
 public:
  explicit CgroupV2Manager(CgroupOptions options) : CgroupManager(std::move(options)) {}

  CgroupLayout layout() const override { return CgroupLayout::kV2; }

  Status CreateTask(const std::string& task_id, const TaskCgroupLimits& limits) override;
  Result<CgroupStats> Stats(const std::string& task_id) override;
  Result<CgroupStats> ContainerStats(const std::string& task_id,
                                     const std::string& container) override;
  Result<bool> OomKilled(const std::string& task_id, const std::string& container) override;
  Result<std::vector<pid_t>> TaskPids(const std::string& task_id) override;
  Status DestroyTask(const std::string& task_id, bool kill_processes) override;
  Result<std::vector<std::string>> ListTasks() override;
  std::string TaskDir(const std::string& task_id, const std::string& controller) const override {
    return ParentDir() + "/" + task_id;
  }

 private:
  std::string ParentDir() const { return options_.root + "/" + options_.parent; }
  Status EnableControllers(const std::string& dir, const std::vector<std::string>& wanted);
  Status ApplyLimits(const std::string& dir, const TaskCgroupLimits& limits);
  Result<CgroupStats> ReadStats(const std::string& dir);
};

// Writes to v2 interface files pass create=true: a real cgroup2 file system never creates
// files, so this only matters for a tree laid out by hand (tests), where it makes the write
// land in a plain file.
Status WriteV2(const std::string& path, std::string_view value) {
  return WriteFile(path, value, /*create=*/true);
}

Status CgroupV2Manager::EnableControllers(const std::string& dir,
                                          const std::vector<std::string>& wanted) {
  if (wanted.empty()) {
    return Ok();
  }
  std::string all;
  for (const std::string& c : wanted) {
    all += (all.empty() ? "+" : " +") + c;
  }
  if (WriteV2(dir + "/cgroup.subtree_control", all).ok()) {
    return Ok();
  }
  // One controller may be refused (cpu with realtime tasks in the root, for example); enable
  // the others one by one and fail only for those berth cannot do without.
  for (const std::string& c : wanted) {
    Status s = WriteV2(dir + "/cgroup.subtree_control", "+" + c);
    if (!s.ok() && kV2Required.count(c) > 0) {
      return InternalError("enable cgroup controller " + c + " in " + dir + ": " +
                           s.error().message);
    }
  }
  return Ok();
}

Status CgroupV2Manager::ApplyLimits(const std::string& dir, const TaskCgroupLimits& limits) {
  if (limits.cpu_units > 0) {
    BERTH_TRY(WriteV2(dir + "/cpu.max", std::to_string(CfsQuotaUs(limits.cpu_units)) + " " +
                                            std::to_string(kCfsPeriodUs)));
    // The same mapping from v1 shares (2..262144) to v2 weight (1..10000) that runc uses.
    uint64_t shares = std::clamp<uint64_t>(limits.cpu_units, 2, 262144);
    uint64_t weight = 1 + ((shares - 2) * 9999) / 262142;
    BERTH_TRY(WriteV2(dir + "/cpu.weight", std::to_string(weight)));
  } else {
    BERTH_TRY(WriteV2(dir + "/cpu.max", "max " + std::to_string(kCfsPeriodUs)));
  }
  if (limits.memory_mib > 0) {
    BERTH_TRY(WriteV2(dir + "/memory.max", std::to_string(limits.memory_mib * 1024 * 1024)));
    // Absent when swap accounting is off; then there is no swap to forbid.
    (void)WriteV2(dir + "/memory.swap.max", "0");
  } else {
    BERTH_TRY(WriteV2(dir + "/memory.max", "max"));
  }
  return WriteV2(dir + "/pids.max", limits.pids_max > 0 ? std::to_string(limits.pids_max) : "max");
}

Status CgroupV2Manager::CreateTask(const std::string& task_id, const TaskCgroupLimits& limits) {
  BERTH_TRY(CheckName("task id", task_id));
  auto available_text = ReadFile(options_.root + "/cgroup.controllers");
  if (!available_text.ok()) {
    return available_text.error();
  }
  std::vector<std::string> available = Split(Trim(*available_text), ' ');
  std::vector<std::string> wanted;
  for (const char* c : kV2Controllers) {
    if (std::find(available.begin(), available.end(), c) != available.end()) {
      wanted.push_back(c);
    }
  }
  for (const std::string& c : kV2Required) {
    if (std::find(wanted.begin(), wanted.end(), c) == wanted.end()) {
      return InternalError("cgroup v2: controller " + c + " is not available");
    }
  }

  std::string task = ParentDir() + "/" + task_id;
  Status made = EnableControllers(options_.root, wanted);
  for (int attempt = 0; made.ok() && attempt < 5; ++attempt) {
    made = MakeCgroupDir(ParentDir());
    if (made.ok()) {
      made = EnableControllers(ParentDir(), wanted);
    }
    if (made.ok()) {
      made = MakeCgroupDir(task);
      if (made.ok() || made.error().code != rtutil::kNotFound) {
        break;
      }
      made = Ok();  // the parent vanished under us; go round again
    }
  }
  // Containers get their own cgroups below the task, so the task delegates the controllers.
  if (made.ok()) {
    made = EnableControllers(task, wanted);
  }
  if (made.ok()) {
    made = ApplyLimits(task, limits);
  }
  if (!made.ok()) {
    (void)DestroyTask(task_id, false);
    return Error{made.error().status,
                 made.error().code,
                 "create task cgroup " + task_id + ": " + made.error().message,
                 {}};
  }
  return Ok();
}

Result<CgroupStats> CgroupV2Manager::ReadStats(const std::string& dir) {
  if (!rtutil::IsDirectory(dir)) {
    return NotFoundError("cgroup " + dir + " does not exist");
  }
  CgroupStats s;
  s.memory_usage_bytes = ReadU64Or(dir + "/memory.current", 0);
  s.memory_max_usage_bytes = ReadU64Or(dir + "/memory.peak", 0);
  s.memory_limit_bytes = ReadLimit(dir + "/memory.max");
  s.memory_stat = ReadKeyValues(dir + "/memory.stat");
  s.oom_kill_count = Get(ReadKeyValues(dir + "/memory.events"), "oom_kill");

  auto cpu = ReadKeyValues(dir + "/cpu.stat");
  s.cpu_usage_total_ns = Get(cpu, "usage_usec") * 1000;
  s.cpu_usage_user_ns = Get(cpu, "user_usec") * 1000;
  s.cpu_usage_system_ns = Get(cpu, "system_usec") * 1000;
  s.cpu_periods = Get(cpu, "nr_periods");
  s.cpu_throttled_periods = Get(cpu, "nr_throttled");
  s.cpu_throttled_time_ns = Get(cpu, "throttled_usec") * 1000;

  s.pids_current = ReadU64Or(dir + "/pids.current", 0);
  s.pids_limit = ReadLimit(dir + "/pids.max");
  return s;
}

Result<CgroupStats> CgroupV2Manager::Stats(const std::string& task_id) {
  BERTH_TRY(CheckName("task id", task_id));
  return ReadStats(ParentDir() + "/" + task_id);
}

Result<CgroupStats> CgroupV2Manager::ContainerStats(const std::string& task_id,
                                                    const std::string& container) {
  BERTH_TRY(CheckName("task id", task_id));
  BERTH_TRY(CheckName("container name", container));
  return ReadStats(ParentDir() + "/" + task_id + "/" + container);
}

Result<bool> CgroupV2Manager::OomKilled(const std::string& task_id, const std::string& container) {
  BERTH_TRY(CheckName("task id", task_id));
  BERTH_TRY(CheckName("container name", container));
  std::string events = ParentDir() + "/" + task_id + "/" + container + "/memory.events";
  auto text = ReadFile(events);
  if (!text.ok()) {
    return text.error();
  }
  return Get(ReadKeyValues(events), "oom_kill") > 0;
}

Result<std::vector<pid_t>> CgroupV2Manager::TaskPids(const std::string& task_id) {
  BERTH_TRY(CheckName("task id", task_id));
  std::set<pid_t> pids;
  std::string dir = ParentDir() + "/" + task_id;
  if (rtutil::IsDirectory(dir)) {
    CollectPids(dir, &pids);
  }
  return std::vector<pid_t>(pids.begin(), pids.end());
}

Status CgroupV2Manager::DestroyTask(const std::string& task_id, bool kill_processes) {
  BERTH_TRY(CheckName("task id", task_id));
  std::string dir = ParentDir() + "/" + task_id;
  if (!rtutil::IsDirectory(dir)) {
    rmdir(ParentDir().c_str());
    return Ok();
  }
  if (kill_processes) {
    // cgroup.kill (5.14+) kills the whole subtree atomically, including processes forking
    // while we read cgroup.procs.
    if (rtutil::PathExists(dir + "/cgroup.kill")) {
      (void)WriteFile(dir + "/cgroup.kill", "1");
    }
    KillTree(dir);
  }
  Status removed = RemoveCgroupTree(dir, kill_processes,
                                    std::chrono::steady_clock::now() + options_.remove_timeout);
  rmdir(ParentDir().c_str());
  return removed;
}

Result<std::vector<std::string>> CgroupV2Manager::ListTasks() { return SubDirs(ParentDir()); }

}  // namespace

const char* CgroupLayoutName(CgroupLayout layout) {
  switch (layout) {
    case CgroupLayout::kV1:
      return "v1";
    case CgroupLayout::kHybrid:
      return "hybrid";
    case CgroupLayout::kV2:
      return "v2";
  }
  return "unknown";
}

Result<CgroupLayout> DetectCgroupLayoutFromMountinfo(const std::string& mountinfo,
                                                     const std::string& root_in) {
  std::string root = StripTrailingSlash(root_in);
  bool v1_below = false;
  bool unified = false;
  bool root_is_v2 = false;
  for (const MountEntry& m : ParseMountinfo(mountinfo)) {
    if (m.mountpoint == root && m.fstype == "cgroup2") {
      root_is_v2 = true;
    } else if (m.mountpoint == root && m.fstype != "cgroup2") {
      // A later mount over the root hides an earlier cgroup2 mount.
      root_is_v2 = false;
    }
    if (m.fstype == "cgroup" && rtutil::StartsWith(m.mountpoint, root + "/")) {
      v1_below = true;
    }
    if (m.fstype == "cgroup2" && m.mountpoint == root + "/unified") {
      unified = true;
    }
  }
  if (root_is_v2) {
    return CgroupLayout::kV2;
  }
  if (v1_below) {
    return unified ? CgroupLayout::kHybrid : CgroupLayout::kV1;
  }
  return NotFoundError("no cgroup file system is mounted at " + root);
}

Result<CgroupLayout> DetectCgroupLayout(const std::string& root) {
  auto text = ReadFile("/proc/self/mountinfo");
  if (!text.ok()) {
    return text.error();
  }
  return DetectCgroupLayoutFromMountinfo(*text, root);
}

std::string CgroupManager::ContainerCgroupPath(const std::string& task_id,
                                               const std::string& container) const {
  return "/" + options_.parent + "/" + task_id + "/" + container;
}

Result<std::unique_ptr<CgroupManager>> NewCgroupV1Manager(CgroupOptions options, bool hybrid) {
  auto text = ReadFile(options.mountinfo_path);
  if (!text.ok()) {
    return text.error();
  }
  options.root = StripTrailingSlash(options.root);
  std::map<std::string, std::string> controllers;
  std::vector<std::string> hierarchies;
  for (const MountEntry& m : ParseMountinfo(*text)) {
    if (!rtutil::StartsWith(m.mountpoint, options.root + "/")) {
      continue;
    }
    if (m.fstype == "cgroup2" && hybrid) {
      hierarchies.push_back(m.mountpoint);
      continue;
    }
    if (m.fstype != "cgroup") {
      continue;
    }
    hierarchies.push_back(m.mountpoint);
    for (const std::string& opt : m.super_options) {
      // Super options mix controller names with flags such as rw or name=systemd.
      if (opt == "rw" || opt == "ro" || opt.find('=') != std::string::npos) {
        continue;
      }
      controllers.emplace(opt, m.mountpoint);
    }
  }
  if (controllers.empty()) {
    return NotFoundError("no cgroup v1 controllers are mounted below " + options.root);
  }
  std::sort(hierarchies.begin(), hierarchies.end());
  hierarchies.erase(std::unique(hierarchies.begin(), hierarchies.end()), hierarchies.end());
  return std::unique_ptr<CgroupManager>(new CgroupV1Manager(
      std::move(options), hybrid, std::move(controllers), std::move(hierarchies)));
}

std::unique_ptr<CgroupManager> NewCgroupV2Manager(CgroupOptions options) {
  options.root = StripTrailingSlash(options.root);
  return std::make_unique<CgroupV2Manager>(std::move(options));
}

Result<std::unique_ptr<CgroupManager>> NewCgroupManager(CgroupOptions options) {
  auto text = ReadFile(options.mountinfo_path);
  if (!text.ok()) {
    return text.error();
  }
  auto layout = DetectCgroupLayoutFromMountinfo(*text, options.root);
  if (!layout.ok()) {
    return layout.error();
  }
  if (*layout == CgroupLayout::kV2) {
    return NewCgroupV2Manager(std::move(options));
  }
  return NewCgroupV1Manager(std::move(options), *layout == CgroupLayout::kHybrid);
}

}  // namespace berth::agent
