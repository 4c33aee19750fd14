// The ECS control plane's API: the JSON 1.1 operations of
// AmazonEC2ContainerServiceV20141113 over the store.
//
// State layout in the store (values are JSON documents):
//   ecs/clusters/<name>            the cluster as DescribeClusters shows it
#pragma once

#include <memory>
#include <string>

#include "api/aws_json_route.h"
#include "api/json_service.h"
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

  // "name" or a cluster ARN to the cluster name; "" means "default".
  static std::string ClusterNameFromRef(const std::string& ref);
  std::string ClusterArn(const std::string& name) const;

 private:
  store::Store& store_;
  api::AccountInfo account_;
};

}  // namespace berth::ecs
