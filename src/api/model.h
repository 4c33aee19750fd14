// The botocore service models, embedded at build time, and input checking
// against them.
//
// Every AWS operation berth serves is defined by its model: the input shape's
// members, which are required, and their types. The front checks each
// request against the model before a handler sees it, so handlers can rely on
// member types and required members.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace berth::api {

class Model {
 public:
  // The model of a service ("ecs", "ecr", "logs", "elbv2"); parsed once.
  static const Model& Get(std::string_view service);

  const nlohmann::json& document() const { return doc_; }
  const nlohmann::json& Shape(const std::string& name) const;
  // The operation's definition, or nullptr when the model has no such operation.
  const nlohmann::json* Operation(const std::string& name) const;

  // Checks `input` against the operation's input shape. Wrong JSON types give
  // SerializationException; a missing required member gives `missing_code`
  // with the AWS validation message naming the member.
  Status ValidateInput(const std::string& operation, const nlohmann::json& input,
                       const std::string& missing_code) const;

 private:
  explicit Model(std::string_view text);
  Status ValidateValue(const nlohmann::json& shape, const nlohmann::json& value,
                       const std::string& path, const std::string& missing_code) const;
  // Whether ValidateValue would accept `value`, without allocating.
  bool Conforms(const nlohmann::json& shape, const nlohmann::json& value) const;

  nlohmann::json doc_;
  const nlohmann::json* shapes_;  // doc_["shapes"]
};

}  // namespace berth::api
