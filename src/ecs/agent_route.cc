// SPDX-License-Identifier: Apache-2.0
#include "ecs/agent_route.h"

#include <openssl/crypto.h>

#include <chrono>

#include <spdlog/spdlog.h>

namespace berth::ecs {

namespace {

constexpr std::string_view kPrefix = "/_berth/agent/";

http::Response JsonResponse(int status, const Json& body) {
  http::Response r;
  r.status = status;
  r.SetHeader("Content-Type", "application/json");
  r.body = body.dump();
  return r;
}

Result<Json> ParseBody(const std::string& body) {
  try {
    return Json::parse(body.empty() ? std::string("{}") : body);
  } catch (const Json::parse_error&) {
    return ClientError("InvalidRequest", "the body is not JSON");
  }
}

Result<int64_t> QueryInt(const http::Request& request, std::string_view name) {
  auto v = request.Query(name);
  if (!v || v->empty()) {
    return int64_t{0};
  }
  try {
    size_t used = 0;
    int64_t n = std::stoll(*v, &used);
    if (used != v->size() || n < 0) {
      throw std::invalid_argument("negative");
    }
    return n;
  } catch (const std::exception&) {
    return ClientError("InvalidRequest", std::string(name) + " must be a non-negative integer");
  }
}

}  // namespace

AgentRoute::AgentRoute(StoreTaskManager& tasks, std::string token)
    : tasks_(tasks), token_(std::move(token)) {}

bool AgentRoute::Matches(const http::Request& head) const {
  return head.path.rfind(kPrefix, 0) == 0;
}

bool AgentRoute::Authorized(const http::Request& request) const {
  const std::string header = request.Header("Authorization");
  const std::string expected = "Bearer " + token_;
  return header.size() == expected.size() &&
         CRYPTO_memcmp(header.data(), expected.data(), expected.size()) == 0;
}

http::Response AgentRoute::RenderError(const http::Request& request, const Error& error) {
  return JsonResponse(error.status, Json{{"code", error.code}, {"message", error.message}});
}

http::Response AgentRoute::Serve(http::Request& request, http::BodySink* sink) {
  if (!Authorized(request)) {
    return RenderError(request, Error{401, "Unauthorized", "a valid node token is required", {}});
  }
  const std::string op = request.path.substr(kPrefix.size());

  if (op == "register" && request.method == "POST") {
    auto body = ParseBody(request.body);
    if (!body.ok()) {
      return RenderError(request, body.error());
    }
    auto reg = NodeRegistration::FromJson(*body);
    if (!reg.ok()) {
      return RenderError(request, reg.error());
    }
    auto node = tasks_.RegisterNode(*reg);
    if (!node.ok()) {
      return RenderError(request, node.error());
    }
    return JsonResponse(200, Json{{"node", *node}});
  }

  if (op == "desired" && request.method == "GET") {
    std::string node = request.Query("node").value_or("");
    auto after = QueryInt(request, "after");
    auto wait = QueryInt(request, "wait");
    if (node.empty() || !after.ok() || !wait.ok()) {
      return RenderError(request,
                         ClientError("InvalidRequest", "node, after and wait are required"));
    }
    auto seconds = std::min<int64_t>(*wait, kMaxWaitSeconds);
    auto state = tasks_.Desired(node, *after, std::chrono::seconds(seconds));
    if (!state.ok()) {
      return RenderError(request, state.error());
    }
    return JsonResponse(200, state->ToJson());
  }

  if (op == "report" && request.method == "POST") {
    auto body = ParseBody(request.body);
    if (!body.ok()) {
      return RenderError(request, body.error());
    }
    auto report = TaskReport::FromJson(*body);
    if (!report.ok()) {
      return RenderError(request, report.error());
    }
    auto applied = tasks_.ApplyReport(*report);
    if (!applied.ok()) {
      if (applied.error().status >= 500) {
        spdlog::error("component=agent_api event=report_failed task_id={} error=\"{}\"",
                      report->task_id, applied.error().message);
      }
      return RenderError(request, applied.error());
    }
    return JsonResponse(200, *applied);
  }

  return RenderError(request, Error{404, "NotFound", "no such agent endpoint", {}});
}

}  // namespace berth::ecs
