#include "registry/names.h"

#include <charconv>
#include <vector>

namespace berth::registry {

namespace {

bool IsLowerAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

bool IsDigit(char c) {
  return c >= '0' && c <= '9';
}

// One path component: [a-z0-9]+(?:[._-][a-z0-9]+)*
bool ValidComponent(std::string_view part) {
  if (part.empty()) {
    return false;
  }
  bool after_separator = true;
  for (char c : part) {
    if (IsLowerAlnum(c)) {
      after_separator = false;
    } else if ((c == '.' || c == '_' || c == '-') && !after_separator) {
      after_separator = true;
    } else {
      return false;
    }
  }
  return !after_separator;
}

std::optional<uint64_t> ParseNumber(std::string_view s) {
  if (s.empty()) {
    return std::nullopt;
  }
  uint64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size()) {
    return std::nullopt;
  }
  return v;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

}  // namespace

bool ValidRepositoryName(std::string_view name) {
  if (name.size() < 2 || name.size() > 256) {
    return false;
  }
  size_t start = 0;
  while (true) {
    size_t slash = name.find('/', start);
    std::string_view part = name.substr(
        start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (!ValidComponent(part)) {
      return false;
    }
    if (slash == std::string_view::npos) {
      return true;
    }
    start = slash + 1;
  }
}

bool ValidTag(std::string_view tag) {
  if (tag.empty() || tag.size() > 128) {
    return false;
  }
  for (size_t i = 0; i < tag.size(); ++i) {
    char c = tag[i];
    bool word = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || IsDigit(c) || c == '_';
    if (word) {
      continue;
    }
    if (i > 0 && (c == '.' || c == '-')) {
      continue;
    }
    return false;
  }
  return true;
}

std::optional<ByteRange> ParseContentRange(std::string_view value) {
  value = Trim(value);
  if (value.substr(0, 6) == "bytes ") {
    value = Trim(value.substr(6));
  } else if (value.substr(0, 6) == "bytes=") {
    value = value.substr(6);
  }
  size_t slash = value.find('/');
  if (slash != std::string_view::npos) {
    value = value.substr(0, slash);
  }
  size_t dash = value.find('-');
  if (dash == std::string_view::npos) {
    return std::nullopt;
  }
  auto first = ParseNumber(value.substr(0, dash));
  auto last = ParseNumber(value.substr(dash + 1));
  if (!first || !last || *last < *first) {
    return std::nullopt;
  }
  return ByteRange{*first, *last};
}

RangeRequest ParseRangeHeader(std::string_view value, uint64_t size) {
  RangeRequest whole;
  value = Trim(value);
  if (value.substr(0, 6) != "bytes=") {
    return whole;
  }
  value = Trim(value.substr(6));
  if (value.find(',') != std::string_view::npos) {
    return whole;
  }
  size_t dash = value.find('-');
  if (dash == std::string_view::npos) {
    return whole;
  }
  std::string_view a = Trim(value.substr(0, dash));
  std::string_view b = Trim(value.substr(dash + 1));
  RangeRequest out;
  out.kind = RangeRequest::Kind::kPartial;
  if (a.empty()) {
    // Suffix range: the last n bytes.
    auto n = ParseNumber(b);
    if (!n) {
      return whole;
    }
    if (*n == 0 || size == 0) {
      out.kind = RangeRequest::Kind::kUnsatisfiable;
      return out;
    }
    uint64_t len = std::min(*n, size);
    out.range = ByteRange{size - len, size - 1};
    return out;
  }
  auto first = ParseNumber(a);
  if (!first) {
    return whole;
  }
  uint64_t last = size == 0 ? 0 : size - 1;
  if (!b.empty()) {
    auto l = ParseNumber(b);
    if (!l || *l < *first) {
      return whole;
    }
    last = std::min(*l, last);
  }
  if (*first >= size) {
    out.kind = RangeRequest::Kind::kUnsatisfiable;
    return out;
  }
  out.range = ByteRange{*first, last};
  return out;
}

std::optional<ImageReference> ParseImageReference(std::string_view reference) {
  if (reference.empty()) {
    return std::nullopt;
  }
  ImageReference out;
  std::string_view rest = reference;
  size_t at = rest.find('@');
  if (at != std::string_view::npos) {
    out.digest = std::string(rest.substr(at + 1));
    rest = rest.substr(0, at);
    if (out.digest.empty()) {
      return std::nullopt;
    }
  }
  size_t slash = rest.find('/');
  if (slash != std::string_view::npos) {
    std::string_view first = rest.substr(0, slash);
    if (first.find('.') != std::string_view::npos || first.find(':') != std::string_view::npos ||
        first == "localhost") {
      out.registry = std::string(first);
      rest = rest.substr(slash + 1);
    }
  }
  size_t colon = rest.rfind(':');
  if (colon != std::string_view::npos && rest.find('/', colon) == std::string_view::npos) {
    out.tag = std::string(rest.substr(colon + 1));
    rest = rest.substr(0, colon);
    if (out.tag.empty()) {
      return std::nullopt;
    }
  }
  if (rest.empty()) {
    return std::nullopt;
  }
  out.repository = std::string(rest);
  if (out.tag.empty() && out.digest.empty()) {
    out.tag = "latest";
  }
  return out;
}

bool IsEcrRegistryHost(std::string_view host) {
  // <account>.dkr.ecr.<region>.amazonaws.com, optionally with .cn.
  if (host.size() < 13 || host[12] != '.') {
    return false;
  }
  for (size_t i = 0; i < 12; ++i) {
    if (!IsDigit(host[i])) {
      return false;
    }
  }
  std::string_view rest = host.substr(13);
  if (rest.substr(0, 8) != "dkr.ecr.") {
    return false;
  }
  rest = rest.substr(8);
  for (std::string_view suffix : {".amazonaws.com", ".amazonaws.com.cn"}) {
    if (rest.size() > suffix.size() && rest.substr(rest.size() - suffix.size()) == suffix) {
      std::string_view region = rest.substr(0, rest.size() - suffix.size());
      return !region.empty() && region.find('.') == std::string_view::npos;
    }
  }
  return false;
}

std::string MapEcrReference(std::string_view reference, std::string_view registry_host) {
  size_t slash = reference.find('/');
  if (slash == std::string_view::npos || !IsEcrRegistryHost(reference.substr(0, slash))) {
    return std::string(reference);
  }
  return std::string(registry_host) + std::string(reference.substr(slash));
}

}  // namespace berth::registry
