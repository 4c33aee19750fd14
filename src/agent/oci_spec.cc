// SPDX-License-Identifier: Apache-2.0
#include "agent/oci_spec.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <mutex>
#include <set>

#include "agent/runtime_util.h"

namespace berth::agent {

using nlohmann::json;
using rtutil::InvalidArgumentError;
using rtutil::ParseU64;
using rtutil::Split;
using rtutil::UniqueFd;

namespace {

constexpr const char* kDefaultPath =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// clang-format off
const std::vector<std::string> kAllCapabilities = {
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE"};

const std::vector<std::string> kMaskedPaths = {
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
    "/sys/devices/virtual/powercap"};
// clang-format on

const std::vector<std::string> kReadonlyPaths = {
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};

// System calls the profile refuses with EPERM. An entry with capabilities is allowed when the
// container holds any of them, the way Docker's profile gates them; the kernel still checks
// the capability itself.
struct SyscallRule {
  std::vector<const char*> names;
  std::vector<const char*> unless_caps;
};

const std::vector<SyscallRule> kRefusedSyscalls = {
    // Kernel modules, rebooting and kexec.
    {{"init_module", "finit_module", "delete_module", "create_module", "query_module",
      "get_kernel_syms"},
     {"SYS_MODULE"}},
    {{"reboot", "kexec_load", "kexec_file_load"}, {"SYS_BOOT"}},
    // Mounts and namespaces. runc has finished with these before the profile is loaded.
    {{"mount", "umount", "umount2", "pivot_root", "setns", "unshare", "fsopen", "fsconfig",
      "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr", "quotactl", "quotactl_fd",
      "lookup_dcookie", "fanotify_init", "name_to_handle_at"},
     {"SYS_ADMIN"}},
    {{"bpf"}, {"SYS_ADMIN", "BPF"}},
    {{"perf_event_open"}, {"SYS_ADMIN", "PERFMON"}},
    {{"syslog"}, {"SYS_ADMIN", "SYSLOG"}},
    // Looking into other processes.
    {{"ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd"}, {"SYS_PTRACE"}},
    // The clock is not namespaced.
    {{"settimeofday", "stime", "clock_settime", "clock_adjtime", "adjtimex"}, {"SYS_TIME"}},
    {{"iopl", "ioperm"}, {"SYS_RAWIO"}},
    {{"acct"}, {"SYS_PACCT"}},
    {{"open_by_handle_at"}, {"DAC_READ_SEARCH"}},
    {{"set_mempolicy", "mbind", "move_pages", "migrate_pages"}, {"SYS_NICE"}},
    // Never allowed: the keyring is not namespaced, swap is host-wide, the rest is obsolete or
    // a known attack surface.
    {{"keyctl", "add_key", "request_key", "swapon", "swapoff", "userfaultfd", "uselib", "ustat",
      "sysfs", "_sysctl", "nfsservctl", "vm86", "vm86old", "io_uring_setup", "io_uring_enter",
      "io_uring_register"},
     {}},
};
// TODO: personality() is not restricted to the harmless personas. Effect: a container can turn
// off address-space randomization for its own processes. Fix: add an argument filter once the
// profile format is checked against the libseccomp version that allows several comparisons on
// one argument.

constexpr uint64_t kCloneNewUser = 0x10000000;

const std::map<std::string, int>& RlimitResources() {
  static const std::map<std::string, int> m = {
      {"RLIMIT_CPU", RLIMIT_CPU},           {"RLIMIT_FSIZE", RLIMIT_FSIZE},
      {"RLIMIT_DATA", RLIMIT_DATA},         {"RLIMIT_STACK", RLIMIT_STACK},
      {"RLIMIT_CORE", RLIMIT_CORE},         {"RLIMIT_RSS", RLIMIT_RSS},
      {"RLIMIT_NPROC", RLIMIT_NPROC},       {"RLIMIT_NOFILE", RLIMIT_NOFILE},
      {"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK},   {"RLIMIT_AS", RLIMIT_AS},
      {"RLIMIT_LOCKS", RLIMIT_LOCKS},       {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING},
      {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE}, {"RLIMIT_NICE", RLIMIT_NICE},
      {"RLIMIT_RTPRIO", RLIMIT_RTPRIO},     {"RLIMIT_RTTIME", RLIMIT_RTTIME},
  };
  return m;
}

std::string NormalizeCap(std::string cap) {
  std::transform(cap.begin(), cap.end(), cap.begin(),
                 [](unsigned char c) { return std::toupper(c); });
  if (rtutil::StartsWith(cap, "CAP_")) {
    cap = cap.substr(4);
  }
  return cap;
}

Result<std::vector<std::string>> EffectiveCapabilities(const ContainerRuntimeSpec& spec) {
  std::set<std::string> caps(DefaultCapabilities().begin(), DefaultCapabilities().end());
  for (const std::string& raw : spec.cap_drop) {
    std::string cap = NormalizeCap(raw);
    if (cap == "ALL") {
      caps.clear();
    } else if (std::find(kAllCapabilities.begin(), kAllCapabilities.end(), cap) ==
               kAllCapabilities.end()) {
      return InvalidArgumentError("unknown capability '" + raw + "' in drop list");
    } else {
      caps.erase(cap);
    }
  }
  for (const std::string& raw : spec.cap_add) {
    std::string cap = NormalizeCap(raw);
    if (cap == "ALL") {
      caps.insert(kAllCapabilities.begin(), kAllCapabilities.end());
    } else if (std::find(kAllCapabilities.begin(), kAllCapabilities.end(), cap) ==
               kAllCapabilities.end()) {
      return InvalidArgumentError("unknown capability '" + raw + "' in add list");
    } else {
      caps.insert(cap);
    }
  }
  return std::vector<std::string>(caps.begin(), caps.end());
}

// Every container of every task would repeat the same warning; say it once per limit.
void WarnClampedOnce(const OciRlimit& wanted, uint64_t hard) {
  static std::mutex mu;
  static std::set<std::string> warned;
  std::lock_guard lock(mu);
  std::string key = wanted.type + "/" + std::to_string(wanted.hard);
  if (warned.insert(key).second) {
    spdlog::warn("rlimit {} lowered from {}/{} to the agent's hard limit {}", wanted.type,
                 wanted.soft, wanted.hard, hard);
  }
}

Result<json> BuildRlimits(const std::vector<OciRlimit>& rlimits) {
  json out = json::array();
  for (const OciRlimit& r : rlimits) {
    auto it = RlimitResources().find(r.type);
    if (it == RlimitResources().end()) {
      return InvalidArgumentError("unknown rlimit type '" + r.type + "'");
    }
    uint64_t soft = r.soft;
    uint64_t hard = r.hard;
    struct rlimit own;
    // Without CAP_SYS_RESOURCE runc cannot set a hard limit above the one it inherits from us.
    if (getrlimit(it->second, &own) == 0 && own.rlim_max != RLIM_INFINITY && hard > own.rlim_max) {
      WarnClampedOnce(r, own.rlim_max);
      hard = own.rlim_max;
    }
    soft = std::min(soft, hard);
    out.push_back({{"type", r.type}, {"hard", hard}, {"soft", soft}});
  }
  return out;
}

json MountJson(const std::string& destination, const std::string& type, const std::string& source,
               const std::vector<std::string>& options) {
  return {{"destination", destination}, {"type", type}, {"source", source}, {"options", options}};
}

json StandardMounts() {
  json mounts = json::array();
  mounts.push_back(MountJson("/proc", "proc", "proc", {"nosuid", "noexec", "nodev"}));
  mounts.push_back(
      MountJson("/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}));
  mounts.push_back(
      MountJson("/dev/pts", "devpts", "devpts",
                {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}));
  mounts.push_back(MountJson("/sys", "sysfs", "sysfs", {"nosuid", "noexec", "nodev", "ro"}));
  mounts.push_back(MountJson("/sys/fs/cgroup", "cgroup", "cgroup",
                             {"nosuid", "noexec", "nodev", "relatime", "ro"}));
  mounts.push_back(MountJson("/dev/mqueue", "mqueue", "mqueue", {"nosuid", "noexec", "nodev"}));
  mounts.push_back(MountJson("/dev/shm", "tmpfs", "shm",
                             {"nosuid", "noexec", "nodev", "mode=1777", "size=67108864"}));
  return mounts;
}

json Resources(const ContainerRuntimeSpec& spec) {
  json resources = {{"devices", json::array({{{"allow", false}, {"access", "rwm"}}})}};
  if (spec.cpu_shares > 0) {
    resources["cpu"] = {{"shares", std::max<uint64_t>(2, spec.cpu_shares)}};
  }
  json memory = json::object();
  if (spec.memory_limit_bytes > 0) {
    memory["limit"] = spec.memory_limit_bytes;
    // memory+swap equal to memory: the container never swaps.
    memory["swap"] = spec.memory_limit_bytes;
  }
  if (spec.memory_reservation_bytes > 0) {
    memory["reservation"] = spec.memory_reservation_bytes;
  }
  if (!memory.empty()) {
    resources["memory"] = memory;
  }
  if (spec.pids_limit > 0) {
    resources["pids"] = {{"limit", spec.pids_limit}};
  }
  return resources;
}

std::vector<std::string> WithDefaultEnv(const ContainerRuntimeSpec& spec) {
  std::vector<std::string> env = spec.env;
  auto has = [&](const std::string& key) {
    return std::any_of(env.begin(), env.end(),
                       [&](const std::string& e) { return rtutil::StartsWith(e, key + "="); });
  };
  if (!has("PATH")) {
    env.insert(env.begin(), kDefaultPath);
  }
  if (!has("HOSTNAME") && !spec.hostname.empty()) {
    env.push_back("HOSTNAME=" + spec.hostname);
  }
  return env;
}

json Namespaces(const ContainerRuntimeSpec& spec) {
  json ns =
      json::array({{{"type", "pid"}}, {{"type", "mount"}}, {{"type", "uts"}}, {{"type", "ipc"}}});
  if (rtutil::PathExists("/proc/self/ns/cgroup")) {
    ns.push_back({{"type", "cgroup"}});
  }
  json net = {{"type", "network"}};
  if (!spec.netns_path.empty()) {
    net["path"] = spec.netns_path;
  }
  ns.push_back(net);
  return ns;
}

}  // namespace

OciMount OciMount::Bind(std::string host_path, std::string container_path, bool read_only) {
  OciMount m;
  m.destination = std::move(container_path);
  m.type = "bind";
  m.source = std::move(host_path);
  m.options = {"rbind", "rprivate", "nosuid", "nodev"};
  if (read_only) {
    m.options.push_back("ro");
  }
  return m;
}

OciMount OciMount::Tmpfs(std::string container_path, uint64_t size_bytes,
                         std::vector<std::string> extra_options) {
  OciMount m;
  m.destination = std::move(container_path);
  m.type = "tmpfs";
  m.source = "tmpfs";
  m.options = {"nosuid", "nodev", "noexec"};
  if (size_bytes > 0) {
    m.options.push_back("size=" + std::to_string(size_bytes));
  }
  for (std::string& o : extra_options) {
    m.options.push_back(std::move(o));
  }
  return m;
}

const std::vector<std::string>& DefaultCapabilities() {
  static const std::vector<std::string> caps = {
      "CHOWN",   "DAC_OVERRIDE", "FSETID",           "FOWNER",
      "MKNOD",   "NET_RAW",      "SETGID",           "SETUID",
      "SETFCAP", "SETPCAP",      "NET_BIND_SERVICE", "SYS_CHROOT",
      "KILL",    "AUDIT_WRITE",
  };
  return caps;
}

json DefaultSeccompProfile(const std::vector<std::string>& capabilities) {
  auto has_any = [&](const std::vector<const char*>& caps) {
    return std::any_of(caps.begin(), caps.end(), [&](const char* c) {
      return std::find(capabilities.begin(), capabilities.end(), c) != capabilities.end();
    });
  };
  json syscalls = json::array();
  std::vector<std::string> refused;
  for (const SyscallRule& rule : kRefusedSyscalls) {
    if (!rule.unless_caps.empty() && has_any(rule.unless_caps)) {
      continue;
    }
    refused.insert(refused.end(), rule.names.begin(), rule.names.end());
  }
  syscalls.push_back({{"names", refused}, {"action", "SCMP_ACT_ERRNO"}, {"errnoRet", EPERM}});

  bool sys_admin = has_any({"SYS_ADMIN"});
  if (!sys_admin) {
    // New user namespaces would hand the container a full capability set inside them.
    // clone's flags are its first argument on x86 and arm.
    syscalls.push_back({{"names", {"clone"}},
                        {"action", "SCMP_ACT_ERRNO"},
                        {"errnoRet", EPERM},
                        {"args", json::array({{{"index", 0},
                                               {"value", kCloneNewUser},
                                               {"valueTwo", kCloneNewUser},
                                               {"op", "SCMP_CMP_MASKED_EQ"}}})}});
    // clone3 passes its flags in memory, where a filter cannot look; ENOSYS makes libc fall
    // back to clone, which the rule above covers.
    syscalls.push_back({{"names", {"clone3"}}, {"action", "SCMP_ACT_ERRNO"}, {"errnoRet", ENOSYS}});
  }

#if defined(__x86_64__)
  json arches = {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"};
#elif defined(__aarch64__)
  json arches = {"SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"};
#else
  json arches = json::array();
#endif
  return {{"defaultAction", "SCMP_ACT_ALLOW"}, {"architectures", arches}, {"syscalls", syscalls}};
}

Result<json> BuildOciSpec(const ContainerRuntimeSpec& spec) {
  if (spec.args.empty()) {
    return InvalidArgumentError("container has no command");
  }
  if (spec.rootfs.empty() || spec.rootfs[0] != '/') {
    return InvalidArgumentError("rootfs must be an absolute path");
  }
  if (spec.init_process_enabled && spec.init_binary.empty()) {
    return InvalidArgumentError("init process enabled but no init binary configured");
  }
  auto caps = EffectiveCapabilities(spec);
  if (!caps.ok()) {
    return caps.error();
  }
  auto rlimits = BuildRlimits(spec.rlimits);
  if (!rlimits.ok()) {
    return rlimits.error();
  }

  std::vector<std::string> cap_names;
  for (const std::string& c : *caps) {
    cap_names.push_back("CAP_" + c);
  }
  // A non-root process keeps only the bounding set, as with Docker: file capabilities and
  // setuid binaries can still use it, the process itself holds nothing.
  std::vector<std::string> held = spec.uid == 0 ? cap_names : std::vector<std::string>{};
  json capabilities = {{"bounding", cap_names},
                       {"effective", held},
                       {"permitted", held},
                       {"inheritable", json::array()},
                       {"ambient", json::array()}};

  std::vector<std::string> args = spec.args;
  if (spec.init_process_enabled) {
    args.insert(args.begin(), {kContainerInitPath, "--"});
  }
  json process = {
      {"terminal", false},
      {"user", {{"uid", spec.uid}, {"gid", spec.gid}, {"additionalGids", spec.additional_gids}}},
      {"args", args},
      {"env", WithDefaultEnv(spec)},
      {"cwd", spec.cwd.empty() ? "/" : spec.cwd},
      {"capabilities", capabilities},
      {"rlimits", *rlimits},
      {"noNewPrivileges", true}};
  if (spec.oom_score_adj) {
    process["oomScoreAdj"] = *spec.oom_score_adj;
  }

  json mounts = StandardMounts();
  auto add_etc = [&](const std::string& host, const char* dest) {
    if (!host.empty()) {
      mounts.push_back(
          MountJson(dest, "bind", host, {"rbind", "rprivate", "nosuid", "nodev", "noexec"}));
    }
  };
  add_etc(spec.hosts_file, "/etc/hosts");
  add_etc(spec.hostname_file, "/etc/hostname");
  add_etc(spec.resolv_conf_file, "/etc/resolv.conf");
  if (spec.init_process_enabled) {
    mounts.push_back(
        MountJson(kContainerInitPath, "bind", spec.init_binary, {"bind", "ro", "nosuid", "nodev"}));
  }
  for (const OciMount& m : spec.extra_mounts) {
    mounts.push_back(MountJson(m.destination, m.type, m.source, m.options));
  }

  json linux_section = {{"namespaces", Namespaces(spec)},
                        {"resources", Resources(spec)},
                        {"maskedPaths", kMaskedPaths},
                        {"readonlyPaths", kReadonlyPaths},
                        {"seccomp", DefaultSeccompProfile(*caps)}};
  if (!spec.cgroups_path.empty()) {
    linux_section["cgroupsPath"] = spec.cgroups_path;
  }
  if (!spec.sysctls.empty()) {
    linux_section["sysctl"] = spec.sysctls;
  }

  json config = {{"ociVersion", "1.0.2"},
                 {"process", process},
                 {"root", {{"path", spec.rootfs}, {"readonly", spec.readonly_rootfs}}},
                 {"mounts", mounts},
                 {"linux", linux_section}};
  if (!spec.hostname.empty()) {
    config["hostname"] = spec.hostname;
  }
  return config;
}

Status WriteOciBundle(const std::string& bundle_dir, const json& config) {
  return rtutil::WriteFileAtomic(bundle_dir + "/config.json", config.dump(2), 0600);
}

namespace {

// Reads a file of the image without letting symlinks lead outside the rootfs. A missing file
// reads as empty.
Result<std::string> ReadInRootfs(const std::string& rootfs, const char* relative) {
  UniqueFd root(open(rootfs.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root.valid()) {
    return rtutil::ErrnoError("open rootfs " + rootfs, errno);
  }
  struct open_how how = {};
  how.flags = O_RDONLY | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  UniqueFd fd(static_cast<int>(syscall(SYS_openat2, root.get(), relative, &how, sizeof(how))));
  if (!fd.valid()) {
    if (errno == ENOENT) {
      return std::string();
    }
    return rtutil::ErrnoError(std::string("open ") + relative + " in " + rootfs, errno);
  }
  std::string out;
  char buf[8192];
  for (;;) {
    ssize_t n = read(fd.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0 || out.size() > (4 << 20)) {
      break;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

struct PasswdEntry {
  std::string name;
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::string home;
};

struct GroupEntry {
  std::string name;
  uint32_t gid = 0;
  std::vector<std::string> members;
};

bool ParseId(const std::string& s, uint32_t* out) {
  uint64_t v = 0;
  if (!ParseU64(s, &v) || v > UINT32_MAX) {
    return false;
  }
  *out = static_cast<uint32_t>(v);
  return true;
}

std::vector<PasswdEntry> ParsePasswd(const std::string& text) {
  std::vector<PasswdEntry> out;
  for (const std::string& line : Split(text, '\n')) {
    std::vector<std::string> f = Split(line, ':', false);
    PasswdEntry e;
    if (f.size() < 4 || line[0] == '#' || !ParseId(f[2], &e.uid) || !ParseId(f[3], &e.gid)) {
      continue;
    }
    e.name = f[0];
    e.home = f.size() > 5 && !f[5].empty() ? f[5] : "/";
    out.push_back(std::move(e));
  }
  return out;
}

std::vector<GroupEntry> ParseGroup(const std::string& text) {
  std::vector<GroupEntry> out;
  for (const std::string& line : Split(text, '\n')) {
    std::vector<std::string> f = Split(line, ':', false);
    GroupEntry e;
    if (f.size() < 3 || line[0] == '#' || !ParseId(f[2], &e.gid)) {
      continue;
    }
    e.name = f[0];
    if (f.size() > 3) {
      e.members = Split(f[3], ',');
    }
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace

Result<ResolvedUser> ResolveContainerUser(const std::string& rootfs, const std::string& user) {
  std::string user_part = user;
  std::string group_part;
  bool has_group = false;
  if (size_t colon = user.find(':'); colon != std::string::npos) {
    user_part = user.substr(0, colon);
    group_part = user.substr(colon + 1);
    has_group = true;
    if (group_part.empty() || group_part.find(':') != std::string::npos) {
      return InvalidArgumentError("invalid user '" + user + "'");
    }
  }
  if (user_part.empty() && has_group) {
    return InvalidArgumentError("invalid user '" + user + "'");
  }

  auto passwd_text = ReadInRootfs(rootfs, "etc/passwd");
  if (!passwd_text.ok()) {
    return passwd_text.error();
  }
  auto group_text = ReadInRootfs(rootfs, "etc/group");
  if (!group_text.ok()) {
    return group_text.error();
  }
  std::vector<PasswdEntry> passwd = ParsePasswd(*passwd_text);
  std::vector<GroupEntry> groups = ParseGroup(*group_text);

  ResolvedUser out;
  out.home = "/";
  const PasswdEntry* entry = nullptr;
  uint32_t numeric = 0;
  bool by_number = user_part.empty() || ParseId(user_part, &numeric);
  for (const PasswdEntry& e : passwd) {
    if (by_number ? e.uid == numeric : e.name == user_part) {
      entry = &e;
      break;
    }
  }
  if (!by_number && entry == nullptr) {
    return InvalidArgumentError("unable to find user " + user_part +
                                ": no matching entries in passwd file");
  }
  out.uid = entry != nullptr ? entry->uid : numeric;
  out.gid = entry != nullptr ? entry->gid : 0;
  if (entry != nullptr) {
    out.home = entry->home;
  }

  if (has_group) {
    uint32_t gid = 0;
    if (ParseId(group_part, &gid)) {
      out.gid = gid;
    } else {
      auto g = std::find_if(groups.begin(), groups.end(),
                            [&](const GroupEntry& e) { return e.name == group_part; });
      if (g == groups.end()) {
        return InvalidArgumentError("unable to find group " + group_part +
                                    ": no matching entries in group file");
      }
      out.gid = g->gid;
    }
  }

  if (entry != nullptr) {
    for (const GroupEntry& g : groups) {
      bool member = std::find(g.members.begin(), g.members.end(), entry->name) != g.members.end();
      bool seen = std::find(out.additional_gids.begin(), out.additional_gids.end(), g.gid) !=
                  out.additional_gids.end();
      if (member && g.gid != out.gid && !seen) {
        out.additional_gids.push_back(g.gid);
      }
    }
  }
  return out;
}

TaskEtcFiles RenderTaskEtcFiles(const TaskEtcSpec& spec) {
  TaskEtcFiles files;
  files.hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";
  if (!spec.ip.empty() && !spec.hostname.empty()) {
    files.hosts += spec.ip + "\t" + spec.hostname + "\n";
  }
  for (const auto& [host, address] : spec.extra_hosts) {
    files.hosts += address + "\t" + host + "\n";
  }
  files.hostname = spec.hostname + "\n";
  files.resolv_conf = "# Generated by berth for this task\n";
  if (!spec.search_domains.empty()) {
    files.resolv_conf += "search";
    for (const std::string& d : spec.search_domains) {
      files.resolv_conf += " " + d;
    }
    files.resolv_conf += "\n";
  }
  for (const std::string& ns : spec.nameservers) {
    files.resolv_conf += "nameserver " + ns + "\n";
  }
  if (!spec.dns_options.empty()) {
    files.resolv_conf += "options";
    for (const std::string& o : spec.dns_options) {
      files.resolv_conf += " " + o;
    }
    files.resolv_conf += "\n";
  }
  return files;
}

Result<TaskEtcFiles> WriteTaskEtcFiles(const std::string& dir, const TaskEtcSpec& spec) {
  BERTH_TRY(rtutil::MakeDirs(dir, 0755));
  TaskEtcFiles content = RenderTaskEtcFiles(spec);
  TaskEtcFiles paths{dir + "/hosts", dir + "/hostname", dir + "/resolv.conf"};
  BERTH_TRY(rtutil::WriteFileAtomic(paths.hosts, content.hosts, 0644));
  BERTH_TRY(rtutil::WriteFileAtomic(paths.hostname, content.hostname, 0644));
  BERTH_TRY(rtutil::WriteFileAtomic(paths.resolv_conf, content.resolv_conf, 0644));
  return paths;
}

}  // namespace berth::agent
