// AWS JSON 1.1 services: a table of operations, each a function from the
// request's JSON object to the response's JSON object or an AWS error.
//
// The front authenticates the request (SigV4), finds the service by the
// X-Amz-Target prefix, checks the input against the botocore model's shape
// for the operation, and calls the handler. Handlers never see malformed
// input types; they apply the service's own rules and answer with AWS's
// error types and messages.
#pragma once

#include <functional>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace berth::api {

using Json = nlohmann::json;

// Who is calling and where: what every handler needs to build ARNs.
struct CallContext {
  std::string account_id;
  std::string region;
  std::string request_id;
  std::string access_key_id;
};

using JsonHandler = std::function<Result<Json>(const Json& input, const CallContext& ctx)>;

class JsonService {
 public:
  // `target_prefix` is the part of X-Amz-Target before the dot, for example
  // "Logs_20140328"; `model_name` names the embedded botocore model ("logs").
  JsonService(std::string target_prefix, std::string model_name)
      : target_prefix_(std::move(target_prefix)), model_name_(std::move(model_name)) {}

  void Add(const std::string& operation, JsonHandler handler) {
    handlers_[operation] = std::move(handler);
  }

  const std::string& target_prefix() const { return target_prefix_; }
  const std::string& model_name() const { return model_name_; }
  const JsonHandler* Find(const std::string& operation) const {
    auto it = handlers_.find(operation);
    return it == handlers_.end() ? nullptr : &it->second;
  }

 private:
  std::string target_prefix_;
  std::string model_name_;
  std::map<std::string, JsonHandler> handlers_;
};

}  // namespace berth::api
