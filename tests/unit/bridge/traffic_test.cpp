// bridge/traffic.h: placement, the token matrix and the per-layer flows, checked against values
// worked out by hand.
#include "bridge/traffic.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "net/topo/topology.h"
#include "net/scenario/spec.h"

namespace lookahead::bridge {
namespace {

TEST(BridgePlacement, RoundRobinTwoHostsThreeExperts) {
  // S = ceil(3/2) = 2 slots per host, 4 slots: k0 h0 e0, k1 h1 e1, k2 h0 e2, k3 h1 e0.
  const auto p = place_experts(3, 2, 0, PlacementKind::ROUND_ROBIN, {});
  EXPECT_EQ(p.slots_per_host, 2);
  EXPECT_EQ(p.replicas, (std::vector<std::vector<int>>{{0, 1}, {1}, {0}}));
  EXPECT_EQ(p.on_host, (std::vector<std::vector<int>>{{0, 2}, {1, 0}}));
}

TEST(BridgePlacement, HotReplicatesByLoad) {
  // 4 hosts x 1 slot, 2 experts, loads 300 / 100: one replica each, then the spare slots go to the
  // most tokens per replica: e0 (300/1) -> e0 (150 vs 100) -> e0 has 3, e1 has 1.
  const auto p = place_experts(2, 4, 1, PlacementKind::HOT, {300, 100});
  EXPECT_EQ(p.replicas, (std::vector<std::vector<int>>{{0, 1, 2}, {3}}));
  // Round-robin ignores the loads: 2 replicas each.
  const auto rr = place_experts(2, 4, 1, PlacementKind::ROUND_ROBIN, {300, 100});
  EXPECT_EQ(rr.replicas, (std::vector<std::vector<int>>{{0, 2}, {1, 3}}));
}

TEST(BridgePlacement, RulesAreErrors) {
  EXPECT_THROW(place_experts(3, 2, 1, PlacementKind::ROUND_ROBIN, {}), Error);  // 2 slots < 3 experts
  EXPECT_THROW(place_experts(3, 2, 4, PlacementKind::ROUND_ROBIN, {}), Error);  // 4 slots per host > 3 experts
  EXPECT_THROW(place_experts(3, 1, 3, PlacementKind::ROUND_ROBIN, {}), Error);  // one host: no expert parallelism
  EXPECT_THROW(place_experts(3, 2, 2, PlacementKind::HOT, {1, 2}), Error);      // loads of 2 experts for 3
  EXPECT_THROW(parse_placement("random"), Error);
  EXPECT_EQ(parse_placement("round-robin"), PlacementKind::ROUND_ROBIN);
}

TEST(BridgeTraffic, HandComputedTwoHostsThreeExperts) {
  // Placement above: e0 on h0 and h1, e1 on h1, e2 on h0. 10 tokens: host 0 owns tokens 0-4,
  // host 1 tokens 5-9.
  const std::vector<int32_t> experts = {0, 1, 1, 2, 1, 1, 2, 2, 0, 1};
  const auto p = place_experts(3, 2, 0, PlacementKind::ROUND_ROBIN, {});
  const auto m = traffic_matrix(experts, p, 2);
  // h0: e0 x1 local, e1 x3 -> h1, e2 x1 local.  h1: e1 x2 local, e2 x2 -> h0, e0 x1 local.
  EXPECT_EQ(m.tokens, (std::vector<std::vector<uint64_t>>{{2, 3}, {2, 3}}));
  EXPECT_EQ(m.remote_tokens(), 5u);

  const auto t = moe_traffic(m, 2, 1000);  // 1000 bytes per token per hop
  ASSERT_EQ(t.phases.size(), 4u);
  ASSERT_EQ(t.workload.flows.size(), 8u);
  struct Want {
    int src, dst;
    uint64_t bytes;
  };
  // Per layer: dispatch 0->1 3 tokens, 1->0 2 tokens; combine sends them back.
  const Want want[] = {{0, 1, 3000}, {1, 0, 2000}, {0, 1, 2000}, {1, 0, 3000}};
  for (int l = 0; l < 2; ++l)
    for (int i = 0; i < 4; ++i) {
      const auto& f = t.workload.flows[static_cast<size_t>(4 * l + i)];
      EXPECT_EQ(f.src, want[i].src) << l << " " << i;
      EXPECT_EQ(f.dst, want[i].dst) << l << " " << i;
      EXPECT_EQ(f.bytes, want[i].bytes) << l << " " << i;
    }
  auto group = [&](int flow) { return t.workload.groups[static_cast<size_t>(t.workload.flows[static_cast<size_t>(flow)].group)]; };
  auto after = [&](int flow) {
    std::vector<std::string> names;
    for (int g : t.workload.flows[static_cast<size_t>(flow)].after_groups) names.push_back(t.workload.groups[static_cast<size_t>(g)]);
    return names;
  };
  EXPECT_EQ(group(0), "l0/dispatch/h1");
  EXPECT_TRUE(after(0).empty());                                          // layer 0's dispatch starts at once
  EXPECT_EQ(group(2), "l0/combine/h1");                                   // combine 0->1 returns h1's tokens
  EXPECT_EQ(after(2), std::vector<std::string>{"l0/dispatch/h0"});        // after h0's experts got theirs
  EXPECT_EQ(after(4), std::vector<std::string>{"l0/combine/h0"});         // layer 1 dispatch from h0
  EXPECT_EQ(after(5), std::vector<std::string>{"l0/combine/h1"});
}

TEST(BridgeTraffic, PhaseBarrierWaitsForTheWholePreviousPhase) {
  const auto p = place_experts(3, 2, 0, PlacementKind::ROUND_ROBIN, {});
  const auto m = traffic_matrix({0, 1, 1, 2, 1, 1, 2, 2, 0, 1}, p, 2);
  const auto t = moe_traffic(m, 2, 1000, Sync::PHASE);
  ASSERT_EQ(t.workload.flows.size(), 8u);
  EXPECT_TRUE(t.workload.flows[0].after_groups.empty());
  for (int f = 2; f < 8; ++f) {
    std::vector<std::string> names;
    for (int g : t.workload.flows[static_cast<size_t>(f)].after_groups) names.push_back(t.workload.groups[static_cast<size_t>(g)]);
    const Phase& before = t.phases[static_cast<size_t>(f / 2 - 1)];
    EXPECT_EQ(names.size(), 2u) << f;  // both receiving hosts' groups of the previous phase
    EXPECT_EQ(names[0], t.workload.groups[static_cast<size_t>(before.groups[0])]) << f;
  }
  EXPECT_THROW(parse_sync("global"), Error);
}

TEST(BridgeTraffic, ReplicaSplitRotatesWithTheSource) {
  // e0 on h1 and h2; h0 has 5 tokens of e0: 3 to the first replica counted from h0 mod 2 = 0 (h1), 2 to h2.
  ExpertPlacement p;
  p.replicas = {{1, 2}, {0}};
  p.on_host = {{1}, {0}, {0}};
  const std::vector<int32_t> experts = {0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};  // 5 tokens per host
  const auto m = traffic_matrix(experts, p, 3);
  EXPECT_EQ(m.tokens[0], (std::vector<uint64_t>{0, 3, 2}));
  EXPECT_EQ(m.tokens[1], (std::vector<uint64_t>{5, 0, 0}));
  EXPECT_EQ(m.tokens[2], (std::vector<uint64_t>{5, 0, 0}));
}

TEST(BridgeTraffic, BadBatches) {
  const auto p = place_experts(3, 2, 0, PlacementKind::ROUND_ROBIN, {});
  EXPECT_THROW(traffic_matrix({}, p, 2), Error);         // zero tokens
  EXPECT_THROW(traffic_matrix({0}, p, 2), Error);        // fewer tokens than hosts
  EXPECT_THROW(traffic_matrix({0, 5}, p, 2), Error);     // expert out of range
  EXPECT_THROW(moe_traffic(traffic_matrix({0, 1}, p, 2), 0, 8), Error);
  EXPECT_THROW(expert_loads({0, 3}, 3), Error);
}

TEST(BridgeTraffic, SpecRoundTripsThroughTheNetParser) {
  net::LeafSpineSpec ls;
  ls.leaves = 2, ls.spines = 2, ls.hosts_per_leaf = 2;
  const net::Topology topo = net::build_leaf_spine(ls);
  const std::vector<int32_t> experts = {0, 1, 2, 3, 3, 3, 2, 1, 0, 3, 3, 3};
  const auto p = place_experts(4, 4, 0, PlacementKind::ROUND_ROBIN, {});
  const auto t = moe_traffic(traffic_matrix(experts, p, 4), 3, 4096);
  const auto spec = scenario_json(topo, t, "spray", 7);
  const net::Scenario sc = net::parse_scenario(spec.dump(), "bridge.json");
  EXPECT_EQ(sc.topology.hosts(), 4);
  ASSERT_EQ(sc.workload.flows.size(), t.workload.flows.size());
  for (size_t i = 0; i < t.workload.flows.size(); ++i) {
    const auto& a = t.workload.flows[i];
    const auto& b = sc.workload.flows[i];
    EXPECT_EQ(a.src, b.src);
    EXPECT_EQ(a.dst, b.dst);
    EXPECT_EQ(a.bytes, b.bytes);
    EXPECT_EQ(t.workload.groups[static_cast<size_t>(a.group)], sc.workload.groups[static_cast<size_t>(b.group)]);
    ASSERT_EQ(a.after_groups.size(), b.after_groups.size());
    for (size_t k = 0; k < a.after_groups.size(); ++k)
      EXPECT_EQ(t.workload.groups[static_cast<size_t>(a.after_groups[k])], sc.workload.groups[static_cast<size_t>(b.after_groups[k])]);
  }
  EXPECT_NO_THROW(sc.workload.validate(sc.topology));
  // A bad after_groups entry is an error naming the key.
  auto bad = spec;
  bad["flows"][0]["after_groups"] = {1};
  try {
    net::parse_scenario(bad.dump(), "bridge.json");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("after_groups"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace lookahead::bridge
