// SPDX-License-Identifier: Apache-2.0
//
// berth-init: a minimal PID 1 for containers whose task definition sets initProcessEnabled.
// It is bind-mounted read-only into the container and runs the real command as its child. As
// PID 1 of the container's pid namespace it
//   - forwards every signal it receives to the child (a plain program as PID 1 would ignore
//     SIGTERM, since the kernel drops signals PID 1 has no handler for),
//   - reaps every zombie re-parented to it,
//   - exits with the child's status (128 + signal when a signal killed it) as soon as the
//     child is gone; the kernel then kills whatever is left in the namespace.
// Built as a static executable so it runs in any image; it depends on libc only.

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

int StatusToExitCode(int status) {
  if (WIFEXITED(status)) {
    return WEXITSTATUS(status);
  }
  if (WIFSIGNALED(status)) {
    return 128 + WTERMSIG(status);
  }
  return 1;
}

// Collects every exited child. Returns the main child's exit code once it is among them,
// -1 otherwise.
int ReapAll(pid_t main_child) {
  int result = -1;
  for (;;) {
    int status = 0;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid <= 0) {
      return result;
    }
    if (pid == main_child) {
      result = StatusToExitCode(status);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  int first = 1;
  if (argc > 1 && strcmp(argv[1], "--") == 0) {
    first = 2;
  }
  if (first >= argc) {
    fprintf(stderr, "usage: berth-init [--] command [argument...]\n");
    return 2;
  }

  // Every signal stays pending until sigwaitinfo takes it, so none is lost between fork and
  // the loop, and none runs a handler at an awkward moment.
  sigset_t all;
  sigset_t original;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, &original);

  pid_t child = fork();
  if (child < 0) {
    fprintf(stderr, "berth-init: fork: %s\n", strerror(errno));
    return 1;
  }
  if (child == 0) {
    sigprocmask(SIG_SETMASK, &original, nullptr);
    execvp(argv[first], argv + first);
    int err = errno;
    fprintf(stderr, "berth-init: exec %s: %s\n", argv[first], strerror(err));
    _exit(err == ENOENT ? 127 : 126);
  }

  for (;;) {
    siginfo_t info;
    int sig = sigwaitinfo(&all, &info);
    if (sig < 0) {
      if (errno == EINTR) {
        continue;
      }
      fprintf(stderr, "berth-init: sigwaitinfo: %s\n", strerror(errno));
      return 1;
    }
    if (sig == SIGCHLD) {
      int code = ReapAll(child);
      if (code >= 0) {
        return code;
      }
      continue;
    }
    // The child may already be a zombie waiting for the SIGCHLD above; ESRCH is harmless.
    kill(child, sig);
  }
}
