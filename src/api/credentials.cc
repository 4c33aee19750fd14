#include "api/credentials.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "common/ids.h"

namespace berth::api {

namespace {

std::string Strip(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r");
  size_t e = s.find_last_not_of(" \t\r");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

Status WriteFileAtomically(const std::string& path, const std::string& content, mode_t mode) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) {
    return ServerError("cannot write " + tmp);
  }
  ::fchmod(fd, mode);
  bool ok = ::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size());
  ok = ok && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    return ServerError("cannot write " + path);
  }
  return Ok();
}

}  // namespace

Status LoadCredentialsFile(const std::string& path, KeyRing& keys) {
  std::ifstream in(path);
  if (!in) {
    return ClientError("ConfigError", "cannot read credentials file " + path);
  }
  std::string line;
  std::string akid;
  std::string secret;
  int added = 0;
  auto flush = [&] {
    if (!akid.empty() && !secret.empty()) {
      keys.Add(akid, secret);
      ++added;
    }
    akid.clear();
    secret.clear();
  };
  while (std::getline(in, line)) {
    line = Strip(line);
    if (line.empty() || line[0] == '#' || line[0] == ';') {
      continue;
    }
    if (line[0] == '[') {
      flush();
      continue;
    }
    size_t eq = line.find('=');
    if (eq == std::string::npos) {
      continue;
    }
    std::string key = Strip(line.substr(0, eq));
    std::string value = Strip(line.substr(eq + 1));
    if (key == "aws_access_key_id") {
      akid = value;
    } else if (key == "aws_secret_access_key") {
      secret = value;
    }
  }
  flush();
  if (added == 0) {
    return ClientError("ConfigError", "no access keys found in " + path);
  }
  return Ok();
}

Status EnsureDataDirCredentials(const std::string& data_dir, const std::string& region,
                                KeyRing& keys) {
  std::string cred_path = data_dir + "/credentials";
  std::string config_path = data_dir + "/config";
  if (!std::filesystem::exists(cred_path)) {
    std::string akid = "AKIA" + RandomUpperAlnum(16);
    std::string secret = RandomSecret(40);
    BERTH_TRY(WriteFileAtomically(cred_path,
                                  "[default]\naws_access_key_id = " + akid +
                                      "\naws_secret_access_key = " + secret + "\n",
                                  0600));
  }
  if (!std::filesystem::exists(config_path)) {
    BERTH_TRY(WriteFileAtomically(config_path, "[default]\nregion = " + region + "\n", 0644));
  }
  return LoadCredentialsFile(cred_path, keys);
}

}  // namespace berth::api
