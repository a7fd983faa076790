#pragma once
// Flags of the commands that read experts through the two-tier expert store
// (moe/serving/tiered_experts.h): `moe serve` and `moe replay` (--cache resident|POLICY, --budget,
// --prefetch; replay also --direct-io, --readers) and `moe tier-bench` (the policy is --policy there,
// without resident, and --budget's expert count counts slabs). Parsing and the checks are shared;
// each command keeps its own help texts and the order its flags appear in --help.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cstdint>
#include <string>
#include <utility>

#include "common/error.h"
#include "moe/serving/engine_choice.h"
#include "moe/serving/expert_cache.h"
#include "moe/serving/tiered_experts.h"

namespace lookahead::cli {

struct ExpertTierFlags {
  std::string cache;            // --cache: resident or a cache policy (tier-bench: --policy)
  std::string budget;           // --budget: bytes (512MiB) or experts (3experts, k=3); empty: none
  std::string prefetch = "on";  // on | off | conservative
  std::string direct_io = "on";
  int readers = 2;
};

// Flags with a command's own --cache default (serve, replay: "resident"; tier-bench: "belady").
inline ExpertTierFlags tier_flags_with_cache(std::string cache) {
  ExpertTierFlags f;
  f.cache = std::move(cache);
  return f;
}

inline void add_cache_flag(CLI::App& cmd, ExpertTierFlags& f, const std::string& help, const std::string& name = "--cache") {
  cmd.add_option(name, f.cache, help)->capture_default_str();
}
inline void add_budget_flag(CLI::App& cmd, ExpertTierFlags& f, const std::string& help) {
  cmd.add_option("--budget", f.budget, help);
}
inline void add_prefetch_flag(CLI::App& cmd, ExpertTierFlags& f, const std::string& help) {
  cmd.add_option("--prefetch", f.prefetch, help)->capture_default_str();
}
inline void add_direct_io_flag(CLI::App& cmd, ExpertTierFlags& f, const std::string& help) {
  cmd.add_option("--direct-io", f.direct_io, help)->capture_default_str();
}
inline void add_readers_flag(CLI::App& cmd, ExpertTierFlags& f) {
  cmd.add_option("--readers", f.readers, "prefetch reader threads")->capture_default_str();
}

// What the flags ask for, checked before the model loads.
struct ExpertTierChoice {
  bool tiered = false;             // false: experts stay resident (memory-mapped); tier is unused
  moe::serving::TierOptions tier;  // policy, prefetch, direct I/O, readers, capacity in bytes
  int64_t experts = 0;             // capacity in experts (--budget 3experts / k=3), 0 = in bytes
  // The store's options once the model is known: k experts = k slabs in each of `slabs_per_expert` layers.
  moe::serving::TierOptions options(int64_t slabs_per_expert) const {
    moe::serving::TierOptions t = tier;
    t.capacity.max_slabs = experts * slabs_per_expert;
    return t;
  }
};

// How a --cache/--policy value is shown in reports: Belady in the serving store is online (the known
// batch plus `horizon` predicted batches), and the report says so.
inline std::string cache_flag_display(const std::string& cache, int horizon) {
  if (cache == "belady" || cache == "belady-online")
    return fmt::format("belady-online (known batch + {} predicted batch{})", horizon, horizon == 1 ? "" : "es");
  return cache;
}

// --prefetch, --direct-io and --readers into the store's options (errors: a bad --prefetch or
// --direct-io value).
inline void apply_tier_io_flags(const ExpertTierFlags& f, ExpertTierChoice& c) {
  moe::serving::apply_prefetch_flag(f.prefetch, c.tier);
  c.tier.direct_io = moe::serving::parse_on_off(f.direct_io, "--direct-io");
  c.tier.readers = f.readers;
}

namespace detail {
inline moe::serving::Budget parse_budget_flag(const ExpertTierFlags& f, ExpertTierChoice& c) {
  const moe::serving::Budget budget = f.budget.empty() ? moe::serving::Budget{} : moe::serving::parse_budget(f.budget);
  c.tier.capacity.max_bytes = budget.bytes;
  c.experts = budget.experts;
  return budget;
}
}  // namespace detail

// `moe serve`, `moe replay`: --cache resident (default) or belady|lru|random|none over the store.
// Errors: an unknown policy; a malformed --budget; --budget with resident; a policy other than none
// without --budget. --prefetch and --direct-io are apply_tier_io_flags' (serve checks them only
// once the model is loaded, as it always has).
inline ExpertTierChoice parse_expert_cache_flags(const ExpertTierFlags& f) {
  ExpertTierChoice c;
  c.tiered = f.cache != "resident";
  if (c.tiered) c.tier.policy = moe::serving::parse_cache_policy(f.cache, "--cache");
  const moe::serving::Budget budget = detail::parse_budget_flag(f, c);
  if (!c.tiered && budget.given()) fail("--budget needs an expert cache: --cache belady-online|lru|random|none");
  if (!c.tiered) return c;
  if (c.tier.policy != moe::serving::CachePolicy::NONE && !budget.given())
    fail("--cache {} needs --budget (bytes like 512MiB, or experts like 3experts)", f.cache);
  return c;
}

// `moe tier-bench`: --policy belady|lru|random|none, always over the store; --budget required unless
// none, its expert count is slabs (options(1)).
inline ExpertTierChoice parse_tier_policy_flags(const ExpertTierFlags& f) {
  ExpertTierChoice c;
  c.tiered = true;
  c.tier.policy = moe::serving::parse_cache_policy(f.cache, "--policy");
  apply_tier_io_flags(f, c);
  const moe::serving::Budget budget = detail::parse_budget_flag(f, c);
  if (c.tier.policy != moe::serving::CachePolicy::NONE && !budget.given())
    fail("--budget is required with --policy {}", f.cache);
  return c;
}

}  // namespace lookahead::cli
