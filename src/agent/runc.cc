// SPDX-License-Identifier: Apache-2.0
#include "agent/runc.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "agent/reaper.h"
#include "agent/runtime_util.h"

namespace berth::agent {

using nlohmann::json;
using rtutil::InternalError;
using rtutil::InvalidArgumentError;
using rtutil::NotFoundError;

namespace {

constexpr size_t kMaxExecOutput = 64 * 1024;

bool Contains(const std::string& haystack, const char* needle) {
  return haystack.find(needle) != std::string::npos;
}

ContainerStatus ParseStatus(const std::string& s) {
  if (s == "creating") {
    return ContainerStatus::kCreating;
  }
  if (s == "created") {
    return ContainerStatus::kCreated;
  }
  if (s == "running") {
    return ContainerStatus::kRunning;
  }
  if (s == "paused") {
    return ContainerStatus::kPaused;
  }
  if (s == "stopped") {
    return ContainerStatus::kStopped;
  }
  return ContainerStatus::kUnknown;
}

RuncState StateFromJson(const json& j) {
  RuncState s;
  s.id = j.value("id", "");
  s.status = ParseStatus(j.value("status", ""));
  s.pid = j.value("pid", 0);
  s.bundle = j.value("bundle", "");
  s.created = j.value("created", "");
  return s;
}

// The last error runc wrote to its JSON log, which says why `run` failed.
std::string LastLoggedError(const std::string& log_path) {
  auto text = rtutil::ReadFile(log_path);
  if (!text.ok()) {
    return {};
  }
  std::string message;
  for (const std::string& line : rtutil::Split(*text, '\n')) {
    try {
      json entry = json::parse(line);
      std::string level = entry.value("level", "");
      if (level == "error" || level == "fatal") {
        message = entry.value("msg", "");
      }
    } catch (const json::exception&) {
      // Not every line is JSON (runc may print plain text before it sets up logging).
    }
  }
  return message;
}

Result<pid_t> ReadPidFile(const std::string& path) {
  auto text = rtutil::ReadFile(path);
  if (!text.ok()) {
    return text.error();
  }
  int64_t pid = 0;
  if (!rtutil::ParseI64(*text, &pid) || pid <= 0) {
    return InternalError("pid file " + path + " holds no pid");
  }
  return static_cast<pid_t>(pid);
}

// A scratch file for exec output that nobody else can guess or pre-create.
Result<std::string> MakeScratchFile(const char* prefix) {
  std::string pattern = (std::filesystem::temp_directory_path() / prefix).string() + "XXXXXX";
  int fd = mkstemp(pattern.data());
  if (fd < 0) {
    return rtutil::ErrnoError("create " + pattern, errno);
  }
  close(fd);
  return pattern;
}

}  // namespace

Result<std::optional<ProcessExit>> ReadExitFile(const std::string& path) {
  auto text = rtutil::ReadFile(path, 256);
  if (!text.ok()) {
    if (text.error().code == rtutil::kNotFound) {
      return std::optional<ProcessExit>();
    }
    return text.error();
  }
  std::vector<std::string> fields = rtutil::Split(std::string(rtutil::Trim(*text)), ' ');
  int64_t code = 0;
  int64_t signal = 0;
  if (fields.size() != 2 || !rtutil::ParseI64(fields[0], &code) ||
      !rtutil::ParseI64(fields[1], &signal) || code < 0 || code > 255 || signal < 0) {
    return InternalError("exit file " + path + " holds no exit status");
  }
  ProcessExit exit;
  exit.exit_code = static_cast<int>(code);
  exit.signal = static_cast<int>(signal);
  return std::optional<ProcessExit>(exit);
}

const char* ContainerStatusName(ContainerStatus status) {
  switch (status) {
    case ContainerStatus::kCreating:
      return "creating";
    case ContainerStatus::kCreated:
      return "created";
    case ContainerStatus::kRunning:
      return "running";
    case ContainerStatus::kPaused:
      return "paused";
    case ContainerStatus::kStopped:
      return "stopped";
    case ContainerStatus::kUnknown:
      return "unknown";
  }
  return "unknown";
}

Runc::Runc(RuncOptions options) : options_(std::move(options)) {
  Status s = Reaper::SetSubreaper(true);
  if (!s.ok()) {
    spdlog::error("runc: cannot become a child subreaper, container exit codes will be lost: {}",
                  s.error().message);
  }
}

std::vector<std::string> Runc::BaseArgs() const {
  std::vector<std::string> args = {options_.binary};
  if (!options_.state_root.empty()) {
    args.push_back("--root");
    args.push_back(options_.state_root);
  }
  return args;
}

Result<std::string> Runc::Simple(const std::vector<std::string>& args, const std::string& what) {
  ProcessOptions p;
  p.argv = BaseArgs();
  p.argv.insert(p.argv.end(), args.begin(), args.end());
  p.timeout = options_.timeout;
  p.kill_process_group = false;
  p.new_session = true;
  auto run = RunProcess(p);
  if (!run.ok()) {
    return Error{run.error().status, run.error().code, what + ": " + run.error().message, {}};
  }
  if (run->timed_out) {
    return rtutil::MakeError(504, rtutil::kDeadlineExceeded, what + ": runc timed out");
  }
  if (run->exit.exit_code != 0) {
    std::string err(rtutil::Trim(run->stderr_data));
    if (Contains(err, "does not exist")) {
      return NotFoundError(what + ": container does not exist");
    }
    return InternalError(
        what + ": " +
        (err.empty() ? "runc exited with code " + std::to_string(run->exit.exit_code) : err));
  }
  return std::move(run->stdout_data);
}

Result<pid_t> Runc::Run(const std::string& id, const std::string& bundle_dir,
                        const std::string& stdout_path, const std::string& stderr_path,
                        const std::string& exit_file) {
  if (!rtutil::IsSafeName(id)) {
    return InvalidArgumentError("invalid container id '" + id + "'");
  }
  std::string log_path = bundle_dir + "/runc.log";
  std::string pid_path = bundle_dir + "/pid";
  unlink(pid_path.c_str());

  ProcessOptions p;
  if (UsesShim() && !exit_file.empty()) {
    unlink(exit_file.c_str());
    p.argv = {options_.shim_binary, "--exit-file", exit_file, "--pid-file", pid_path, "--"};
  }
  std::vector<std::string> runc_argv = BaseArgs();
  p.argv.insert(p.argv.end(), runc_argv.begin(), runc_argv.end());
  p.argv.insert(p.argv.end(), {"--log", log_path, "--log-format", "json", "run", "--detach",
                               "--pid-file", pid_path, "--bundle", bundle_dir, id});
  // runc hands its own stdio to the container, so the container writes straight into the
  // files; runc's error messages are in its log.
  p.stdout_path = stdout_path;
  p.stderr_path = stderr_path;
  p.timeout = options_.timeout;
  p.kill_process_group = false;
  // A Ctrl-C in berthd's terminal must not cut a container's creation short, nor reach the
  // shim that waits for the container.
  p.new_session = true;
  auto run = RunProcess(p);
  if (!run.ok()) {
    return Error{
        run.error().status, run.error().code, "runc run " + id + ": " + run.error().message, {}};
  }
  if (run->timed_out || run->exit.exit_code != 0) {
    std::string why = run->timed_out ? "timed out" : LastLoggedError(log_path);
    if (why.empty()) {
      why = "runc exited with code " + std::to_string(run->exit.exit_code);
    }
    (void)Delete(id, true);
    if (run->timed_out) {
      return rtutil::MakeError(504, rtutil::kDeadlineExceeded, "runc run " + id + ": " + why);
    }
    return InternalError("runc run " + id + ": " + why);
  }
  auto pid = ReadPidFile(pid_path);
  if (!pid.ok()) {
    return Error{
        pid.error().status, pid.error().code, "runc run " + id + ": " + pid.error().message, {}};
  }
  return *pid;
}

Result<RuncState> Runc::State(const std::string& id) {
  if (!rtutil::IsSafeName(id)) {
    return InvalidArgumentError("invalid container id '" + id + "'");
  }
  auto out = Simple({"state", id}, "runc state " + id);
  if (!out.ok()) {
    return out.error();
  }
  try {
    return StateFromJson(json::parse(*out));
  } catch (const json::exception& e) {
    return InternalError("runc state " + id + ": " + e.what());
  }
}

Status Runc::Kill(const std::string& id, int signal) {
  if (!rtutil::IsSafeName(id)) {
    return InvalidArgumentError("invalid container id '" + id + "'");
  }
  auto out = Simple({"kill", "--all", id, std::to_string(signal)}, "runc kill " + id);
  if (!out.ok()) {
    // Nothing left to signal is what the caller wanted.
    if (Contains(out.error().message, "not running") ||
        Contains(out.error().message, "process already finished")) {
      return Ok();
    }
    return out.error();
  }
  return Ok();
}

Status Runc::Delete(const std::string& id, bool force) {
  if (!rtutil::IsSafeName(id)) {
    return InvalidArgumentError("invalid container id '" + id + "'");
  }
  std::vector<std::string> args = {"delete"};
  if (force) {
    args.push_back("--force");
  }
  args.push_back(id);
  auto out = Simple(args, "runc delete " + id);
  if (!out.ok() && out.error().code != rtutil::kNotFound) {
    return out.error();
  }
  return Ok();
}

Result<std::vector<RuncState>> Runc::List() {
  auto out = Simple({"list", "--format", "json"}, "runc list");
  if (!out.ok()) {
    return out.error();
  }
  std::vector<RuncState> states;
  try {
    json doc = json::parse(*out);
    if (doc.is_array()) {
      for (const json& j : doc) {
        states.push_back(StateFromJson(j));
      }
    }
  } catch (const json::exception& e) {
    return InternalError(std::string("runc list: ") + e.what());
  }
  return states;
}

Result<ExecResult> Runc::Exec(const std::string& id, const std::vector<std::string>& args,
                              const std::vector<std::string>& env,
                              std::chrono::milliseconds timeout) {
  if (!rtutil::IsSafeName(id)) {
    return InvalidArgumentError("invalid container id '" + id + "'");
  }
  if (args.empty()) {
    return InvalidArgumentError("exec needs a command");
  }
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto output_path = MakeScratchFile("berth-exec-");
  if (!output_path.ok()) {
    return output_path.error();
  }
  std::string pid_path = *output_path + ".pid";
  struct Cleanup {
    std::string a, b;
    ~Cleanup() {
      unlink(a.c_str());
      unlink(b.c_str());
    }
  } cleanup{*output_path, pid_path};

  // Detached, so the process outlives runc and is re-parented to us: the timeout can then kill
  // exactly that process, and its exit status comes from the reaper.
  ProcessOptions p;
  p.argv = BaseArgs();
  p.argv.insert(p.argv.end(), {"exec", "--detach", "--pid-file", pid_path});
  for (const std::string& e : env) {
    p.argv.push_back("--env");
    p.argv.push_back(e);
  }
  p.argv.push_back(id);
  p.argv.insert(p.argv.end(), args.begin(), args.end());
  p.stdout_path = *output_path;
  p.stderr_path = *output_path;
  p.timeout = std::min(timeout, options_.timeout);
  p.kill_process_group = false;
  p.new_session = true;
  auto run = RunProcess(p);
  if (!run.ok()) {
    return run.error();
  }
  if (run->timed_out || run->exit.exit_code != 0) {
    auto text = rtutil::ReadFile(*output_path, kMaxExecOutput);
    std::string why(rtutil::Trim(text.ok() ? *text : std::string()));
    if (Contains(why, "does not exist")) {
      return NotFoundError("runc exec " + id + ": container does not exist");
    }
    return InternalError("runc exec " + id + ": " +
                         (run->timed_out ? "timed out starting the process" : why));
  }
  auto pid = ReadPidFile(pid_path);
  if (!pid.ok()) {
    return pid.error();
  }

  ExecResult result;
  Reaper& reaper = Reaper::Instance();
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  auto exit = reaper.Wait(*pid, std::max(left, std::chrono::milliseconds(0)));
  if (!exit) {
    result.timed_out = true;
    kill(*pid, SIGKILL);
    exit = reaper.Wait(*pid, std::chrono::seconds(10));
  }
  result.exit_code = exit ? exit->exit_code : 128 + SIGKILL;
  auto text = rtutil::ReadFile(*output_path, kMaxExecOutput);
  if (text.ok()) {
    result.output = std::move(*text);
  }
  return result;
}

}  // namespace berth::agent
