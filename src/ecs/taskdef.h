// SPDX-License-Identifier: Apache-2.0
//
// Task definition rules of ECS RegisterTaskDefinition, as Fargate applies them.
//
// A pure library: no storage, no clock, no ARNs. The ECS handler passes the
// request object (already checked against the botocore model's types), gets
// back the `taskDefinition` object AWS would answer with, and adds the fields
// that depend on state (taskDefinitionArn, revision, status, registeredAt,
// registeredBy). Every rejection carries the error type and message AWS uses,
// and rules run in the order AWS applies them, so the first error a client
// sees is the one it would see from AWS.
#pragma once

#include <nlohmann/json.hpp>
#include <string_view>

#include "common/result.h"

namespace berth::ecs {

using Json = nlohmann::json;

/// Largest serialized RegisterTaskDefinition request AWS accepts (64 KiB).
inline constexpr size_t kMaxTaskDefinitionBytes = 64 * 1024;

/// Most container definitions one task definition may hold.
inline constexpr size_t kMaxContainers = 10;

/// Longest stopTimeout, in seconds, a Fargate task definition may ask for.
inline constexpr int kFargateMaxStopTimeout = 120;

/// Parses a task-level `cpu` string into CPU units: "256", "1 vCPU", "0.25 vcpu", ".5vCPU".
/// A vCPU value must come out as a whole number of units (1 vCPU = 1024).
/// Errors: ClientException "Invalid 'cpu' setting for task." when the text is not one of
/// these forms or the value is not positive.
Result<int> ParseTaskCpu(std::string_view text);

/// Parses a task-level `memory` string into MiB: "512", "2GB", "2 GB", "0.5 GiB", "512 MiB",
/// "512 MB" (GB and GiB both mean 1024 MiB, as in AWS's conversion).
/// Errors: ClientException "Invalid 'memory' setting for task." when the text is not one
/// of these forms or the value is not positive.
Result<int> ParseTaskMemory(std::string_view text);

/// True when (cpu units, MiB) is one of the Linux Fargate task sizes:
/// 256 -> 512/1024/2048; 512 -> 1024..4096 step 1024; 1024 -> 2048..8192 step 1024;
/// 2048 -> 4096..16384 step 1024; 4096 -> 8192..30720 step 1024;
/// 8192 -> 16384..61440 step 4096; 16384 -> 32768..122880 step 8192.
bool IsValidFargateSize(int cpu, int memory_mib);

/// Validates a RegisterTaskDefinition request and returns the task definition AWS would
/// store and echo, without taskDefinitionArn, revision, status, registeredAt and
/// registeredBy. Defaults are filled in (essential true, container cpu 0, empty
/// environment/mountPoints/volumesFrom/portMappings/systemControls, portMappings hostPort and
/// protocol, healthCheck interval/timeout/retries), cpu and memory become integer strings,
/// and compatibilities and requiresAttributes are computed. Members the model does not
/// know are dropped. `tags` is not part of the result (the response carries it apart).
/// Errors: ClientException (HTTP 400) with AWS's message for every rule it breaks; the
/// first broken rule in AWS's order wins.
Result<Json> NormalizeTaskDefinition(const Json& request);

/// Checks RunTask `overrides` against a registered task definition (as returned by
/// NormalizeTaskDefinition): every non-empty containerOverrides entry must name a container
/// of the definition, and when the definition requires FARGATE the task size after the
/// task-level cpu/memory overrides must be a valid Fargate size.
/// Errors: InvalidParameterException for unknown or missing container names,
/// ClientException for task sizes.
Status ValidateContainerOverrides(const Json& task_definition, const Json& overrides);

}  // namespace berth::ecs
