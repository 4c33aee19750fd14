// SPDX-License-Identifier: Apache-2.0
//
// berth-shim: starts one container through the OCI runtime and stays behind as the parent of
// the container's init process, so the init's exit status is known even when the agent that
// started it is no longer running (a restarted berthd takes running tasks back, but processes
// started by the old berthd are not its children and their exit status would be lost).
//
//   berth-shim --exit-file FILE --pid-file PIDFILE -- runc ... run --detach --pid-file PIDFILE ...
//
// The process the agent starts forks a waiter and exits as soon as the runtime command has
// returned, with the runtime's exit status, so for the agent it looks and costs like running
// the runtime directly (one extra fork and a static exec). The waiter is a child subreaper: when
// `runc run --detach` exits, the container's init (whose pid runc wrote to PIDFILE) is
// re-parented to it. It then waits for that process and writes "<exit code> <signal>\n" to
// FILE (through a temporary name and a rename, so a reader sees all or nothing), where the exit
// code is 128 + signal when a signal killed the process. The agent spawns this program in a new
// session, so the waiter, the runtime and the container never get the signals of berthd's
// terminal.
//
// Exit status of the first process: the runtime's own status (128 + signal if it was killed);
// 125 when berth-shim itself failed (bad arguments, fork or pipe failure, the waiter died
// before reporting). Static and libc-only, like berth-init, so starting it costs next to
// nothing.

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

constexpr int kShimFailed = 125;

int StatusToExitCode(int status) {
  if (WIFEXITED(status)) {
    return WEXITSTATUS(status);
  }
  if (WIFSIGNALED(status)) {
    return 128 + WTERMSIG(status);
  }
  return kShimFailed;
}

bool WriteAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    ssize_t n = write(fd, data, size);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return false;
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

// The pid runc wrote, or -1.
pid_t ReadPid(const char* path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return -1;
  }
  char buf[32] = {0};
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (n <= 0) {
    return -1;
  }
  char* end = nullptr;
  long pid = strtol(buf, &end, 10);
  return pid > 0 && end != buf ? static_cast<pid_t>(pid) : -1;
}

void WriteExitFile(const char* path, int status) {
  int code = StatusToExitCode(status);
  int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  char text[64];
  int len = snprintf(text, sizeof(text), "%d %d\n", code, sig);
  char tmp[4096];
  if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= static_cast<int>(sizeof(tmp))) {
    return;
  }
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return;  // the task directory is gone: nobody is left to read the status
  }
  bool written = WriteAll(fd, text, static_cast<size_t>(len));
  close(fd);
  if (!written || rename(tmp, path) != 0) {
    unlink(tmp);
  }
}

// Stdio now points at the container's log files and berthd's working directory; the waiter
// needs neither for the container's lifetime.
void Detach() {
  int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null_fd >= 0) {
    dup2(null_fd, 0);
    dup2(null_fd, 1);
    dup2(null_fd, 2);
    close(null_fd);
  }
  if (chdir("/") != 0) {
    // Staying in the old directory only keeps it busy; nothing to do about it.
  }
}

// The waiter: runs the runtime, reports its status through `report_fd`, then waits for the
// container's init and records how it ended. Never returns.
[[noreturn]] void Waiter(int report_fd, const char* exit_file, const char* pid_file,
                         char** runtime_argv) {
  prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  pid_t runtime = fork();
  if (runtime < 0) {
    _exit(kShimFailed);  // the report pipe closes unanswered: the first process fails
  }
  if (runtime == 0) {
    execvp(runtime_argv[0], runtime_argv);
    _exit(errno == ENOENT ? 127 : 126);
  }
  int status = 0;
  pid_t got;
  do {
    got = waitpid(runtime, &status, 0);
  } while (got < 0 && errno == EINTR);
  int runtime_code = got == runtime ? StatusToExitCode(status) : kShimFailed;
  WriteAll(report_fd, reinterpret_cast<const char*>(&runtime_code), sizeof(runtime_code));
  close(report_fd);
  Detach();
  if (runtime_code != 0) {
    _exit(0);
  }

  pid_t init = ReadPid(pid_file);
  if (init <= 0) {
    _exit(0);
  }
  for (;;) {
    pid_t pid = waitpid(-1, &status, __WALL);
    if (pid < 0) {
      if (errno == EINTR) {
        continue;
      }
      _exit(0);  // ECHILD: the init was never re-parented here; its status is unknowable
    }
    if (pid == init) {
      WriteExitFile(exit_file, status);
      _exit(0);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const char* exit_file = nullptr;
  const char* pid_file = nullptr;
  int i = 1;
  for (; i < argc; ++i) {
    if (strcmp(argv[i], "--") == 0) {
      ++i;
      break;
    }
    if (strcmp(argv[i], "--exit-file") == 0 && i + 1 < argc) {
      exit_file = argv[++i];
    } else if (strcmp(argv[i], "--pid-file") == 0 && i + 1 < argc) {
      pid_file = argv[++i];
    } else {
      break;
    }
  }
  if (exit_file == nullptr || pid_file == nullptr || i >= argc) {
    fprintf(stderr,
            "usage: berth-shim --exit-file FILE --pid-file PIDFILE -- runtime [argument...]\n");
    return kShimFailed;
  }

  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0) {
    return kShimFailed;
  }
  pid_t waiter = fork();
  if (waiter < 0) {
    return kShimFailed;
  }
  if (waiter == 0) {
    close(report[0]);
    Waiter(report[1], exit_file, pid_file, argv + i);
  }
  close(report[1]);
  int runtime_code = kShimFailed;
  size_t got = 0;
  char* into = reinterpret_cast<char*>(&runtime_code);
  while (got < sizeof(runtime_code)) {
    ssize_t n = read(report[0], into + got, sizeof(runtime_code) - got);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return kShimFailed;
    }
    got += static_cast<size_t>(n);
  }
  return runtime_code;
}
