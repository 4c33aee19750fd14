// The ECS control plane's API: the JSON 1.1 operations of
// AmazonEC2ContainerServiceV20141113 over the store.
//
// State layout in the store (values are JSON documents):
//   ecs/clusters/<name>            the cluster as DescribeClusters shows it
//   ecs/services/<cluster>/<name>  a service (see ecs/services.h)
#pragma once

#include <memory>
#include <string>

#include "api/aws_json_route.h"
#include "api/json_service.h"
#include "ecs/services.h"
#include "store/store.h"

namespace berth::ecs {

using Json = nlohmann::json;

class EcsApi {
 public:
  EcsApi(store::Store& store, api::AccountInfo account);

  // The service table to mount on the JSON route.
  std::shared_ptr<api::JsonService> MakeService();

  // Operations (public for tests and for berth's own tools).
  Result<Json> CreateCluster(const Json& in, const api::CallContext& ctx);
  Result<Json> DescribeClusters(const Json& in, const api::CallContext& ctx);
  Result<Json> ListClusters(const Json& in, const api::CallContext& ctx);
  Result<Json> DeleteCluster(const Json& in, const api::CallContext& ctx);

  // Services (services.cc).
  Result<Json> CreateService(const Json& in, const api::CallContext& ctx);
  Result<Json> UpdateService(const Json& in, const api::CallContext& ctx);
  Result<Json> DeleteService(const Json& in, const api::CallContext& ctx);
  Result<Json> DescribeServices(const Json& in, const api::CallContext& ctx);
  Result<Json> ListServices(const Json& in, const api::CallContext& ctx);
  Result<Json> ListServicesByNamespace(const Json& in, const api::CallContext& ctx);

  // Installs the check of loadBalancers against the load balancing plane.
  void SetTargetGroupValidator(TargetGroupValidator validator);

  // "name" or a cluster ARN to the cluster name; "" means "default".
  static std::string ClusterNameFromRef(const std::string& ref);
  std::string ClusterArn(const std::string& name) const;
  std::string ServiceArn(const std::string& cluster, const std::string& name) const;

 private:
  // Services (services.cc).
  void AddServiceOperations(api::JsonService& svc);
  Result<store::Entry> ActiveClusterEntry(const std::string& cluster);
  Result<Json> ResolveServiceTaskDefinition(const std::string& ref);
  Status ValidateServiceSettings(const Json& service, const Json& task_definition,
                                 const Json& cluster);
  Json NewDeployment(const Json& service, const Json& task_definition, double now);

  store::Store& store_;
  api::AccountInfo account_;
  TargetGroupValidator target_group_validator_;
};

}  // namespace berth::ecs
