// SPDX-License-Identifier: Apache-2.0
#include "elb/query_codec.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <optional>
#include <vector>

namespace berth::elb {

namespace {

using Params = std::multimap<std::string, std::string>;

// Whether any parameter is `prefix` itself or lies below it ("prefix.x").
bool HasParamsUnder(const Params& params, const std::string& prefix) {
  for (auto it = params.lower_bound(prefix); it != params.end(); ++it) {
    const std::string& key = it->first;
    if (key.compare(0, prefix.size(), prefix) != 0) {
      return false;
    }
    if (key.size() == prefix.size() || key[prefix.size()] == '.') {
      return true;
    }
  }
  return false;
}

const std::string* Param(const Params& params, const std::string& key) {
  auto it = params.find(key);
  return it == params.end() ? nullptr : &it->second;
}

std::string Join(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

Error BadValue(const std::string& key, const std::string& value, const std::string& type) {
  return ClientError("ValidationError",
                     "Invalid value '" + value + "' for parameter " + key + ": expected " + type);
}

class Decoder {
 public:
  Decoder(const api::Model& model, const Params& params) : model_(model), params_(params) {}

  // The value at `prefix` for `shape`, or nullopt when nothing was sent.
  Result<std::optional<Json>> Decode(const Json& shape, const std::string& prefix) {
    const std::string type = shape.value("type", "structure");
    if (type == "structure") {
      return DecodeStructure(shape, prefix);
    }
    if (type == "list") {
      return DecodeList(shape, prefix);
    }
    if (type == "map") {
      return DecodeMap(shape, prefix);
    }
    const std::string* raw = Param(params_, prefix);
    if (raw == nullptr) {
      return std::optional<Json>();
    }
    if (type == "integer" || type == "long") {
      errno = 0;
      char* end = nullptr;
      long long v = std::strtoll(raw->c_str(), &end, 10);
      if (raw->empty() || *end != '\0' || errno == ERANGE) {
        return BadValue(prefix, *raw, "an integer");
      }
      return std::optional<Json>(Json(v));
    }
    if (type == "boolean") {
      if (*raw == "true" || *raw == "True") {
        return std::optional<Json>(Json(true));
      }
      if (*raw == "false" || *raw == "False") {
        return std::optional<Json>(Json(false));
      }
      return BadValue(prefix, *raw, "true or false");
    }
    if (type == "double" || type == "float") {
      char* end = nullptr;
      double v = std::strtod(raw->c_str(), &end);
      if (raw->empty() || *end != '\0') {
        return BadValue(prefix, *raw, "a number");
      }
      return std::optional<Json>(Json(v));
    }
    return std::optional<Json>(Json(*raw));
  }

 private:
  Result<std::optional<Json>> DecodeStructure(const Json& shape, const std::string& prefix) {
    if (!prefix.empty() && !HasParamsUnder(params_, prefix)) {
      return std::optional<Json>();
    }
    Json out = Json::object();
    for (const auto& [name, member] : shape.at("members").items()) {
      std::string wire = member.value("locationName", name);
      auto value = Decode(model_.Shape(member.at("shape").get<std::string>()), Join(prefix, wire));
      if (!value.ok()) {
        return value.error();
      }
      if (value->has_value()) {
        out[name] = std::move(**value);
      }
    }
    return std::optional<Json>(std::move(out));
  }

  Result<std::optional<Json>> DecodeList(const Json& shape, const std::string& prefix) {
    if (!HasParamsUnder(params_, prefix)) {
      return std::optional<Json>();
    }
    const Json& member = shape.at("member");
    const Json& member_shape = model_.Shape(member.at("shape").get<std::string>());
    bool flattened = shape.value("flattened", false);
    std::string base = flattened ? prefix : prefix + "." + member.value("locationName", "member");
    Json out = Json::array();
    for (size_t i = 1;; ++i) {
      std::string key = base + "." + std::to_string(i);
      if (!HasParamsUnder(params_, key)) {
        break;
      }
      auto value = Decode(member_shape, key);
      if (!value.ok()) {
        return value.error();
      }
      out.push_back(value->has_value() ? std::move(**value) : Json());
    }
    // "Prefix=" with no members is how the protocol sends an empty list.
    return std::optional<Json>(std::move(out));
  }

  Result<std::optional<Json>> DecodeMap(const Json& shape, const std::string& prefix) {
    if (!HasParamsUnder(params_, prefix)) {
      return std::optional<Json>();
    }
    std::string key_name = shape.at("key").value("locationName", "key");
    std::string value_name = shape.at("value").value("locationName", "value");
    const Json& value_shape = model_.Shape(shape.at("value").at("shape").get<std::string>());
    std::string base = shape.value("flattened", false) ? prefix : prefix + ".entry";
    Json out = Json::object();
    for (size_t i = 1;; ++i) {
      std::string entry = base + "." + std::to_string(i);
      const std::string* key = Param(params_, entry + "." + key_name);
      if (key == nullptr) {
        break;
      }
      auto value = Decode(value_shape, entry + "." + value_name);
      if (!value.ok()) {
        return value.error();
      }
      out[*key] = value->has_value() ? std::move(**value) : Json();
    }
    return std::optional<Json>(std::move(out));
  }

  const api::Model& model_;
  const Params& params_;
};

// AWS names members in validation messages with a lower-case first letter.
std::string MessageName(const std::string& member) {
  std::string out = member;
  if (!out.empty() && out[0] >= 'A' && out[0] <= 'Z') {
    out[0] = static_cast<char>(out[0] - 'A' + 'a');
  }
  return out;
}

std::string ValueText(const Json& value) {
  return value.is_string() ? value.get<std::string>() : value.dump();
}

class Validator {
 public:
  explicit Validator(const api::Model& model) : model_(model) {}

  void Check(const Json& shape, const Json& value, const std::string& path) {
    if (value.is_null()) {
      return;
    }
    const std::string type = shape.value("type", "structure");
    if (type == "structure" && value.is_object()) {
      CheckStructure(shape, value, path);
    } else if (type == "list" && value.is_array()) {
      CheckLength(shape, value, value.size(), path);
      const Json& member = model_.Shape(shape.at("member").at("shape").get<std::string>());
      for (size_t i = 0; i < value.size(); ++i) {
        Check(member, value[i], path + "." + std::to_string(i + 1) + ".member");
      }
    } else if (type == "string" && value.is_string()) {
      const std::string& s = value.get_ref<const std::string&>();
      CheckLength(shape, value, s.size(), path);
      CheckEnum(shape, value, s, path);
    } else if ((type == "integer" || type == "long") && value.is_number_integer()) {
      CheckRange(shape, value, path);
    }
  }

  std::vector<std::string> TakeErrors() { return std::move(errors_); }

 private:
  void CheckStructure(const Json& shape, const Json& value, const std::string& path) {
    const Json& members = shape.at("members");
    if (auto req = shape.find("required"); req != shape.end()) {
      for (const auto& name : *req) {
        auto it = value.find(name.get<std::string>());
        if (it == value.end() || it->is_null()) {
          errors_.push_back("Value null at '" + Join(path, MessageName(name.get<std::string>())) +
                            "' failed to satisfy constraint: Member must not be null");
        }
      }
    }
    for (auto it = value.begin(); it != value.end(); ++it) {
      auto m = members.find(it.key());
      if (m == members.end()) {
        continue;
      }
      Check(model_.Shape(m->at("shape").get<std::string>()), *it,
            Join(path, MessageName(it.key())));
    }
  }

  void CheckLength(const Json& shape, const Json& value, size_t length, const std::string& path) {
    if (auto min = shape.find("min"); min != shape.end() && length < min->get<size_t>()) {
      Add(value, path, "Member must have length greater than or equal to " + min->dump());
    }
    if (auto max = shape.find("max"); max != shape.end() && length > max->get<size_t>()) {
      Add(value, path, "Member must have length less than or equal to " + max->dump());
    }
  }

  void CheckRange(const Json& shape, const Json& value, const std::string& path) {
    long long v = value.get<long long>();
    if (auto min = shape.find("min"); min != shape.end() && v < min->get<long long>()) {
      Add(value, path, "Member must have value greater than or equal to " + min->dump());
    }
    if (auto max = shape.find("max"); max != shape.end() && v > max->get<long long>()) {
      Add(value, path, "Member must have value less than or equal to " + max->dump());
    }
  }

  void CheckEnum(const Json& shape, const Json& value, const std::string& s,
                 const std::string& path) {
    auto values = shape.find("enum");
    if (values == shape.end()) {
      return;
    }
    std::string set;
    for (const auto& v : *values) {
      if (v.get_ref<const std::string&>() == s) {
        return;
      }
      set += (set.empty() ? "" : ", ") + v.get<std::string>();
    }
    Add(value, path, "Member must satisfy enum value set: [" + set + "]");
  }

  void Add(const Json& value, const std::string& path, const std::string& constraint) {
    errors_.push_back("Value '" + ValueText(value) + "' at '" + path +
                      "' failed to satisfy constraint: " + constraint);
  }

  const api::Model& model_;
  std::vector<std::string> errors_;
};

void EncodeValue(const api::Model& model, const Json& shape, const Json& value,
                 const std::string& name, std::string& out);

void EncodeMembers(const api::Model& model, const Json& shape, const Json& value,
                   std::string& out) {
  if (!value.is_object()) {
    return;
  }
  for (const auto& [member_name, member] : shape.at("members").items()) {
    auto it = value.find(member_name);
    if (it == value.end() || it->is_null()) {
      continue;
    }
    EncodeValue(model, model.Shape(member.at("shape").get<std::string>()), *it,
                member.value("locationName", member_name), out);
  }
}

void EncodeScalar(const std::string& type, const Json& value, std::string& out) {
  if (type == "timestamp" && value.is_number()) {
    out += FormatIsoTimestamp(value.get<double>());
  } else if (type == "boolean" && value.is_boolean()) {
    out += value.get<bool>() ? "true" : "false";
  } else if (value.is_string()) {
    out += XmlEscape(value.get_ref<const std::string&>());
  } else {
    out += XmlEscape(value.dump());
  }
}

void EncodeValue(const api::Model& model, const Json& shape, const Json& value,
                 const std::string& name, std::string& out) {
  const std::string type = shape.value("type", "structure");
  if (type == "list") {
    const Json& member = shape.at("member");
    const Json& member_shape = model.Shape(member.at("shape").get<std::string>());
    bool flattened = shape.value("flattened", false);
    std::string item = flattened ? name : member.value("locationName", "member");
    if (!value.is_array() || value.empty()) {
      if (!flattened) {
        out += "<" + name + "/>";
      }
      return;
    }
    if (!flattened) {
      out += "<" + name + ">";
    }
    for (const auto& v : value) {
      EncodeValue(model, member_shape, v, item, out);
    }
    if (!flattened) {
      out += "</" + name + ">";
    }
    return;
  }
  if (type == "map") {
    const Json& value_shape = model.Shape(shape.at("value").at("shape").get<std::string>());
    std::string key_name = shape.at("key").value("locationName", "key");
    std::string value_name = shape.at("value").value("locationName", "value");
    out += "<" + name + ">";
    if (value.is_object()) {
      for (auto it = value.begin(); it != value.end(); ++it) {
        out += "<entry><" + key_name + ">" + XmlEscape(it.key()) + "</" + key_name + ">";
        EncodeValue(model, value_shape, *it, value_name, out);
        out += "</entry>";
      }
    }
    out += "</" + name + ">";
    return;
  }
  out += "<" + name + ">";
  if (type == "structure") {
    EncodeMembers(model, shape, value, out);
  } else {
    EncodeScalar(type, value, out);
  }
  out += "</" + name + ">";
}

std::string XmlNamespace(const api::Model& model) {
  return model.document().at("metadata").value("xmlNamespace", "");
}

}  // namespace

Result<Json> DecodeQueryInput(const api::Model& model, const std::string& operation,
                              const Params& params) {
  const Json* op = model.Operation(operation);
  if (op == nullptr) {
    return ClientError("InvalidAction", "Could not find operation " + operation);
  }
  auto in = op->find("input");
  if (in == op->end()) {
    return Json::object();
  }
  Decoder decoder(model, params);
  auto value = decoder.Decode(model.Shape(in->at("shape").get<std::string>()), "");
  if (!value.ok()) {
    return value.error();
  }
  return value->value_or(Json::object());
}

Status ValidateQueryInput(const api::Model& model, const std::string& operation,
                          const Json& input) {
  const Json* op = model.Operation(operation);
  if (op == nullptr) {
    return ClientError("InvalidAction", "Could not find operation " + operation);
  }
  auto in = op->find("input");
  if (in == op->end()) {
    return Ok();
  }
  Validator validator(model);
  validator.Check(model.Shape(in->at("shape").get<std::string>()), input, "");
  std::vector<std::string> errors = validator.TakeErrors();
  if (errors.empty()) {
    return Ok();
  }
  std::string message = std::to_string(errors.size()) +
                        (errors.size() == 1 ? " validation error detected: "
                                            : " validation errors detected: ");
  for (size_t i = 0; i < errors.size(); ++i) {
    message += (i == 0 ? "" : "; ") + errors[i];
  }
  return ClientError("ValidationError", message);
}

std::string EncodeQueryResponse(const api::Model& model, const std::string& operation,
                                const Json& output, const std::string& request_id) {
  std::string out = "<" + operation + "Response xmlns=\"" + XmlNamespace(model) + "\">";
  const Json* op = model.Operation(operation);
  std::string result = operation + "Result";
  if (op != nullptr) {
    auto shape_ref = op->find("output");
    if (shape_ref != op->end()) {
      result = shape_ref->value("resultWrapper", result);
      std::string body;
      EncodeMembers(model, model.Shape(shape_ref->at("shape").get<std::string>()), output, body);
      out += body.empty() ? "<" + result + "/>" : "<" + result + ">" + body + "</" + result + ">";
    } else {
      out += "<" + result + "/>";
    }
  }
  out += "<ResponseMetadata><RequestId>" + XmlEscape(request_id) +
         "</RequestId></ResponseMetadata></" + operation + "Response>";
  return out;
}

std::string EncodeQueryError(const Error& error, const std::string& xml_namespace,
                             const std::string& request_id) {
  std::string out = "<ErrorResponse xmlns=\"" + xml_namespace + "\"><Error><Type>";
  out += error.status >= 500 ? "Receiver" : "Sender";
  out += "</Type><Code>" + XmlEscape(error.code) + "</Code><Message>" + XmlEscape(error.message) +
         "</Message></Error><RequestId>" + XmlEscape(request_id) + "</RequestId></ErrorResponse>";
  return out;
}

std::string FormatIsoTimestamp(double epoch_seconds) {
  double whole = std::floor(epoch_seconds);
  auto millis = static_cast<int>(std::lround((epoch_seconds - whole) * 1000.0));
  auto seconds = static_cast<time_t>(whole);
  if (millis >= 1000) {
    millis -= 1000;
    ++seconds;
  }
  struct tm tm {};
  gmtime_r(&seconds, &tm);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
  return buf;
}

std::string XmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

}  // namespace berth::elb
