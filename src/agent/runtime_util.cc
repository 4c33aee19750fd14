// SPDX-License-Identifier: Apache-2.0
#include "agent/runtime_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <system_error>

namespace berth::agent::rtutil {

Error MakeError(int http_status, const char* code, std::string message) {
  return Error{http_status, code, std::move(message), {}};
}

Error NotFoundError(std::string message) { return MakeError(404, kNotFound, std::move(message)); }

Error AlreadyExistsError(std::string message) {
  return MakeError(409, kAlreadyExists, std::move(message));
}

Error InvalidArgumentError(std::string message) {
  return MakeError(400, kInvalidArgument, std::move(message));
}

Error InternalError(std::string message) { return MakeError(500, kInternal, std::move(message)); }

Error ErrnoError(std::string_view what, int err) {
  std::string message = std::string(what) + ": " + std::strerror(err);
  if (err == ENOENT) {
    return NotFoundError(std::move(message));
  }
  return InternalError(std::move(message));
}

Result<std::string> ReadFile(const std::string& path, size_t max_bytes) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    return ErrnoError("open " + path, errno);
  }
  std::string out;
  char buf[8192];
  while (out.size() < max_bytes) {
    ssize_t n = read(fd.get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return ErrnoError("read " + path, errno);
    }
    if (n == 0) {
      break;
    }
    out.append(buf, std::min(static_cast<size_t>(n), max_bytes - out.size()));
  }
  return out;
}

Status WriteFile(const std::string& path, std::string_view data, bool create) {
  int flags = O_WRONLY | O_CLOEXEC | O_TRUNC;
  if (create) {
    flags |= O_CREAT;
  }
  UniqueFd fd(open(path.c_str(), flags, 0644));
  if (!fd.valid()) {
    return ErrnoError("open " + path, errno);
  }
  // Kernel interface files take one value per write call; never split it.
  ssize_t n;
  do {
    n = write(fd.get(), data.data(), data.size());
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    return ErrnoError("write " + path, errno);
  }
  if (static_cast<size_t>(n) != data.size()) {
    return InternalError("short write to " + path);
  }
  return Ok();
}

Status WriteFileAtomic(const std::string& path, std::string_view data, unsigned mode) {
  std::string tmp = path + ".tmp." + std::to_string(getpid());
  {
    UniqueFd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
    if (!fd.valid()) {
      return ErrnoError("create " + tmp, errno);
    }
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = write(fd.get(), data.data() + off, data.size() - off);
      if (n < 0) {
        if (errno == EINTR) {
          continue;
        }
        int err = errno;
        unlink(tmp.c_str());
        return ErrnoError("write " + tmp, err);
      }
      off += static_cast<size_t>(n);
    }
    if (fchmod(fd.get(), mode) != 0) {
      int err = errno;
      unlink(tmp.c_str());
      return ErrnoError("chmod " + tmp, err);
    }
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    unlink(tmp.c_str());
    return ErrnoError("rename " + tmp + " to " + path, err);
  }
  return Ok();
}

bool PathExists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

bool IsDirectory(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

Status MakeDirs(const std::string& path, unsigned mode) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) {
    return InternalError("create directory " + path + ": " + ec.message());
  }
  if (chmod(path.c_str(), mode) != 0) {
    return ErrnoError("chmod " + path, errno);
  }
  return Ok();
}

Status RemoveTree(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
  if (ec) {
    return InternalError("remove " + path + ": " + ec.message());
  }
  return Ok();
}

std::string_view Trim(std::string_view s) {
  const char* ws = " \t\r\n";
  size_t b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) {
    return {};
  }
  size_t e = s.find_last_not_of(ws);
  return s.substr(b, e - b + 1);
}

std::vector<std::string> Split(std::string_view s, char sep, bool skip_empty) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(sep, start);
    if (end == std::string_view::npos) {
      end = s.size();
    }
    std::string_view part = s.substr(start, end - start);
    if (!part.empty() || !skip_empty) {
      out.emplace_back(part);
    }
    start = end + 1;
  }
  return out;
}

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.substr(0, prefix.size()) == prefix;
}

bool ParseU64(std::string_view s, uint64_t* out) {
  s = Trim(s);
  if (s.empty()) {
    return false;
  }
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && ptr == s.data() + s.size();
}

bool ParseI64(std::string_view s, int64_t* out) {
  s = Trim(s);
  if (s.empty()) {
    return false;
  }
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && ptr == s.data() + s.size();
}

bool IsSafeName(std::string_view name, size_t max_len) {
  if (name.empty() || name.size() > max_len || name[0] == '.' || name[0] == '-') {
    return false;
  }
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-';
    if (!ok) {
      return false;
    }
  }
  return true;
}

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) {
    Reset(other.Release());
  }
  return *this;
}

int UniqueFd::Release() {
  int fd = fd_;
  fd_ = -1;
  return fd;
}

void UniqueFd::Reset(int fd) {
  if (fd_ >= 0) {
    close(fd_);
  }
  fd_ = fd;
}

}  // namespace berth::agent::rtutil
