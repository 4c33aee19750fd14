// The ECS control plane's API: the JSON 1.1 operations of
// AmazonEC2ContainerServiceV20141113 over the store.
//
// State layout in the store (values are JSON documents):
//   ecs/clusters/<name>            the cluster as DescribeClusters shows it
//   ecs/services/<cluster>/<name>  a service (see ecs/services.h)
//   ecs/taskdef-families/<family>  {"family", "lastRevision"}: revisions are
//                                  numbered from it and never reused
//   ecs/taskdefs/<family>/<revision, 10 digits zero-padded>
//                                  {"taskDefinition": {...as DescribeTaskDefinition
//                                  shows it}, "tags": [...]}
//   tasks and nodes                see ecs/tasks.h
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "api/aws_json_route.h"
#include "api/json_service.h"
#include "ecs/services.h"
#include "ecs/arns.h"
#include "ecs/store_task_manager.h"
#include "store/store.h"

namespace berth::ecs {

using Json = nlohmann::json;

/// Maps the ARN of a taggable resource to the store key of its document,
/// whose top-level "tags" member holds the resource's tags. Returns the
/// error the tagging operations answer when the resource does not exist
/// (or the ARN is malformed for its type).
using TagKeyResolver = std::function<Result<std::string>(const EcsArnParts& arn)>;

class EcsApi {
 public:
  EcsApi(store::Store& store, api::AccountInfo account);
  EcsApi(store::Store& store, api::AccountInfo account, TaskManagerOptions task_options);
  ~EcsApi();

  // The service table to mount on the JSON route.
  std::shared_ptr<api::JsonService> MakeService();

  // Operations (public for tests and for berth's own tools).
  Result<Json> CreateCluster(const Json& in, const api::CallContext& ctx);
  Result<Json> DescribeClusters(const Json& in, const api::CallContext& ctx);
  Result<Json> ListClusters(const Json& in, const api::CallContext& ctx);
  Result<Json> DeleteCluster(const Json& in, const api::CallContext& ctx);
  Result<Json> UpdateCluster(const Json& in, const api::CallContext& ctx);
  Result<Json> UpdateClusterSettings(const Json& in, const api::CallContext& ctx);
  Result<Json> PutClusterCapacityProviders(const Json& in, const api::CallContext& ctx);

  // Services (services.cc).
  Result<Json> CreateService(const Json& in, const api::CallContext& ctx);
  Result<Json> UpdateService(const Json& in, const api::CallContext& ctx);
  Result<Json> DeleteService(const Json& in, const api::CallContext& ctx);
  Result<Json> DescribeServices(const Json& in, const api::CallContext& ctx);
  Result<Json> ListServices(const Json& in, const api::CallContext& ctx);
  Result<Json> ListServicesByNamespace(const Json& in, const api::CallContext& ctx);

  // Installs the check of loadBalancers against the load balancing plane.
  void SetTargetGroupValidator(TargetGroupValidator validator);
  Result<Json> RegisterTaskDefinition(const Json& in, const api::CallContext& ctx);
  Result<Json> DescribeTaskDefinition(const Json& in, const api::CallContext& ctx);
  Result<Json> ListTaskDefinitions(const Json& in, const api::CallContext& ctx);
  Result<Json> ListTaskDefinitionFamilies(const Json& in, const api::CallContext& ctx);
  Result<Json> DeregisterTaskDefinition(const Json& in, const api::CallContext& ctx);
  Result<Json> DeleteTaskDefinitions(const Json& in, const api::CallContext& ctx);

  /// Removes DELETE_IN_PROGRESS revisions that no unstopped task and no
  /// deployment of a service that is not INACTIVE uses; returns how many.
  Result<int> PurgeDeletedTaskDefinitions();

  Result<Json> RunTask(const Json& in, const api::CallContext& ctx);
  Result<Json> StartTask(const Json& in, const api::CallContext& ctx);
  Result<Json> StopTask(const Json& in, const api::CallContext& ctx);
  Result<Json> DescribeTasks(const Json& in, const api::CallContext& ctx);
  Result<Json> ListTasks(const Json& in, const api::CallContext& ctx);

  Result<Json> TagResource(const Json& in, const api::CallContext& ctx);
  Result<Json> UntagResource(const Json& in, const api::CallContext& ctx);
  Result<Json> ListTagsForResource(const Json& in, const api::CallContext& ctx);

  // "name" or a cluster ARN to the cluster name; "" means "default".
  static std::string ClusterNameFromRef(const std::string& ref);
  std::string ClusterArn(const std::string& name) const;
  std::string ServiceArn(const std::string& cluster, const std::string& name) const;

  /// The tasks: for the service controller (which starts and stops tasks of
  /// services through it) and the agent route.
  StoreTaskManager& tasks() { return *tasks_; }
  TaskManager& task_manager() { return *tasks_; }

  /// The registered task definition (ACTIVE or INACTIVE) named by a family,
  /// family:revision or ARN; a bare family means its latest ACTIVE revision.
  /// Errors: ClientException "Unable to describe task definition."
  Result<Json> ResolveTaskDefinition(const std::string& ref);

  /// The cluster document of an ACTIVE cluster. Errors: ClusterNotFoundException.
  Result<Json> ActiveCluster(const std::string& name);

  /// Checks RunTask/CreateService `networkConfiguration` against the task
  /// definition's network mode. Errors: InvalidParameterException with AWS's
  /// messages.
  static Status CheckNetworkConfiguration(const Json& task_definition, const Json& network);

  /// Checks a tag list as every tagging operation does (at most 50 tags,
  /// keys 1-128 and values 0-256 characters, no "aws:" prefix, no key twice).
  /// Errors: InvalidParameterException.
  static Status CheckTags(const Json& tags);

  /// Makes TagResource/UntagResource/ListTagsForResource serve ARNs whose
  /// resource type (the text before the first '/') is `resource_type`.
  /// Clusters, task definitions and tasks are registered by the constructor.
  void AddTaggableType(const std::string& resource_type, TagKeyResolver resolver);

 private:
  // Serves operation `op` of `svc` with the member function `handler`.
  using Handler = Result<Json> (EcsApi::*)(const Json& in, const api::CallContext& ctx);
  void Bind(api::JsonService& svc, const std::string& op, Handler handler) {
    svc.Add(op, [this, handler](const Json& in, const api::CallContext& c) {
      return (this->*handler)(in, c);
    });
  }

  // Clusters (clusters.cc): rewrites an ACTIVE cluster's document with
  // `change` in one transaction and answers {"cluster": ...} as the update
  // operations do.
  Result<Json> ChangeCluster(const std::string& ref,
                             const std::function<Status(Json& cluster)>& change);
  // The stored cluster as the API shows it, with its live counters.
  Result<Json> ClusterView(Json cluster);

  // Services (services.cc).
  void AddServiceOperations(api::JsonService& svc);
  Result<store::Entry> ActiveClusterEntry(const std::string& cluster);
  Result<Json> ResolveServiceTaskDefinition(const std::string& ref);
  Status ValidateServiceSettings(const Json& service, const Json& task_definition,
                                 const Json& cluster);
  Json NewDeployment(const Json& service, const Json& task_definition, double now);

  // The stored {"taskDefinition", "tags"} document for a reference.
  Result<Json> FindTaskDefinitionDoc(const std::string& ref);
  Result<std::string> TagKeyFor(const std::string& arn);
  void AddTaskDefinitionOperations(api::JsonService& svc);
  void AddTaskOperations(api::JsonService& svc);
  void AddTagOperations(api::JsonService& svc);

  store::Store& store_;
  api::AccountInfo account_;
  std::unique_ptr<StoreTaskManager> tasks_;
  std::map<std::string, TagKeyResolver> taggable_;
  TargetGroupValidator target_group_validator_;
};

}  // namespace berth::ecs
