// CloudWatch Logs filter patterns for unstructured events (FilterLogEvents).
//
// Supported: plain terms, which must all occur in the message (`ERROR timeout`);
// double-quoted phrases, matched as one term (`"Internal Server Error"`);
// optional terms prefixed with `?`, of which at least one must occur
// (`?ERROR ?WARN`); and excluded terms prefixed with `-`, none of which may
// occur (`ERROR -retrying`). Matching is by case-sensitive substring. An empty
// pattern matches every event.
//
// LIMITATION: JSON patterns (`{ $.level = "error" }`), space-delimited patterns
// (`[ip, user, ...]`) and regular expressions (`%...%`) are not supported; Parse
// rejects them with InvalidParameterException.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace berth::logs {

class FilterPattern {
 public:
  /// Parses `pattern`. Errors are InvalidParameterException.
  static Result<FilterPattern> Parse(std::string_view pattern);

  /// True when the pattern is empty and so matches everything.
  bool MatchesAll() const { return required_.empty() && any_.empty() && excluded_.empty(); }

  bool Matches(std::string_view message) const;

 private:
  std::vector<std::string> required_;
  std::vector<std::string> any_;
  std::vector<std::string> excluded_;
};

}  // namespace berth::logs
