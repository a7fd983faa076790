#pragma once
// The serving-engine flags shared by `moe serve` (and later `moe replay`): scheduler, expert-cache
// policy and its RAM budget. Parsed and validated here; which combinations can run today is
// decided by engine_unavailable_reason().
//
// Contract:
//   - parse_scheduler / parse_cache_policy accept the names of issue #5 and throw lookahead::Error
//     naming the flag and the accepted values otherwise.
//   - parse_budget accepts bytes with an optional unit (B, KB, MB, GB, KiB, MiB, GiB; "512MiB",
//     "2GB", "1048576") or an expert count ("3experts", "k=3"); zero or negative is an error.
//   - engine_unavailable_reason() returns "" when the SequentialEngine can honour the choice (the
//     sequential scheduler, no expert cache, no budget), else why not (until issue #5 lands).
#include <cstdint>
#include <string>

namespace lookahead::moe::serve {

enum class SchedulerKind { SEQUENTIAL, EXPERT_AWARE, DECODE_FIRST, PREFILL_FIRST };
enum class CachePolicy { NONE, BELADY, LRU, RANDOM };

struct Budget {
  uint64_t bytes = 0;    // one of bytes / experts is non-zero when a budget was given
  int64_t experts = 0;
  bool given() const { return bytes > 0 || experts > 0; }
};

SchedulerKind parse_scheduler(const std::string& name);
CachePolicy parse_cache_policy(const std::string& name);
Budget parse_budget(const std::string& text);
const char* scheduler_name(SchedulerKind s);
const char* cache_policy_name(CachePolicy c);
std::string engine_unavailable_reason(SchedulerKind s, CachePolicy c, const Budget& b);

}  // namespace lookahead::moe::serve
