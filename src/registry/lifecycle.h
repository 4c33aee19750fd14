// ECR lifecycle policies: parsing, the validation rules PutLifecyclePolicy
// applies, and the evaluation the collector runs to expire images.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace berth::registry {

struct LifecycleRule {
  enum class TagStatus { kTagged, kUntagged, kAny };
  enum class CountType { kImageCountMoreThan, kSinceImagePushed };

  int64_t priority = 0;
  TagStatus tag_status = TagStatus::kAny;
  std::vector<std::string> tag_prefixes;  // all must match some tag of the image
  std::vector<std::string> tag_patterns;  // '*' wildcards; all must match some tag
  CountType count_type = CountType::kImageCountMoreThan;
  int64_t count_number = 0;  // images to keep, or days since push
};

struct LifecyclePolicy {
  std::vector<LifecycleRule> rules;  // sorted by priority, lowest (first evaluated) first
};

// Parses and validates a policy document. Errors are InvalidParameterException
// with the reason, as PutLifecyclePolicy answers.
Result<LifecyclePolicy> ParseLifecyclePolicy(std::string_view text);

struct LifecycleImage {
  std::string digest;
  std::vector<std::string> tags;
  double pushed_at = 0;  // seconds since the epoch
};

// The digests the policy expires at time `now` (seconds since the epoch).
// As in ECR: rules apply in priority order; an image is expired by at most
// one rule; an image that matches the tag selection of a rule is never
// expired by a rule of lower priority, though it still counts towards that
// rule's image count; older images expire before newer ones.
std::vector<std::string> ExpiredImages(const LifecyclePolicy& policy,
                                       const std::vector<LifecycleImage>& images, double now);

// Whether `tag` matches `pattern`, where '*' matches any run of characters.
bool TagPatternMatches(std::string_view pattern, std::string_view tag);

}  // namespace berth::registry
