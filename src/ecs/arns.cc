// SPDX-License-Identifier: Apache-2.0
#include "ecs/arns.h"

#include <cctype>
#include <cstdint>
#include <vector>

namespace berth::ecs {

namespace {

std::vector<std::string> Split(const std::string& s, char sep, size_t max_parts) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (parts.size() + 1 < max_parts) {
    size_t at = s.find(sep, start);
    if (at == std::string::npos) {
      break;
    }
    parts.push_back(s.substr(start, at - start));
    start = at + 1;
  }
  parts.push_back(s.substr(start));
  return parts;
}

bool IsHexId(const std::string& s) {
  if (s.size() != 32) {
    return false;
  }
  for (char c : s) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::string EcsArn(const std::string& region, const std::string& account,
                   const std::string& resource) {
  return "arn:aws:ecs:" + region + ":" + account + ":" + resource;
}

std::optional<EcsArnParts> ParseEcsArn(const std::string& arn) {
  auto parts = Split(arn, ':', 6);
  if (parts.size() != 6 || parts[0] != "arn" || parts[1].rfind("aws", 0) != 0 ||
      parts[2] != "ecs") {
    return std::nullopt;
  }
  size_t slash = parts[5].find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == parts[5].size()) {
    return std::nullopt;
  }
  return EcsArnParts{parts[3], parts[4], parts[5].substr(0, slash), parts[5].substr(slash + 1)};
}

std::optional<TaskRef> ParseTaskRef(const std::string& ref) {
  if (ref.rfind("arn:", 0) != 0) {
    if (!IsHexId(ref)) {
      return std::nullopt;
    }
    return TaskRef{"", ref};
  }
  auto arn = ParseEcsArn(ref);
  if (!arn || arn->resource_type != "task") {
    return std::nullopt;
  }
  size_t slash = arn->resource_id.rfind('/');
  if (slash == std::string::npos) {
    return TaskRef{"", arn->resource_id};
  }
  return TaskRef{arn->resource_id.substr(0, slash), arn->resource_id.substr(slash + 1)};
}

std::optional<TaskDefinitionRef> ParseTaskDefinitionRef(const std::string& ref) {
  std::string text = ref;
  if (ref.rfind("arn:", 0) == 0) {
    auto arn = ParseEcsArn(ref);
    if (!arn || arn->resource_type != "task-definition") {
      return std::nullopt;
    }
    text = arn->resource_id;
  }
  TaskDefinitionRef out;
  size_t colon = text.find(':');
  out.family = text.substr(0, colon);
  if (!IsEcsName(out.family)) {
    return std::nullopt;
  }
  if (colon != std::string::npos) {
    std::string rev = text.substr(colon + 1);
    if (rev.empty() || rev.size() > 9) {
      return std::nullopt;
    }
    for (char c : rev) {
      if (!std::isdigit(static_cast<unsigned char>(c))) {
        return std::nullopt;
      }
    }
    out.revision = std::stoll(rev);
    if (out.revision <= 0) {
      return std::nullopt;
    }
  }
  return out;
}

bool IsEcsName(const std::string& name) {
  if (name.empty() || name.size() > 255) {
    return false;
  }
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') {
      return false;
    }
  }
  return true;
}

}  // namespace berth::ecs
