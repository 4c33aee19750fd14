// SPDX-License-Identifier: Apache-2.0
//
// Named network namespaces, compatible with `ip netns`: each one is a bind mount of a namespace
// file onto <dir>/<name> (dir is /run/netns by default), so `ip netns exec`, nsenter and the
// CNI plugins can all find it by path. A task's containers join its namespace by that path.
#pragma once

#include <string>
#include <vector>

#include "common/result.h"

namespace berth::agent {

inline constexpr const char* kDefaultNetnsDir = "/run/netns";

/// The path of a named namespace.
std::string NetnsPath(const std::string& name, const std::string& dir = kDefaultNetnsDir);

/// Creates a new, empty network namespace named `name` and returns its path. Like iproute2, it
/// first makes `dir` a shared mount point (bind-mounting it onto itself if needed) so that the
/// namespace mounts propagate into mount namespaces created later. kAlreadyExists when the name
/// is taken, kInvalidArgument for a name that is not a safe file name.
Result<std::string> CreateNetns(const std::string& name, const std::string& dir = kDefaultNetnsDir);

/// Unmounts and removes a named namespace. The namespace itself lives on while processes are
/// still in it. Deleting a missing name succeeds.
Status DeleteNetns(const std::string& name, const std::string& dir = kDefaultNetnsDir);

/// Names of the namespaces in `dir` (empty when the directory does not exist).
Result<std::vector<std::string>> ListNetns(const std::string& dir = kDefaultNetnsDir);

}  // namespace berth::agent
