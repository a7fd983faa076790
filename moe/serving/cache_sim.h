#pragma once
// Expert cache policies compared offline on one recorded access stream (access_stream.h): every
// policy sees the same batches in the same order, and nothing is timed, so the comparison is exact
// and deterministic. This is how the paper's Table 4 should be measured: in a live replay on a
// measured clock each policy's stalls change which requests share a batch.
//
// Policies (all demand paging, as ExpertCache: a miss loads the slab and inserts it):
//   - optimum: Belady's MIN over the whole recorded stream (every future access known). With a
//     slab-count capacity, or equal slab sizes, the fewest misses any policy can get; the bound the
//     others are measured against.
//   - belady-online: what the serving engine does (tiered_experts.h with BatchEngine's plans):
//     evict the resident whose next use in the current plan is furthest, the plan being the known
//     batch plus the engine's prediction of the next plan_horizon batches, as recorded; a slab not
//     in the plan counts as never used again. Equal to TieredExperts' demand misses with prefetch
//     off on the same stream.
//   - lru, random (seeded): ExpertCache's.
// Prefetch is not simulated: whether a load lands before its use is a matter of timing; the live
// replay reports it (TierStats::in_flight_uses).
#include <cstdint>
#include <string_view>

#include "moe/serving/access_stream.h"
#include "moe/serving/expert_cache.h"

namespace lookahead::moe::serving {

enum class StreamPolicy { OPTIMUM, BELADY_ONLINE, LRU, RANDOM };
// "optimum", "belady-online", "lru", "random"; anything else throws lookahead::Error naming `what`.
StreamPolicy parse_stream_policy(std::string_view name, std::string_view what = "policy");
const char* stream_policy_name(StreamPolicy policy);

CacheStats simulate_on_stream(const AccessStream& stream, StreamPolicy policy, CacheCapacity capacity,
                              uint64_t seed = 0);

}  // namespace lookahead::moe::serving
