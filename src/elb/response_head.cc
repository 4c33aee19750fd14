// SPDX-License-Identifier: Apache-2.0
#include "elb/response_head.h"

#include <algorithm>
#include <array>
#include <cstring>

namespace berth::elb {

namespace {

char Lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool IEquals(std::string_view a, std::string_view lower) {
  if (a.size() != lower.size()) {
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    if (Lower(a[i]) != lower[i]) {
      return false;
    }
  }
  return true;
}

// RFC 9110 token characters, by byte value.
constexpr auto kTokenChar = [] {
  std::array<bool, 256> table{};
  for (int c = '0'; c <= '9'; ++c) {
    table[c] = true;
  }
  for (int c = 'a'; c <= 'z'; ++c) {
    table[c] = true;
    table[c - 'a' + 'A'] = true;
  }
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) {
    table[static_cast<unsigned char>(c)] = true;
  }
  return table;
}();

std::string_view TrimSpace(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

enum class Hop : uint8_t { kNo, kConnection, kOther };

Hop HopKind(std::string_view name) {
  switch (name.size()) {
    case 2:
      return IEquals(name, "te") ? Hop::kOther : Hop::kNo;
    case 7:
      return IEquals(name, "trailer") || IEquals(name, "upgrade") ? Hop::kOther : Hop::kNo;
    case 10:
      if (IEquals(name, "connection")) {
        return Hop::kConnection;
      }
      return IEquals(name, "keep-alive") ? Hop::kOther : Hop::kNo;
    case 16:
      return IEquals(name, "proxy-connection") ? Hop::kOther : Hop::kNo;
    default:
      return Hop::kNo;
  }
}

// Applies a Connection field's comma-separated options.
void ReadConnection(std::string_view value, ResponseHead& head) {
  bool only_keep_alive = true;
  size_t pos = 0;
  while (pos <= value.size()) {
    size_t comma = value.find(',', pos);
    std::string_view token =
        TrimSpace(value.substr(pos, comma == std::string_view::npos ? value.npos : comma - pos));
    if (IEquals(token, "close")) {
      head.connection_close = true;
      only_keep_alive = false;
    } else if (IEquals(token, "keep-alive")) {
      head.connection_keep_alive = true;
    } else if (!token.empty()) {
      only_keep_alive = false;  // it names more fields to drop
    }
    if (comma == std::string_view::npos) {
      break;
    }
    pos = comma + 1;
  }
  if (!only_keep_alive) {
    head.passes_as_is = false;
  }
}

bool ReadContentLength(std::string_view value, ResponseHead& head) {
  if (value.empty() || value.size() > 19) {
    return false;
  }
  uint64_t n = 0;
  for (char c : value) {
    if (c < '0' || c > '9') {
      return false;
    }
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  if (head.has_content_length && head.content_length != n) {
    return false;  // conflicting lengths: the answer cannot be framed safely
  }
  head.has_content_length = true;
  head.content_length = n;
  return true;
}

}  // namespace

HeadParse ParseResponseHead(std::string_view data, size_t limit, ResponseHead& head) {
  head = ResponseHead{};
  const char* begin = data.data();
  const size_t size = std::min(data.size(), limit);

  // One pass over the lines: each ends in CRLF; an empty one ends the head.
  size_t pos = 0;
  bool status_line = true;
  for (;;) {
    const void* found = std::memchr(begin + pos, '\n', size - pos);
    if (found == nullptr) {
      return data.size() >= limit ? HeadParse::kInvalid : HeadParse::kNeedMore;
    }
    size_t nl = static_cast<size_t>(static_cast<const char*>(found) - begin);
    if (nl == pos || begin[nl - 1] != '\r') {
      return HeadParse::kInvalid;  // a bare LF
    }
    std::string_view line(begin + pos, nl - 1 - pos);
    pos = nl + 1;
    if (status_line) {
      status_line = false;
      // HTTP/1.x SP 3DIGIT [SP reason]
      if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." ||
          (line[7] != '0' && line[7] != '1') || line[8] != ' ' || line[9] < '1' ||
          line[9] > '5' || line[10] < '0' || line[10] > '9' || line[11] < '0' ||
          line[11] > '9' || (line.size() > 12 && line[12] != ' ')) {
        return HeadParse::kInvalid;
      }
      head.version = line[7] == '1' ? 11 : 10;
      head.status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
      if (head.status < 200) {
        return HeadParse::kUnsupported;  // interim answers
      }
      continue;
    }
    if (line.empty()) {
      break;
    }
    if (line[0] == ' ' || line[0] == '\t') {
      return HeadParse::kUnsupported;  // obsolete line folding
    }
    size_t colon = 0;
    while (colon < line.size() && kTokenChar[static_cast<unsigned char>(line[colon])]) {
      ++colon;
    }
    if (colon == 0 || colon == line.size() || line[colon] != ':') {
      return HeadParse::kInvalid;
    }
    std::string_view name = line.substr(0, colon);
    std::string_view value = TrimSpace(line.substr(colon + 1));
    if (std::memchr(value.data(), '\r', value.size()) != nullptr ||
        std::memchr(value.data(), '\0', value.size()) != nullptr) {
      return HeadParse::kInvalid;
    }
    if (name.size() == 14 && IEquals(name, "content-length")) {
      if (!ReadContentLength(value, head)) {
        return HeadParse::kInvalid;
      }
      continue;
    }
    if (name.size() == 17 && IEquals(name, "transfer-encoding")) {
      return HeadParse::kUnsupported;
    }
    switch (HopKind(name)) {
      case Hop::kConnection:
        ReadConnection(value, head);
        break;
      case Hop::kOther:
        head.passes_as_is = false;
        break;
      case Hop::kNo:
        break;
    }
  }
  head.size = pos;
  bool bodiless = head.status == 204 || head.status == 304;
  if (!head.has_content_length && !bodiless) {
    return HeadParse::kUnsupported;  // the body runs to the end of the connection
  }
  return HeadParse::kDone;
}

void AppendEndToEnd(std::string_view head, std::string& out) {
  std::string_view text = head.substr(0, head.size() - 2);
  size_t eol = text.find("\r\n");
  out.append(text.substr(0, eol + 2));
  for (size_t pos = eol + 2; pos < text.size();) {
    size_t next = text.find("\r\n", pos);
    std::string_view line = text.substr(pos, next + 2 - pos);
    pos = next + 2;
    size_t colon = line.find(':');
    if (HopKind(line.substr(0, colon)) == Hop::kNo) {
      out.append(line);
    }
  }
}

}  // namespace berth::elb
