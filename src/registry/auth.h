// Registry credentials: the tokens GetAuthorizationToken hands out and the
// registry accepts as Basic auth, and signed blob download URLs.
//
// A token is "v1.<expiry>.<access key id>.<signature>", the signature being
// an HMAC-SHA256 over the rest with a key kept in the data dir, so tokens
// survive a restart without being stored and cannot be forged without the
// key. Docker-style clients send it as the password of user "AWS".
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"

namespace berth::registry {

class TokenAuthority {
 public:
  // Reads the key at `key_path`, creating it (32 random bytes, mode 0600)
  // when absent.
  static Result<std::unique_ptr<TokenAuthority>> Open(const std::string& key_path);

  // For tests: an authority with a fixed key.
  explicit TokenAuthority(std::string key) : key_(std::move(key)) {}

  // A password valid until `expires`, bound to the caller's access key id.
  std::string Issue(std::chrono::system_clock::time_point expires,
                    const std::string& access_key_id) const;

  enum class Verdict { kValid, kExpired, kInvalid };
  Verdict Verify(std::string_view password, std::chrono::system_clock::time_point now) const;

  // Checks an "Authorization: Basic ..." header value (user AWS, a valid
  // token as password).
  Verdict VerifyBasic(std::string_view header, std::chrono::system_clock::time_point now) const;

  // The signature that lets a plain GET of one blob through until
  // `expires_epoch` (seconds since the epoch).
  std::string SignDownload(std::string_view repository, std::string_view digest,
                           int64_t expires_epoch) const;
  bool VerifyDownload(std::string_view repository, std::string_view digest, int64_t expires_epoch,
                      std::string_view signature, std::chrono::system_clock::time_point now) const;

 private:
  std::string Mac(std::string_view data) const;
  std::string key_;
};

// base64url without padding (RFC 4648 section 5).
std::string Base64Url(std::string_view data);

}  // namespace berth::registry
