#include "common/paging.h"

#include <openssl/evp.h>

#include <vector>

namespace berth {

std::string Base64Encode(const std::string& data) {
  std::string out(4 * ((data.size() + 2) / 3), '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(data.data()),
                          static_cast<int>(data.size()));
  out.resize(n);
  return out;
}

std::optional<std::string> Base64Decode(const std::string& data) {
  if (data.size() % 4 != 0) {
    return std::nullopt;
  }
  std::string out(3 * data.size() / 4, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(data.data()),
                          static_cast<int>(data.size()));
  if (n < 0) {
    return std::nullopt;
  }
  size_t pad = 0;
  if (!data.empty() && data.back() == '=') ++pad;
  if (data.size() > 1 && data[data.size() - 2] == '=') ++pad;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

std::string EncodePageToken(const std::string& position) {
  return Base64Encode("berth1:" + position);
}

std::optional<std::string> DecodePageToken(const std::string& token) {
  auto raw = Base64Decode(token);
  if (!raw || raw->rfind("berth1:", 0) != 0) {
    return std::nullopt;
  }
  return raw->substr(7);
}

}  // namespace berth
