#pragma once
// Parsing the `--budget` flag of the serving commands (`moe serve`, `moe replay`, `moe tier-bench`):
// the expert cache's RAM budget in bytes or in experts. The scheduler and cache-policy names are
// parsed by moe/serving/scheduler.h and expert_cache.h.
//
// Contract: parse_budget accepts bytes with an optional unit (B, KB, MB, GB, KiB, MiB, GiB;
// "512MiB", "2GB", "1048576") or an expert count ("3experts", "k=3"); zero, negative or anything
// else is a lookahead::Error naming the text.
//
// apply_prefetch_flag: on, off or conservative (which needs --cache belady); else an Error.
#include <cstdint>
#include <string>

#include "moe/serving/tiered_experts.h"

namespace lookahead::moe::serving {

struct Budget {
  uint64_t bytes = 0;    // one of bytes / experts is non-zero when a budget was given
  int64_t experts = 0;
  bool given() const { return bytes > 0 || experts > 0; }
};

Budget parse_budget(const std::string& text);

// An on/off flag's value; anything else is an Error naming `flag`.
bool parse_on_off(const std::string& value, const std::string& flag);

// `--prefetch on|off|conservative` into the tier options (conservative: belady only, prefetch only
// what demand Belady would load anyway; see tiered_experts.h). `flag` names the flag in errors.
void apply_prefetch_flag(const std::string& value, TierOptions& tier, const std::string& flag = "--prefetch");

}  // namespace lookahead::moe::serving
