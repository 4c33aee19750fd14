// SPDX-License-Identifier: Apache-2.0
//
// TagResource, UntagResource and ListTagsForResource for every taggable ECS
// resource. Each resource type registers how its ARN maps to the store
// document holding its "tags" member (AddTaggableType), so the tagging code
// is the same for clusters, task definitions, tasks and services.
#include <set>

#include "ecs/ecs_api.h"

namespace berth::ecs {

namespace {

constexpr size_t kMaxTags = 50;

Error InvalidParameter(std::string message) {
  return ClientError("InvalidParameterException", std::move(message));
}

Error InvalidArn() { return InvalidParameter("The ARN provided is invalid."); }

// Length in characters (UTF-8 code points), as AWS counts tag lengths.
size_t CodePoints(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) {
    if ((c & 0xC0) != 0x80) {
      ++n;
    }
  }
  return n;
}

std::string LowerPrefix(const std::string& s, size_t n) {
  std::string out = s.substr(0, n);
  for (char& c : out) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

}  // namespace

Status EcsApi::CheckTags(const Json& tags) {
  if (!tags.is_array()) {
    return Ok();
  }
  if (tags.size() > kMaxTags) {
    return InvalidParameter("The number of tags exceeds the maximum of 50.");
  }
  std::set<std::string> keys;
  for (size_t i = 0; i < tags.size(); ++i) {
    const Json& t = tags[i];
    std::string key = t.value("key", "");
    std::string value = t.value("value", "");
    std::string at = "tags." + std::to_string(i + 1) + ".member";
    if (key.empty() || CodePoints(key) > 128) {
      return InvalidParameter("1 validation error detected: Value at '" + at +
                              ".key' failed to satisfy constraint: Member must have length "
                              "between 1 and 128");
    }
    if (CodePoints(value) > 256) {
      return InvalidParameter("1 validation error detected: Value at '" + at +
                              ".value' failed to satisfy constraint: Member must have length "
                              "less than or equal to 256");
    }
    if (LowerPrefix(key, 4) == "aws:") {
      return InvalidParameter("Tag keys cannot start with the reserved prefix 'aws:'.");
    }
    if (!keys.insert(key).second) {
      return InvalidParameter("Duplicate tag key: " + key);
    }
  }
  return Ok();
}

void EcsApi::AddTaggableType(const std::string& resource_type, TagKeyResolver resolver) {
  taggable_[resource_type] = std::move(resolver);
}

Result<std::string> EcsApi::TagKeyFor(const std::string& arn) {
  auto parts = ParseEcsArn(arn);
  if (!parts) {
    return InvalidArn();
  }
  auto it = taggable_.find(parts->resource_type);
  if (it == taggable_.end()) {
    return InvalidArn();
  }
  return it->second(*parts);
}

void EcsApi::AddTagOperations(api::JsonService& svc) {
  Bind(svc, "TagResource", &EcsApi::TagResource);
  Bind(svc, "UntagResource", &EcsApi::UntagResource);
  Bind(svc, "ListTagsForResource", &EcsApi::ListTagsForResource);
}

Result<Json> EcsApi::TagResource(const Json& in, const api::CallContext& ctx) {
  Json add = in.value("tags", Json::array());
  BERTH_TRY(CheckTags(add));
  auto key = TagKeyFor(in.value("resourceArn", ""));
  if (!key.ok()) {
    return key.error();
  }
  auto committed = store::ReadModifyWrite(
      store_, *key,
      [&](const std::optional<store::Entry>& cur) -> Result<std::optional<std::string>> {
        if (!cur) {
          return ClientError("ResourceNotFoundException", "The specified resource is not found.");
        }
        Json doc = Json::parse(cur->value);
        Json merged = Json::array();
        for (const auto& t : doc.value("tags", Json::array())) {
          bool replaced = false;
          for (const auto& a : add) {
            replaced = replaced || a.value("key", "") == t.value("key", "");
          }
          if (!replaced) {
            merged.push_back(t);
          }
        }
        for (const auto& a : add) {
          merged.push_back({{"key", a.value("key", "")}, {"value", a.value("value", "")}});
        }
        if (merged.size() > kMaxTags) {
          return InvalidParameter("The number of tags exceeds the maximum of 50.");
        }
        doc["tags"] = merged;
        return std::optional<std::string>(doc.dump());
      });
  if (!committed.ok()) {
    return committed.error();
  }
  return Json::object();
}

Result<Json> EcsApi::UntagResource(const Json& in, const api::CallContext& ctx) {
  std::set<std::string> remove;
  for (const auto& k : in.value("tagKeys", Json::array())) {
    remove.insert(k.get<std::string>());
  }
  auto key = TagKeyFor(in.value("resourceArn", ""));
  if (!key.ok()) {
    return key.error();
  }
  auto committed = store::ReadModifyWrite(
      store_, *key,
      [&](const std::optional<store::Entry>& cur) -> Result<std::optional<std::string>> {
        if (!cur) {
          return ClientError("ResourceNotFoundException", "The specified resource is not found.");
        }
        Json doc = Json::parse(cur->value);
        Json kept = Json::array();
        for (const auto& t : doc.value("tags", Json::array())) {
          if (remove.count(t.value("key", "")) == 0) {
            kept.push_back(t);
          }
        }
        doc["tags"] = kept;
        return std::optional<std::string>(doc.dump());
      });
  if (!committed.ok()) {
    return committed.error();
  }
  return Json::object();
}

Result<Json> EcsApi::ListTagsForResource(const Json& in, const api::CallContext& ctx) {
  auto key = TagKeyFor(in.value("resourceArn", ""));
  if (!key.ok()) {
    return key.error();
  }
  auto entry = store_.Get(*key);
  if (!entry.ok()) {
    return entry.error();
  }
  if (!*entry) {
    return ClientError("ResourceNotFoundException", "The specified resource is not found.");
  }
  Json doc = Json::parse((*entry)->value);
  return Json{{"tags", doc.value("tags", Json::array())}};
}

}  // namespace berth::ecs
