#include "logs/filter_pattern.h"

#include <string.h>

namespace berth::logs {

namespace {

bool Contains(std::string_view haystack, const std::string& needle) {
  return ::memmem(haystack.data(), haystack.size(), needle.data(), needle.size()) != nullptr;
}

Error PatternError(std::string message) {
  return ClientError("InvalidParameterException", std::move(message));
}

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

}  // namespace

Result<FilterPattern> FilterPattern::Parse(std::string_view pattern) {
  FilterPattern out;
  size_t i = 0;
  while (i < pattern.size()) {
    while (i < pattern.size() && IsSpace(pattern[i])) {
      ++i;
    }
    if (i == pattern.size()) {
      break;
    }
    const bool first_term = out.MatchesAll();
    char c = pattern[i];
    if (first_term && (c == '{' || c == '[' || c == '%')) {
      return PatternError(
          "Invalid filter pattern: JSON, space-delimited and regular-expression patterns are not "
          "supported");
    }

    // A leading `?` marks an optional term, a leading `-` an excluded one.
    std::vector<std::string>* into = &out.required_;
    if (c == '?') {
      into = &out.any_;
      ++i;
    } else if (c == '-' && i + 1 < pattern.size() && !IsSpace(pattern[i + 1])) {
      into = &out.excluded_;
      ++i;
    }
    if (i == pattern.size() || IsSpace(pattern[i])) {
      return PatternError("Invalid filter pattern: an operator must be followed by a term");
    }

    std::string term;
    if (pattern[i] == '"') {
      ++i;
      bool closed = false;
      while (i < pattern.size()) {
        char ch = pattern[i++];
        if (ch == '\\' && i < pattern.size()) {
          term.push_back(pattern[i++]);
        } else if (ch == '"') {
          closed = true;
          break;
        } else {
          term.push_back(ch);
        }
      }
      if (!closed) {
        return PatternError("Invalid filter pattern: unterminated quoted term");
      }
    } else {
      while (i < pattern.size() && !IsSpace(pattern[i])) {
        term.push_back(pattern[i++]);
      }
    }
    if (term.empty()) {
      continue;  // `""` constrains nothing
    }
    into->push_back(std::move(term));
  }
  return out;
}

bool FilterPattern::Matches(std::string_view message) const {
  for (const auto& term : required_) {
    if (!Contains(message, term)) {
      return false;
    }
  }
  for (const auto& term : excluded_) {
    if (Contains(message, term)) {
      return false;
    }
  }
  if (any_.empty()) {
    return true;
  }
  for (const auto& term : any_) {
    if (Contains(message, term)) {
      return true;
    }
  }
  return false;
}

}  // namespace berth::logs
