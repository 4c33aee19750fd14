// SPDX-License-Identifier: Apache-2.0
//
// ECS services: the stored service document and the rules shared by the
// service API (CreateService, UpdateService, DeleteService, DescribeServices,
// ListServices) and the service controller that keeps each service's promise.
//
// Store layout (JSON documents):
//   ecs/services/<cluster>/<name>   the service as DescribeServices shows it
//                                   (timestamps as epoch seconds), plus
//                                   internal members whose names start with
//                                   "_" and are never shown to clients:
//     _createRequest    the CreateService input, for idempotent re-creation
//     _lastCompleted    the last deployment that reached COMPLETED, with its
//                       task definition: the circuit breaker's rollback target
//     _steady           true once the steady-state event has been written for
//                       the current state; any start or stop clears it
//     _launchFailures   failed tasks in a row (reset by a task that stays healthy)
//     _backoffUntil     epoch seconds before which no task is started
//     _backoffAttempts  placement or launch failures in a row
//     _inactiveAt       epoch seconds at which the service became INACTIVE
//   and every element of deployments[] carries:
//     _taskDefinition   the full registered task definition it runs
//     _failedSeen       ids of stopped tasks already counted in failedTasks
//     _stuckReported    the "unable to stop or start tasks" event was written
#pragma once

#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "store/store.h"

namespace berth::ecs {

using Json = nlohmann::json;

inline const std::string kServicesPrefix = "ecs/services/";

/// The store key of a service and the prefix of every service of a cluster.
std::string ServiceKey(const std::string& cluster, const std::string& name);
std::string ClusterServicesPrefix(const std::string& cluster);

/// A new deployment id: "ecs-svc/" and 19 decimal digits.
std::string NewDeploymentId();

/// The most tasks (of every deployment, pending or running) a service may have
/// during a deployment: floor(desired * maximumPercent / 100).
int MaxTasksDuringDeployment(int desired, int maximum_percent);

/// The fewest healthy running tasks a service keeps during a deployment:
/// ceil(desired * minimumHealthyPercent / 100).
int MinHealthyTasks(int desired, int minimum_healthy_percent);

/// Failed tasks after which the deployment circuit breaker fails a deployment:
/// ceil(0.5 * desired), at least 3 and at most 200.
int CircuitBreakerThreshold(int desired);

/// The service (or deployment) as clients see it: internal members removed.
Json PublicServiceView(const Json& service);

/// Adds an event (newest first, at most 100 kept) to a service document.
void AddServiceEvent(Json& service, const std::string& message, double now);

/// How many services of a cluster are ACTIVE and DRAINING. The cluster code
/// reports `active` as activeServicesCount and refuses DeleteCluster while
/// either is above zero.
struct ClusterServiceCounts {
  int active = 0;
  int draining = 0;
};
Result<ClusterServiceCounts> CountClusterServices(store::Store& store,
                                                  const std::string& cluster);

/// Checks a service's loadBalancers against the load balancing plane (target
/// groups exist, are attached to a load balancer, have target type `ip` for
/// awsvpc task definitions). Gets the loadBalancers array and the task
/// definition; returns the AWS error to answer with. Installed by the daemon
/// once a load balancing plane exists; without one only the checks against
/// the task definition apply.
using TargetGroupValidator =
    std::function<Status(const Json& load_balancers, const Json& task_definition)>;

}  // namespace berth::ecs
