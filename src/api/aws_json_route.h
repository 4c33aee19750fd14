// The route serving the AWS JSON 1.1 services (ECS, ECR, CloudWatch Logs).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "api/json_service.h"
#include "api/sigv4.h"
#include "server/http_types.h"

namespace berth::api {

struct AccountInfo {
  std::string account_id = "000000000000";
  std::string region = "us-east-1";
};

class AwsJsonRoute : public http::Route {
 public:
  AwsJsonRoute(std::shared_ptr<const KeyRing> keys, AccountInfo account);

  // `missing_code` is the error type the service answers a missing required
  // member with.
  void AddService(std::shared_ptr<JsonService> service, std::string missing_code);

  bool Matches(const http::Request& head) const override;
  http::Response Serve(http::Request& request, http::BodySink* sink) override;
  http::Response RenderError(const http::Request& request, const Error& error) override;

 private:
  struct Entry {
    std::shared_ptr<JsonService> service;
    std::string missing_code;
  };
  std::shared_ptr<const KeyRing> keys_;
  AccountInfo account_;
  std::vector<Entry> services_;
};

// The AWS JSON error body and headers for `error`.
http::Response JsonErrorResponse(const Error& error, const std::string& request_id);

}  // namespace berth::api
