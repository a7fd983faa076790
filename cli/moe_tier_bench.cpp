// `lookahead moe tier-bench --model DIR --budget B --policy P --prefetch on|off --plan locality|random`:
// drives the two-tier expert store (moe/serving/tiered_experts.h) through a synthetic decode
// workload and reports its hit ratio, slow-tier bytes, achieved read bandwidth and compute stall.
//
// Workload: `streams` sequences decode together; each token's expert repeats the sequence's
// previous expert with probability `locality` (0.7 ~ the paper's measured 0.71; `--plan random`
// = 0, uniform) and is uniform otherwise. One batch = one token per stream; its forward pass asks
// for layer 0..L-1, each layer's unique experts ascending (the lead's access order). Before each
// batch the plan is set to that batch's accesses followed by the next `horizon` batches' (exact:
// Read-ME routes ahead). "Compute" per expert() call is one pass reading the slab's matrices
// (a memory-bound stand-in for the decode GEMVs; --compute none skips it).
#include <fmt/format.h>

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>

#include "cli/command.h"
#include "common/error.h"
#include "moe/model/readme_model.h"
#include "moe/serve/engine_choice.h"
#include "moe/serving/tiered_experts.h"

namespace {

using namespace lookahead::moe;

struct TierBenchOptions {
  std::string model, budget, policy = "belady", prefetch = "on", plan = "locality", direct_io = "on", compute = "touch";
  int streams = 8;
  int batches = 32;
  int horizon = 2;
  int warmup = 0;
  int readers = 2;
  double locality = 0.7;
  uint64_t seed = 0;
  bool json = false;
};

uint64_t touch(const WeightMatrix& m) {
  const auto* p = reinterpret_cast<const uint64_t*>(m.data);
  const auto n = static_cast<size_t>(m.bytes() / 8);
  uint64_t sum = 0;
  for (size_t i = 0; i < n; ++i) sum += p[i];
  return sum;
}

void run_tier_bench(const TierBenchOptions& o) {
  using namespace lookahead::moe::serving;
  TierOptions t;
  t.policy = parse_cache_policy(o.policy, "--policy");
  serve::apply_prefetch_flag(o.prefetch, t);
  t.direct_io = serve::parse_on_off(o.direct_io, "--direct-io");
  t.readers = o.readers;
  t.seed = o.seed;
  if (!o.budget.empty()) {
    const serve::Budget b = serve::parse_budget(o.budget);
    t.capacity.max_bytes = b.bytes;
    t.capacity.max_slabs = b.experts;
  }
  if (t.policy != CachePolicy::NONE && t.capacity.max_slabs == 0 && t.capacity.max_bytes == 0)
    lookahead::fail("--budget is required with --policy {}", o.policy);
  if (o.plan != "locality" && o.plan != "random") lookahead::fail("--plan '{}' must be locality or random", o.plan);
  const double locality = o.plan == "random" ? 0.0 : o.locality;
  if (!(locality >= 0 && locality <= 1)) lookahead::fail("--locality must be in [0, 1], got {}", o.locality);
  if (o.streams < 1 || o.batches < 1 || o.horizon < 0 || o.warmup < 0)
    lookahead::fail("--streams and --batches must be >= 1, --horizon and --warmup >= 0");
  if (o.compute != "touch" && o.compute != "none") lookahead::fail("--compute '{}' must be touch or none", o.compute);

  ReadMeModel model(o.model);
  const int L = model.backbone().hparams().n_layer;
  const int32_t N = model.n_expert();
  uint64_t expert_bytes = 0;
  for (int l = 0; l < L; ++l)
    for (int32_t e = 0; e < N; ++e) expert_bytes += model.slab(l, e).bytes;

  // The whole workload up front (the router would give it batch by batch).
  std::mt19937_64 rng(o.seed);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  std::vector<int32_t> last(static_cast<size_t>(o.streams));
  for (auto& e : last) e = static_cast<int32_t>(rng() % static_cast<uint64_t>(N));
  std::vector<std::vector<SlabKey>> batches;
  double unique_sum = 0;
  const int total_batches = o.warmup + o.batches;
  for (int b = 0; b < total_batches; ++b) {
    std::vector<bool> used(static_cast<size_t>(N), false);
    for (auto& e : last) {
      if (b > 0 && uniform(rng) >= locality) e = static_cast<int32_t>(rng() % static_cast<uint64_t>(N));
      used[static_cast<size_t>(e)] = true;
    }
    std::vector<SlabKey> acc;
    for (int l = 0; l < L; ++l)
      for (int32_t e = 0; e < N; ++e)
        if (used[static_cast<size_t>(e)]) acc.push_back({l, e});
    if (b >= o.warmup) unique_sum += static_cast<double>(acc.size()) / L;
    batches.push_back(std::move(acc));
  }

  TieredExperts store(model, t);
  uint64_t sink = 0;
  auto t0 = std::chrono::steady_clock::now();
  for (size_t b = 0; b < batches.size(); ++b) {
    if (b == static_cast<size_t>(o.warmup)) {  // measure from here: warm-up batches fill the tier
      store.reset_stats();
      t0 = std::chrono::steady_clock::now();
    }
    std::vector<SlabKey> plan;
    for (size_t c = b; c < batches.size() && c <= b + static_cast<size_t>(o.horizon); ++c)
      plan.insert(plan.end(), batches[c].begin(), batches[c].end());
    store.set_plan(std::move(plan));
    for (const SlabKey& k : batches[b]) {
      const ExpertFfn& f = store.expert(k.layer, k.expert);
      if (o.compute == "touch") sink += touch(f.gate) + touch(f.up) + touch(f.down);
    }
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const TierStats s = store.stats();
  const double gib = 1024.0 * 1024.0 * 1024.0;
  nlohmann::json j = {
      {"model", o.model}, {"layers", L}, {"experts", N}, {"slab_bytes", model.slab(0, 0).bytes},
      {"expert_bytes", expert_bytes}, {"budget", o.budget}, {"budget_bytes", t.capacity.max_bytes},
      {"budget_slabs", t.capacity.max_slabs}, {"policy", o.policy}, {"prefetch", o.prefetch},
      {"direct_io", store.direct_io()}, {"readers", o.readers}, {"plan", o.plan}, {"locality", locality},
      {"streams", o.streams}, {"batches", o.batches}, {"warmup", o.warmup}, {"horizon", o.horizon}, {"compute", o.compute},
      {"unique_experts_per_batch", unique_sum / o.batches},
      {"accesses", s.accesses}, {"hits", s.hits}, {"late_hits", s.late_hits}, {"misses", s.misses}, {"prefetches", s.prefetches},
      {"hit_ratio", s.hit_ratio()}, {"bytes_read", s.bytes_read}, {"wall_s", wall},
      {"stall_s", s.stall_seconds}, {"read_busy_s", s.read_seconds},
      {"read_gib_per_s_wall", s.bytes_read / gib / wall},
      {"read_gib_per_s_busy", s.read_seconds > 0 ? s.bytes_read / gib / s.read_seconds : 0.0},
      {"tokens_per_s", o.streams * o.batches / wall}, {"checksum", sink % 1000}};
  if (o.json) {
    fmt::print("{}\n", j.dump());
    return;
  }
  fmt::print("tier-bench: {} ({} layers x {} experts, {:.2f} MiB slabs, {:.2f} GiB of experts)\n", o.model, L, N,
             model.slab(0, 0).bytes / 1048576.0, expert_bytes / gib);
  fmt::print("  policy {} prefetch {} budget {} direct_io {} plan {} ({:.2f} unique experts/batch)\n", o.policy,
             o.prefetch, o.budget.empty() ? "none" : o.budget, store.direct_io() ? "yes" : "no (buffered)", o.plan,
             unique_sum / o.batches);
  fmt::print("  accesses {} hits {} ({:.1f}%; {} still in flight) misses {} prefetches {}\n", s.accesses, s.hits,
             100 * s.hit_ratio(), s.late_hits, s.misses, s.prefetches);
  fmt::print("  read {:.2f} GiB in {:.2f} s wall: {:.2f} GiB/s (reader busy {:.2f} s: {:.2f} GiB/s)\n",
             s.bytes_read / gib, wall, s.bytes_read / gib / wall, s.read_seconds,
             s.read_seconds > 0 ? s.bytes_read / gib / s.read_seconds : 0.0);
  fmt::print("  compute stalled {:.2f} s of {:.2f} s; {:.2f} tokens/s\n", s.stall_seconds, wall, o.streams * o.batches / wall);
}

const bool registered = lookahead::cli::register_command(
    {"moe", "tier-bench", "Measure the two-tier expert store (RAM budget + O_DIRECT disk) on a synthetic decode workload",
     [](CLI::App& cmd) {
       auto o = std::make_shared<TierBenchOptions>();
       cmd.add_option("--model", o->model, "Read-ME model directory (e.g. from moe synth)")->required();
       cmd.add_option("--budget", o->budget, "fast-tier budget: bytes (1GiB, 512MiB) or slabs (k=5); required unless --policy none");
       cmd.add_option("--policy", o->policy, "belady, lru, random, none")->capture_default_str();
       cmd.add_option("--prefetch", o->prefetch, "on (walk ahead as the budget allows), conservative (belady: no extra loads) or off")->capture_default_str();
       cmd.add_option("--plan", o->plan, "token experts: locality (repeat with --locality) or random")->capture_default_str();
       cmd.add_option("--locality", o->locality, "probability a token keeps its sequence's previous expert")->capture_default_str();
       cmd.add_option("--streams", o->streams, "sequences decoding together (tokens per batch)")->capture_default_str();
       cmd.add_option("--batches", o->batches, "decode steps measured")->capture_default_str();
       cmd.add_option("--warmup", o->warmup, "decode steps run before measuring (stats reset after them)")->capture_default_str();
       cmd.add_option("--horizon", o->horizon, "batches of lookahead in the plan beyond the current one")->capture_default_str();
       cmd.add_option("--readers", o->readers, "prefetch reader threads")->capture_default_str();
       cmd.add_option("--direct-io", o->direct_io, "on (O_DIRECT) or off (buffered + fadvise DONTNEED)")->capture_default_str();
       cmd.add_option("--compute", o->compute, "per expert: touch (read the slab once) or none")->capture_default_str();
       cmd.add_option("--seed", o->seed, "workload seed")->capture_default_str();
       cmd.add_flag("--json", o->json, "one JSON object");
       cmd.callback([o] { run_tier_bench(*o); });
     }});

}  // namespace
