#pragma once
// Errors as values: every fallible call at a module boundary, and every call of the
// public API, returns Result<T>.
#include <cerrno>
#include <expected>
#include <string>
#include <utility>

namespace microvm {

// An errno (or 0 for "not a system error") plus a message a person can act on.
// The message is a std::string because setup errors carry paths and numbers;
// hot paths (guest requests) report through status codes, not Error.
struct Error {
  int code = 0;
  std::string what;

  Error() = default;
  Error(int c, std::string w) : code(c), what(std::move(w)) {}
  explicit Error(std::string w) : code(0), what(std::move(w)) {}

  // Prefixes context, keeping the original cause at the end: "open disk.img: No such file".
  [[nodiscard]] Error context(const std::string& outer) const { return Error(code, outer + ": " + what); }
};

template <class T>
using Result = std::expected<T, Error>;

inline std::unexpected<Error> fail(std::string what) { return std::unexpected(Error(std::move(what))); }
inline std::unexpected<Error> fail(int code, std::string what) { return std::unexpected(Error(code, std::move(what))); }
// Builds an error from the current errno: "what: strerror(errno)".
std::unexpected<Error> fail_errno(const std::string& what);
std::unexpected<Error> fail_errno(int err, const std::string& what);

}  // namespace microvm

// Propagates an error from an expression returning Result<T>; yields the value otherwise.
// (A GNU statement expression: GCC and Clang.) Prefixed so that including the public API
// never takes a short macro name from the embedding program.
#define MICROVM_CONCAT_INNER(a, b) a##b
#define MICROVM_CONCAT(a, b) MICROVM_CONCAT_INNER(a, b)
#define MICROVM_TRY_IMPL(tmp, expr)                           \
  ({                                                          \
    auto&& tmp = (expr);                                      \
    if (!tmp) return std::unexpected(std::move(tmp).error()); \
    std::move(tmp).value();                                   \
  })
#define MICROVM_TRY(expr) MICROVM_TRY_IMPL(MICROVM_CONCAT(microvm_try_tmp_, __COUNTER__), expr)
