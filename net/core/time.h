#pragma once
// Simulated time. Integer picoseconds: event order never depends on floating-point rounding, and a
// 64-bit count covers about 213 days of simulated time.
#include <cstdint>

namespace lookahead::net {

using SimTime = uint64_t;  // picoseconds

inline constexpr SimTime kNever = ~SimTime{0};  // "did not happen" / "no deadline"

}  // namespace lookahead::net
