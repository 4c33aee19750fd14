// Content digests ("sha256:<64 hex>") and the streaming SHA-256 hasher the
// registry computes them with.
//
// Every blob and manifest in the registry is addressed by the SHA-256 of its
// bytes. The hasher wraps OpenSSL's EVP interface, which uses the CPU's SHA
// extensions where present, so hashing keeps up with the network and disk.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"

typedef struct evp_md_ctx_st EVP_MD_CTX;

namespace berth::registry {

inline constexpr std::string_view kSha256Prefix = "sha256:";

// Checks that `text` is a digest berth can store: "sha256:" followed by 64
// lower-case hex characters. Other well-formed algorithms (sha512, ...) are
// refused as unsupported. Errors carry the registry code DIGEST_INVALID.
Status ValidateDigest(std::string_view text);

// Whether `text` has the general OCI digest grammar
// (algorithm ":" encoded), whatever the algorithm.
bool LooksLikeDigest(std::string_view text);

// A streaming SHA-256. Movable, not copyable; Clone() forks the state.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&& other) noexcept;
  Sha256& operator=(Sha256&& other) noexcept;
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(const void* data, size_t size);

  void Update(std::string_view data) { Update(data.data(), data.size()); }

  // "sha256:<hex>" of everything fed so far; the state is left untouched, so
  // more data may follow.
  std::string Digest() const;
  // Starts over with no data.
  void Reset();

 private:
  EVP_MD_CTX* ctx_;
};

// "sha256:<hex>" of `data`.
std::string Sha256Digest(std::string_view data);

// The 64 hex characters after "sha256:".
inline std::string_view DigestHex(std::string_view digest) {
  return digest.substr(kSha256Prefix.size());
}

}  // namespace berth::registry
