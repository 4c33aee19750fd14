// SPDX-License-Identifier: Apache-2.0
#include "server/task_stats_route.h"

#include <spdlog/spdlog.h>

#include <mutex>

#include "api/aws_json_route.h"
#include "common/time_util.h"

namespace berth {

namespace {

bool IsTaskId(const std::string& id) {
  if (id.empty() || id.size() > 64) {
    return false;
  }
  for (char c : id) {
    bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              c == '-' || c == '_';
    if (!ok) {
      return false;
    }
  }
  return true;
}

}  // namespace

TaskStatsRoute::TaskStatsRoute(std::shared_ptr<const api::KeyRing> keys, std::string region)
    : keys_(std::move(keys)), region_(std::move(region)) {}

void TaskStatsRoute::SetSource(Source source) {
  std::unique_lock lock(mu_);
  source_ = std::move(source);
}

http::Response TaskStatsRoute::RenderError(const http::Request& request, const Error& error) {
  return api::JsonErrorResponse(error, request.request_id);
}

http::Response TaskStatsRoute::Serve(http::Request& request, http::BodySink* sink) {
  auto fail = [&](const Error& e) {
    return RenderError(request, e);
  };
  if (request.method != "GET") {
    return fail(Error{405, "UnsupportedOperation", "only GET is served here", {}});
  }
  auto identity = api::VerifySigV4(request, *keys_);
  if (!identity.ok()) {
    return fail(identity.error());
  }
  if (identity->service != "ecs") {
    return fail(ClientError("InvalidSignatureException",
                            "Credential should be scoped to correct service: 'ecs'. "));
  }
  if (identity->region != region_) {
    return fail(ClientError("InvalidSignatureException",
                            "Credential should be scoped to a valid region. "));
  }

  // /_berth/tasks/<id>/stats
  const std::string prefix = "/_berth/tasks/";
  std::string rest = request.path.substr(prefix.size());
  size_t slash = rest.find('/');
  std::string task_id = rest.substr(0, slash);
  std::string what = slash == std::string::npos ? "" : rest.substr(slash + 1);
  if (what != "stats" || !IsTaskId(task_id)) {
    return fail(Error{404, "ResourceNotFoundException", "no such endpoint: " + request.path, {}});
  }

  std::optional<nlohmann::json> stats;
  {
    std::shared_lock lock(mu_);
    if (!source_) {
      return fail(Error{503,
                        "ServiceUnavailableException",
                        "this berthd runs no node agent, so it has no task stats",
                        {}});
    }
    stats = source_(task_id);
  }
  if (!stats) {
    return fail(Error{404,
                      "TaskNotFoundException",
                      "task " + task_id + " is not running on this berthd's node",
                      {}});
  }
  http::Response r;
  r.SetHeader("Content-Type", "application/json");
  r.body =
      nlohmann::json{{"taskId", task_id}, {"read", NowEpochSeconds()}, {"task", *stats}}.dump();
  spdlog::debug("request_id={} api=task_stats task={} status=200", request.request_id, task_id);
  return r;
}

}  // namespace berth
