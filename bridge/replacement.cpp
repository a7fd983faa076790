#include "bridge/replacement.h"

#include <algorithm>
#include <limits>
#include <numeric>

#include "bridge/fabric_eval.h"
#include "common/error.h"

namespace lookahead::bridge {

namespace {

// Forward-pass lower bound of one batch under one placement. Every layer's matrix is the same under
// Read-ME routing, so the links' bytes scale with the layers: built with all layers (cheap, fluid).
double forward_bound_us(const net::Topology& topo, const std::vector<int32_t>& experts, const ExpertPlacement& placement, int layers,
                        uint64_t bytes_per_token) {
  const MoeTraffic t = moe_traffic(traffic_matrix(experts, placement, topo.hosts()), layers, bytes_per_token);
  return evaluate_on_fabric(topo, t, {}, net::NetworkConfig{}, 1, false).forward_bound_us;
}

bool holds(const std::vector<int>& v, int x) { return std::find(v.begin(), v.end(), x) != v.end(); }

}  // namespace

ExpertPlacement replace_with_fewest_moves(const ExpertPlacement& held, const ExpertPlacement& target, const std::vector<uint64_t>& loads) {
  const int E = static_cast<int>(target.replicas.size());
  const int G = static_cast<int>(target.on_host.size());
  ExpertPlacement p;
  p.slots_per_host = target.slots_per_host;
  p.replicas.assign(static_cast<size_t>(E), {});
  p.on_host.assign(static_cast<size_t>(G), {});
  for (int e = 0; e < E; ++e) {
    const size_t want = target.replicas[static_cast<size_t>(e)].size();
    for (int h : held.replicas[static_cast<size_t>(e)]) {
      if (p.replicas[static_cast<size_t>(e)].size() == want) break;
      p.replicas[static_cast<size_t>(e)].push_back(h);
      p.on_host[static_cast<size_t>(h)].push_back(e);
    }
  }
  std::vector<int> order(static_cast<size_t>(E));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return loads[static_cast<size_t>(a)] > loads[static_cast<size_t>(b)]; });
  for (int e : order) {
    auto& reps = p.replicas[static_cast<size_t>(e)];
    while (reps.size() < target.replicas[static_cast<size_t>(e)].size()) {
      int best = -1;
      for (int h = 0; h < G; ++h) {
        const auto& on = p.on_host[static_cast<size_t>(h)];
        if (static_cast<int>(on.size()) >= p.slots_per_host || holds(on, e)) continue;
        if (best < 0 || on.size() < p.on_host[static_cast<size_t>(best)].size()) best = h;
      }
      if (best < 0) return target;  // the kept replicas block every free slot: place from scratch
      reps.push_back(best);
      p.on_host[static_cast<size_t>(best)].push_back(e);
    }
    std::sort(reps.begin(), reps.end());
  }
  return p;
}

std::vector<uint64_t> move_bytes_per_host(const ExpertPlacement& held, const ExpertPlacement& next, uint64_t expert_bytes) {
  std::vector<uint64_t> in(next.on_host.size(), 0);
  for (size_t h = 0; h < next.on_host.size(); ++h)
    for (int e : next.on_host[h])
      if (!holds(held.on_host[h], e)) in[h] += expert_bytes;
  return in;
}

ReplacementStudy study_replacement(const net::Topology& topo, const std::vector<std::vector<int32_t>>& batches, int experts,
                                   int slots_per_host, int layers, uint64_t bytes_per_token, uint64_t expert_bytes, int passes) {
  if (batches.empty()) fail("no batches to study");
  if (passes < 1) fail("--passes must be >= 1 (got {})", passes);
  if (expert_bytes < 1) fail("--expert-bytes must be >= 1");
  const int G = topo.hosts();
  const double nic_bps = static_cast<double>(topo.links[static_cast<size_t>(topo.host_downlink(0))].rate_bps);
  auto move_us = [&](const std::vector<uint64_t>& in) {
    return static_cast<double>(*std::max_element(in.begin(), in.end())) * 8.0 / nic_bps * 1e6;
  };
  ReplacementStudy s;
  s.passes = passes;
  const ExpertPlacement rr = place_experts(experts, G, slots_per_host, PlacementKind::ROUND_ROBIN, {});
  const ExpertPlacement first = place_experts(experts, G, slots_per_host, PlacementKind::HOT, expert_loads(batches[0], experts));
  ExpertPlacement held = first, always = first;
  for (const auto& batch : batches) {
    ReplacementBatch rb;
    rb.loads = expert_loads(batch, experts);
    const ExpertPlacement target = place_experts(experts, G, slots_per_host, PlacementKind::HOT, rb.loads);
    rb.round_robin_us = forward_bound_us(topo, batch, rr, layers, bytes_per_token);
    rb.hot_once_us = forward_bound_us(topo, batch, first, layers, bytes_per_token);
    // Lookahead policy: re-place only when this batch's passes pay for the move.
    const ExpertPlacement next = replace_with_fewest_moves(held, target, rb.loads);
    const auto in = move_bytes_per_host(held, next, expert_bytes);
    rb.moved_bytes = std::accumulate(in.begin(), in.end(), uint64_t{0});
    rb.move_us = move_us(in);
    rb.kept_us = forward_bound_us(topo, batch, held, layers, bytes_per_token);
    rb.replaced_us = forward_bound_us(topo, batch, next, layers, bytes_per_token);
    const double gain = rb.kept_us - rb.replaced_us;
    rb.break_even_passes = rb.moved_bytes == 0 ? 0 : gain > 0 ? rb.move_us / gain : std::numeric_limits<double>::infinity();
    rb.replaced = rb.moved_bytes > 0 && passes * gain > rb.move_us;
    s.lookahead_total_us += rb.replaced ? passes * rb.replaced_us + rb.move_us : passes * rb.kept_us;
    if (rb.replaced) s.lookahead_moved_bytes += rb.moved_bytes, held = next;
    // Always re-place (from its own previous placement).
    const ExpertPlacement always_next = replace_with_fewest_moves(always, target, rb.loads);
    const auto always_in = move_bytes_per_host(always, always_next, expert_bytes);
    s.always_moved_bytes += std::accumulate(always_in.begin(), always_in.end(), uint64_t{0});
    s.always_total_us += passes * forward_bound_us(topo, batch, always_next, layers, bytes_per_token) + move_us(always_in);
    always = always_next;
    s.round_robin_total_us += passes * rb.round_robin_us;
    s.hot_once_total_us += passes * rb.hot_once_us;
    s.batches.push_back(std::move(rb));
  }
  return s;
}

}  // namespace lookahead::bridge
