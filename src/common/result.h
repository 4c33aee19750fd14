// Result<T> and Status: the values every fallible call in berth returns.
//
// An Error carries the HTTP status, the error code the client sees (the AWS
// error type such as "ClusterNotFoundException", or a registry code such as
// "BLOB_UNKNOWN") and a message. The protocol layer that answers the request
// decides how to render it (JSON 1.1 `__type`, Query XML, OCI error body).
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace berth {

struct Error {
  int status = 400;
  std::string code;
  std::string message;
  // Extra detail for protocols that carry it (the OCI error `detail`).
  std::string detail;
};

inline Error ClientError(std::string code, std::string message) {
  return Error{400, std::move(code), std::move(message), {}};
}

inline Error ServerError(std::string message) {
  return Error{500, "ServerException", std::move(message), {}};
}

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}  // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  const Error& error() const { return std::get<1>(v_); }

  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return error_; }

 private:
  Error error_;
  bool ok_ = true;
};

using Status = Result<void>;

inline Status Ok() { return Status(); }

}  // namespace berth

// Returns early from the enclosing function with the error of a failed Result.
#define BERTH_TRY(expr)                  \
  do {                                   \
    auto berth_try_result_ = (expr);     \
    if (!berth_try_result_.ok()) {       \
      return berth_try_result_.error();  \
    }                                    \
  } while (false)
