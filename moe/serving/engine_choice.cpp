#include "moe/serving/engine_choice.h"

#include <cctype>
#include <charconv>

#include "common/error.h"

namespace lookahead::moe::serving {

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

bool parse_on_off(const std::string& value, const std::string& flag) {
  if (value == "on") return true;
  if (value == "off") return false;
  fail("{} '{}' must be on or off", flag, value);
}

void apply_prefetch_flag(const std::string& value, TierOptions& tier, const std::string& flag) {
  if (value == "on" || value == "off") {
    tier.prefetch = value == "on";
    tier.conservative_prefetch = false;
    return;
  }
  if (value != "conservative") fail("{} '{}' must be on or off or conservative", flag, value);
  if (tier.policy != CachePolicy::BELADY) fail("{} conservative needs the belady cache policy", flag);
  tier.prefetch = true;
  tier.conservative_prefetch = true;
}

}  // namespace lookahead::moe::serving
