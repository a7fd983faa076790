#pragma once
// Placement from lookahead: the pre-gating router gives the next batches' expert
// loads before they run, so experts can be re-placed or hot experts replicated between batches.
// Whether that pays is a plain comparison per batch:
//   saved = passes x (all-to-all time per forward pass keeping the current placement
//                     - with the batch's hot placement)
//   cost  = time to copy the weights of every replica that is new on its host
// - All-to-all time per forward pass: the forward-pass lower bound of bridge/fabric_eval.h (ideal
//   splitting, which ethereal-min reaches in the fluid model).
// - Re-placing keeps every replica it can: the batch's hot replica counts (place_experts), with
//   replicas already on a host left there and only the missing ones copied into freed slots.
// - Moves: each new (host, expert) replica receives expert_bytes (all layers of that expert); moves
//   to different hosts run in parallel, so the move time is the busiest receiving host NIC's bytes
//   over its rate. Moves are charged in full (not overlapped with compute or traffic): conservative.
// - Policies over the batches (the first placement, hot on batch 0, is the deployment and free):
//   static round-robin; hot once (batch 0's loads, kept); always re-place; lookahead (re-place a
//   batch only when passes x saved > cost, which the known loads let the scheduler decide ahead).
#include <cstdint>
#include <vector>

#include "bridge/traffic.h"
#include "net/topo/topology.h"

namespace lookahead::bridge {

struct ReplacementBatch {
  std::vector<uint64_t> loads;  // tokens per expert
  double round_robin_us = 0;    // per forward pass, static round-robin
  double hot_once_us = 0;       // batch 0's hot placement
  double kept_us = 0;           // the placement the lookahead policy holds before this batch
  double replaced_us = 0;       // this batch's hot placement (fewest moves from the held one)
  uint64_t moved_bytes = 0;     // to re-place from the held placement
  double move_us = 0;
  double break_even_passes = 0;  // move_us / (kept_us - replaced_us); 0: nothing to move; inf: no gain
  bool replaced = false;         // the lookahead policy re-placed before this batch
};

struct ReplacementStudy {
  std::vector<ReplacementBatch> batches;
  int passes = 1;
  // Totals over all batches (passes per batch; moves included where a policy moves).
  double round_robin_total_us = 0, hot_once_total_us = 0, always_total_us = 0, lookahead_total_us = 0;
  uint64_t always_moved_bytes = 0, lookahead_moved_bytes = 0;
};

// `target`'s replica counts, keeping `held`'s replicas where they are. Falls back to `target`
// itself if the kept replicas leave no valid slot for a missing one.
ExpertPlacement replace_with_fewest_moves(const ExpertPlacement& held, const ExpertPlacement& target,
                                          const std::vector<uint64_t>& loads);
// Bytes each host must receive to go from `held` to `next`.
std::vector<uint64_t> move_bytes_per_host(const ExpertPlacement& held, const ExpertPlacement& next, uint64_t expert_bytes);

// batches: per batch, the experts of its tokens. Throws like place_experts / traffic_matrix.
ReplacementStudy study_replacement(const net::Topology& topology, const std::vector<std::vector<int32_t>>& batches, int experts,
                                   int slots_per_host, int layers, uint64_t bytes_per_token, uint64_t expert_bytes, int passes);

}  // namespace lookahead::bridge
