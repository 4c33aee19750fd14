// SPDX-License-Identifier: Apache-2.0
#include "cli/aws_client.h"

#include "cli/http_client.h"

namespace berth::cli {

namespace {

struct ServiceInfo {
  const char* target_prefix;
  const char* signing_name;
};

ServiceInfo InfoOf(Service service) {
  switch (service) {
    case Service::kEcs:
      return {"AmazonEC2ContainerServiceV20141113", "ecs"};
    case Service::kEcr:
      return {"AmazonEC2ContainerRegistry_V20150921", "ecr"};
    case Service::kLogs:
      return {"Logs_20140328", "logs"};
  }
  return {"", ""};
}

Error Unreachable(const Settings& settings, const Error& transport) {
  return Error{0,
               "TransportError",
               "cannot reach berthd at " + settings.endpoint + ": " + transport.message,
               {}};
}

}  // namespace

Error LocalError(std::string message) {
  return Error{1, "", std::move(message), {}};
}

std::string DescribeError(const Error& error) {
  if (error.code.empty() || error.code == "TransportError" || error.code == "NoCredentials" ||
      error.code == "InvalidEndpoint") {
    return error.message;
  }
  if (error.message.empty()) {
    return error.code;
  }
  return error.code + ": " + error.message;
}

Error ParseAwsError(long status, const std::string& body) {
  Error e{static_cast<int>(status), "", "", {}};
  try {
    Json j = Json::parse(body);
    if (j.is_object()) {
      e.code = j.value("__type", "");
      e.message = j.value("message", j.value("Message", ""));
    }
  } catch (const Json::parse_error&) {
  }
  size_t hash = e.code.find('#');
  if (hash != std::string::npos) {
    e.code = e.code.substr(hash + 1);
  }
  if (e.code.empty()) {
    e.code = "HTTP" + std::to_string(status);
    if (e.message.empty()) {
      e.message = body.substr(0, 200);
    }
  }
  return e;
}

Result<Json> AwsClient::Call(Service service, const std::string& operation,
                             const Json& input) const {
  ServiceInfo info = InfoOf(service);
  HttpRequest request;
  request.method = "POST";
  request.url = settings_.endpoint + "/";
  request.body = input.dump();
  request.headers = {{"Content-Type", "application/x-amz-json-1.1"},
                     {"X-Amz-Target", std::string(info.target_prefix) + "." + operation}};
  BERTH_TRY(SignRequest(request, settings_, info.signing_name));
  auto response = Perform(request);
  if (!response.ok()) {
    return Unreachable(settings_, response.error());
  }
  if (response->status != 200) {
    return ParseAwsError(response->status, response->body);
  }
  try {
    return Json::parse(response->body.empty() ? std::string("{}") : response->body);
  } catch (const Json::parse_error&) {
    return Error{502, "InvalidResponse", operation + ": the answer is not JSON", {}};
  }
}

Result<Json> AwsClient::GetInternal(const std::string& path) const {
  HttpRequest request;
  request.method = "GET";
  request.url = settings_.endpoint + path;
  request.timeout_ms = 30000;
  BERTH_TRY(SignRequest(request, settings_, "ecs"));
  auto response = Perform(request);
  if (!response.ok()) {
    return Unreachable(settings_, response.error());
  }
  if (response->status != 200) {
    return ParseAwsError(response->status, response->body);
  }
  try {
    return Json::parse(response->body);
  } catch (const Json::parse_error&) {
    return Error{502, "InvalidResponse", path + ": the answer is not JSON", {}};
  }
}

}  // namespace berth::cli
