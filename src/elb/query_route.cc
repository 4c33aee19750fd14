// SPDX-License-Identifier: Apache-2.0
#include "elb/query_route.h"

#include <chrono>

#include <spdlog/spdlog.h>

#include "api/model.h"
#include "elb/query_codec.h"
#include "server/http_server.h"

namespace berth::elb {

namespace {

constexpr const char* kXmlContentType = "text/xml";

http::Response XmlAnswer(int status, std::string body, const std::string& request_id) {
  http::Response r;
  r.status = status;
  r.SetHeader("Content-Type", kXmlContentType);
  r.SetHeader("x-amzn-RequestId", request_id);
  r.body = std::move(body);
  return r;
}

// Internal failures keep their detail in the log; the client sees AWS's
// generic code for them.
Error ForClient(const Error& error) {
  if (error.status >= 500 && error.code == "ServerException") {
    return Error{500, "InternalFailure",
                 "The request processing has failed because of an unknown error, exception or "
                 "failure.",
                 {}};
  }
  return error;
}

}  // namespace

QueryService::QueryService(std::string model_name) : model_name_(std::move(model_name)) {
  const auto& meta = api::Model::Get(model_name_).document().at("metadata");
  version_ = meta.value("apiVersion", "");
  signing_name_ = meta.value("signingName", meta.value("endpointPrefix", ""));
  xml_namespace_ = meta.value("xmlNamespace", "");
}

void QueryService::Add(const std::string& operation, api::JsonHandler handler) {
  handlers_[operation] = std::move(handler);
}

const api::JsonHandler* QueryService::Find(const std::string& operation) const {
  auto it = handlers_.find(operation);
  return it == handlers_.end() ? nullptr : &it->second;
}

QueryRoute::QueryRoute(std::shared_ptr<const api::KeyRing> keys, api::AccountInfo account)
    : keys_(std::move(keys)), account_(std::move(account)) {}

void QueryRoute::AddService(std::shared_ptr<QueryService> service) {
  services_.push_back(std::move(service));
}

bool QueryRoute::Matches(const http::Request& head) const {
  if (head.method != "POST" || head.path != "/" || !head.Header("X-Amz-Target").empty()) {
    return false;
  }
  return head.Header("Content-Type").rfind("application/x-www-form-urlencoded", 0) == 0;
}

const QueryService* QueryRoute::ServiceFor(const std::string& version,
                                           const std::string& scope) const {
  for (const auto& s : services_) {
    if (s->version() == version && (scope.empty() || s->signing_name() == scope)) {
      return s.get();
    }
  }
  return nullptr;
}

http::Response QueryRoute::RenderError(const http::Request& request, const Error& error) {
  std::string ns = services_.empty() ? "" : services_.front()->xml_namespace();
  return XmlAnswer(error.status, EncodeQueryError(ForClient(error), ns, request.request_id),
                   request.request_id);
}

http::Response QueryRoute::Serve(http::Request& request, http::BodySink* sink) {
  auto started = std::chrono::steady_clock::now();
  std::string action = "-";
  std::string access_key = "-";
  std::string ns = services_.empty() ? "" : services_.front()->xml_namespace();
  auto finish = [&](http::Response resp) {
    auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started)
                  .count();
    spdlog::info("request_id={} api=query action={} status={} key={} ms={:.2f}",
                 request.request_id, action, resp.status, access_key, ms);
    return resp;
  };
  auto fail = [&](const Error& e) {
    return finish(XmlAnswer(e.status, EncodeQueryError(ForClient(e), ns, request.request_id),
                            request.request_id));
  };

  auto params = http::ParseQueryString(request.body, true);
  for (const auto& [k, v] : request.query) {
    params.emplace(k, v);
  }
  auto identity = api::VerifySigV4(request, *keys_, api::VerifyOptions{
                                                        .style = api::AuthErrorStyle::kQuery});
  if (!identity.ok()) {
    return fail(identity.error());
  }
  access_key = identity->access_key_id;

  auto action_it = params.find("Action");
  if (action_it == params.end() || action_it->second.empty()) {
    return fail(ClientError("MissingAction", "The request must contain the parameter Action."));
  }
  action = action_it->second;
  auto version_it = params.find("Version");
  if (version_it == params.end() || version_it->second.empty()) {
    return fail(ClientError("MissingParameter", "The request must contain the parameter Version."));
  }
  const QueryService* service = ServiceFor(version_it->second, identity->service);
  if (service == nullptr) {
    return fail(Error{403, "SignatureDoesNotMatch",
                      "Credential should be scoped to correct service. ", {}});
  }
  ns = service->xml_namespace();
  if (identity->region != account_.region) {
    return fail(Error{403, "SignatureDoesNotMatch",
                      "Credential should be scoped to a valid region. ", {}});
  }
  const api::JsonHandler* handler = service->Find(action);
  if (handler == nullptr) {
    return fail(ClientError("InvalidAction", "Could not find operation " + action +
                                                 " for version " + service->version()));
  }

  const api::Model& model = api::Model::Get(service->model_name());
  auto input = DecodeQueryInput(model, action, params);
  if (!input.ok()) {
    return fail(input.error());
  }
  Status valid = ValidateQueryInput(model, action, *input);
  if (!valid.ok()) {
    return fail(valid.error());
  }

  api::CallContext ctx{account_.account_id, account_.region, request.request_id, access_key};
  Result<Json> out = (*handler)(*input, ctx);
  if (!out.ok()) {
    if (out.error().status >= 500) {
      spdlog::error("request_id={} action={} server error: {}", request.request_id, action,
                    out.error().message);
    }
    return fail(out.error());
  }
  return finish(
      XmlAnswer(200, EncodeQueryResponse(model, action, *out, request.request_id),
                request.request_id));
}

}  // namespace berth::elb
