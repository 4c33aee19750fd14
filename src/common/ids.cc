#include "common/ids.h"

#include <openssl/rand.h>

#include <stdexcept>
#include <vector>

namespace berth {

namespace {

std::vector<unsigned char> RandomBytes(size_t n) {
  std::vector<unsigned char> out(n);
  if (n > 0 && RAND_bytes(out.data(), static_cast<int>(n)) != 1) {
    throw std::runtime_error("RAND_bytes failed");
  }
  return out;
}

std::string FromAlphabet(size_t length, std::string_view alphabet) {
  std::string out;
  out.reserve(length);
  // Rejection sampling keeps the distribution uniform.
  size_t limit = 256 - (256 % alphabet.size());
  while (out.size() < length) {
    for (unsigned char b : RandomBytes(length)) {
      if (b < limit && out.size() < length) {
        out.push_back(alphabet[b % alphabet.size()]);
      }
    }
  }
  return out;
}

}  // namespace

std::string RandomHex(size_t bytes) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  out.reserve(bytes * 2);
  for (unsigned char b : RandomBytes(bytes)) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

std::string NewUuid() {
  auto b = RandomBytes(16);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) {
      out.push_back('-');
    }
    out.push_back(kHex[b[i] >> 4]);
    out.push_back(kHex[b[i] & 15]);
  }
  return out;
}

std::string RandomUpperAlnum(size_t length) {
  return FromAlphabet(length, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789");
}

std::string RandomSecret(size_t length) {
  return FromAlphabet(length, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");
}

}  // namespace berth
