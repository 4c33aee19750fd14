// SPDX-License-Identifier: Apache-2.0
#include "agent/reaper.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "agent/runtime_util.h"

extern char** environ;

namespace berth::agent {

using rtutil::ErrnoError;
using rtutil::InternalError;
using rtutil::InvalidArgumentError;
using rtutil::UniqueFd;

namespace {

// Exits kept for pids nobody asked about (orphans that were re-parented to us and exited)
// are bounded so a long-running agent does not grow without limit.
constexpr size_t kMaxUncollectedExits = 4096;

std::vector<char*> CStringArray(const std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (const std::string& s : strings) {
    out.push_back(const_cast<char*>(s.c_str()));
  }
  out.push_back(nullptr);
  return out;
}

// posix_spawn attributes and file actions with RAII destruction.
class SpawnSetup {
 public:
  SpawnSetup() {
    posix_spawn_file_actions_init(&actions_);
    posix_spawnattr_init(&attr_);
  }
  ~SpawnSetup() {
    posix_spawn_file_actions_destroy(&actions_);
    posix_spawnattr_destroy(&attr_);
  }
  SpawnSetup(const SpawnSetup&) = delete;
  SpawnSetup& operator=(const SpawnSetup&) = delete;

  int Configure(const SpawnOptions& o) {
    int rc = Stdio(o.stdin_fd, 0, O_RDONLY);
    rc = rc ? rc : Stdio(o.stdout_fd, 1, O_WRONLY);
    rc = rc ? rc : Stdio(o.stderr_fd, 2, O_WRONLY);
    rc = rc ? rc : posix_spawn_file_actions_addclosefrom_np(&actions_, 3);
    if (rc != 0) {
      return rc;
    }

    // The child starts with no blocked signals and default dispositions, whatever the agent
    // has set up for itself (an ignored SIGPIPE would otherwise survive exec).
    sigset_t empty;
    sigemptyset(&empty);
    sigset_t defaults;
    sigfillset(&defaults);
    sigdelset(&defaults, SIGKILL);
    sigdelset(&defaults, SIGSTOP);
    short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    if (o.new_session) {
      // setsid makes the child a process group leader as well; asking for SETPGROUP too would
      // fail the spawn (a session leader cannot change its process group).
      flags |= POSIX_SPAWN_SETSID;
    } else if (o.new_process_group) {
      flags |= POSIX_SPAWN_SETPGROUP;
      posix_spawnattr_setpgroup(&attr_, 0);
    }
    posix_spawnattr_setsigmask(&attr_, &empty);
    posix_spawnattr_setsigdefault(&attr_, &defaults);
    return posix_spawnattr_setflags(&attr_, flags);
  }

  const posix_spawn_file_actions_t* actions() const { return &actions_; }
  const posix_spawnattr_t* attr() const { return &attr_; }

 private:
  int Stdio(int fd, int target, int devnull_flags) {
    if (fd < 0) {
      return posix_spawn_file_actions_addopen(&actions_, target, "/dev/null", devnull_flags, 0);
    }
    return posix_spawn_file_actions_adddup2(&actions_, fd, target);
  }

  posix_spawn_file_actions_t actions_;
  posix_spawnattr_t attr_;
};

// Finds the program the way execvp would. Resolving it before spawning keeps exec failures
// out of posix_spawn: glibc reaps a child whose exec failed itself, racing the reaper thread.
std::string ResolveExecutable(const std::string& name) {
  if (name.find('/') != std::string::npos) {
    return access(name.c_str(), X_OK) == 0 ? name : std::string();
  }
  std::string path_var = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  if (const char* p = getenv("PATH"); p != nullptr && *p != '\0') {
    path_var = p;
  }
  for (const std::string& dir : rtutil::Split(path_var, ':')) {
    std::string candidate = dir + "/" + name;
    if (access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
  }
  return {};
}

}  // namespace

ProcessExit ProcessExitFromWaitStatus(int status) {
  ProcessExit exit;
  if (WIFEXITED(status)) {
    exit.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    exit.signal = WTERMSIG(status);
    exit.exit_code = 128 + exit.signal;
  }
  return exit;
}

Reaper& Reaper::Instance() {
  // Never destroyed: the thread may still be blocked in waitpid while static destructors run.
  static Reaper* reaper = new Reaper();
  return *reaper;
}

Status Reaper::SetSubreaper(bool enabled) {
  if (prctl(PR_SET_CHILD_SUBREAPER, enabled ? 1 : 0, 0, 0, 0) != 0) {
    return ErrnoError("prctl PR_SET_CHILD_SUBREAPER", errno);
  }
  return Ok();
}

void Reaper::EnsureRunningLocked() {
  if (running_) {
    return;
  }
  if (thread_.joinable()) {
    thread_.join();
  }
  stop_ = false;
  running_ = true;
  thread_ = std::thread(&Reaper::Loop, this);
}

Result<pid_t> Reaper::Spawn(const SpawnOptions& options) {
  if (options.argv.empty()) {
    return InvalidArgumentError("spawn: empty argv");
  }
  std::string program = ResolveExecutable(options.argv[0]);
  if (program.empty()) {
    return rtutil::NotFoundError("spawn " + options.argv[0] + ": executable not found");
  }
  std::vector<char*> argv = CStringArray(options.argv);
  std::vector<char*> envp;
  if (options.env) {
    envp = CStringArray(*options.env);
  }

  SpawnSetup setup;
  if (int rc = setup.Configure(options); rc != 0) {
    return ErrnoError("spawn " + options.argv[0] + ": set up", rc);
  }

  // The lock is held across posix_spawn so that the reaper thread cannot record this child's
  // exit before a stale record for a recycled pid has been dropped.
  std::lock_guard lock(mu_);
  EnsureRunningLocked();
  pid_t pid = -1;
  int rc = posix_spawn(&pid, program.c_str(), setup.actions(), setup.attr(), argv.data(),
                       options.env ? envp.data() : environ);
  if (rc != 0) {
    return ErrnoError("spawn " + options.argv[0], rc);
  }
  exits_.erase(pid);
  ++spawn_generation_;
  children_cv_.notify_all();
  return pid;
}

void Reaper::Record(pid_t pid, int status) {
  exits_[pid] = {++sequence_, ProcessExitFromWaitStatus(status)};
  if (exits_.size() > kMaxUncollectedExits) {
    auto oldest = exits_.begin();
    for (auto it = exits_.begin(); it != exits_.end(); ++it) {
      if (it->second.first < oldest->second.first) {
        oldest = it;
      }
    }
    exits_.erase(oldest);
  }
  exited_cv_.notify_all();
}

void Reaper::Loop() {
  for (;;) {
    // Read before waitpid: a child spawned between an ECHILD and the wait below must not be
    // missed.
    uint64_t generation;
    {
      std::lock_guard lock(mu_);
      generation = spawn_generation_;
    }
    int status = 0;
    pid_t pid = waitpid(-1, &status, __WALL);
    if (pid > 0) {
      std::lock_guard lock(mu_);
      if (pid == wake_pid_) {
        wake_pid_ = -1;
      } else {
        Record(pid, status);
      }
      if (stop_) {
        running_ = false;
        return;
      }
      continue;
    }
    if (errno == EINTR) {
      continue;
    }

    // ECHILD: no children at all. Orphans are only re-parented to us from a descendant, so
    // nothing can appear until the next spawn; the timed wait is a safety net.
    std::unique_lock lock(mu_);
    if (stop_) {
      running_ = false;
      return;
    }
    children_cv_.wait_for(lock, std::chrono::milliseconds(200),
                          [&] { return stop_ || spawn_generation_ != generation; });
    if (stop_) {
      running_ = false;
      return;
    }
  }
}

std::optional<ProcessExit> Reaper::Wait(pid_t pid, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  EnsureRunningLocked();
  bool found = exited_cv_.wait_for(lock, timeout, [&] { return exits_.count(pid) > 0; });
  if (!found) {
    return std::nullopt;
  }
  auto it = exits_.find(pid);
  ProcessExit exit = it->second.second;
  exits_.erase(it);
  return exit;
}

std::optional<ProcessExit> Reaper::Peek(pid_t pid) {
  std::lock_guard lock(mu_);
  auto it = exits_.find(pid);
  if (it == exits_.end()) {
    return std::nullopt;
  }
  return it->second.second;
}

void Reaper::Stop() {
  std::unique_lock lock(mu_);
  if (!running_) {
    if (thread_.joinable()) {
      thread_.join();
    }
    return;
  }
  stop_ = true;
  children_cv_.notify_all();
  // A child that exits at once wakes a waitpid that would otherwise block for as long as the
  // longest-running child lives.
  pid_t wake = fork();
  if (wake == 0) {
    _exit(0);
  }
  wake_pid_ = wake > 0 ? wake : -1;
  lock.unlock();
  thread_.join();
  lock.lock();
  // The thread may have left from its idle wait without collecting the wake-up child.
  if (wake_pid_ > 0) {
    waitpid(wake_pid_, nullptr, 0);
    wake_pid_ = -1;
  }
  stop_ = false;
}

namespace {

struct Pipe {
  UniqueFd read;
  UniqueFd write;
};

Result<Pipe> MakePipe() {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    return ErrnoError("pipe", errno);
  }
  return Pipe{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

Result<UniqueFd> OpenAppend(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640));
  if (!fd.valid()) {
    return ErrnoError("open " + path, errno);
  }
  return fd;
}

// Blocks SIGPIPE in the calling thread for its lifetime, so writing to a child that has
// closed its stdin yields EPIPE instead of killing the agent; a pending SIGPIPE is consumed
// before the old mask comes back.
class ScopedSigpipeBlock {
 public:
  ScopedSigpipeBlock() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, &old_);
  }
  ~ScopedSigpipeBlock() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    sigset_t pending;
    sigpending(&pending);
    if (sigismember(&pending, SIGPIPE) && !sigismember(&old_, SIGPIPE)) {
      struct timespec zero = {0, 0};
      sigtimedwait(&set, nullptr, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  ScopedSigpipeBlock(const ScopedSigpipeBlock&) = delete;
  ScopedSigpipeBlock& operator=(const ScopedSigpipeBlock&) = delete;

 private:
  sigset_t old_;
};

// Moves data between the agent and the child's pipes until both outputs close or the
// deadline passes. Returns false on timeout.
bool PumpPipes(UniqueFd& in, const std::string& in_data, UniqueFd& out, UniqueFd& err,
               const ProcessOptions& options, ProcessResult* result,
               std::chrono::steady_clock::time_point deadline) {
  size_t in_off = 0;
  for (UniqueFd* fd : {&in, &out, &err}) {
    if (fd->valid()) {
      fcntl(fd->get(), F_SETFL, fcntl(fd->get(), F_GETFL) | O_NONBLOCK);
    }
  }
  char buf[16384];
  while (out.valid() || err.valid() || in.valid()) {
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      return false;
    }
    int wait_ms = static_cast<int>(
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count() + 1);
    struct pollfd fds[3];
    int n = 0;
    int in_idx = -1, out_idx = -1, err_idx = -1;
    if (in.valid()) {
      in_idx = n;
      fds[n++] = {in.get(), POLLOUT, 0};
    }
    if (out.valid()) {
      out_idx = n;
      fds[n++] = {out.get(), POLLIN, 0};
    }
    if (err.valid()) {
      err_idx = n;
      fds[n++] = {err.get(), POLLIN, 0};
    }
    int rc = poll(fds, n, wait_ms);
    if (rc < 0 && errno != EINTR) {
      return true;
    }
    if (rc <= 0) {
      continue;
    }
    if (in_idx >= 0 && fds[in_idx].revents) {
      ssize_t w = write(in.get(), in_data.data() + in_off, in_data.size() - in_off);
      if (w > 0) {
        in_off += static_cast<size_t>(w);
      }
      if ((w < 0 && errno != EAGAIN && errno != EINTR) || in_off >= in_data.size()) {
        in.Reset();
      }
    }
    auto drain = [&](int idx, UniqueFd& fd, std::string& sink) {
      if (idx < 0 || fds[idx].revents == 0) {
        return;
      }
      ssize_t r = read(fd.get(), buf, sizeof(buf));
      if (r > 0) {
        size_t room = options.max_output_bytes - std::min(options.max_output_bytes, sink.size());
        sink.append(buf, std::min(static_cast<size_t>(r), room));
      } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
        fd.Reset();
      }
    };
    drain(out_idx, out, result->stdout_data);
    drain(err_idx, err, result->stderr_data);
  }
  return true;
}

}  // namespace

Result<ProcessResult> RunProcess(const ProcessOptions& options) {
  if (options.argv.empty()) {
    return InvalidArgumentError("run: empty argv");
  }
  ScopedSigpipeBlock sigpipe_block;
  UniqueFd in_w, out_r, err_r;
  UniqueFd child_in, child_out, child_err;

  if (!options.stdin_data.empty()) {
    auto p = MakePipe();
    if (!p.ok()) {
      return p.error();
    }
    child_in = std::move(p->read);
    in_w = std::move(p->write);
  }
  auto setup_output = [&](const std::string& path, UniqueFd* child, UniqueFd* parent) -> Status {
    if (!path.empty()) {
      auto fd = OpenAppend(path);
      if (!fd.ok()) {
        return fd.error();
      }
      *child = std::move(*fd);
      return Ok();
    }
    auto p = MakePipe();
    if (!p.ok()) {
      return p.error();
    }
    *child = std::move(p->write);
    *parent = std::move(p->read);
    return Ok();
  };
  BERTH_TRY(setup_output(options.stdout_path, &child_out, &out_r));
  BERTH_TRY(setup_output(options.stderr_path, &child_err, &err_r));

  SpawnOptions spawn;
  spawn.argv = options.argv;
  spawn.env = options.env;
  spawn.stdin_fd = child_in.get();
  spawn.stdout_fd = child_out.get();
  spawn.stderr_fd = child_err.get();
  spawn.new_process_group = options.kill_process_group;
  spawn.new_session = options.new_session;
  Reaper& reaper = Reaper::Instance();
  auto pid = reaper.Spawn(spawn);
  if (!pid.ok()) {
    return pid.error();
  }
  child_in.Reset();
  child_out.Reset();
  child_err.Reset();

  ProcessResult result;
  auto deadline = std::chrono::steady_clock::now() + options.timeout;
  bool in_time = PumpPipes(in_w, options.stdin_data, out_r, err_r, options, &result, deadline);
  std::optional<ProcessExit> exit;
  if (in_time) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    exit = reaper.Wait(*pid, std::max(left, std::chrono::milliseconds(0)));
  }
  if (!exit) {
    result.timed_out = true;
    kill(options.kill_process_group ? -*pid : *pid, SIGKILL);
    exit = reaper.Wait(*pid, std::chrono::seconds(10));
    if (!exit) {
      return InternalError("process " + std::to_string(*pid) + " (" + options.argv[0] +
                           ") did not exit after SIGKILL");
    }
  }
  result.exit = *exit;
  return result;
}

}  // namespace berth::agent
