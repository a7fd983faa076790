#pragma once
// Errors at the boundaries of lookahead.
//
// Contract: bad input (files, specs, flags, requests) is reported by throwing lookahead::Error with
// a one-line message that names the file, field or parameter and what was expected. The CLI catches
// it, prints "lookahead: error: <message>" and exits with status 1. Programming errors (broken
// invariants) use assert or LOOKAHEAD_CHECK, never Error.
#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace lookahead {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Throws lookahead::Error with a fmt-formatted message.
template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

// Internal invariant check that stays on in release builds (cheap conditions only).
[[noreturn]] void check_failed(const char* condition, const char* file, int line);
#define LOOKAHEAD_CHECK(cond) \
  do { \
    if (!(cond)) ::lookahead::check_failed(#cond, __FILE__, __LINE__); \
  } while (0)

}  // namespace lookahead
