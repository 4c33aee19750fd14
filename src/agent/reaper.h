// SPDX-License-Identifier: Apache-2.0
//
// Child processes of the agent: one reaper thread collects every exit in the process, and all
// helpers that start programs (runc, CNI plugins, ip) spawn through it.
//
// The agent is a child subreaper, so container init processes that `runc run --detach` leaves
// behind are re-parented to it when runc exits; their exit statuses arrive here too. Because
// the reaper calls waitpid(-1), no other code in the process may call waitpid/wait on its own:
// spawn with Reaper::Spawn or RunProcess and wait with Reaper::Wait.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/result.h"

namespace berth::agent {

/// How a process ended.
struct ProcessExit {
  /// The exit status, or 128 + signal when a signal killed it (137 for SIGKILL).
  int exit_code = 0;
  /// The signal that killed it, 0 when it exited.
  int signal = 0;
};

/// Converts a waitpid status to the exit-code convention above.
ProcessExit ProcessExitFromWaitStatus(int status);

/// What a spawned process gets. File descriptors are duplicated onto 0, 1 and 2 in the child;
/// every other descriptor is closed there.
struct SpawnOptions {
  /// argv[0] is a path, or a name looked up in PATH.
  std::vector<std::string> argv;
  /// The whole environment; when unset the child inherits the agent's.
  std::optional<std::vector<std::string>> env;
  int stdin_fd = -1;   // -1: /dev/null
  int stdout_fd = -1;  // -1: /dev/null
  int stderr_fd = -1;  // -1: /dev/null
  /// Put the child in a process group of its own (so a timeout can kill its descendants).
  bool new_process_group = false;
  /// Start the child in a session of its own (setsid), which also makes it the leader of a
  /// new process group. Signals aimed at the agent's terminal (Ctrl-C sends SIGINT to the
  /// foreground process group, a hang-up sends SIGHUP) then never reach it. Use it for
  /// programs that set up or outlive containers.
  bool new_session = false;
};

/// The process-wide reaper. Thread-safe.
class Reaper {
 public:
  /// The single instance. Its thread starts on first use.
  static Reaper& Instance();

  /// Marks the process as a child subreaper (prctl PR_SET_CHILD_SUBREAPER) or clears it.
  static Status SetSubreaper(bool enabled);

  /// Starts a program. The child's exit is recorded; collect it with Wait.
  Result<pid_t> Spawn(const SpawnOptions& options);

  /// Waits until `pid` (a child or a re-parented orphan) has exited and returns how, removing
  /// the record. Returns nullopt when the timeout passes first.
  std::optional<ProcessExit> Wait(pid_t pid, std::chrono::milliseconds timeout);

  /// Returns the exit of `pid` if it has been recorded, without removing it.
  std::optional<ProcessExit> Peek(pid_t pid);

  /// Stops and joins the reaper thread (children exiting afterwards stay zombies until the
  /// reaper is used again). Used at shutdown and by tests that must leave waitpid to others.
  void Stop();

  Reaper(const Reaper&) = delete;
  Reaper& operator=(const Reaper&) = delete;

 private:
  Reaper() = default;
  ~Reaper() = default;

  void EnsureRunningLocked();
  void Loop();
  void Record(pid_t pid, int status);

  std::mutex mu_;
  std::condition_variable exited_cv_;    // an exit was recorded
  std::condition_variable children_cv_;  // a child was spawned, or stop was requested
  std::thread thread_;
  bool running_ = false;
  bool stop_ = false;
  uint64_t spawn_generation_ = 0;
  pid_t wake_pid_ = -1;
  // Exits not yet collected, oldest first by insertion sequence for bounded memory.
  std::map<pid_t, std::pair<uint64_t, ProcessExit>> exits_;
  uint64_t sequence_ = 0;
};

/// A program run to completion with captured output.
struct ProcessOptions {
  std::vector<std::string> argv;
  std::optional<std::vector<std::string>> env;
  /// Written to the child's stdin (then closed). Empty: stdin is /dev/null.
  std::string stdin_data;
  /// When set, output goes to this file (opened O_APPEND, created 0640) instead of being
  /// captured.
  std::string stdout_path;
  std::string stderr_path;
  std::chrono::milliseconds timeout{30000};
  /// On timeout kill the whole process group rather than only the process.
  bool kill_process_group = true;
  /// Run the program in a session of its own (SpawnOptions::new_session). Its process group
  /// is then its own too, whatever kill_process_group says.
  bool new_session = false;
  /// Captured output beyond this many bytes per stream is dropped.
  size_t max_output_bytes = 1 << 20;
};

struct ProcessResult {
  ProcessExit exit;
  bool timed_out = false;
  std::string stdout_data;
  std::string stderr_data;
};

/// Runs a program through the reaper, feeding stdin and capturing stdout/stderr. A timeout
/// kills the program with SIGKILL and is reported through `timed_out`, not as an error; errors
/// are failures to start it.
Result<ProcessResult> RunProcess(const ProcessOptions& options);

}  // namespace berth::agent
