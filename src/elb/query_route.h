// SPDX-License-Identifier: Apache-2.0
// The route serving AWS Query protocol services (ELBv2).
//
// A Query call is `POST /` with a form-encoded body naming the `Action` and
// the `Version`. The route authenticates the request with SigV4 (answering
// auth failures the Query way: InvalidClientTokenId, SignatureDoesNotMatch,
// 403), decodes the form into the operation's input JSON with the botocore
// model, checks the model's constraints, calls the handler and renders its
// JSON (or its Error) as XML.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "api/aws_json_route.h"
#include "api/json_service.h"
#include "api/sigv4.h"
#include "server/http_types.h"

namespace berth::elb {

/// One Query service: its model and its operations' handlers (the same
/// JSON-in, JSON-out handlers the JSON 1.1 services use).
class QueryService {
 public:
  /// `model_name` names the embedded botocore model ("elbv2"); the API
  /// version, XML namespace and signing name come from its metadata.
  explicit QueryService(std::string model_name);

  void Add(const std::string& operation, api::JsonHandler handler);

  const std::string& model_name() const { return model_name_; }
  const std::string& version() const { return version_; }
  const std::string& signing_name() const { return signing_name_; }
  const std::string& xml_namespace() const { return xml_namespace_; }
  const api::JsonHandler* Find(const std::string& operation) const;

 private:
  std::string model_name_;
  std::string version_;
  std::string signing_name_;
  std::string xml_namespace_;
  std::map<std::string, api::JsonHandler> handlers_;
};

class QueryRoute : public http::Route {
 public:
  QueryRoute(std::shared_ptr<const api::KeyRing> keys, api::AccountInfo account);

  void AddService(std::shared_ptr<QueryService> service);

  /// Form-encoded POSTs to "/" without an X-Amz-Target header.
  bool Matches(const http::Request& head) const override;
  uint64_t MaxBufferedBody(const http::Request& head) const override { return 1u << 20; }
  http::Response Serve(http::Request& request, http::BodySink* sink) override;
  http::Response RenderError(const http::Request& request, const Error& error) override;

 private:
  const QueryService* ServiceFor(const std::string& version, const std::string& scope) const;

  std::shared_ptr<const api::KeyRing> keys_;
  api::AccountInfo account_;
  std::vector<std::shared_ptr<QueryService>> services_;
};

}  // namespace berth::elb
