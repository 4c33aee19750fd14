#include "registry/digest.h"

#include <openssl/evp.h>

#include <stdexcept>

namespace berth::registry {

namespace {

bool IsLowerHex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

bool IsAlgorithmChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

bool IsAlgorithmSeparator(char c) {
  return c == '+' || c == '.' || c == '_' || c == '-';
}

bool IsEncodedChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '=' ||
         c == '_' || c == '-';
}

Error DigestInvalid(std::string message, std::string_view text) {
  return Error{400, "DIGEST_INVALID", std::move(message), std::string(text)};
}

const EVP_MD* Sha256Md() {
  // Fetched once: implicit fetches on every init cost more than hashing a
  // small manifest.
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md != nullptr ? md : EVP_sha256();
}

}  // namespace

bool LooksLikeDigest(std::string_view text) {
  size_t colon = text.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 >= text.size()) {
    return false;
  }
  std::string_view algorithm = text.substr(0, colon);
  // algorithm-component (algorithm-separator algorithm-component)*
  bool expect_component = true;
  for (char c : algorithm) {
    if (IsAlgorithmChar(c)) {
      expect_component = false;
    } else if (IsAlgorithmSeparator(c) && !expect_component) {
      expect_component = true;
    } else {
      return false;
    }
  }
  if (expect_component) {
    return false;
  }
  for (char c : text.substr(colon + 1)) {
    if (!IsEncodedChar(c)) {
      return false;
    }
  }
  return true;
}

Status ValidateDigest(std::string_view text) {
  if (!LooksLikeDigest(text)) {
    return DigestInvalid("invalid digest: " + std::string(text), text);
  }
  if (text.substr(0, kSha256Prefix.size()) != kSha256Prefix) {
    return DigestInvalid("unsupported digest algorithm: " + std::string(text), text);
  }
  std::string_view hex = text.substr(kSha256Prefix.size());
  if (hex.size() != 64) {
    return DigestInvalid("invalid sha256 digest length: " + std::string(text), text);
  }
  for (char c : hex) {
    if (!IsLowerHex(c)) {
      return DigestInvalid("invalid sha256 digest: " + std::string(text), text);
    }
  }
  return Ok();
}

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  if (ctx_ == nullptr || EVP_DigestInit_ex(ctx_, Sha256Md(), nullptr) != 1) {
    throw std::runtime_error("cannot initialise sha256");
  }
}

Sha256::~Sha256() {
  EVP_MD_CTX_free(ctx_);
}

Sha256::Sha256(Sha256&& other) noexcept : ctx_(other.ctx_) {
  other.ctx_ = nullptr;
}

Sha256& Sha256::operator=(Sha256&& other) noexcept {
  if (this != &other) {
    EVP_MD_CTX_free(ctx_);
    ctx_ = other.ctx_;
    other.ctx_ = nullptr;
  }
  return *this;
}

void Sha256::Update(const void* data, size_t size) {
  if (size > 0) {
    EVP_DigestUpdate(ctx_, data, size);
  }
}

std::string Sha256::Digest() const {
  EVP_MD_CTX* copy = EVP_MD_CTX_new();
  EVP_MD_CTX_copy_ex(copy, ctx_);
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(copy, out, &len);
  EVP_MD_CTX_free(copy);
  static const char kHex[] = "0123456789abcdef";
  std::string result(kSha256Prefix);
  result.reserve(kSha256Prefix.size() + 2 * len);
  for (unsigned int i = 0; i < len; ++i) {
    result.push_back(kHex[out[i] >> 4]);
    result.push_back(kHex[out[i] & 0xf]);
  }
  return result;
}

void Sha256::Reset() {
  EVP_DigestInit_ex(ctx_, Sha256Md(), nullptr);
}

std::string Sha256Digest(std::string_view data) {
  Sha256 h;
  h.Update(data);
  return h.Digest();
}

}  // namespace berth::registry
