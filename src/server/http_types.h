// The request and response values every route of berth's HTTP front sees.
//
// The server parses the request line and headers, picks the route, and then
// either buffers the body (up to the route's limit) or streams it into the
// route's BodySink. Routes answer with a Response that holds its body in
// memory or names a file region to send.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"

namespace berth::http {

struct CaseInsensitiveLess {
  bool operator()(std::string_view a, std::string_view b) const;
  using is_transparent = void;
};

// Header fields by lower-cased-insensitive name; repeated fields are joined with ",".
using Headers = std::map<std::string, std::string, CaseInsensitiveLess>;

struct Request {
  std::string method;     // "GET", "PUT", ...
  std::string target;     // as sent: path and query
  std::string raw_path;   // path as sent, percent-encoding kept
  std::string path;       // percent-decoded path
  std::string raw_query;  // the part after '?', as sent
  std::multimap<std::string, std::string> query;  // decoded parameters
  Headers headers;
  std::string body;  // the buffered body; empty when streamed into a BodySink
  std::string remote_address;
  std::string request_id;  // a UUID, echoed as x-amzn-RequestId

  // The value of a header, or "" when absent.
  std::string Header(std::string_view name) const;
  // The first value of a query parameter.
  std::optional<std::string> Query(std::string_view name) const;
};

struct Response {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // When file_path is set the body is that file's bytes from file_offset,
  // file_length of them (the rest of the file when unset), and `body` is ignored.
  std::string file_path;
  uint64_t file_offset = 0;
  std::optional<uint64_t> file_length;
  // HEAD answers: send Content-Length of this size with no body.
  std::optional<uint64_t> head_length;

  void SetHeader(std::string name, std::string value);
  std::string Header(std::string_view name) const;
};

// Takes a request body piece by piece, for routes whose bodies may be large.
class BodySink {
 public:
  virtual ~BodySink() = default;
  // Consumes the next piece. An error stops the transfer and is answered.
  virtual Status Write(const char* data, size_t size) = 0;
};

// One family of endpoints (the AWS JSON APIs, the registry, internal endpoints).
class Route {
 public:
  virtual ~Route() = default;

  // Whether this route serves a request with this head (the body is not read yet).
  virtual bool Matches(const Request& head) const = 0;

  // The largest body accepted when buffered; larger ones are refused with 413.
  virtual uint64_t MaxBufferedBody(const Request& head) const { return 10u << 20; }

  // Lets the route take the body as a stream. Returning nullptr buffers it;
  // returning an Error answers at once without reading the body.
  virtual Result<std::unique_ptr<BodySink>> OpenBodySink(Request& head) {
    return std::unique_ptr<BodySink>();
  }

  // Answers the request. Runs on a worker thread and may block. `sink` is the
  // sink OpenBodySink returned, after it has taken the whole body.
  virtual Response Serve(Request& request, BodySink* sink) = 0;

  // Renders an error found by the server itself (body too large, a sink's
  // refusal) in this route's protocol.
  virtual Response RenderError(const Request& request, const Error& error);
};

}  // namespace berth::http
