#pragma once
// A synthetic decode workload for the two-tier expert store (tiered_experts.h), run by
// `lookahead moe tier-bench` to measure its hit ratio, slow-tier bytes, read bandwidth and stall.
//
// Workload: `streams` sequences decode together; each token's expert repeats the sequence's
// previous expert with probability `locality` (0.7 ~ the paper's measured 0.71; 0 = uniform) and is
// uniform otherwise. One batch = one token per stream; its forward pass asks for layer 0..L-1, each
// layer's unique experts ascending. Before each batch the plan is set to that batch's accesses
// followed by the next `horizon` batches' (exact: Read-ME routes ahead). "Compute" per expert()
// call (touch) is one pass reading the slab's matrices, a memory-bound stand-in for the decode GEMVs.
// The first `warmup` batches fill the tier; statistics and the wall clock start after them.
#include <cstdint>
#include <vector>

#include "moe/model/readme_model.h"
#include "moe/serving/tiered_experts.h"

namespace lookahead::moe::serving {

struct TierBenchWorkload {
  int streams = 8;
  int batches = 32;   // measured
  int warmup = 0;
  int horizon = 2;
  double locality = 0.7;
  uint64_t seed = 0;
  bool touch = true;  // false: no compute per expert
};

struct TierBenchResult {
  uint64_t expert_bytes = 0;              // all experts' slabs in all layers
  double unique_experts_per_batch = 0;    // over the measured batches
  double wall_s = 0;                      // the measured batches
  TierStats stats;                        // the measured batches
  uint64_t checksum = 0;                  // of the touched bytes, so the reads are not optimized away
  bool direct_io = false;                 // the store read with O_DIRECT
};

// Per batch (warm-up batches first), the slabs its forward pass reads, in order.
std::vector<std::vector<SlabKey>> tier_bench_batches(int n_layer, int32_t n_expert, const TierBenchWorkload& w);

// Runs the workload through a store over `model` with `tier`.
TierBenchResult bench_tiered_experts(const ReadMeModel& model, const TierOptions& tier, const TierBenchWorkload& w);

}  // namespace lookahead::moe::serving
