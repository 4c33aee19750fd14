// SPDX-License-Identifier: Apache-2.0
#include "agent/netns.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <mutex>
#include <thread>

#include "agent/runtime_util.h"

namespace berth::agent {

using rtutil::ErrnoError;
using rtutil::UniqueFd;

namespace {

// Serializes the shared-mount setup of the directory within this process; iproute2 does the
// same steps without any lock across processes, and so do we.
std::mutex g_dir_mu;

Status EnsureSharedDir(const std::string& dir) {
  std::lock_guard lock(g_dir_mu);
  BERTH_TRY(rtutil::MakeDirs(dir, 0755));
  if (mount("", dir.c_str(), "none", MS_SHARED | MS_REC, nullptr) == 0) {
    return Ok();
  }
  if (errno != EINVAL) {
    return ErrnoError("make " + dir + " a shared mount", errno);
  }
  // EINVAL: not a mount point yet. Bind it onto itself, then share it.
  if (mount(dir.c_str(), dir.c_str(), "none", MS_BIND | MS_REC, nullptr) != 0) {
    return ErrnoError("bind-mount " + dir + " onto itself", errno);
  }
  if (mount("", dir.c_str(), "none", MS_SHARED | MS_REC, nullptr) != 0) {
    return ErrnoError("make " + dir + " a shared mount", errno);
  }
  return Ok();
}

// Creates the namespace in a short-lived thread: unshare(CLONE_NEWNET) changes only the calling
// thread, so the agent's own threads never leave the host namespace. The bind mount keeps the
// namespace alive after the thread exits.
Status BindNewNamespace(const std::string& path) {
  Status result = Ok();
  std::thread worker([&] {
    if (unshare(CLONE_NEWNET) != 0) {
      result = ErrnoError("unshare network namespace", errno);
      return;
    }
    if (mount("/proc/thread-self/ns/net", path.c_str(), "none", MS_BIND, nullptr) != 0) {
      result = ErrnoError("bind-mount network namespace onto " + path, errno);
    }
  });
  worker.join();
  return result;
}

}  // namespace

std::string NetnsPath(const std::string& name, const std::string& dir) { return dir + "/" + name; }

Result<std::string> CreateNetns(const std::string& name, const std::string& dir) {
  if (!rtutil::IsSafeName(name, 64)) {
    return rtutil::InvalidArgumentError("invalid network namespace name '" + name + "'");
  }
  BERTH_TRY(EnsureSharedDir(dir));

  std::string path = NetnsPath(name, dir);
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0));
  if (!fd.valid()) {
    if (errno == EEXIST) {
      return rtutil::AlreadyExistsError("network namespace " + name + " already exists");
    }
    return ErrnoError("create " + path, errno);
  }
  fd.Reset();

  Status bound = BindNewNamespace(path);
  if (!bound.ok()) {
    unlink(path.c_str());
    return bound.error();
  }
  return path;
}

Status DeleteNetns(const std::string& name, const std::string& dir) {
  if (!rtutil::IsSafeName(name, 64)) {
    return rtutil::InvalidArgumentError("invalid network namespace name '" + name + "'");
  }
  std::string path = NetnsPath(name, dir);
  // MNT_DETACH: a process that has the file open (a plugin still running) must not make the
  // delete fail; the namespace is freed when the last user goes.
  if (umount2(path.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) {
    return ErrnoError("unmount " + path, errno);
  }
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    return ErrnoError("remove " + path, errno);
  }
  return Ok();
}

Result<std::vector<std::string>> ListNetns(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) {
    if (errno == ENOENT) {
      return names;
    }
    return ErrnoError("open " + dir, errno);
  }
  while (struct dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") {
      names.push_back(n);
    }
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace berth::agent
