// berth's own endpoints under /_berth/ (health and readiness).
#pragma once

#include <atomic>
#include <string>

#include "server/http_types.h"

namespace berth {

class InternalRoute : public http::Route {
 public:
  explicit InternalRoute(std::string version) : version_(std::move(version)) {}

  void SetReady(bool ready) { ready_ = ready; }

  bool Matches(const http::Request& head) const override {
    return head.path.rfind("/_berth/", 0) == 0;
  }
  http::Response Serve(http::Request& request, http::BodySink* sink) override;

 private:
  std::string version_;
  std::atomic<bool> ready_{false};
};

}  // namespace berth
