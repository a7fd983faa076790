// The fluid max-congestion checker and the theorem: on 1:1 fabrics the planner's max link load
// equals ideal spraying's on every step of every collective; ECMP and MP-RDMA-x do not.
#include <gtest/gtest.h>

#include <set>

#include "common/error.h"
#include "net/analysis/congestion.h"
#include "net/balance/collective_splitter.h"

using namespace lookahead::net;
using namespace lookahead::net::analysis;
using lookahead::net::balance::Scheme;
using lookahead::net::balance::SchemeKind;
using lookahead::net::balance::step_flows;
using lookahead::net::collective::Algorithm;
using lookahead::net::collective::Kind;

namespace {

Topology leaf_spine(int leaves, int spines, int hosts_per_leaf, double oversub = 0) {
  LeafSpineSpec spec;
  spec.leaves = leaves;
  spec.spines = spines;
  spec.hosts_per_leaf = hosts_per_leaf;
  spec.oversubscription = oversub;
  return build_leaf_spine(spec);
}

Topology fat_tree_k8() {
  FatTreeSpec spec;
  spec.k = 8;  // 8 pods x 4 ToRs x 4 hosts = 128 hosts; 4 aggs per pod, 16 cores; 16 paths across pods
  return build_fat_tree(spec);
}

struct Case {
  Kind kind;
  Algorithm algo;
};

const Case kCases[] = {
    {Kind::ALL_REDUCE, Algorithm::RING},      {Kind::ALL_REDUCE, Algorithm::DIRECT},
    {Kind::ALL_REDUCE, Algorithm::HALVING_DOUBLING}, {Kind::ALL_REDUCE, Algorithm::DOUBLE_BINARY_TREE},
    {Kind::ALL_TO_ALL, Algorithm::DIRECT},    {Kind::ALL_GATHER, Algorithm::HALVING_DOUBLING},
    {Kind::REDUCE_SCATTER, Algorithm::RING},
};

collective::Collective make(const Topology& topo, Case c, uint64_t bytes, collective::Placement placement,
                            int ranks = 0) {
  collective::CollectiveSpec spec;
  spec.kind = c.kind;
  spec.algorithm = c.algo;
  spec.ranks = ranks > 0 ? ranks : topo.hosts();
  spec.message_bytes = bytes;
  return collective::expand(spec, collective::place_ranks(spec.ranks, topo.hosts(), placement, 3));
}

// Every step: ethereal's max fabric link load == spraying's; every scheme >= spraying's.
// Message sizes are powers of two, so the equality is exact, not just within rounding.
void expect_theorem(const Topology& topo, collective::Placement placement, int ranks) {
  const std::vector<Scheme> schemes = {{SchemeKind::ECMP, 1}, {SchemeKind::ETHEREAL, 1}, {SchemeKind::ETHEREAL_TIERED, 1}};
  for (const Case& c : kCases) {
    auto coll = make(topo, c, 1 << 20, placement, ranks);
    for (int s = 0; s < static_cast<int>(coll.steps.size()); ++s) {
      auto r = check_step(topo, step_flows(coll, s), schemes, 1);
      for (const auto& sr : r.schemes) {
        if (sr.scheme == "ethereal" || sr.scheme == "ethereal-tiered") {
          EXPECT_TRUE(sr.matches_spray) << collective::kind_name(c.kind) << "/" << collective::algorithm_name(c.algo)
                                        << " step " << s << " ratio " << sr.ratio_to_spray;
          EXPECT_DOUBLE_EQ(sr.ratio_to_spray, 1.0);
        }
        EXPECT_GE(sr.ratio_to_spray, 1.0 - 1e-9) << sr.scheme;  // spraying is the lower bound
        EXPECT_EQ(sr.blackholed_bytes, 0);
      }
    }
  }
}

}  // namespace

TEST(AnalysisCongestion, TheoremOnLeafSpineEveryStepEveryCollective) {
  expect_theorem(leaf_spine(8, 8, 8), collective::Placement::LINEAR, 64);
  expect_theorem(leaf_spine(8, 8, 8), collective::Placement::RANDOM, 32);
}

TEST(AnalysisCongestion, TheoremOnFatTreeEveryStepEveryCollective) {
  // Fat-tree paths across pods are (ToR uplink, aggregation uplink) pairs: 4 x 4 = 16 here.
  auto topo = fat_tree_k8();
  EXPECT_EQ(topo.path_count(0, topo.hosts() - 1), 16);
  expect_theorem(topo, collective::Placement::LINEAR, 64);   // pods 0-3
  expect_theorem(topo, collective::Placement::RANDOM, 32);   // scattered over all pods
}

TEST(AnalysisCongestion, TieredFatTreePlanNeedsFewerQps) {
  // Direct all-reduce on the k = 8 fat-tree: 4 flows per (host, remote-pod ToR) batch over 16 paths.
  // Flat: r = 4, g = 4 -> 16 QPs per batch. Tiered: 4 flows over 4 ToR uplinks, then per (pod, uplink)
  // one flow per destination ToR (4) over 4 cores: no split at all.
  auto topo = fat_tree_k8();
  auto coll = make(topo, {Kind::ALL_REDUCE, Algorithm::DIRECT}, 1 << 20, collective::Placement::LINEAR);
  auto r = check_step(topo, step_flows(coll, 0), {{SchemeKind::ETHEREAL, 1}, {SchemeKind::ETHEREAL_TIERED, 1}}, 1);
  EXPECT_TRUE(r.schemes[0].matches_spray);
  EXPECT_TRUE(r.schemes[1].matches_spray);
  EXPECT_EQ(r.schemes[1].max_qps_per_host, topo.hosts() - 1);  // one QP per peer
  EXPECT_GT(r.schemes[0].max_qps_per_host, 2 * r.schemes[1].max_qps_per_host);
}

TEST(AnalysisCongestion, PaperFabricHalvingDoublingStepIsExact) {
  // 256 hosts, 16 x 16: a cross-leaf halving step sends one flow per host to a remote leaf (n = 1):
  // ethereal cuts it into 16 pieces and every uplink carries exactly spraying's load.
  auto topo = leaf_spine(16, 16, 16);
  auto coll = make(topo, {Kind::ALL_REDUCE, Algorithm::HALVING_DOUBLING}, 64 << 20, collective::Placement::LINEAR);
  auto r = check_step(topo, step_flows(coll, 0), {{SchemeKind::ECMP, 1}, {SchemeKind::ETHEREAL, 1}}, 1);
  ASSERT_EQ(r.schemes.size(), 2u);
  EXPECT_EQ(r.cross_leaf_flows, 256);
  EXPECT_EQ(r.schemes[1].max_bytes, 16 * (32 << 20) / 16.0);  // 16 hosts x M/2 over 16 uplinks
  EXPECT_EQ(r.schemes[1].max_qps_per_host, 16);
  EXPECT_GT(r.schemes[0].ratio_to_spray, 2.0);  // ECMP: 16 flows hashed onto 16 spines collide
}

TEST(AnalysisCongestion, FailedLinkAndOversubscription) {
  auto topo = leaf_spine(8, 8, 8);
  for (int l : parse_failed_cable(topo, "leaf0-spine3", "--fail")) topo.set_link_up(l, false);
  auto coll = make(topo, {Kind::ALL_REDUCE, Algorithm::DIRECT}, 1 << 20, collective::Placement::LINEAR);
  auto r = check_step(topo, step_flows(coll, 0), {{SchemeKind::ECMP, 1}, {SchemeKind::ETHEREAL, 1}}, 1);
  // ECMP at the other leaves still hashes onto spine3 towards leaf0: those bytes are lost.
  EXPECT_GT(r.schemes[0].blackholed_bytes, 0);
  EXPECT_EQ(r.schemes[1].blackholed_bytes, 0);  // ethereal splits over the live paths only
  EXPECT_TRUE(r.schemes[1].matches_spray);
  // 2:1 oversubscribed: same bytes per link, twice the drain time on the fabric.
  auto slow = leaf_spine(8, 8, 8, 2.0);
  auto fast = leaf_spine(8, 8, 8);
  auto rs = check_step(slow, step_flows(coll, 0), {{SchemeKind::ETHEREAL, 1}}, 1);
  auto rf = check_step(fast, step_flows(coll, 0), {{SchemeKind::ETHEREAL, 1}}, 1);
  EXPECT_DOUBLE_EQ(rs.schemes[0].max_bytes, rf.schemes[0].max_bytes);
  EXPECT_NEAR(rs.schemes[0].max_drain_us, 2 * rf.schemes[0].max_drain_us, 1e-6);
  EXPECT_THROW(parse_failed_cable(topo, "leaf0-spine99", "--fail"), lookahead::Error);
  EXPECT_THROW(parse_failed_cable(topo, "garbage", "--fail"), lookahead::Error);
}

TEST(AnalysisCongestion, UnequalSizesBreakTheEqualSchemeNotTheFewestPieces) {
  auto topo = leaf_spine(8, 8, 8);
  auto ranks = collective::place_ranks(64, 64, collective::Placement::LINEAR, 0);
  auto coll = collective::skewed_all_to_all(ranks, 4096, 8192, 1.2, 9);
  auto flows = step_flows(coll, 0);
  auto r = check_step(topo, flows, {{SchemeKind::ETHEREAL, 1}, {SchemeKind::ETHEREAL_MIN, 1}}, 1);
  EXPECT_FALSE(r.schemes[0].matches_spray);  // count-based splitting ignores sizes
  EXPECT_GT(r.schemes[0].ratio_to_spray, 1.01);
  EXPECT_TRUE(r.schemes[1].matches_spray);
  // At most n + s - 1 pieces per (host, leaf) batch: n flows + (s - 1) per batch.
  int batches = 0;
  std::set<std::pair<int, int>> keys;
  for (const auto& f : flows)
    if (topo.tor_of(f.src_host) != topo.tor_of(f.dst_host)) keys.insert({f.src_host, topo.tor_of(f.dst_host)});
  batches = static_cast<int>(keys.size());
  EXPECT_LE(r.schemes[1].qps, static_cast<int>(flows.size()) + batches * (8 - 1));
}
