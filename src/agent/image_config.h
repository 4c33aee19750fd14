// SPDX-License-Identifier: Apache-2.0
// Turning an image's configuration and an ECS container definition into the
// process a container runs: its argv, environment, working directory and
// user, with the precedence rules Docker applies when ECS creates a
// container.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace berth::agent {

/// The search path Docker puts in a container's environment when neither
/// the image nor the task sets PATH.
inline constexpr const char* kDefaultPath =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The process part of a container, ready for an OCI runtime spec.
struct ProcessConfig {
  std::vector<std::string> args;  ///< Entrypoint followed by command; may be empty.
  std::vector<std::string> env;   ///< "NAME=value", PATH first.
  std::string cwd;                ///< Absolute path; "/" by default.
  std::string user;               ///< As written ("name", "uid", "uid:gid"); "" means root.
};

/// Merges, as Docker's container create does for ECS:
/// - `entryPoint` in the definition replaces the image Entrypoint, and then
///   the image Cmd is dropped: the command is the definition's (or the
///   override's) alone. An empty `entryPoint` list clears the image
///   Entrypoint but, like an absent one, keeps the image Cmd when no command
///   is given.
/// - `command` (the override's when it has one, else the definition's)
///   replaces the image Cmd; an empty list counts as not given.
/// - `environment` entries ({name, value}; the override's win over the
///   definition's) come first, then the image Env entries whose names they do
///   not set. Entries without '=' are dropped. PATH is placed first and set
///   to kDefaultPath when nothing sets it.
/// - `workingDirectory` and `user` replace the image WorkingDir and User.
/// `image_config` may be the whole config blob or only its "config" object.
/// Fields of the wrong JSON type are ignored. HOSTNAME is the runtime's to add.
ProcessConfig MergeImageConfig(const nlohmann::json& image_config,
                               const nlohmann::json& container_definition,
                               const nlohmann::json& container_override);

}  // namespace berth::agent
