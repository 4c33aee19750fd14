// SPDX-License-Identifier: Apache-2.0
//
// The OCI runtime: runc driven through its command line. Containers run detached. Started
// directly, a container's init process is re-parented to the agent (a child subreaper), so its
// exit status reaches the Reaper (agent/reaper.h), which every runc invocation also goes
// through. Started through berth-shim (RuncOptions::shim_binary), the init is re-parented to
// the shim instead, which outlives the agent and writes the exit status to a file. Every runc
// process runs in a session of its own, out of reach of the signals of berthd's terminal.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "agent/reaper.h"
#include "common/result.h"

namespace berth::agent {

struct RuncOptions {
  std::string binary = "runc";
  /// runc's --root: where it keeps container state (e.g. <run dir>/runc).
  std::string state_root;
  /// Limit for runc commands other than Exec.
  std::chrono::milliseconds timeout{60000};
  /// Path of berth-shim. When set, Run with an exit file starts the container through it.
  std::string shim_binary;
};

enum class ContainerStatus { kCreating, kCreated, kRunning, kPaused, kStopped, kUnknown };

const char* ContainerStatusName(ContainerStatus status);

struct RuncState {
  std::string id;
  ContainerStatus status = ContainerStatus::kUnknown;
  pid_t pid = 0;  // 0 once stopped
  std::string bundle;
  std::string created;  // RFC 3339
};

struct ExecResult {
  int exit_code = 0;       // 128 + signal when killed by one
  bool timed_out = false;  // the process was killed with SIGKILL at the timeout
  std::string output;      // stdout and stderr interleaved, at most 64 KiB
};

/// Reads the exit file berth-shim writes when a container's init process ends. nullopt while
/// the file does not exist (the container is running, or its shim died before writing it).
/// Errors: the file exists but does not hold "<exit code> <signal>".
Result<std::optional<ProcessExit>> ReadExitFile(const std::string& path);

/// Thread-safe; holds no state besides its options.
class Runc {
 public:
  /// Marks the process a child subreaper, since Run relies on it.
  explicit Runc(RuncOptions options);

  /// `runc run --detach` of the bundle (which holds config.json). The container's stdout and
  /// stderr are appended to the given files, stdin is /dev/null. Returns the pid of the
  /// container's init process. With an `exit_file` and a shim binary configured, the container
  /// starts through berth-shim and its end is learned with ReadExitFile(exit_file), also by a
  /// later agent process; otherwise wait for the pid with Reaper::Instance().Wait. On failure
  /// the error carries runc's own message.
  Result<pid_t> Run(const std::string& id, const std::string& bundle_dir,
                    const std::string& stdout_path, const std::string& stderr_path,
                    const std::string& exit_file = "");

  /// Whether Run with an exit file goes through berth-shim.
  bool UsesShim() const { return !options_.shim_binary.empty(); }

  /// kNotFound when runc does not know the container.
  Result<RuncState> State(const std::string& id);

  /// Sends a signal to every process of the container. Signalling a stopped container succeeds;
  /// kNotFound when it does not exist.
  Status Kill(const std::string& id, int signal);

  /// Deletes the container (force: also a running one, killing it). Deleting a container runc
  /// does not know succeeds.
  Status Delete(const std::string& id, bool force);

  Result<std::vector<RuncState>> List();

  /// Runs a process in the running container (as its user, cwd and environment plus `env`) and
  /// waits for it up to `timeout`, then kills it. Errors are failures to start it at all.
  Result<ExecResult> Exec(const std::string& id, const std::vector<std::string>& args,
                          const std::vector<std::string>& env, std::chrono::milliseconds timeout);

 private:
  std::vector<std::string> BaseArgs() const;
  Result<std::string> Simple(const std::vector<std::string>& args, const std::string& what);

  RuncOptions options_;
};

}  // namespace berth::agent
