#include "server/internal_route.h"

#include <nlohmann/json.hpp>

namespace berth {

http::Response InternalRoute::Serve(http::Request& request, http::BodySink* sink) {
  http::Response r;
  r.SetHeader("Content-Type", "application/json");
  if (request.path == "/_berth/health" && (request.method == "GET" || request.method == "HEAD")) {
    r.status = ready_ ? 200 : 503;
    r.body = nlohmann::json{{"status", ready_ ? "ok" : "starting"}, {"version", version_}}.dump();
    return r;
  }
  r.status = 404;
  r.body = R"({"message":"not found"})";
  return r;
}

}  // namespace berth
