// SPDX-License-Identifier: Apache-2.0
//
// Small helpers shared by the agent's runtime side (cgroups, network namespaces, CNI, OCI spec,
// runc): file access with Status errors, error constructors with stable codes, name checks and an
// owning file descriptor. Nothing here keeps state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace berth::agent::rtutil {

/// Error codes used by the runtime modules in `Error::code`.
inline constexpr const char* kNotFound = "NotFound";
inline constexpr const char* kAlreadyExists = "AlreadyExists";
inline constexpr const char* kInvalidArgument = "InvalidArgument";
inline constexpr const char* kInternal = "Internal";
inline constexpr const char* kDeadlineExceeded = "DeadlineExceeded";
inline constexpr const char* kUnavailable = "Unavailable";

Error MakeError(int http_status, const char* code, std::string message);
Error NotFoundError(std::string message);
Error AlreadyExistsError(std::string message);
Error InvalidArgumentError(std::string message);
Error InternalError(std::string message);
/// "<what>: <strerror(err)>" with code kInternal (kNotFound for ENOENT).
Error ErrnoError(std::string_view what, int err);

/// Reads a whole file (at most `max_bytes`; the rest is ignored).
Result<std::string> ReadFile(const std::string& path, size_t max_bytes = 4 << 20);

/// Writes `data` to an existing file with one write(2) call, the way cgroup and proc files
/// must be written. With `create` the file is created when missing (mode 0644).
Status WriteFile(const std::string& path, std::string_view data, bool create = false);

/// Writes through a temporary file in the same directory and renames it into place.
Status WriteFileAtomic(const std::string& path, std::string_view data, unsigned mode = 0644);

bool PathExists(const std::string& path);
bool IsDirectory(const std::string& path);

/// Creates a directory and its missing parents (mode 0755 unless given).
Status MakeDirs(const std::string& path, unsigned mode = 0755);

/// Removes a file tree; a missing tree is not an error.
Status RemoveTree(const std::string& path);

std::string_view Trim(std::string_view s);
std::vector<std::string> Split(std::string_view s, char sep, bool skip_empty = true);
bool StartsWith(std::string_view s, std::string_view prefix);

/// Parses a decimal unsigned integer that fills the whole (trimmed) string.
bool ParseU64(std::string_view s, uint64_t* out);
bool ParseI64(std::string_view s, int64_t* out);

/// True for names made of [A-Za-z0-9_.-], not starting with '.' or '-', 1..max_len long.
/// Used for every name that becomes a path component or a runc id.
bool IsSafeName(std::string_view name, size_t max_len = 128);

/// An owned file descriptor, closed on destruction.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.Release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  ~UniqueFd() { Reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int Release();
  void Reset(int fd = -1);

 private:
  int fd_ = -1;
};

}  // namespace berth::agent::rtutil
