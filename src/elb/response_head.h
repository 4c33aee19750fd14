// SPDX-License-Identifier: Apache-2.0
// A lean reader for the response heads targets send, for the proxy's common
// case: a Content-Length (or no) body and at most "Connection: keep-alive"
// among the hop-by-hop fields. Such a head can go to the client as it came,
// without being parsed field by field into a general structure. Anything
// else (chunked or other transfer codings, bodies delimited by the end of
// the connection, interim 1xx answers, folded lines) is left to Beast's full
// parser.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace berth::elb {

struct ResponseHead {
  size_t size = 0;  // bytes of the head, through the blank line
  int version = 11;
  int status = 0;
  bool has_content_length = false;
  uint64_t content_length = 0;
  bool connection_close = false;
  bool connection_keep_alive = false;
  // No hop-by-hop field other than a "Connection: keep-alive" line.
  bool passes_as_is = true;
};

enum class HeadParse : uint8_t {
  kNeedMore,     // the head has not fully arrived
  kDone,         // `head` describes it
  kUnsupported,  // valid perhaps, but for the full parser
  kInvalid,      // not a response head
};

/// Reads the response head at the start of `data`. Heads longer than
/// `limit` bytes are invalid.
HeadParse ParseResponseHead(std::string_view data, size_t limit, ResponseHead& head);

/// Appends the status line and the end-to-end fields of a head ParseResponseHead
/// accepted (every line but the hop-by-hop ones and the final blank line).
void AppendEndToEnd(std::string_view head, std::string& out);

}  // namespace berth::elb
