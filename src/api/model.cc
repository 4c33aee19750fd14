#include "api/model.h"

#include "api/model_overlay.h"

#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>

namespace berth::models {
extern const std::string_view k_ecs;
extern const std::string_view k_ecr;
extern const std::string_view k_logs;
extern const std::string_view k_elbv2;
}  // namespace berth::models

namespace berth::api {

using Json = nlohmann::json;

const Model& Model::Get(std::string_view service) {
  static std::mutex mu;
  static std::map<std::string, std::unique_ptr<Model>, std::less<>> models;
  std::lock_guard lock(mu);
  auto it = models.find(service);
  if (it != models.end()) {
    return *it->second;
  }
  std::string_view text;
  if (service == "ecs") {
    text = models::k_ecs;
  } else if (service == "ecr") {
    text = models::k_ecr;
  } else if (service == "logs") {
    text = models::k_logs;
  } else if (service == "elbv2") {
    text = models::k_elbv2;
  } else {
    throw std::invalid_argument("no embedded model for " + std::string(service));
  }
  auto model = std::unique_ptr<Model>(new Model(text));
  Json overlay = ModelOverlay(service);
  for (const char* section : {"operations", "shapes"}) {
    if (!overlay.contains(section)) {
      continue;
    }
    Json& into = model->doc_[section];
    for (auto it = overlay[section].begin(); it != overlay[section].end(); ++it) {
      if (!into.contains(it.key())) {
        into[it.key()] = it.value();
      }
    }
  }
  model->shapes_ = &model->doc_.at("shapes");
  auto& ref = *model;
  models.emplace(std::string(service), std::move(model));
  return ref;
}

Model::Model(std::string_view text) : doc_(Json::parse(text)), shapes_(&doc_.at("shapes")) {}

const Json& Model::Shape(const std::string& name) const { return shapes_->at(name); }

const Json* Model::Operation(const std::string& name) const {
  const auto& ops = doc_.at("operations");
  auto it = ops.find(name);
  return it == ops.end() ? nullptr : &*it;
}

namespace {

std::string JsonTypeName(const Json& v) {
  switch (v.type()) {
    case Json::value_t::string:
      return "STRING_VALUE";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
      return "NUMBER_VALUE";
    case Json::value_t::number_float:
      return "NUMBER_VALUE";
    case Json::value_t::boolean:
      return "BOOLEAN_VALUE";
    case Json::value_t::array:
      return "START_ARRAY";
    case Json::value_t::object:
      return "START_OBJECT";
    default:
      return "VALUE_NULL";
  }
}

Error TypeError(const Json& value, const std::string& expected, const std::string& path) {
  return ClientError("SerializationException",
                     JsonTypeName(value) + " can not be converted to " + expected + " at '" +
                         path + "'");
}

}  // namespace

Status Model::ValidateValue(const Json& shape, const Json& value, const std::string& path,
                            const std::string& missing_code) const {
  if (value.is_null()) {
    return Ok();
  }
  const std::string type = shape.value("type", "structure");
  if (type == "structure") {
    if (!value.is_object()) {
      return TypeError(value, "a structure", path);
    }
    if (auto req = shape.find("required"); req != shape.end()) {
      for (const auto& name : *req) {
        auto it = value.find(name.get<std::string>());
        if (it == value.end() || it->is_null()) {
          std::string at = path.empty() ? name.get<std::string>() : path + "." + name.get<std::string>();
          return ClientError(missing_code, "1 validation error detected: Value null at '" + at +
                                               "' failed to satisfy constraint: Member must not "
                                               "be null");
        }
      }
    }
    const auto& members = shape.at("members");
    for (auto it = value.begin(); it != value.end(); ++it) {
      auto m = members.find(it.key());
      if (m == members.end()) {
        continue;  // newer SDKs send members this model predates
      }
      std::string at = path.empty() ? it.key() : path + "." + it.key();
      BERTH_TRY(ValidateValue(Shape(m->at("shape").get<std::string>()), *it, at, missing_code));
    }
    return Ok();
  }
  if (type == "list") {
    if (!value.is_array()) {
      return TypeError(value, "a list", path);
    }
    const auto& member = Shape(shape.at("member").at("shape").get<std::string>());
    for (size_t i = 0; i < value.size(); ++i) {
      BERTH_TRY(ValidateValue(member, value[i], path + "." + std::to_string(i + 1) + ".member",
                              missing_code));
    }
    return Ok();
  }
  if (type == "map") {
    if (!value.is_object()) {
      return TypeError(value, "a map", path);
    }
    const auto& vshape = Shape(shape.at("value").at("shape").get<std::string>());
    for (auto it = value.begin(); it != value.end(); ++it) {
      BERTH_TRY(ValidateValue(vshape, *it, path + "." + it.key(), missing_code));
    }
    return Ok();
  }
  if (type == "string") {
    if (!value.is_string()) {
      return TypeError(value, "String", path);
    }
    return Ok();
  }
  if (type == "integer" || type == "long") {
    if (!value.is_number_integer()) {
      return TypeError(value, type == "long" ? "Long" : "Integer", path);
    }
    return Ok();
  }
  if (type == "boolean") {
    if (!value.is_boolean()) {
      return TypeError(value, "Boolean", path);
    }
    return Ok();
  }
  if (type == "double" || type == "float") {
    if (!value.is_number()) {
      return TypeError(value, "Double", path);
    }
    return Ok();
  }
  if (type == "timestamp") {
    if (!value.is_number() && !value.is_string()) {
      return TypeError(value, "Timestamp", path);
    }
    return Ok();
  }
  if (type == "blob") {
    if (!value.is_string()) {
      return TypeError(value, "Blob", path);
    }
    return Ok();
  }
  return Ok();
}

bool Model::Conforms(const Json& shape, const Json& value) const {
  if (value.is_null()) {
    return true;
  }
  static const std::string kStructure = "structure";
  auto t = shape.find("type");
  const std::string& type = t == shape.end() ? kStructure : t->get_ref<const std::string&>();
  if (type == "structure") {
    if (!value.is_object()) {
      return false;
    }
    if (auto req = shape.find("required"); req != shape.end()) {
      for (const auto& name : *req) {
        auto it = value.find(name.get_ref<const std::string&>());
        if (it == value.end() || it->is_null()) {
          return false;
        }
      }
    }
    const auto& members = shape.at("members");
    for (auto it = value.begin(); it != value.end(); ++it) {
      auto m = members.find(it.key());
      if (m != members.end() &&
          !Conforms(Shape(m->at("shape").get_ref<const std::string&>()), *it)) {
        return false;
      }
    }
    return true;
  }
  if (type == "list") {
    if (!value.is_array()) {
      return false;
    }
    const auto& member = Shape(shape.at("member").at("shape").get_ref<const std::string&>());
    for (const auto& v : value) {
      if (!Conforms(member, v)) {
        return false;
      }
    }
    return true;
  }
  if (type == "map") {
    if (!value.is_object()) {
      return false;
    }
    const auto& vshape = Shape(shape.at("value").at("shape").get_ref<const std::string&>());
    for (const auto& v : value) {
      if (!Conforms(vshape, v)) {
        return false;
      }
    }
    return true;
  }
  if (type == "string" || type == "blob") {
    return value.is_string();
  }
  if (type == "integer" || type == "long") {
    return value.is_number_integer();
  }
  if (type == "boolean") {
    return value.is_boolean();
  }
  if (type == "double" || type == "float") {
    return value.is_number();
  }
  if (type == "timestamp") {
    return value.is_number() || value.is_string();
  }
  return true;
}

Status Model::ValidateInput(const std::string& operation, const Json& input,
                            const std::string& missing_code) const {
  const Json* op = Operation(operation);
  if (op == nullptr) {
    return ClientError("UnknownOperationException", "");
  }
  auto in = op->find("input");
  if (in == op->end()) {
    return Ok();
  }
  const Json& shape = Shape(in->at("shape").get<std::string>());
  // Nearly every request conforms: check that without building paths, and walk the input
  // again for the error only when it does not.
  if (Conforms(shape, input)) {
    return Ok();
  }
  return ValidateValue(shape, input, "", missing_code);
}

}  // namespace berth::api
