#include "moe/serving/tier_bench.h"

#include <chrono>
#include <random>

namespace lookahead::moe::serving {

namespace {

uint64_t touch(const WeightMatrix& m) {
  const auto* p = reinterpret_cast<const uint64_t*>(m.data);
  const auto n = static_cast<size_t>(m.bytes() / 8);
  uint64_t sum = 0;
  for (size_t i = 0; i < n; ++i) sum += p[i];
  return sum;
}

}  // namespace

std::vector<std::vector<SlabKey>> tier_bench_batches(int n_layer, int32_t n_expert, const TierBenchWorkload& w) {
  // The whole workload up front (the router would give it batch by batch).
  std::mt19937_64 rng(w.seed);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  std::vector<int32_t> last(static_cast<size_t>(w.streams));
  for (auto& e : last) e = static_cast<int32_t>(rng() % static_cast<uint64_t>(n_expert));
  std::vector<std::vector<SlabKey>> batches;
  const int total_batches = w.warmup + w.batches;
  for (int b = 0; b < total_batches; ++b) {
    std::vector<bool> used(static_cast<size_t>(n_expert), false);
    for (auto& e : last) {
      if (b > 0 && uniform(rng) >= w.locality) e = static_cast<int32_t>(rng() % static_cast<uint64_t>(n_expert));
      used[static_cast<size_t>(e)] = true;
    }
    std::vector<SlabKey> acc;
    for (int l = 0; l < n_layer; ++l)
      for (int32_t e = 0; e < n_expert; ++e)
        if (used[static_cast<size_t>(e)]) acc.push_back({l, e});
    batches.push_back(std::move(acc));
  }
  return batches;
}

TierBenchResult bench_tiered_experts(const ReadMeModel& model, const TierOptions& tier, const TierBenchWorkload& w) {
  const int L = model.backbone().hparams().n_layer;
  const int32_t N = model.n_expert();
  TierBenchResult r;
  for (int l = 0; l < L; ++l)
    for (int32_t e = 0; e < N; ++e) r.expert_bytes += model.slab(l, e).bytes;
  const std::vector<std::vector<SlabKey>> batches = tier_bench_batches(L, N, w);
  double unique_sum = 0;
  for (size_t b = static_cast<size_t>(w.warmup); b < batches.size(); ++b)
    unique_sum += static_cast<double>(batches[b].size()) / L;
  r.unique_experts_per_batch = unique_sum / w.batches;

  TieredExperts store(model, tier);
  auto t0 = std::chrono::steady_clock::now();
  for (size_t b = 0; b < batches.size(); ++b) {
    if (b == static_cast<size_t>(w.warmup)) {  // measure from here: warm-up batches fill the tier
      store.reset_stats();
      t0 = std::chrono::steady_clock::now();
    }
    std::vector<SlabKey> plan;
    for (size_t c = b; c < batches.size() && c <= b + static_cast<size_t>(w.horizon); ++c)
      plan.insert(plan.end(), batches[c].begin(), batches[c].end());
    store.set_plan(std::move(plan));
    for (const SlabKey& k : batches[b]) {
      const ExpertFfn& f = store.expert(k.layer, k.expert);
      if (w.touch) r.checksum += touch(f.gate) + touch(f.up) + touch(f.down);
    }
  }
  r.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.stats = store.stats();
  r.direct_io = store.direct_io();
  return r;
}

}  // namespace lookahead::moe::serving
