#pragma once
// Placement from lookahead (issue 18, item 4): the pre-gating router gives the next batches' expert
// loads before they run, so experts can be re-placed or hot experts replicated between batches.
// Whether that pays is a plain comparison of two times per batch:
//   saved = passes x (forward-pass all-to-all reference with the old placement - with the new one)
//   cost  = time to copy the weights of every replica that is new on its host
// - Forward-pass reference: layers x (dispatch + combine phase lower bounds, bridge/fabric_eval.h),
//   i.e. ideal splitting (which ethereal-min reaches in the fluid model). Every layer's matrix is
//   the same under Read-ME routing, so one layer is computed and multiplied.
// - Moves: each new (host, expert) replica receives expert_bytes (all layers of that expert); moves
//   to different hosts run in parallel, so the move time is the busiest receiving host NIC's bytes
//   over its rate. Moves are charged in full (not overlapped with compute or traffic): conservative.
// - Policies compared over the batches: static round-robin; hot placed once on the first batch's
//   loads and kept; hot re-placed every batch (paying moves from the previous batch's placement).
//   The first placement is free (it is the deployment).
#include <cstdint>
#include <vector>

#include "bridge/traffic.h"
#include "net/topo/topology.h"

namespace lookahead::bridge {

struct ReplacementBatch {
  std::vector<uint64_t> loads;           // tokens per expert
  double round_robin_us = 0;             // forward reference per pass, static round-robin
  double hot_once_us = 0;                // placement from batch 0's loads
  double hot_every_us = 0;               // placement from this batch's own loads
  uint64_t moved_bytes = 0;              // to re-place from the previous batch's hot placement
  double move_us = 0;
  double break_even_passes = 0;          // move_us / (hot_once_us - hot_every_us); 0 if no move, inf if no saving
};

struct ReplacementStudy {
  std::vector<ReplacementBatch> batches;
  int passes = 1;
  // Totals over all batches (passes per batch, moves included in hot_every).
  double round_robin_total_us = 0, hot_once_total_us = 0, hot_every_total_us = 0;
};

// batches: per batch, the experts of its tokens. Throws like place_experts / traffic_matrix.
ReplacementStudy study_replacement(const net::Topology& topology, const std::vector<std::vector<int32_t>>& batches, int experts,
                                   int slots_per_host, int layers, uint64_t bytes_per_token, uint64_t expert_bytes, int passes);

}  // namespace lookahead::bridge
