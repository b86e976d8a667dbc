// Status and StatusOr: cheap values for expected failures, in the spirit of leveldb's Status.
// Header-only and free of third-party types so the client library can use it too (C++17).
//
// Early returns are spelled with two macros (in a function returning Status or StatusOr<U>):
//
//   PGH_RETURN_IF_ERROR(session.Delete(path));          // returns the Status when not ok
//   PGH_ASSIGN_OR_RETURN(auto got, session.Get(path));  // returns got's Status when not ok,
//                                                        // else moves the value into `got`
//
// Both evaluate their expression once. ASSIGN_OR_RETURN expands to a declaration plus statements:
// use it as a statement of its own (not as the body of an unbraced if).
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>
#include <variant>

// Unique variable names (via __COUNTER__) because calls nest: a lambda passed in the expression
// may use the macros too.
#define PGH_CONCAT_INNER(a, b) a##b
#define PGH_CONCAT(a, b) PGH_CONCAT_INNER(a, b)

#define PGH_RETURN_IF_ERROR(expr) PGH_RETURN_IF_ERROR_IMPL(PGH_CONCAT(pgh_status_, __COUNTER__), expr)
#define PGH_RETURN_IF_ERROR_IMPL(var, expr) \
  do {                                      \
    ::pgherald::Status var = (expr);        \
    if (!var.ok()) return var;              \
  } while (false)

#define PGH_ASSIGN_OR_RETURN(lhs, expr) \
  PGH_ASSIGN_OR_RETURN_IMPL(PGH_CONCAT(pgh_statusor_, __COUNTER__), lhs, expr)
#define PGH_ASSIGN_OR_RETURN_IMPL(var, lhs, expr) \
  auto var = (expr);                              \
  if (!var.ok()) return var.status();             \
  lhs = std::move(var).value()

namespace pgherald {

enum class StatusCode {
  kOk = 0,
  kNotFound,            // ZooKeeper ZNONODE, a missing row or file
  kAlreadyExists,       // ZNODEEXISTS
  kBadVersion,          // ZBADVERSION: a compare-and-set lost
  kNotEmpty,            // ZNOTEMPTY
  kConnectionLoss,      // the outcome of the call is unknown: re-read, never retry blind
  kSessionExpired,      // the ZooKeeper session is gone with its ephemerals
  kTimeout,             // an operation or statement timed out
  kPermissionDenied,    // ZNOAUTH, a wrong password
  kInvalidArgument,     // bad input: a malformed config, a corrupt payload
  kFailedPrecondition,  // the world is not in the state the call requires
  kUnavailable,         // the server cannot be reached or the handle is closed
  kInternal,
};

const char* StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "kind: message", or "ok".
  std::string ToString() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status NotFound(std::string m) { return Status(StatusCode::kNotFound, std::move(m)); }
inline Status InvalidArgument(std::string m) {
  return Status(StatusCode::kInvalidArgument, std::move(m));
}
inline Status FailedPrecondition(std::string m) {
  return Status(StatusCode::kFailedPrecondition, std::move(m));
}
inline Status Unavailable(std::string m) { return Status(StatusCode::kUnavailable, std::move(m)); }
inline Status Internal(std::string m) { return Status(StatusCode::kInternal, std::move(m)); }

// Holds either a value or a non-ok Status.
template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  StatusOr(Status status) : status_(std::move(status)) {  // NOLINT: implicit by design
    assert(!status_.ok() && "StatusOr built from an ok Status has no value");
    if (status_.ok()) status_ = Internal("StatusOr built from an ok Status");
  }

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() & {
    assert(ok());
    return *value_;
  }
  const T& value() const& {
    assert(ok());
    return *value_;
  }
  T&& value() && {
    assert(ok());
    return std::move(*value_);
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  Status status_;
  std::optional<T> value_;
};

inline const char* StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "ok";
    case StatusCode::kNotFound: return "not_found";
    case StatusCode::kAlreadyExists: return "already_exists";
    case StatusCode::kBadVersion: return "bad_version";
    case StatusCode::kNotEmpty: return "not_empty";
    case StatusCode::kConnectionLoss: return "connection_loss";
    case StatusCode::kSessionExpired: return "session_expired";
    case StatusCode::kTimeout: return "timeout";
    case StatusCode::kPermissionDenied: return "permission_denied";
    case StatusCode::kInvalidArgument: return "invalid_argument";
    case StatusCode::kFailedPrecondition: return "failed_precondition";
    case StatusCode::kUnavailable: return "unavailable";
    case StatusCode::kInternal: return "internal";
  }
  return "unknown";
}

inline std::string Status::ToString() const {
  if (ok()) return "ok";
  return std::string(StatusCodeName(code_)) + ": " + message_;
}

}  // namespace pgherald
