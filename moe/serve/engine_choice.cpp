#include "moe/serve/engine_choice.h"

#include <cctype>
#include <charconv>

#include "common/error.h"

namespace lookahead::moe::serve {

SchedulerKind parse_scheduler(const std::string& name) {
  if (name == "sequential") return SchedulerKind::SEQUENTIAL;
  if (name == "expert-aware") return SchedulerKind::EXPERT_AWARE;
  if (name == "decode-first") return SchedulerKind::DECODE_FIRST;
  if (name == "prefill-first") return SchedulerKind::PREFILL_FIRST;
  fail("--scheduler: unknown scheduler '{}' (expected sequential, expert-aware, decode-first or prefill-first)", name);
}

CachePolicy parse_cache_policy(const std::string& name) {
  if (name == "none") return CachePolicy::NONE;
  if (name == "belady") return CachePolicy::BELADY;
  if (name == "lru") return CachePolicy::LRU;
  if (name == "random") return CachePolicy::RANDOM;
  fail("--cache: unknown cache policy '{}' (expected none, belady, lru or random)", name);
}

const char* scheduler_name(SchedulerKind s) {
  switch (s) {
    case SchedulerKind::SEQUENTIAL: return "sequential";
    case SchedulerKind::EXPERT_AWARE: return "expert-aware";
    case SchedulerKind::DECODE_FIRST: return "decode-first";
    case SchedulerKind::PREFILL_FIRST: return "prefill-first";
  }
  return "?";
}

const char* cache_policy_name(CachePolicy c) {
  switch (c) {
    case CachePolicy::NONE: return "none";
    case CachePolicy::BELADY: return "belady";
    case CachePolicy::LRU: return "lru";
    case CachePolicy::RANDOM: return "random";
  }
  return "?";
}

Budget parse_budget(const std::string& text) {
  auto bad = [&]() -> Budget {
    fail("--budget: '{}' is not a budget (expected bytes such as 512MiB, 2GB, 1048576, or experts such as 3experts, k=3)",
         text);
  };
  std::string s = text;
  Budget b;
  bool experts = false;
  if (s.rfind("k=", 0) == 0) {
    s = s.substr(2);
    experts = true;
  }
  uint64_t n = 0;
  const char* first = s.data();
  const char* last = s.data() + s.size();
  auto [p, ec] = std::from_chars(first, last, n);
  if (ec != std::errc() || p == first || n == 0) return bad();
  std::string unit(p, last);
  if (experts) {
    if (!unit.empty()) return bad();
    b.experts = static_cast<int64_t>(n);
    return b;
  }
  if (unit == "experts" || unit == "expert") {
    b.experts = static_cast<int64_t>(n);
    return b;
  }
  uint64_t scale = 0;
  if (unit.empty() || unit == "B") scale = 1;
  else if (unit == "KB") scale = 1000;
  else if (unit == "MB") scale = 1000 * 1000;
  else if (unit == "GB") scale = 1000ull * 1000 * 1000;
  else if (unit == "KiB") scale = 1ull << 10;
  else if (unit == "MiB") scale = 1ull << 20;
  else if (unit == "GiB") scale = 1ull << 30;
  else return bad();
  if (n > UINT64_MAX / scale) return bad();
  b.bytes = n * scale;
  return b;
}

std::string engine_unavailable_reason(SchedulerKind s, CachePolicy c, const Budget& b) {
  const char* later = "not yet available: it needs the Read-ME serving engine (issue #5); today's engine is "
                      "'sequential' with no expert cache";
  if (s != SchedulerKind::SEQUENTIAL) return fmt::format("--scheduler {} is {}", scheduler_name(s), later);
  if (c != CachePolicy::NONE) return fmt::format("--cache {} is {}", cache_policy_name(c), later);
  if (b.given()) return fmt::format("--budget is {}", later);
  return {};
}

}  // namespace lookahead::moe::serve
