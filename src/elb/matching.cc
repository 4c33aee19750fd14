// SPDX-License-Identifier: Apache-2.0
#include "elb/matching.h"

#include <cstdlib>

namespace berth::elb {

namespace {

char Fold(char c, bool ignore_case) {
  return ignore_case && c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

Result<int> ParseCode(const std::string& text, const std::string& spec, int min_code,
                      int max_code) {
  char* end = nullptr;
  long v = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || v < min_code || v > max_code) {
    return ClientError("ValidationError", "Health check matcher HTTP code '" + spec +
                                              "' must be codes or ranges of codes from " +
                                              std::to_string(min_code) + " to " +
                                              std::to_string(max_code));
  }
  return static_cast<int>(v);
}

}  // namespace

bool GlobMatch(std::string_view pattern, std::string_view text, bool ignore_case) {
  // Iterative matching with one backtrack point: the last '*' seen and the
  // text position it currently absorbs up to. Linear in practice, never
  // exponential.
  size_t p = 0;
  size_t t = 0;
  size_t star = std::string_view::npos;
  size_t star_t = 0;
  while (t < text.size()) {
    if (p < pattern.size() &&
        (pattern[p] == '?' || Fold(pattern[p], ignore_case) == Fold(text[t], ignore_case))) {
      ++p;
      ++t;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      star_t = t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++star_t;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') {
    ++p;
  }
  return p == pattern.size();
}

Result<std::vector<CodeRange>> ParseHttpCodes(const std::string& spec, int min_code,
                                              int max_code) {
  std::vector<CodeRange> out;
  size_t pos = 0;
  while (pos <= spec.size()) {
    size_t comma = spec.find(',', pos);
    std::string part = spec.substr(pos, comma == std::string::npos ? std::string::npos
                                                                    : comma - pos);
    size_t dash = part.find('-');
    CodeRange range;
    auto low = ParseCode(part.substr(0, dash), spec, min_code, max_code);
    if (!low.ok()) {
      return low.error();
    }
    range.low = range.high = *low;
    if (dash != std::string::npos) {
      auto high = ParseCode(part.substr(dash + 1), spec, min_code, max_code);
      if (!high.ok()) {
        return high.error();
      }
      range.high = *high;
      if (range.high < range.low) {
        return ClientError("ValidationError", "Health check matcher HTTP code range '" + part +
                                                  "' must go from the lower to the higher code");
      }
    }
    out.push_back(range);
    if (comma == std::string::npos) {
      break;
    }
    pos = comma + 1;
  }
  return out;
}

bool CodeMatches(const std::vector<CodeRange>& ranges, int code) {
  for (const auto& r : ranges) {
    if (code >= r.low && code <= r.high) {
      return true;
    }
  }
  return false;
}

}  // namespace berth::elb
