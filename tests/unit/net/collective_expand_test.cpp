// Collective algorithms: bytes per rank against the textbook formulas, step structure, data
// dependencies, NCCL's double binary tree, rank placement and bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <set>

#include "common/error.h"
#include "net/collective/collective.h"

using namespace lookahead::net::collective;

namespace {

Collective make(Kind kind, Algorithm algo, int p, uint64_t bytes, int chunks = 4, bool rendezvous = false) {
  CollectiveSpec spec;
  spec.rendezvous = rendezvous;
  spec.kind = kind;
  spec.algorithm = algo;
  spec.ranks = p;
  spec.message_bytes = bytes;
  spec.chunks = chunks;
  return expand(spec, place_ranks(p, p, Placement::LINEAR, 0));
}

uint64_t total(const Collective& c) {
  uint64_t t = 0;
  for (const auto& f : c.flows) t += f.bytes;
  return t;
}

void expect_deps_well_formed(const Collective& c) {
  for (const auto& f : c.flows) {
    EXPECT_NE(f.src_rank, f.dst_rank);
    EXPECT_GT(f.bytes, 0u);
    for (int d : f.deps) {
      ASSERT_LT(d, f.id);
      // A dependency brings data into the rank that sends this flow, or (pipelined trees) is the
      // previous chunk on the same edge.
      const auto& dep = c.flows[d];
      bool data = dep.dst_rank == f.src_rank;
      bool same_edge = dep.src_rank == f.src_rank && dep.dst_rank == f.dst_rank;
      EXPECT_TRUE(data || same_edge) << "flow " << f.id << " dep " << d;
      EXPECT_LT(c.flows[d].step, f.step);
    }
  }
}

}  // namespace

TEST(CollectiveExpand, AllReduceSendsTwoPMinusOneOverPOfTheMessage) {
  // Ring, direct and halving-doubling all send 2(p-1)/p * M per rank.
  const uint64_t M = 64ull << 20;
  for (int p : {2, 4, 8, 16, 64}) {
    for (Algorithm a : {Algorithm::RING, Algorithm::DIRECT, Algorithm::HALVING_DOUBLING}) {
      auto c = make(Kind::ALL_REDUCE, a, p, M);
      for (uint64_t sent : c.bytes_sent_per_rank()) EXPECT_EQ(sent, 2 * (p - 1) * (M / p)) << algorithm_name(a) << p;
      expect_deps_well_formed(c);
    }
  }
}

TEST(CollectiveExpand, StepsAndFlowsPerAlgorithm) {
  const int p = 16;
  const uint64_t M = 1 << 20;
  auto ring = make(Kind::ALL_REDUCE, Algorithm::RING, p, M);
  EXPECT_EQ(ring.steps.size(), 2u * (p - 1));
  for (const auto& step : ring.steps) EXPECT_EQ(step.size(), static_cast<size_t>(p));
  for (const auto& f : ring.flows) {
    EXPECT_EQ(f.dst_rank, (f.src_rank + 1) % p);
    EXPECT_EQ(f.bytes, M / p);
    EXPECT_EQ(f.deps.size(), f.step == 0 ? 0u : 1u);
  }
  auto direct = make(Kind::ALL_REDUCE, Algorithm::DIRECT, p, M);
  ASSERT_EQ(direct.steps.size(), 2u);
  EXPECT_EQ(direct.steps[0].size(), static_cast<size_t>(p * (p - 1)));
  EXPECT_EQ(direct.flows[direct.steps[1][0]].deps.size(), static_cast<size_t>(p - 1));
  auto hd = make(Kind::ALL_REDUCE, Algorithm::HALVING_DOUBLING, p, M);
  ASSERT_EQ(hd.steps.size(), 8u);  // log2(16) halving + log2(16) doubling
  const uint64_t expected[8] = {M / 2, M / 4, M / 8, M / 16, M / 16, M / 8, M / 4, M / 2};
  const int distance[8] = {8, 4, 2, 1, 1, 2, 4, 8};
  for (int k = 0; k < 8; ++k)
    for (int id : hd.steps[k]) {
      EXPECT_EQ(hd.flows[id].bytes, expected[k]) << "step " << k;
      EXPECT_EQ(hd.flows[id].src_rank ^ hd.flows[id].dst_rank, distance[k]);
    }
  auto a2a = make(Kind::ALL_TO_ALL, Algorithm::DIRECT, p, M);
  ASSERT_EQ(a2a.steps.size(), 1u);
  EXPECT_EQ(a2a.flows.size(), static_cast<size_t>(p * (p - 1)));
  for (uint64_t sent : a2a.bytes_sent_per_rank()) EXPECT_EQ(sent, M - M / p);
}

// Halving-doubling: every send carries (partial sums of) everything its rank received before, so a
// flow must (transitively) wait for every earlier flow into its source rank. With only the previous
// step's receive as a dependency, a rank whose latest partner ran ahead forwarded sums it did not
// have yet and ran steps ahead of the data (3 sends of one rank in flight at once under a failed
// cable, docs/results/net-singlepath.md).
TEST(CollectiveExpand, HalvingDoublingSendsOnlyWhatItHasReceived) {
  for (Kind kind : {Kind::ALL_REDUCE, Kind::REDUCE_SCATTER, Kind::ALL_GATHER})
    for (int p : {4, 8, 32}) {
      auto c = make(kind, Algorithm::HALVING_DOUBLING, p, 1 << 20);
      expect_deps_well_formed(c);
      std::vector<std::set<int>> before(c.flows.size());  // transitive deps of each flow
      for (const auto& f : c.flows)
        for (int d : f.deps) {
          before[f.id].insert(d);
          before[f.id].insert(before[d].begin(), before[d].end());
        }
      for (const auto& f : c.flows)
        for (const auto& g : c.flows) {
          if (g.dst_rank != f.src_rank || g.step >= f.step) continue;
          EXPECT_TRUE(before[f.id].count(g.id)) << kind_name(kind) << " p=" << p << ": flow " << f.id << " (rank "
                                                  << f.src_rank << ", step " << f.step << ") does not wait for flow "
                                                  << g.id << " into its rank at step " << g.step;
        }
    }
}

// Rendezvous (step-synchronous, MPI_Sendrecv-like): on ring and hd a send to a peer also waits for
// the peer's whole previous step (its send and its receive); the steps and the data deps stay. Direct
// and dbt are unchanged.
TEST(CollectiveExpand, RendezvousWaitsForTheReceiversPreviousStep) {
  for (Algorithm a : {Algorithm::HALVING_DOUBLING, Algorithm::RING}) {
    const Collective eager = make(Kind::ALL_REDUCE, a, 8, 1 << 20);
    const Collective sync = make(Kind::ALL_REDUCE, a, 8, 1 << 20, 4, true);
    ASSERT_EQ(eager.flows.size(), sync.flows.size());
    EXPECT_EQ(eager.steps, sync.steps);
    int missing_when_eager = 0;
    for (const auto& f : sync.flows) {
      const auto& e = eager.flows[f.id];
      for (int d : e.deps) EXPECT_NE(std::find(f.deps.begin(), f.deps.end(), d), f.deps.end());  // data deps kept
      for (int d : f.deps) EXPECT_LT(d, f.id);
      if (f.step == 0) continue;
      for (int g : sync.steps[f.step - 1]) {
        const auto& prev = sync.flows[g];
        if (prev.src_rank != f.dst_rank && prev.dst_rank != f.dst_rank) continue;
        EXPECT_NE(std::find(f.deps.begin(), f.deps.end(), g), f.deps.end())
            << algorithm_name(a) << ": flow " << f.id << " does not wait for its receiver's step " << f.step - 1;
        missing_when_eager += std::find(e.deps.begin(), e.deps.end(), g) == e.deps.end();
      }
    }
    EXPECT_GT(missing_when_eager, 0) << algorithm_name(a);
  }
  for (Algorithm a : {Algorithm::DIRECT, Algorithm::DOUBLE_BINARY_TREE}) {
    const Collective eager = make(Kind::ALL_REDUCE, a, 8, 1 << 20);
    const Collective sync = make(Kind::ALL_REDUCE, a, 8, 1 << 20, 4, true);
    ASSERT_EQ(eager.flows.size(), sync.flows.size());
    for (size_t i = 0; i < eager.flows.size(); ++i) EXPECT_EQ(eager.flows[i].deps, sync.flows[i].deps);
  }
}

TEST(CollectiveExpand, UnevenMessagesLoseNoByte) {
  // M not divisible by p: chunks differ by one byte; reduce-scatter and all-gather each move (p-1)M.
  const uint64_t M = 1000003;
  for (int p : {3, 5, 8, 12}) {
    for (Algorithm a : {Algorithm::RING, Algorithm::DIRECT}) {
      EXPECT_EQ(total(make(Kind::ALL_REDUCE, a, p, M)), 2 * (p - 1) * M) << p;
      EXPECT_EQ(total(make(Kind::REDUCE_SCATTER, a, p, M)), (p - 1) * M) << p;
      EXPECT_EQ(total(make(Kind::ALL_GATHER, a, p, M)), (p - 1) * M) << p;
    }
    EXPECT_EQ(total(make(Kind::ALL_REDUCE, Algorithm::DOUBLE_BINARY_TREE, p, M)), 2 * (p - 1) * M) << p;
  }
  EXPECT_EQ(total(make(Kind::ALL_REDUCE, Algorithm::HALVING_DOUBLING, 8, M)), 2 * 7 * M);
}

TEST(CollectiveExpand, RingAllGatherSendsEveryChunkOnce) {
  // Each rank must receive every other rank's chunk exactly once: with distinct chunk sizes
  // (M = p*(p+1)/2-ish uneven) the per-receiver bytes equal M minus its own chunk.
  const int p = 7;
  const uint64_t M = 7 * 1000 + 5;  // chunks 0..4 are one byte larger
  for (Kind k : {Kind::ALL_GATHER, Kind::ALL_REDUCE}) {
    auto c = make(k, Algorithm::RING, p, M);
    std::vector<uint64_t> received(p, 0);
    for (const auto& f : c.flows)
      if (k == Kind::ALL_GATHER || f.step >= p - 1) received[f.dst_rank] += f.bytes;
    // After all-reduce's reduce-scatter rank i owns chunk (i+1) mod p, so it receives all others.
    for (int r = 0; r < p; ++r) {
      int own = k == Kind::ALL_GATHER ? r : (r + 1) % p;
      EXPECT_EQ(received[r], M - part_bytes(M, p, own)) << "rank " << r;
    }
  }
}

TEST(CollectiveExpand, DoubleBinaryTreeIsTwoSpanningTreesCarryingHalfEach) {
  const uint64_t M = 8 << 20;
  for (int p : {2, 3, 7, 16, 33, 256}) {
    const int chunks = 4;
    auto c = make(Kind::ALL_REDUCE, Algorithm::DOUBLE_BINARY_TREE, p, M, chunks);
    EXPECT_EQ(c.flows.size(), static_cast<size_t>(2 * 2 * (p - 1) * chunks));  // trees x phases x edges x chunks
    EXPECT_EQ(total(c), 2 * (p - 1) * M);
    expect_deps_well_formed(c);
    // Each rank sends at most M/2 up and 2 x M/2 down in one tree, M/2 up in the other: <= 2M.
    for (uint64_t sent : c.bytes_sent_per_rank()) EXPECT_LE(sent, 2 * M);
    // Reduce edges (child -> parent) of one chunk form a tree per half: p-1 distinct senders each.
    if (p >= 4) {
      // Most ranks are leaves (send nothing down) in at least one of the two trees.
      std::vector<std::set<int>> down_senders(2);
      std::set<std::pair<int, int>> edges;
      for (const auto& f : c.flows) edges.insert({f.src_rank, f.dst_rank});
      int interior_in_both = 0;
      for (int r = 0; r < p; ++r) {
        int out_degree = 0;
        for (const auto& e : edges) out_degree += e.first == r;
        interior_in_both += out_degree >= 5;  // parent x2 + two children in both trees
      }
      EXPECT_LE(interior_in_both, 2) << p;
    }
  }
  // The pipeline: with more chunks, more steps (chunk c+1 follows chunk c on every edge).
  auto c4 = make(Kind::ALL_REDUCE, Algorithm::DOUBLE_BINARY_TREE, 16, M, 4);
  auto c8 = make(Kind::ALL_REDUCE, Algorithm::DOUBLE_BINARY_TREE, 16, M, 8);
  EXPECT_EQ(c8.steps.size(), c4.steps.size() + 4);
}

TEST(CollectiveExpand, PlacementIsSeededAndDistinct) {
  auto a = place_ranks(64, 256, Placement::RANDOM, 5);
  auto b = place_ranks(64, 256, Placement::RANDOM, 5);
  auto c = place_ranks(64, 256, Placement::RANDOM, 6);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_EQ(std::set<int>(a.begin(), a.end()).size(), 64u);
  for (int h : a) EXPECT_LT(h, 256);
  auto lin = place_ranks(4, 8, Placement::LINEAR, 0);
  EXPECT_EQ(lin, (std::vector<int>{0, 1, 2, 3}));
}

TEST(CollectiveExpand, BadInputIsAClearError) {
  EXPECT_THROW(place_ranks(300, 256, Placement::LINEAR, 0), lookahead::Error);  // more ranks than hosts
  EXPECT_THROW(make(Kind::ALL_REDUCE, Algorithm::HALVING_DOUBLING, 12, 1 << 20), lookahead::Error);
  EXPECT_THROW(make(Kind::ALL_REDUCE, Algorithm::RING, 16, 8), lookahead::Error);  // 8 bytes < 16 chunks
  EXPECT_THROW(make(Kind::ALL_REDUCE, Algorithm::DOUBLE_BINARY_TREE, 16, 6, 4), lookahead::Error);
  EXPECT_THROW(make(Kind::ALL_GATHER, Algorithm::DOUBLE_BINARY_TREE, 16, 1 << 20), lookahead::Error);
  EXPECT_THROW(make(Kind::ALL_TO_ALL, Algorithm::RING, 16, 1 << 20), lookahead::Error);
  EXPECT_THROW(parse_algorithm("butterfly"), lookahead::Error);
  EXPECT_THROW(parse_kind("broadcast"), lookahead::Error);
  try {
    place_ranks(300, 256, Placement::LINEAR, 0);
  } catch (const lookahead::Error& e) {
    EXPECT_NE(std::string(e.what()).find("300 ranks do not fit on 256 hosts"), std::string::npos);
  }
}
