// SPDX-License-Identifier: Apache-2.0
//
// Finding ECS tasks for the client's commands: every cluster's tasks
// (ListClusters, ListTasks, DescribeTasks in batches of 100), and one task
// by id, id prefix or ARN.
#pragma once

#include <string>
#include <vector>

#include "cli/aws_client.h"

namespace berth::cli {

/// The last path segment of an ARN ("arn:...:task/c/abc" -> "abc").
std::string LastSegment(const std::string& arn);

/// The cluster name in a task ARN ("arn:...:task/<cluster>/<id>"); "" if none.
std::string ClusterOfTaskArn(const std::string& arn);

/// Cluster names, sorted.
Result<std::vector<std::string>> ListClusterNames(const AwsClient& ecs);

/// The described tasks of a cluster: those whose desired status is RUNNING
/// and, with `include_stopped`, those being or already stopped.
Result<std::vector<Json>> DescribeClusterTasks(const AwsClient& ecs, const std::string& cluster,
                                               bool include_stopped);

/// Tasks of `cluster`, or of every cluster when it is empty.
Result<std::vector<Json>> DescribeAllTasks(const AwsClient& ecs, const std::string& cluster,
                                           bool include_stopped);

/// One task by ARN, id, or unique id prefix, in `cluster` or any cluster.
/// Errors: InvalidParameterException-like local errors naming the task when
/// nothing or more than one task matches.
Result<Json> FindTask(const AwsClient& ecs, const std::string& task, const std::string& cluster);

}  // namespace berth::cli
