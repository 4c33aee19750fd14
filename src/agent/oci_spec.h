// SPDX-License-Identifier: Apache-2.0
//
// The OCI runtime bundle for one container: config.json (runtime spec 1.0.2, as runc reads it)
// built from what the task definition and the image config say, with the defaults a Fargate
// (Docker-like) container gets: not privileged, Docker's default capability set, no new
// privileges, a seccomp profile that refuses dangerous system calls, masked and read-only /proc
// and /sys paths, its own pid/mount/uts/ipc/cgroup namespaces and the task's network namespace.
//
// Also here: resolving a user name against the image's /etc/passwd and /etc/group, and the
// per-task /etc/hosts, /etc/hostname and /etc/resolv.conf that are bind-mounted into every
// container of a task.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/result.h"

namespace berth::agent {

/// Where the init binary appears inside a container when initProcessEnabled is set.
inline constexpr const char* kContainerInitPath = "/dev/init";

/// A mount added to the standard ones.
struct OciMount {
  std::string destination;
  std::string type;    // "bind" or "tmpfs"
  std::string source;  // host path for binds, "tmpfs" for tmpfs
  std::vector<std::string> options;

  static OciMount Bind(std::string host_path, std::string container_path, bool read_only);
  static OciMount Tmpfs(std::string container_path, uint64_t size_bytes,
                        std::vector<std::string> extra_options = {});
};

struct OciRlimit {
  std::string type;  // "RLIMIT_NOFILE", ...
  uint64_t soft = 0;
  uint64_t hard = 0;
};

/// Everything that varies between containers.
struct ContainerRuntimeSpec {
  std::vector<std::string> args;
  std::vector<std::string> env;  // "KEY=value"; PATH and HOSTNAME are added when missing
  std::string cwd = "/";
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> additional_gids;

  std::string hostname;
  std::string rootfs;  // absolute host path
  bool readonly_rootfs = false;

  std::string netns_path;    // the task's namespace; empty = a new, unconnected one
  std::string cgroups_path;  // CgroupManager::ContainerCgroupPath

  uint64_t cpu_shares = 0;               // 0: not set (kernel default 1024)
  int64_t memory_limit_bytes = 0;        // 0: only the task limit applies
  int64_t memory_reservation_bytes = 0;  // 0: not set
  int64_t pids_limit = 0;                // 0: not set

  /// Fargate's default: nofile 65535. Values above this process's own hard limits are lowered
  /// to them (with a warning), since runc cannot raise a hard limit without CAP_SYS_RESOURCE.
  std::vector<OciRlimit> rlimits = {{"RLIMIT_NOFILE", 65535, 65535}};

  bool init_process_enabled = false;
  std::string init_binary;  // host path of berth-init; required when init is enabled

  std::vector<OciMount> extra_mounts;
  std::vector<std::string> cap_add;   // "NET_ADMIN" or "CAP_NET_ADMIN"; "ALL" allowed
  std::vector<std::string> cap_drop;  // same; "ALL" drops the default set

  /// Host files bind-mounted over /etc/hosts, /etc/hostname and /etc/resolv.conf (see
  /// WriteTaskEtcFiles). Empty: not mounted.
  std::string hosts_file;
  std::string hostname_file;
  std::string resolv_conf_file;

  std::map<std::string, std::string> sysctls;  // namespaced sysctls (net.*, kernel.shm*, ...)
  /// Unset: inherited from the agent. Lowering it below the agent's own needs
  /// CAP_SYS_RESOURCE, which the agent may lack.
  std::optional<int> oom_score_adj;
};

/// Docker's default capability set, without the CAP_ prefix.
const std::vector<std::string>& DefaultCapabilities();

/// Builds config.json. kInvalidArgument for an unknown capability, a missing rootfs or args,
/// or init enabled without an init binary.
Result<nlohmann::json> BuildOciSpec(const ContainerRuntimeSpec& spec);

/// Writes config.json into the bundle directory (which must exist).
Status WriteOciBundle(const std::string& bundle_dir, const nlohmann::json& config);

/// The seccomp section for a given effective capability set (some system calls are only
/// refused when the capability that would allow them is missing, as in Docker's profile).
nlohmann::json DefaultSeccompProfile(const std::vector<std::string>& capabilities);

/// A user as runc needs it.
struct ResolvedUser {
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> additional_gids;
  std::string home;  // from passwd, "/" when unknown
};

/// Resolves a container `user` ("", "name", "uid", "name:group", "uid:gid", "name:gid",
/// "uid:group") against <rootfs>/etc/passwd and <rootfs>/etc/group, as Docker does: a name must
/// exist there, a number need not; supplementary groups are the groups listing the user. The
/// files are opened without following links out of the rootfs. kInvalidArgument when a name
/// is unknown or the syntax is wrong.
Result<ResolvedUser> ResolveContainerUser(const std::string& rootfs, const std::string& user);

/// Inputs of the per-task /etc files.
struct TaskEtcSpec {
  std::string hostname;
  std::string ip;  // the task's address; empty: hostname maps to nothing
  std::vector<std::pair<std::string, std::string>> extra_hosts;  // hostname, address
  std::vector<std::string> nameservers;  // empty: resolv.conf has no nameserver
  std::vector<std::string> search_domains;
  std::vector<std::string> dns_options;
};

struct TaskEtcFiles {
  std::string hosts;
  std::string hostname;
  std::string resolv_conf;
};

/// Renders the contents of the three files.
TaskEtcFiles RenderTaskEtcFiles(const TaskEtcSpec& spec);

/// Writes them as <dir>/hosts, <dir>/hostname, <dir>/resolv.conf (mode 0644) and returns their
/// paths.
Result<TaskEtcFiles> WriteTaskEtcFiles(const std::string& dir, const TaskEtcSpec& spec);

}  // namespace berth::agent
