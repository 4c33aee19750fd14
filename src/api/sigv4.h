// AWS Signature Version 4: verifying the Authorization header of a request.
//
// berth checks requests exactly as AWS does: it rebuilds the canonical
// request from what arrived, derives the signing key from the secret of the
// access key named in the credential scope, and compares signatures in
// constant time. The date must be within 15 minutes of the server's clock.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"
#include "server/http_types.h"

namespace berth::api {

// The access keys berth accepts, by access key id.
class KeyRing {
 public:
  void Add(const std::string& access_key_id, const std::string& secret);
  std::optional<std::string> SecretFor(const std::string& access_key_id) const;
  size_t size() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::string> secrets_;
};

// What a verified signature tells about the caller.
struct SignedIdentity {
  std::string access_key_id;
  std::string region;
  std::string service;
};

// Which protocol's error codes to answer with: the JSON services use
// exception names, the Query services short codes and 403s.
enum class AuthErrorStyle { kJson, kQuery };

struct VerifyOptions {
  std::chrono::system_clock::time_point now = std::chrono::system_clock::now();
  std::chrono::seconds max_skew = std::chrono::minutes(15);
  AuthErrorStyle style = AuthErrorStyle::kJson;
};

Result<SignedIdentity> VerifySigV4(const http::Request& request, const KeyRing& keys,
                                   const VerifyOptions& options = {});

// Building blocks, exposed for tests and for berth's own clients.
std::string Sha256Hex(std::string_view data);
std::string HmacSha256(std::string_view key, std::string_view data);
std::string Hex(std::string_view bytes);
// RFC 3986 encoding of everything except unreserved characters (and '/' when keep_slash).
std::string UriEncode(std::string_view s, bool keep_slash);
std::string CanonicalRequest(const http::Request& request, const std::vector<std::string>& signed_headers,
                             const std::string& payload_hash);
std::string DeriveSigningKey(std::string_view secret, std::string_view date, std::string_view region,
                             std::string_view service);

// Signs `request` in place (adds X-Amz-Date and Authorization), for berth's
// own clients and for tests.
void SignSigV4(http::Request& request, const std::string& access_key_id, const std::string& secret,
               const std::string& region, const std::string& service,
               std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

}  // namespace berth::api
