// The ECR API: the JSON 1.1 operations of AmazonEC2ContainerRegistry_V20150921
// over the Registry. Repository names, ARNs, repositoryUri, errors and
// messages follow AWS; repositoryUri uses berth's registry host.
#pragma once

#include <memory>

#include "api/json_service.h"
#include "registry/registry.h"

namespace berth::registry {

class EcrApi {
 public:
  explicit EcrApi(Registry& registry) : registry_(registry) {}

  // The service table to mount on the JSON route.
  std::shared_ptr<api::JsonService> MakeService();

  Result<Json> CreateRepository(const Json& in, const api::CallContext& ctx);
  Result<Json> DescribeRepositories(const Json& in, const api::CallContext& ctx);
  Result<Json> DeleteRepository(const Json& in, const api::CallContext& ctx);
  Result<Json> PutImageTagMutability(const Json& in, const api::CallContext& ctx);
  Result<Json> ListImages(const Json& in, const api::CallContext& ctx);
  Result<Json> DescribeImages(const Json& in, const api::CallContext& ctx);
  Result<Json> BatchGetImage(const Json& in, const api::CallContext& ctx);
  Result<Json> BatchDeleteImage(const Json& in, const api::CallContext& ctx);
  Result<Json> PutImage(const Json& in, const api::CallContext& ctx);
  Result<Json> BatchCheckLayerAvailability(const Json& in, const api::CallContext& ctx);
  Result<Json> GetDownloadUrlForLayer(const Json& in, const api::CallContext& ctx);
  Result<Json> InitiateLayerUpload(const Json& in, const api::CallContext& ctx);
  Result<Json> UploadLayerPart(const Json& in, const api::CallContext& ctx);
  Result<Json> CompleteLayerUpload(const Json& in, const api::CallContext& ctx);
  Result<Json> GetAuthorizationToken(const Json& in, const api::CallContext& ctx);
  Result<Json> TagResource(const Json& in, const api::CallContext& ctx);
  Result<Json> UntagResource(const Json& in, const api::CallContext& ctx);
  Result<Json> ListTagsForResource(const Json& in, const api::CallContext& ctx);
  Result<Json> PutLifecyclePolicy(const Json& in, const api::CallContext& ctx);
  Result<Json> GetLifecyclePolicy(const Json& in, const api::CallContext& ctx);
  Result<Json> DeleteLifecyclePolicy(const Json& in, const api::CallContext& ctx);

  // The JSON form of a repository, as every operation returns it.
  Json RepositoryJson(const Repository& repo) const;

 private:
  Result<std::string> RepositoryFromArn(const std::string& arn);
  Registry& registry_;
};

}  // namespace berth::registry
