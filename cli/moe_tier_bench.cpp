// `lookahead moe tier-bench --model DIR --budget B --policy P --prefetch on|off --plan locality|random`:
// drives the two-tier expert store (moe/serving/tiered_experts.h) through a synthetic decode
// workload and reports its hit ratio, slow-tier bytes, achieved read bandwidth and compute stall.
//
// The workload is moe/serving/tier_bench.h's (`--plan random` = locality 0; --compute none skips
// the per-expert pass over the slab).
#include <fmt/format.h>

#include <memory>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/moe_tier_flags.h"
#include "common/error.h"
#include "moe/model/readme_model.h"
#include "moe/serving/tier_bench.h"
#include "moe/serving/tiered_experts.h"

namespace {

using namespace lookahead::moe;
using namespace lookahead::moe::serving;

struct TierBenchOptions {
  std::string model, plan = "locality", compute = "touch";
  lookahead::cli::ExpertTierFlags tier = lookahead::cli::tier_flags_with_cache("belady");
  int streams = 8;
  int batches = 32;
  int horizon = 2;
  int warmup = 0;
  double locality = 0.7;
  uint64_t seed = 0;
  bool json = false;
};

// The flags' store options and workload; every check before the model is opened.
TierOptions check_flags(const TierBenchOptions& o, TierBenchWorkload& w) {
  TierOptions t = lookahead::cli::parse_tier_policy_flags(o.tier).options(1);  // --budget k=5: 5 slabs
  t.seed = o.seed;
  if (o.plan != "locality" && o.plan != "random") lookahead::fail("--plan '{}' must be locality or random", o.plan);
  const double locality = o.plan == "random" ? 0.0 : o.locality;
  if (!(locality >= 0 && locality <= 1)) lookahead::fail("--locality must be in [0, 1], got {}", o.locality);
  if (o.streams < 1 || o.batches < 1 || o.horizon < 0 || o.warmup < 0)
    lookahead::fail("--streams and --batches must be >= 1, --horizon and --warmup >= 0");
  if (o.compute != "touch" && o.compute != "none") lookahead::fail("--compute '{}' must be touch or none", o.compute);
  w = {o.streams, o.batches, o.warmup, o.horizon, locality, o.seed, o.compute == "touch"};
  return t;
}

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

void print_json(const TierBenchOptions& o, const TierOptions& t, const TierBenchWorkload& w, const ReadMeModel& model,
                const TierBenchResult& r) {
  const TierStats& s = r.stats;
  const double wall = r.wall_s;
  nlohmann::json j = {
      {"model", o.model}, {"layers", model.backbone().hparams().n_layer}, {"experts", model.n_expert()},
      {"slab_bytes", model.slab(0, 0).bytes},
      {"expert_bytes", r.expert_bytes}, {"budget", o.tier.budget}, {"budget_bytes", t.capacity.max_bytes},
      {"budget_slabs", t.capacity.max_slabs}, {"policy", o.tier.cache}, {"prefetch", o.tier.prefetch},
      {"direct_io", r.direct_io}, {"readers", o.tier.readers}, {"plan", o.plan}, {"locality", w.locality},
      {"streams", o.streams}, {"batches", o.batches}, {"warmup", o.warmup}, {"horizon", o.horizon}, {"compute", o.compute},
      {"unique_experts_per_batch", r.unique_experts_per_batch},
      {"accesses", s.accesses}, {"hits", s.hits}, {"in_flight_uses", s.in_flight_uses},
      {"prefetched_hits", s.prefetched_hits}, {"misses", s.misses}, {"prefetches", s.prefetches},
      {"hit_ratio", s.hit_ratio()}, {"bytes_read", s.bytes_read}, {"wall_s", wall},
      {"stall_s", s.stall_seconds}, {"read_busy_s", s.read_seconds},
      {"read_gib_per_s_wall", s.bytes_read / kGiB / wall},
      {"read_gib_per_s_busy", s.read_seconds > 0 ? s.bytes_read / kGiB / s.read_seconds : 0.0},
      {"tokens_per_s", o.streams * o.batches / wall}, {"checksum", r.checksum % 1000}};
  fmt::print("{}\n", j.dump());
}

void print_report(const TierBenchOptions& o, const ReadMeModel& model, const TierBenchResult& r) {
  const TierStats& s = r.stats;
  const double wall = r.wall_s;
  fmt::print("tier-bench: {} ({} layers x {} experts, {:.2f} MiB slabs, {:.2f} GiB of experts)\n", o.model,
             model.backbone().hparams().n_layer, model.n_expert(), model.slab(0, 0).bytes / 1048576.0,
             r.expert_bytes / kGiB);
  fmt::print("  policy {} prefetch {} budget {} direct_io {} plan {} ({:.2f} unique experts/batch)\n", o.tier.cache,
             o.tier.prefetch, o.tier.budget.empty() ? "none" : o.tier.budget, r.direct_io ? "yes" : "no (buffered)",
             o.plan, r.unique_experts_per_batch);
  fmt::print("  accesses {} hits {} ({:.1f}%, {} of them prefetched in time) in flight at use {} (waited: stalls, "
             "not hits) misses {} prefetches {}\n",
             s.accesses, s.hits, 100 * s.hit_ratio(), s.prefetched_hits, s.in_flight_uses, s.misses, s.prefetches);
  fmt::print("  read {:.2f} GiB in {:.2f} s wall: {:.2f} GiB/s (reader busy {:.2f} s: {:.2f} GiB/s)\n",
             s.bytes_read / kGiB, wall, s.bytes_read / kGiB / wall, s.read_seconds,
             s.read_seconds > 0 ? s.bytes_read / kGiB / s.read_seconds : 0.0);
  fmt::print("  compute stalled {:.2f} s of {:.2f} s; {:.2f} tokens/s\n", s.stall_seconds, wall, o.streams * o.batches / wall);
}

void run_tier_bench(const TierBenchOptions& o) {
  TierBenchWorkload w;
  const TierOptions t = check_flags(o, w);
  ReadMeModel model(o.model);
  const TierBenchResult r = bench_tiered_experts(model, t, w);
  if (o.json)
    print_json(o, t, w, model, r);
  else
    print_report(o, model, r);
}

const bool registered = lookahead::cli::register_command(
    {"moe", "tier-bench", "Measure the two-tier expert store (RAM budget + O_DIRECT disk) on a synthetic decode workload",
     [](CLI::App& cmd) {
       auto o = std::make_shared<TierBenchOptions>();
       cmd.add_option("--model", o->model, "Read-ME model directory (e.g. from moe synth)")->required();
       lookahead::cli::add_budget_flag(cmd, o->tier, "fast-tier budget: bytes (1GiB, 512MiB) or slabs (k=5); required unless --policy none");
       lookahead::cli::add_cache_flag(cmd, o->tier, "belady-online (alias belady), lru, random, none", "--policy");
       lookahead::cli::add_prefetch_flag(cmd, o->tier, "on (walk ahead as the budget allows), conservative (belady: no extra loads) or off");
       cmd.add_option("--plan", o->plan, "token experts: locality (repeat with --locality) or random")->capture_default_str();
       cmd.add_option("--locality", o->locality, "probability a token keeps its sequence's previous expert")->capture_default_str();
       cmd.add_option("--streams", o->streams, "sequences decoding together (tokens per batch)")->capture_default_str();
       cmd.add_option("--batches", o->batches, "decode steps measured")->capture_default_str();
       cmd.add_option("--warmup", o->warmup, "decode steps run before measuring (stats reset after them)")->capture_default_str();
       cmd.add_option("--horizon", o->horizon, "batches of lookahead in the plan beyond the current one")->capture_default_str();
       lookahead::cli::add_readers_flag(cmd, o->tier);
       lookahead::cli::add_direct_io_flag(cmd, o->tier, "on (O_DIRECT) or off (buffered + fadvise DONTNEED)");
       cmd.add_option("--compute", o->compute, "per expert: touch (read the slab once) or none")->capture_default_str();
       cmd.add_option("--seed", o->seed, "workload seed")->capture_default_str();
       cmd.add_flag("--json", o->json, "one JSON object");
       cmd.callback([o] { run_tier_bench(*o); });
     }});

}  // namespace
