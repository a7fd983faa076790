// Ethereal at run time: failure learning (FailedPaths) and the splitting of a collective's steps into
// QPs as they become ready (CollectiveSplitter), without the simulator.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "common/error.h"
#include "net/balance/collective_splitter.h"
#include "net/balance/failed_paths.h"

using namespace lookahead::net;
using lookahead::net::balance::CollectiveSplitter;
using lookahead::net::balance::FailedPaths;

namespace {

Topology leaf_spine_4x4x4() {
  LeafSpineSpec spec;
  spec.leaves = 4;
  spec.spines = 4;
  spec.hosts_per_leaf = 4;
  return build_leaf_spine(spec);
}

Job ring_job(const Topology& topo, uint64_t bytes) {
  Job job;
  job.name = "ring";
  job.collective.algorithm = collective::Algorithm::RING;
  job.collective.ranks = topo.hosts();
  job.collective.message_bytes = bytes;
  for (int h = 0; h < topo.hosts(); ++h) job.hosts.push_back(h);
  return job;
}

}  // namespace

TEST(BalanceFailedPaths, ATimeoutMarksThePathForTheDestinationLeafUntilItsHoldEnds) {
  auto topo = leaf_spine_4x4x4();
  FailedPaths known(topo, /*hold_ps=*/1000);
  const int src = 0, dst = 4;  // leaf 0 -> leaf 1, 4 paths (one per spine)
  ASSERT_EQ(topo.path_count(src, dst), 4);
  EXPECT_FALSE(known.known_failed(src, dst, 1, 0));
  EXPECT_EQ(known.timeout(src, dst, 1, 100), 2);  // the next path not known failed
  EXPECT_TRUE(known.known_failed(src, dst, 1, 100));
  EXPECT_TRUE(known.known_failed(src, 5, 1, 100));   // every host under leaf 1 shares the mark
  EXPECT_FALSE(known.known_failed(src, 8, 1, 100));  // leaf 2: another mark
  EXPECT_FALSE(known.known_failed(1, dst, 1, 100));  // another source host learns on its own
  EXPECT_TRUE(known.known_failed(src, dst, 1, 1099));
  EXPECT_FALSE(known.known_failed(src, dst, 1, 1100));  // expired
  EXPECT_EQ(known.learned(), 1);
  EXPECT_EQ(known.timeout(src, dst, 1, 200), 2);  // renewed, not learned twice
  EXPECT_EQ(known.learned(), 1);
  EXPECT_EQ(known.timeout(src, dst, 2, 200), 3);
  EXPECT_EQ(known.timeout(src, dst, 3, 200), 0);  // wraps around
  EXPECT_EQ(known.learned(), 3);
}

// Timeouts from deep queues add up over a long run; a source that held every path to a leaf failed
// could neither avoid nor leave the one that is (learning Ethereal's DNFs at 128 MiB on the failed
// leaf-spine). Marking the last unmarked path forgets the oldest mark instead.
TEST(BalanceFailedPaths, MarkingTheLastUnmarkedPathForgetsTheOldestMark) {
  auto topo = leaf_spine_4x4x4();
  FailedPaths known(topo, /*hold_ps=*/1000);
  const int src = 0, dst = 4;
  EXPECT_EQ(known.timeout(src, dst, 1, 100), 2);
  EXPECT_EQ(known.timeout(src, dst, 2, 200), 3);
  EXPECT_EQ(known.timeout(src, dst, 3, 300), 0);
  EXPECT_EQ(known.timeout(src, dst, 0, 400), 1);  // path 1's mark (the oldest) is forgotten
  EXPECT_FALSE(known.known_failed(src, dst, 1, 400));
  for (int p : {0, 2, 3}) EXPECT_TRUE(known.known_failed(src, dst, p, 400)) << p;
  EXPECT_EQ(known.timeout(src, dst, 1, 500), 2);  // and again: path 2's is now the oldest
  EXPECT_FALSE(known.known_failed(src, dst, 2, 500));
  for (int p : {0, 1, 3}) EXPECT_TRUE(known.known_failed(src, dst, p, 500)) << p;
  EXPECT_EQ(known.learned(), 4);  // distinct paths ever marked
  // Expired marks do not count: with path 3's and 0's expired, path 2 is simply marked.
  EXPECT_EQ(known.timeout(src, dst, 2, 1450), 3);
  EXPECT_TRUE(known.known_failed(src, dst, 1, 1450));
  EXPECT_TRUE(known.known_failed(src, dst, 2, 1450));
}

// A QP moved off a failed path goes to the spread-th healthy other path: the QPs leaving one path
// (each with its own hash) share the others evenly instead of all landing on the next one, which
// doubled that path's load (learning Ethereal's direct all-reduce under a failure).
TEST(BalanceFailedPaths, MovedQpsSpreadOverTheHealthyPaths) {
  auto topo = leaf_spine_4x4x4();
  FailedPaths known(topo, /*hold_ps=*/1000);
  const int src = 0, dst = 4;
  EXPECT_EQ(known.timeout(src, dst, 1, 100, 0), 2);  // spread 0: the next path, as before
  EXPECT_EQ(known.timeout(src, dst, 1, 100, 1), 3);
  EXPECT_EQ(known.timeout(src, dst, 1, 100, 2), 0);
  EXPECT_EQ(known.timeout(src, dst, 1, 100, 3), 2);  // modulo the 3 healthy others
  EXPECT_EQ(known.timeout(src, dst, 3, 100, 1), 2);  // 1 and 3 known failed: 0 then 2 after 3
  std::map<int, int> landed;
  FailedPaths fresh(topo, /*hold_ps=*/1000);
  for (uint64_t qp = 0; qp < 3000; ++qp) ++landed[fresh.timeout(src, dst, 0, 100, lookahead::net::splitmix64(qp))];
  ASSERT_EQ(landed.size(), 3u);
  for (int p : {1, 2, 3}) EXPECT_NEAR(landed[p], 1000, 100) << p;
}

// Ring all-reduce: host 3 sends to host 4 (leaf 0 -> leaf 1) in every step, one flow per batch, which
// ethereal cuts into one piece per path. A path learnt failed in step 0 is left out of step 1.
TEST(BalanceCollectiveSplitter, APathLearntFailedInOneStepIsAvoidedInTheNext) {
  auto topo = leaf_spine_4x4x4();
  std::vector<Job> jobs = {ring_job(topo, 1 << 20)};
  auto cs = expand_jobs(jobs, topo.hosts());
  CollectiveSplitter splitter(topo, jobs, cs, "ethereal", 1, /*learn=*/true, {});
  Workload w = splitter.workload();
  std::vector<int> three_to_four;  // workload flows 3 -> 4, in step order
  for (size_t i = 0; i < w.flows.size(); ++i) {
    EXPECT_TRUE(w.flows[i].split_on_start);
    if (w.flows[i].src == 3 && w.flows[i].dst == 4) three_to_four.push_back(static_cast<int>(i));
  }
  ASSERT_GE(three_to_four.size(), 2u);

  auto step0 = splitter.split(three_to_four[0], 0);
  std::set<int> paths0;
  uint64_t bytes0 = 0;
  for (const auto& q : step0) {
    EXPECT_EQ(*q.lb, LoadBalancing::SOURCE);
    paths0.insert(q.path);
    bytes0 += q.bytes;
  }
  EXPECT_EQ(paths0.size(), 4u);
  EXPECT_EQ(bytes0, w.flows[three_to_four[0]].bytes);

  const int failed = *paths0.begin();
  const int next = splitter.timeout(3, 4, failed, 1'000'000);
  EXPECT_NE(next, failed);
  EXPECT_GE(next, 0);
  EXPECT_EQ(splitter.learned(), 1);

  auto step1 = splitter.split(three_to_four[1], 2'000'000);
  uint64_t bytes1 = 0;
  for (const auto& q : step1) {
    EXPECT_NE(q.path, failed) << "step 1 uses the path learnt failed in step 0";
    bytes1 += q.bytes;
  }
  EXPECT_EQ(step1.size(), 3u);  // one piece per path still believed good
  EXPECT_EQ(bytes1, w.flows[three_to_four[1]].bytes);
}

// Static plans (every scheme but learning ethereal): every flow's QPs carry exactly its bytes, and
// total_qps counts them all.
TEST(BalanceCollectiveSplitter, StaticSplitsConserveEveryFlowsBytes) {
  auto topo = leaf_spine_4x4x4();
  std::vector<Job> jobs = {ring_job(topo, 3 << 20)};
  jobs[0].collective.algorithm = collective::Algorithm::HALVING_DOUBLING;
  auto cs = expand_jobs(jobs, topo.hosts());
  for (const char* scheme : {"ethereal", "ethereal-known", "mprdma-4", "ecmp", "spray", "reps", "ethereal-min"}) {
    CollectiveSplitter splitter(topo, jobs, cs, scheme, 7, /*learn=*/false, balance::kPaperTiming);
    Workload w = splitter.workload();
    ASSERT_EQ(w.flows.size(), cs[0].flows.size()) << scheme;
    int qps = 0;
    for (size_t i = 0; i < w.flows.size(); ++i) {
      uint64_t bytes = 0;
      for (const auto& q : splitter.split(static_cast<int>(i), 0)) {
        EXPECT_EQ(q.src, w.flows[i].src);
        EXPECT_EQ(q.dst, w.flows[i].dst);
        bytes += q.bytes;
        ++qps;
      }
      EXPECT_EQ(bytes, w.flows[i].bytes) << scheme << " flow " << i;
    }
    EXPECT_EQ(qps, splitter.total_qps()) << scheme;
  }
  EXPECT_THROW(CollectiveSplitter(topo, jobs, cs, "nope", 1, false, {}), lookahead::Error);
}
