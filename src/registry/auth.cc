#include "registry/auth.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/paging.h"

namespace berth::registry {

namespace {

constexpr size_t kKeyBytes = 32;

bool ConstantTimeEqual(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

int64_t EpochSeconds(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

std::optional<int64_t> ParseInt(std::string_view s) {
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || ptr != s.data() + s.size()) {
    return std::nullopt;
  }
  return v;
}

}  // namespace

std::string Base64Url(std::string_view data) {
  std::string out = Base64Encode(std::string(data));
  while (!out.empty() && out.back() == '=') {
    out.pop_back();
  }
  for (char& c : out) {
    if (c == '+') {
      c = '-';
    } else if (c == '/') {
      c = '_';
    }
  }
  return out;
}

Result<std::unique_ptr<TokenAuthority>> TokenAuthority::Open(const std::string& key_path) {
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(key_path).parent_path(), ec);
  std::ifstream in(key_path, std::ios::binary);
  if (in) {
    std::stringstream ss;
    ss << in.rdbuf();
    std::string key = ss.str();
    if (key.size() == kKeyBytes) {
      return std::make_unique<TokenAuthority>(std::move(key));
    }
  }
  std::string key(kKeyBytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(key.data()), kKeyBytes) != 1) {
    return ServerError("cannot make a registry token key");
  }
  std::string tmp = key_path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    return ServerError("cannot write " + tmp);
  }
  bool ok = ::write(fd, key.data(), key.size()) == static_cast<ssize_t>(key.size());
  ok = ok && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), key_path.c_str()) != 0) {
    return ServerError("cannot write " + key_path);
  }
  return std::make_unique<TokenAuthority>(std::move(key));
}

std::string TokenAuthority::Mac(std::string_view data) const {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len);
  return Base64Url(std::string_view(reinterpret_cast<const char*>(out), len));
}

std::string TokenAuthority::Issue(std::chrono::system_clock::time_point expires,
                                  const std::string& access_key_id) const {
  std::string payload = "v1." + std::to_string(EpochSeconds(expires)) + "." + access_key_id;
  return payload + "." + Mac(payload);
}

TokenAuthority::Verdict TokenAuthority::Verify(std::string_view password,
                                               std::chrono::system_clock::time_point now) const {
  size_t last_dot = password.rfind('.');
  if (password.substr(0, 3) != "v1." || last_dot == std::string_view::npos || last_dot < 3) {
    return Verdict::kInvalid;
  }
  std::string_view payload = password.substr(0, last_dot);
  if (!ConstantTimeEqual(Mac(payload), password.substr(last_dot + 1))) {
    return Verdict::kInvalid;
  }
  std::string_view rest = payload.substr(3);
  size_t dot = rest.find('.');
  auto expiry = ParseInt(rest.substr(0, dot));
  if (!expiry) {
    return Verdict::kInvalid;
  }
  return *expiry <= EpochSeconds(now) ? Verdict::kExpired : Verdict::kValid;
}

TokenAuthority::Verdict TokenAuthority::VerifyBasic(
    std::string_view header, std::chrono::system_clock::time_point now) const {
  size_t space = header.find(' ');
  if (space == std::string_view::npos) {
    return Verdict::kInvalid;
  }
  std::string scheme(header.substr(0, space));
  for (char& c : scheme) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (scheme != "basic") {
    return Verdict::kInvalid;
  }
  std::string_view encoded = header.substr(space + 1);
  while (!encoded.empty() && encoded.front() == ' ') {
    encoded.remove_prefix(1);
  }
  auto decoded = Base64Decode(std::string(encoded));
  if (!decoded) {
    return Verdict::kInvalid;
  }
  size_t colon = decoded->find(':');
  if (colon == std::string::npos || decoded->substr(0, colon) != "AWS") {
    return Verdict::kInvalid;
  }
  return Verify(std::string_view(*decoded).substr(colon + 1), now);
}

std::string TokenAuthority::SignDownload(std::string_view repository, std::string_view digest,
                                         int64_t expires_epoch) const {
  std::string data = "download\n" + std::string(repository) + "\n" + std::string(digest) + "\n" +
                     std::to_string(expires_epoch);
  return Mac(data);
}

bool TokenAuthority::VerifyDownload(std::string_view repository, std::string_view digest,
                                    int64_t expires_epoch, std::string_view signature,
                                    std::chrono::system_clock::time_point now) const {
  if (expires_epoch <= EpochSeconds(now)) {
    return false;
  }
  return ConstantTimeEqual(SignDownload(repository, digest, expires_epoch), signature);
}

}  // namespace berth::registry
