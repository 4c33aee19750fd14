// SPDX-License-Identifier: Apache-2.0
//
// The OCI runtime: runc driven through its command line. Containers run detached; their init
// process is re-parented to the agent (a child subreaper), so its exit status reaches the
// Reaper (agent/reaper.h), which every runc invocation also goes through.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "common/result.h"

namespace berth::agent {

struct RuncOptions {
  std::string binary = "runc";
  /// runc's --root: where it keeps container state (e.g. <run dir>/runc).
  std::string state_root;
  /// Limit for runc commands other than Exec.
  std::chrono::milliseconds timeout{60000};
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

/// Thread-safe; holds no state besides its options.
class Runc {
 public:
  /// Marks the process a child subreaper, since Run relies on it.
  explicit Runc(RuncOptions options);

  /// `runc run --detach` of the bundle (which holds config.json). The container's stdout and
  /// stderr are appended to the given files, stdin is /dev/null. Returns the pid of the
  /// container's init process; wait for it with Reaper::Instance().Wait. On failure the error
  /// carries runc's own message.
  Result<pid_t> Run(const std::string& id, const std::string& bundle_dir,
                    const std::string& stdout_path, const std::string& stderr_path);

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
