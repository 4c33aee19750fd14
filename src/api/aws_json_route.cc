#include "api/aws_json_route.h"

#include <chrono>

#include <spdlog/spdlog.h>

#include "api/model.h"

namespace berth::api {

namespace {
constexpr const char* kJsonContentType = "application/x-amz-json-1.1";
}

http::Response JsonErrorResponse(const Error& error, const std::string& request_id) {
  http::Response r;
  r.status = error.status;
  r.SetHeader("Content-Type", kJsonContentType);
  r.SetHeader("x-amzn-RequestId", request_id);
  r.SetHeader("x-amzn-ErrorType", error.code);
  Json body = {{"__type", error.code}};
  if (!error.message.empty() || error.code != "UnknownOperationException") {
    body["message"] = error.message;
  }
  r.body = body.dump();
  return r;
}

AwsJsonRoute::AwsJsonRoute(std::shared_ptr<const KeyRing> keys, AccountInfo account)
    : keys_(std::move(keys)), account_(std::move(account)) {}

void AwsJsonRoute::AddService(std::shared_ptr<JsonService> service, std::string missing_code) {
  services_.push_back(Entry{std::move(service), std::move(missing_code)});
}

bool AwsJsonRoute::Matches(const http::Request& head) const {
  return !head.Header("X-Amz-Target").empty();
}

http::Response AwsJsonRoute::RenderError(const http::Request& request, const Error& error) {
  return JsonErrorResponse(error, request.request_id);
}

http::Response AwsJsonRoute::Serve(http::Request& request, http::BodySink* sink) {
  auto started = std::chrono::steady_clock::now();
  const std::string target = request.Header("X-Amz-Target");
  std::string access_key = "-";
  auto finish = [&](http::Response resp) {
    auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started)
                  .count();
    spdlog::info("request_id={} api=json target={} status={} key={} ms={:.2f}",
                 request.request_id, target, resp.status, access_key, ms);
    return resp;
  };
  auto fail = [&](const Error& e) { return finish(JsonErrorResponse(e, request.request_id)); };

  if (request.method != "POST") {
    return fail(Error{405, "UnknownOperationException", "", {}});
  }
  auto identity = VerifySigV4(request, *keys_, VerifyOptions{});
  if (!identity.ok()) {
    return fail(identity.error());
  }
  access_key = identity->access_key_id;

  size_t dot = target.rfind('.');
  std::string prefix = dot == std::string::npos ? target : target.substr(0, dot);
  std::string operation = dot == std::string::npos ? "" : target.substr(dot + 1);
  const Entry* entry = nullptr;
  for (const auto& e : services_) {
    if (e.service->target_prefix() == prefix) {
      entry = &e;
      break;
    }
  }
  const JsonHandler* handler = entry ? entry->service->Find(operation) : nullptr;
  if (handler == nullptr) {
    return fail(ClientError("UnknownOperationException", ""));
  }

  Json input;
  if (request.body.empty()) {
    input = Json::object();
  } else {
    try {
      input = Json::parse(request.body);
    } catch (const Json::parse_error&) {
      return fail(ClientError("SerializationException", "Unable to parse request body as JSON."));
    }
  }
  if (!input.is_object()) {
    return fail(ClientError("SerializationException",
                            "Start of structure or map expected in the request body."));
  }
  const Model& model = Model::Get(entry->service->model_name());
  Status valid = model.ValidateInput(operation, input, entry->missing_code);
  if (!valid.ok()) {
    return fail(valid.error());
  }

  const auto& meta = model.document().at("metadata");
  std::string signing_name = meta.value("signingName", meta.value("endpointPrefix", ""));
  if (identity->service != signing_name) {
    return fail(ClientError("InvalidSignatureException",
                            "Credential should be scoped to correct service: '" + signing_name +
                                "'. "));
  }
  if (identity->region != account_.region) {
    return fail(ClientError("InvalidSignatureException",
                            "Credential should be scoped to a valid region. "));
  }

  CallContext ctx{account_.account_id, account_.region, request.request_id, access_key};
  Result<Json> out = (*handler)(input, ctx);
  if (!out.ok()) {
    if (out.error().status >= 500) {
      spdlog::error("request_id={} target={} server error: {}", request.request_id, target,
                    out.error().message);
    }
    return fail(out.error());
  }
  http::Response resp;
  resp.SetHeader("Content-Type", kJsonContentType);
  resp.SetHeader("x-amzn-RequestId", request.request_id);
  resp.body = out->is_null() ? "{}" : out->dump();
  return finish(std::move(resp));
}

}  // namespace berth::api
