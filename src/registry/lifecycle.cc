#include "registry/lifecycle.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

namespace berth::registry {

namespace {

using Json = nlohmann::json;

Error PolicyError(const std::string& reason) {
  return ClientError("InvalidParameterException",
                     "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: "
                     "'Lifecycle policy validation failure: " +
                         reason + "'");
}

Result<std::vector<std::string>> StringList(const Json& selection, const char* field) {
  std::vector<std::string> out;
  auto it = selection.find(field);
  if (it == selection.end()) {
    return out;
  }
  if (!it->is_array() || it->empty()) {
    return PolicyError(std::string(field) + " must be a non-empty array of strings");
  }
  for (const auto& v : *it) {
    if (!v.is_string() || v.get<std::string>().empty()) {
      return PolicyError(std::string(field) + " must be a non-empty array of strings");
    }
    out.push_back(v.get<std::string>());
  }
  return out;
}

bool Matches(const LifecycleRule& rule, const LifecycleImage& image) {
  switch (rule.tag_status) {
    case LifecycleRule::TagStatus::kUntagged:
      return image.tags.empty();
    case LifecycleRule::TagStatus::kAny:
      return true;
    case LifecycleRule::TagStatus::kTagged:
      break;
  }
  if (image.tags.empty()) {
    return false;
  }
  for (const auto& prefix : rule.tag_prefixes) {
    bool any = std::any_of(image.tags.begin(), image.tags.end(),
                           [&](const std::string& t) { return t.rfind(prefix, 0) == 0; });
    if (!any) {
      return false;
    }
  }
  for (const auto& pattern : rule.tag_patterns) {
    bool any = std::any_of(image.tags.begin(), image.tags.end(),
                           [&](const std::string& t) { return TagPatternMatches(pattern, t); });
    if (!any) {
      return false;
    }
  }
  return true;
}

}  // namespace

bool TagPatternMatches(std::string_view pattern, std::string_view tag) {
  // Greedy glob with backtracking to the last '*'.
  size_t p = 0;
  size_t t = 0;
  size_t star = std::string_view::npos;
  size_t resume = 0;
  while (t < tag.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = t;
    } else if (p < pattern.size() && pattern[p] == tag[t]) {
      ++p;
      ++t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') {
    ++p;
  }
  return p == pattern.size();
}

Result<LifecyclePolicy> ParseLifecyclePolicy(std::string_view text) {
  Json doc;
  try {
    doc = Json::parse(text);
  } catch (const Json::parse_error&) {
    return PolicyError("the policy is not valid JSON");
  }
  if (!doc.is_object() || !doc.contains("rules") || !doc["rules"].is_array() ||
      doc["rules"].empty()) {
    return PolicyError("the policy must have a non-empty 'rules' array");
  }
  LifecyclePolicy policy;
  std::set<int64_t> priorities;
  int untagged_rules = 0;
  for (const auto& r : doc["rules"]) {
    if (!r.is_object()) {
      return PolicyError("each rule must be an object");
    }
    LifecycleRule rule;
    if (!r.contains("rulePriority") || !r["rulePriority"].is_number_integer() ||
        r["rulePriority"].get<int64_t>() < 1) {
      return PolicyError("rulePriority must be a positive integer");
    }
    rule.priority = r["rulePriority"].get<int64_t>();
    if (!priorities.insert(rule.priority).second) {
      return PolicyError("rulePriority " + std::to_string(rule.priority) + " is used twice");
    }
    if (r.contains("description") && !r["description"].is_string()) {
      return PolicyError("description must be a string");
    }
    if (!r.contains("action") || !r["action"].is_object() ||
        r["action"].value("type", "") != "expire") {
      return PolicyError("action.type must be 'expire'");
    }
    if (!r.contains("selection") || !r["selection"].is_object()) {
      return PolicyError("each rule needs a selection");
    }
    const Json& sel = r["selection"];
    std::string status = sel.value("tagStatus", "");
    if (status == "tagged") {
      rule.tag_status = LifecycleRule::TagStatus::kTagged;
    } else if (status == "untagged") {
      rule.tag_status = LifecycleRule::TagStatus::kUntagged;
      ++untagged_rules;
    } else if (status == "any") {
      rule.tag_status = LifecycleRule::TagStatus::kAny;
    } else {
      return PolicyError("tagStatus must be one of tagged, untagged, any");
    }
    auto prefixes = StringList(sel, "tagPrefixList");
    if (!prefixes.ok()) {
      return prefixes.error();
    }
    auto patterns = StringList(sel, "tagPatternList");
    if (!patterns.ok()) {
      return patterns.error();
    }
    rule.tag_prefixes = *prefixes;
    rule.tag_patterns = *patterns;
    if (!rule.tag_prefixes.empty() && !rule.tag_patterns.empty()) {
      return PolicyError("a rule may have tagPrefixList or tagPatternList, not both");
    }
    bool has_tag_filter = !rule.tag_prefixes.empty() || !rule.tag_patterns.empty();
    if (rule.tag_status == LifecycleRule::TagStatus::kTagged && !has_tag_filter) {
      return PolicyError("tagPrefixList or tagPatternList is required when tagStatus is tagged");
    }
    if (rule.tag_status != LifecycleRule::TagStatus::kTagged && has_tag_filter) {
      return PolicyError(
          "tagPrefixList and tagPatternList are only allowed when tagStatus is "
          "tagged");
    }
    for (const auto& pattern : rule.tag_patterns) {
      if (std::count(pattern.begin(), pattern.end(), '*') > 4) {
        return PolicyError("a tag pattern may hold at most 4 wildcards");
      }
    }
    std::string count_type = sel.value("countType", "");
    if (!sel.contains("countNumber") || !sel["countNumber"].is_number_integer() ||
        sel["countNumber"].get<int64_t>() < 1) {
      return PolicyError("countNumber must be a positive integer");
    }
    rule.count_number = sel["countNumber"].get<int64_t>();
    if (count_type == "imageCountMoreThan") {
      rule.count_type = LifecycleRule::CountType::kImageCountMoreThan;
      if (sel.contains("countUnit")) {
        return PolicyError("countUnit is not allowed with imageCountMoreThan");
      }
    } else if (count_type == "sinceImagePushed") {
      rule.count_type = LifecycleRule::CountType::kSinceImagePushed;
      if (sel.value("countUnit", "") != "days") {
        return PolicyError("countUnit must be 'days' with sinceImagePushed");
      }
    } else {
      return PolicyError("countType must be imageCountMoreThan or sinceImagePushed");
    }
    policy.rules.push_back(std::move(rule));
  }
  if (untagged_rules > 1) {
    return PolicyError("only one rule may select untagged images");
  }
  std::sort(policy.rules.begin(), policy.rules.end(),
            [](const LifecycleRule& a, const LifecycleRule& b) { return a.priority < b.priority; });
  for (size_t i = 0; i + 1 < policy.rules.size(); ++i) {
    if (policy.rules[i].tag_status == LifecycleRule::TagStatus::kAny) {
      return PolicyError("a rule with tagStatus any must have the highest rulePriority");
    }
  }
  return policy;
}

std::vector<std::string> ExpiredImages(const LifecyclePolicy& policy,
                                       const std::vector<LifecycleImage>& images, double now) {
  std::set<std::string> expired;
  std::set<std::string> claimed;  // matched by the selection of a higher-priority rule
  for (const auto& rule : policy.rules) {
    std::vector<const LifecycleImage*> selected;
    for (const auto& image : images) {
      if (Matches(rule, image)) {
        selected.push_back(&image);
      }
    }
    // Newest first; ties broken by digest so evaluation is deterministic.
    std::sort(selected.begin(), selected.end(),
              [](const LifecycleImage* a, const LifecycleImage* b) {
                if (a->pushed_at != b->pushed_at) {
                  return a->pushed_at > b->pushed_at;
                }
                return a->digest > b->digest;
              });
    for (size_t i = 0; i < selected.size(); ++i) {
      const LifecycleImage& image = *selected[i];
      bool expire = false;
      if (rule.count_type == LifecycleRule::CountType::kImageCountMoreThan) {
        expire = static_cast<int64_t>(i) >= rule.count_number;
      } else {
        expire = image.pushed_at < now - static_cast<double>(rule.count_number) * 86400.0;
      }
      if (expire && claimed.count(image.digest) == 0) {
        expired.insert(image.digest);
      }
    }
    for (const auto* image : selected) {
      claimed.insert(image->digest);
    }
  }
  return std::vector<std::string>(expired.begin(), expired.end());
}

}  // namespace berth::registry
