#include "api/sigv4.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <algorithm>
#include <ctime>
#include <sstream>
#include <vector>

#include "server/http_server.h"

namespace berth::api {

void KeyRing::Add(const std::string& access_key_id, const std::string& secret) {
  std::lock_guard lock(mu_);
  secrets_[access_key_id] = secret;
}

std::optional<std::string> KeyRing::SecretFor(const std::string& access_key_id) const {
  std::lock_guard lock(mu_);
  auto it = secrets_.find(access_key_id);
  if (it == secrets_.end()) {
    return std::nullopt;
  }
  return it->second;
}

size_t KeyRing::size() const {
  std::lock_guard lock(mu_);
  return secrets_.size();
}

std::string Hex(std::string_view bytes) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

std::string Sha256Hex(std::string_view data) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), md);
  return Hex(std::string_view(reinterpret_cast<char*>(md), sizeof(md)));
}

std::string HmacSha256(std::string_view key, std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), md, &len);
  return std::string(reinterpret_cast<char*>(md), len);
}

std::string UriEncode(std::string_view s, bool keep_slash) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '_' || c == '.' || c == '~';
    if (unreserved || (keep_slash && c == '/')) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

namespace {

std::string Trim(std::string_view v) {
  // Trims and collapses runs of spaces, as the canonical header form requires.
  std::string out;
  bool in_space = false;
  for (char c : v) {
    if (c == ' ' || c == '\t') {
      in_space = !out.empty();
      continue;
    }
    if (in_space) {
      out.push_back(' ');
      in_space = false;
    }
    out.push_back(c);
  }
  return out;
}

std::string CanonicalQuery(std::string_view raw_query) {
  std::vector<std::pair<std::string, std::string>> pairs;
  for (auto& [k, v] : http::ParseQueryString(raw_query, false)) {
    pairs.emplace_back(UriEncode(k, false), UriEncode(v, false));
  }
  std::sort(pairs.begin(), pairs.end());
  std::string out;
  for (auto& [k, v] : pairs) {
    if (!out.empty()) {
      out.push_back('&');
    }
    out += k;
    out.push_back('=');
    out += v;
  }
  return out;
}

std::vector<std::string> Split(std::string_view s, char sep) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (true) {
    size_t next = s.find(sep, pos);
    out.emplace_back(s.substr(pos, next == s.npos ? s.npos : next - pos));
    if (next == s.npos) {
      break;
    }
    pos = next + 1;
  }
  return out;
}

std::string FormatAmzDate(std::chrono::system_clock::time_point t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

std::optional<std::chrono::system_clock::time_point> ParseAmzDate(const std::string& s) {
  std::tm tm{};
  const char* end = strptime(s.c_str(), "%Y%m%dT%H%M%SZ", &tm);
  if (end == nullptr || *end != '\0') {
    // Some clients send an RFC 1123 Date header instead.
    end = strptime(s.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (end == nullptr || *end != '\0') {
      return std::nullopt;
    }
  }
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

Error AuthError(AuthErrorStyle style, const std::string& json_code, const std::string& query_code,
                const std::string& message, int query_status = 403) {
  if (style == AuthErrorStyle::kQuery) {
    return Error{query_status, query_code, message, {}};
  }
  return Error{400, json_code, message, {}};
}

}  // namespace

std::string CanonicalRequest(const http::Request& request,
                             const std::vector<std::string>& signed_headers,
                             const std::string& payload_hash) {
  std::string out;
  out += request.method;
  out += '\n';
  std::string path = request.raw_path.empty() ? "/" : request.raw_path;
  out += UriEncode(path, true);
  out += '\n';
  out += CanonicalQuery(request.raw_query);
  out += '\n';
  for (const auto& h : signed_headers) {
    out += h;
    out += ':';
    out += Trim(request.Header(h));
    out += '\n';
  }
  out += '\n';
  for (size_t i = 0; i < signed_headers.size(); ++i) {
    if (i > 0) {
      out += ';';
    }
    out += signed_headers[i];
  }
  out += '\n';
  out += payload_hash;
  return out;
}

std::string DeriveSigningKey(std::string_view secret, std::string_view date,
                             std::string_view region, std::string_view service) {
  std::string k = HmacSha256("AWS4" + std::string(secret), date);
  k = HmacSha256(k, region);
  k = HmacSha256(k, service);
  return HmacSha256(k, "aws4_request");
}

Result<SignedIdentity> VerifySigV4(const http::Request& request, const KeyRing& keys,
                                   const VerifyOptions& options) {
  const auto style = options.style;
  std::string auth = request.Header("Authorization");
  if (auth.empty()) {
    return AuthError(style, "MissingAuthenticationTokenException", "MissingAuthenticationToken",
                     "Missing Authentication Token");
  }
  const std::string kAlgorithm = "AWS4-HMAC-SHA256";
  if (auth.rfind(kAlgorithm + " ", 0) != 0) {
    return AuthError(style, "IncompleteSignatureException", "IncompleteSignature",
                     "Unsupported authorization type: only AWS4-HMAC-SHA256 is accepted.", 400);
  }
  std::string credential;
  std::string signed_headers_field;
  std::string signature;
  for (auto& part : Split(std::string_view(auth).substr(kAlgorithm.size() + 1), ',')) {
    std::string p = Trim(part);
    size_t eq = p.find('=');
    if (eq == std::string::npos) {
      continue;
    }
    std::string name = p.substr(0, eq);
    std::string value = p.substr(eq + 1);
    if (name == "Credential") {
      credential = value;
    } else if (name == "SignedHeaders") {
      signed_headers_field = value;
    } else if (name == "Signature") {
      signature = value;
    }
  }
  if (credential.empty() || signed_headers_field.empty() || signature.empty()) {
    std::string missing = credential.empty()            ? "Credential"
                          : signed_headers_field.empty() ? "SignedHeaders"
                                                         : "Signature";
    return AuthError(style, "IncompleteSignatureException", "IncompleteSignature",
                     "Authorization header requires '" + missing +
                         "' parameter. Authorization=" + auth.substr(0, kAlgorithm.size()),
                     400);
  }
  auto scope = Split(credential, '/');
  if (scope.size() != 5 || scope[4] != "aws4_request") {
    return AuthError(style, "IncompleteSignatureException", "IncompleteSignature",
                     "Credential should be scoped to a valid region, not '" +
                         (scope.size() > 2 ? scope[2] : std::string()) + "'. ",
                     400);
  }
  const std::string& akid = scope[0];
  const std::string& date = scope[1];
  const std::string& region = scope[2];
  const std::string& service = scope[3];

  auto secret = keys.SecretFor(akid);
  if (!secret) {
    return AuthError(style, "UnrecognizedClientException", "InvalidClientTokenId",
                     "The security token included in the request is invalid.");
  }

  std::string amz_date = request.Header("X-Amz-Date");
  if (amz_date.empty()) {
    amz_date = request.Header("Date");
  }
  auto when = ParseAmzDate(amz_date);
  if (!when) {
    return AuthError(style, "IncompleteSignatureException", "IncompleteSignature",
                     "Authorization header requires existence of either a 'X-Amz-Date' or a "
                     "'Date' header. Authorization=" +
                         auth.substr(0, kAlgorithm.size()),
                     400);
  }
  std::string canonical_date = FormatAmzDate(*when);
  if (canonical_date.substr(0, 8) != date) {
    return AuthError(style, "InvalidSignatureException", "SignatureDoesNotMatch",
                     "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of "
                     "date from HTTP: '" +
                         date + "' != '" + canonical_date.substr(0, 8) + "', from '" +
                         canonical_date + "'.");
  }
  auto skew = options.now - *when;
  if (skew > options.max_skew) {
    return AuthError(style, "InvalidSignatureException", "SignatureDoesNotMatch",
                     "Signature expired: " + canonical_date + " is now earlier than " +
                         FormatAmzDate(options.now - options.max_skew) + " (" +
                         FormatAmzDate(options.now) + " - 15 min.)");
  }
  if (-skew > options.max_skew) {
    return AuthError(style, "InvalidSignatureException", "SignatureDoesNotMatch",
                     "Signature not yet current: " + canonical_date + " is still later than " +
                         FormatAmzDate(options.now + options.max_skew) + " (" +
                         FormatAmzDate(options.now) + " + 15 min.)");
  }

  auto signed_headers = Split(signed_headers_field, ';');
  if (std::find(signed_headers.begin(), signed_headers.end(), "host") == signed_headers.end()) {
    return AuthError(style, "InvalidSignatureException", "SignatureDoesNotMatch",
                     "'Host' must be a 'SignedHeader' in the AWS Authorization.");
  }

  std::string payload_hash = request.Header("X-Amz-Content-Sha256");
  if (payload_hash.empty() || payload_hash.size() != 64) {
    payload_hash = Sha256Hex(request.body);
  } else if (payload_hash != Sha256Hex(request.body)) {
    return AuthError(style, "InvalidSignatureException", "SignatureDoesNotMatch",
                     "The provided 'x-amz-content-sha256' header does not match what was "
                     "computed.");
  }

  std::string canonical = CanonicalRequest(request, signed_headers, payload_hash);
  std::string string_to_sign = kAlgorithm + "\n" + amz_date + "\n" + date + "/" + region + "/" +
                               service + "/aws4_request\n" + Sha256Hex(canonical);
  std::string key = DeriveSigningKey(*secret, date, region, service);
  std::string expected = Hex(HmacSha256(key, string_to_sign));
  if (expected.size() != signature.size() ||
      CRYPTO_memcmp(expected.data(), signature.data(), expected.size()) != 0) {
    return AuthError(style, "InvalidSignatureException", "SignatureDoesNotMatch",
                     "The request signature we calculated does not match the signature you "
                     "provided. Check your AWS Secret Access Key and signing method. Consult the "
                     "service documentation for details.");
  }
  return SignedIdentity{akid, region, service};
}

void SignSigV4(http::Request& request, const std::string& access_key_id,
               const std::string& secret, const std::string& region, const std::string& service,
               std::chrono::system_clock::time_point now) {
  std::string amz_date = FormatAmzDate(now);
  request.headers["X-Amz-Date"] = amz_date;
  std::vector<std::string> signed_headers;
  for (auto& [name, value] : request.headers) {
    std::string lower;
    for (char c : name) {
      lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    }
    if (lower == "authorization" || lower == "user-agent" || lower == "content-length") {
      continue;
    }
    signed_headers.push_back(lower);
  }
  std::sort(signed_headers.begin(), signed_headers.end());
  std::string payload_hash = Sha256Hex(request.body);
  std::string canonical = CanonicalRequest(request, signed_headers, payload_hash);
  std::string date = amz_date.substr(0, 8);
  std::string scope = date + "/" + region + "/" + service + "/aws4_request";
  std::string string_to_sign =
      "AWS4-HMAC-SHA256\n" + amz_date + "\n" + scope + "\n" + Sha256Hex(canonical);
  std::string signature =
      Hex(HmacSha256(DeriveSigningKey(secret, date, region, service), string_to_sign));
  std::string joined;
  for (size_t i = 0; i < signed_headers.size(); ++i) {
    joined += (i ? ";" : "") + signed_headers[i];
  }
  request.headers["Authorization"] = "AWS4-HMAC-SHA256 Credential=" + access_key_id + "/" + scope +
                                     ", SignedHeaders=" + joined + ", Signature=" + signature;
}

}  // namespace berth::api
