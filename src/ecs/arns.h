// SPDX-License-Identifier: Apache-2.0
//
// ECS resource names: building ARNs and reading the references clients pass
// (short names, ids or ARNs) for clusters, task definitions and tasks.
#pragma once

#include <optional>
#include <string>

namespace berth::ecs {

/// "arn:aws:ecs:<region>:<account>:<resource>".
std::string EcsArn(const std::string& region, const std::string& account,
                   const std::string& resource);

/// The parts of an ECS ARN: resource_type is the text before the first '/'
/// of the resource ("cluster", "task", "task-definition", "service"), and
/// resource_id the rest.
struct EcsArnParts {
  std::string region;
  std::string account;
  std::string resource_type;
  std::string resource_id;
};

/// Splits an ECS ARN; nullopt when `arn` is not one ("arn:aws:ecs:" prefix,
/// six ':'-separated parts, a '/' in the resource).
std::optional<EcsArnParts> ParseEcsArn(const std::string& arn);

/// A task reference: a 32-hex id, or a task ARN (long form
/// "task/<cluster>/<id>" or the old short form "task/<id>").
struct TaskRef {
  std::string cluster;  // empty unless the ARN names it
  std::string id;
};

/// nullopt when `ref` is neither form.
std::optional<TaskRef> ParseTaskRef(const std::string& ref);

/// A task definition reference: "family", "family:revision" or its ARN.
struct TaskDefinitionRef {
  std::string family;
  int64_t revision = 0;  // 0 when not given
};

/// nullopt when `ref` is malformed (bad family characters, a revision that is
/// not a positive number).
std::optional<TaskDefinitionRef> ParseTaskDefinitionRef(const std::string& ref);

/// True for names of clusters, families, containers and services:
/// 1-255 letters, digits, hyphens and underscores.
bool IsEcsName(const std::string& name);

}  // namespace berth::ecs
