// bridge/fabric_eval.h and the unequal-size planner on MoE traffic: per-uplink bytes balanced to the
// byte, and every scheme's packet simulation of a small forward pass finishing above the bound.
#include "bridge/fabric_eval.h"

#include <gtest/gtest.h>

#include <map>
#include <tuple>

#include "bridge/even_split.h"
#include "bridge/routing_source.h"
#include "bridge/traffic.h"
#include "net/analysis/congestion.h"
#include "net/balance/plan.h"
#include "common/error.h"

namespace lookahead::bridge {
namespace {

net::Topology leaf_spine(int leaves, int spines, int hosts_per_leaf) {
  net::LeafSpineSpec s;
  s.leaves = leaves, s.spines = spines, s.hosts_per_leaf = hosts_per_leaf;
  return net::build_leaf_spine(s);
}

// A skewed dispatch phase: Zipf 1.2 over 16 experts on 16 hosts, an odd token size so that shares
// do not divide evenly.
MoeTraffic skewed(const net::Topology& topo, int layers) {
  const auto experts = zipf_experts(16, 1.2, 4096, 3);
  const auto p = place_experts(16, topo.hosts(), 0, PlacementKind::ROUND_ROBIN, {});
  return moe_traffic(traffic_matrix(experts, p, topo.hosts()), layers, 8191);
}

// Bytes per (source host, destination leaf, path) of a plan.
std::map<std::pair<int, int>, std::map<int, uint64_t>> path_bytes(const net::Topology& topo, const net::balance::Plan& plan) {
  std::map<std::pair<int, int>, std::map<int, uint64_t>> out;
  for (const auto& qp : plan.qps)
    if (topo.tor_of(qp.src_host) != topo.tor_of(qp.dst_host)) out[{qp.src_host, topo.tor_of(qp.dst_host)}][qp.path] += qp.bytes;
  return out;
}

uint64_t spread(const std::map<int, uint64_t>& per_path, int paths) {
  uint64_t lo = ~uint64_t{0}, hi = 0;
  for (int p = 0; p < paths; ++p) {
    auto it = per_path.find(p);
    const uint64_t b = it == per_path.end() ? 0 : it->second;
    lo = std::min(lo, b), hi = std::max(hi, b);
  }
  return hi - lo;
}

TEST(BridgeUnequalPlanner, PerUplinkBytesBalancedToTheByte) {
  const auto topo = leaf_spine(4, 4, 4);
  const auto t = skewed(topo, 1);
  for (const Phase& ph : t.phases) {
    std::vector<net::balance::FlowDemand> d;
    for (int id : ph.flows) d.push_back({t.workload.flows[static_cast<size_t>(id)].src, t.workload.flows[static_cast<size_t>(id)].dst,
                                         t.workload.flows[static_cast<size_t>(id)].bytes});
    const auto min_plan = net::balance::make_plan(topo, d, net::balance::parse_scheme("ethereal-min"), 1);
    const auto eq_plan = net::balance::make_plan(topo, d, net::balance::parse_scheme("ethereal"), 1);
    uint64_t worst_min = 0, worst_equal = 0;
    for (const auto& [batch, per_path] : path_bytes(topo, min_plan)) worst_min = std::max(worst_min, spread(per_path, topo.spines));
    for (const auto& [batch, per_path] : path_bytes(topo, eq_plan)) worst_equal = std::max(worst_equal, spread(per_path, topo.spines));
    EXPECT_LE(worst_min, 1u) << (ph.combine ? "combine" : "dispatch");
    // The equal-size scheme leaves unequal flows unbalanced: this is what the unequal planner fixes.
    EXPECT_GT(worst_equal, 8191u) << (ph.combine ? "combine" : "dispatch");
    // On the leaf uplinks (link loads of the fluid checker), the unequal planner's bytes differ by at
    // most one per (source host, destination leaf) batch leaving the leaf.
    const auto loads = net::analysis::link_loads(topo, min_plan);
    for (int leaf = 0; leaf < topo.leaves; ++leaf) {
      const int node = topo.first_leaf + leaf;
      double lo = 1e300, hi = 0;
      for (int link : topo.up_ports[static_cast<size_t>(node)]) lo = std::min(lo, loads.bytes[static_cast<size_t>(link)]), hi = std::max(hi, loads.bytes[static_cast<size_t>(link)]);
      int batches = 0;
      for (const auto& [batch, per_path] : path_bytes(topo, min_plan)) batches += topo.tor_of(batch.first) == node;
      EXPECT_LE(hi - lo, batches) << "leaf " << leaf;
    }
  }
}

TEST(BridgeEvenSplit, EqualPiecesAndBytesOnEveryPath) {
  const auto topo = leaf_spine(4, 4, 4);
  const auto t = skewed(topo, 1);
  for (const Phase& ph : t.phases) {
    std::vector<net::balance::FlowDemand> d;
    for (int id : ph.flows) d.push_back({t.workload.flows[static_cast<size_t>(id)].src, t.workload.flows[static_cast<size_t>(id)].dst,
                                         t.workload.flows[static_cast<size_t>(id)].bytes});
    const auto plan = plan_even_pieces(topo, d);
    // Every flow's bytes are covered exactly once, in order.
    std::vector<uint64_t> next(d.size(), 0);
    for (const auto& qp : plan.qps) {
      ASSERT_EQ(qp.offset, next[static_cast<size_t>(qp.flow)]);
      next[static_cast<size_t>(qp.flow)] += qp.bytes;
      EXPECT_GT(qp.bytes, 0u);
      EXPECT_EQ(qp.routing, net::balance::Routing::PINNED);
    }
    for (size_t i = 0; i < d.size(); ++i) EXPECT_EQ(next[i], d[i].bytes) << i;
    for (const auto& [batch, per_path] : path_bytes(topo, plan)) EXPECT_LE(spread(per_path, topo.spines), 1u);
  }
  // Hand case: host 0 sends 10000, 1000 and 1000 B to hosts 3, 4, 5 under the other leaf, 2 spines:
  // n = 3, s = 2, m = 2, so 4 pieces of 12000 / 4 = 3000 B; piece j on path j mod 2. Flow 0 fills
  // pieces 0-2 and the first 1000 B of piece 3; flows 1 and 2 fill the rest of piece 3.
  const auto small = leaf_spine(2, 2, 3);
  const auto plan = plan_even_pieces(small, {{0, 3, 10000}, {0, 4, 1000}, {0, 5, 1000}});
  std::map<int, std::vector<uint64_t>> by_path;
  for (const auto& qp : plan.qps) by_path[qp.path].push_back(qp.bytes);
  ASSERT_EQ(by_path.size(), 2u);
  EXPECT_EQ(by_path[0], (std::vector<uint64_t>{3000, 3000}));
  EXPECT_EQ(by_path[1], (std::vector<uint64_t>{3000, 1000, 1000, 1000}));
}

TEST(BridgeFabricEval, EverySchemeFinishesAboveTheBound) {
  const auto topo = leaf_spine(2, 2, 2);
  const std::vector<int32_t> experts = zipf_experts(4, 1.0, 256, 5);
  const auto p = place_experts(4, 4, 0, PlacementKind::ROUND_ROBIN, {});
  const auto t = moe_traffic(traffic_matrix(experts, p, 4), 2, 4096);
  const auto ev = evaluate_on_fabric(topo, t, parse_bridge_schemes("all"), net::NetworkConfig{}, 1, true);
  ASSERT_EQ(ev.schemes.size(), 6u);
  ASSERT_EQ(ev.layer_bound_us.size(), 2u);
  EXPECT_GT(ev.forward_bound_us, 0);
  for (const auto& s : ev.schemes) {
    EXPECT_TRUE(s.finished) << s.scheme;
    ASSERT_EQ(s.layer_cct_us.size(), 2u) << s.scheme;
    // The simulator sends packets with headers through store-and-forward switches: slower than the fluid bound.
    EXPECT_GT(s.forward_us, ev.forward_bound_us) << s.scheme;
    for (size_t l = 0; l < 2; ++l) EXPECT_GE(s.layer_cct_us[l], ev.layer_bound_us[l]) << s.scheme << " layer " << l;
    EXPECT_GE(s.max_qps_per_host, 1) << s.scheme;
  }
  // ethereal-min matches ideal spraying's busiest fabric link in the fluid model.
  EXPECT_NEAR(ev.schemes[4].max_fabric_ratio_to_spray, 1.0, 1e-3);
  EXPECT_NEAR(ev.schemes[5].max_fabric_ratio_to_spray, 1.0, 1e-3);  // ethereal-even
}

TEST(BridgeFabricEval, LayerBoundIsTheHotHostsChain) {
  // The hand-computed case of traffic_test.cpp on two hosts under one leaf (400 Gbps, 500 ns):
  // per layer h1 receives 3 tokens (dispatch) and sends 3 back (combine), h0 2 and 2; 1000 B each.
  // h1's chain: 6000 B x 8 / 400 Gb/s = 0.12 us, plus two 0.5 us host links = 1.12 us. The busiest
  // link in a layer (h1's downlink: 3000 + 2000 B, 0.1 us) is below it. Forward (2 layers): the
  // busiest link carries 10000 B (0.2 us + 1 us) < the layer bound, so the layer bound holds.
  const auto topo = leaf_spine(1, 1, 2);
  const auto p = place_experts(3, 2, 0, PlacementKind::ROUND_ROBIN, {});
  const auto t = moe_traffic(traffic_matrix({0, 1, 1, 2, 1, 1, 2, 2, 0, 1}, p, 2), 2, 1000);
  const auto ev = evaluate_on_fabric(topo, t, {"spray"}, net::NetworkConfig{}, 1, false);
  ASSERT_EQ(ev.layer_bound_us.size(), 2u);
  EXPECT_NEAR(ev.layer_bound_us[0], 1.12, 1e-9);
  EXPECT_NEAR(ev.layer_bound_us[1], 1.12, 1e-9);
  EXPECT_NEAR(ev.forward_bound_us, 1.2, 1e-9);  // max(1.12, 0.2 + 1.0)
  // Phase bounds: dispatch's busiest link carries 3000 B (0.06 us), combine's too; + 1 us each.
  EXPECT_NEAR(ev.phase_serial_us, 4 * 1.06, 1e-9);
}

TEST(BridgeFabricEval, SchemeNames) {
  EXPECT_EQ(parse_bridge_schemes("spray,ethereal-min").size(), 2u);
  EXPECT_THROW(parse_bridge_schemes("mprdma-4"), Error);
  EXPECT_THROW(parse_bridge_schemes(","), Error);
}

TEST(BridgeRouting, ZipfIsSeededAndSkewed) {
  const auto a = zipf_experts(8, 1.5, 2000, 1), b = zipf_experts(8, 1.5, 2000, 1), c = zipf_experts(8, 1.5, 2000, 2);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  const auto loads = expert_loads(a, 8);
  EXPECT_GT(loads[0], 3 * loads[7]);
  const auto uniform = expert_loads(zipf_experts(4, 0, 4000, 1), 4);
  for (uint64_t l : uniform) EXPECT_NEAR(static_cast<double>(l), 1000.0, 120.0);
  EXPECT_THROW(zipf_experts(8, -1, 10, 1), Error);
}

}  // namespace
}  // namespace lookahead::bridge
