#include "bridge/replacement.h"

#include <algorithm>
#include <limits>

#include "bridge/fabric_eval.h"
#include "common/error.h"

namespace lookahead::bridge {

namespace {

// Forward-pass reference of one batch under one placement: layers x one layer's two phase bounds.
double forward_reference_us(const net::Topology& topo, const std::vector<int32_t>& experts, const ExpertPlacement& placement,
                            int layers, uint64_t bytes_per_token) {
  const MoeTraffic one = moe_traffic(traffic_matrix(experts, placement, topo.hosts()), 1, bytes_per_token);
  double us = 0;
  for (const Phase& ph : one.phases) {
    std::vector<net::FlowSpec> flows;
    for (int id : ph.flows) flows.push_back(one.workload.flows[static_cast<size_t>(id)]);
    us += phase_lower_bound_us(topo, flows);
  }
  return us * layers;
}

}  // namespace

ReplacementStudy study_replacement(const net::Topology& topo, const std::vector<std::vector<int32_t>>& batches, int experts,
                                   int slots_per_host, int layers, uint64_t bytes_per_token, uint64_t expert_bytes, int passes) {
  if (batches.empty()) fail("no batches to study");
  if (passes < 1) fail("--passes must be >= 1 (got {})", passes);
  if (expert_bytes < 1) fail("--expert-bytes must be >= 1");
  const int G = topo.hosts();
  const double nic_bps = static_cast<double>(topo.links[static_cast<size_t>(topo.host_downlink(0))].rate_bps);
  ReplacementStudy s;
  s.passes = passes;
  const ExpertPlacement rr = place_experts(experts, G, slots_per_host, PlacementKind::round_robin, {});
  const ExpertPlacement first = place_experts(experts, G, slots_per_host, PlacementKind::hot, expert_loads(batches[0], experts));
  ExpertPlacement previous = first;
  for (size_t b = 0; b < batches.size(); ++b) {
    ReplacementBatch rb;
    rb.loads = expert_loads(batches[b], experts);
    const ExpertPlacement now = place_experts(experts, G, slots_per_host, PlacementKind::hot, rb.loads);
    rb.round_robin_us = forward_reference_us(topo, batches[b], rr, layers, bytes_per_token);
    rb.hot_once_us = forward_reference_us(topo, batches[b], first, layers, bytes_per_token);
    rb.hot_every_us = forward_reference_us(topo, batches[b], now, layers, bytes_per_token);
    uint64_t busiest = 0;
    for (int h = 0; h < G; ++h) {
      const auto& before = previous.on_host[static_cast<size_t>(h)];
      uint64_t in = 0;
      for (int e : now.on_host[static_cast<size_t>(h)])
        if (std::find(before.begin(), before.end(), e) == before.end()) in += expert_bytes;
      rb.moved_bytes += in;
      busiest = std::max(busiest, in);
    }
    rb.move_us = static_cast<double>(busiest) * 8.0 / nic_bps * 1e6;
    const double gain = rb.hot_once_us - rb.hot_every_us;
    rb.break_even_passes = rb.moved_bytes == 0 ? 0 : gain > 0 ? rb.move_us / gain : std::numeric_limits<double>::infinity();
    s.round_robin_total_us += passes * rb.round_robin_us;
    s.hot_once_total_us += passes * rb.hot_once_us;
    s.hot_every_total_us += passes * rb.hot_every_us + rb.move_us;
    previous = now;
    s.batches.push_back(std::move(rb));
  }
  return s;
}

}  // namespace lookahead::bridge
