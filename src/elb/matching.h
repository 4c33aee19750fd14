// SPDX-License-Identifier: Apache-2.0
// The small matching languages of ELBv2: rule patterns with '*' and '?', and
// health check matchers such as "200", "200,202" or "200-299".
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace berth::elb {

/// Whether `text` matches `pattern`, where '*' matches any run of characters
/// (also none) and '?' exactly one. Host headers compare case-insensitively,
/// paths exactly.
bool GlobMatch(std::string_view pattern, std::string_view text, bool ignore_case);

/// An inclusive range of HTTP status codes.
struct CodeRange {
  int low = 0;
  int high = 0;
};

/// Parses a matcher ("200", "200,202", "200-299", "200,300-310"). Codes must
/// lie within [min_code, max_code]. ValidationError otherwise.
Result<std::vector<CodeRange>> ParseHttpCodes(const std::string& spec, int min_code = 200,
                                              int max_code = 499);

bool CodeMatches(const std::vector<CodeRange>& ranges, int code);

}  // namespace berth::elb
