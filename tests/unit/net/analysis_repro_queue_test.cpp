// Queue lengths in every repro result (issue 17 item 5, reporting side): the worst switch port's
// time-weighted p50/p99 and the largest queue, from the simulator's per-link statistics.
#include <gtest/gtest.h>

#include "net/analysis/repro.h"
#include "net/sim/simulator.h"

using namespace lookahead::net;

TEST(AnalysisReproQueues, WorstSwitchPortQueuesAreReported) {
  analysis::ReproPoint p;
  p.fabric = "leaf_spine";
  LeafSpineSpec spec;
  spec.leaves = 4, spec.spines = 4, spec.hosts_per_leaf = 4;
  p.topology = build_leaf_spine(spec);
  p.collective.kind = collective::Kind::ALL_REDUCE;
  p.collective.algorithm = collective::Algorithm::DIRECT;
  p.collective.ranks = p.topology.hosts();
  p.collective.message_bytes = 1 << 20;
  p.config.mtu_bytes = 9000;
  for (const char* scheme : {"spray", "ethereal", "ecmp"}) {
    p.scheme = scheme;
    auto r = analysis::run_point(p);
    ASSERT_TRUE(r.finished) << scheme;
    EXPECT_GT(r.queue_max_bytes, 0u) << scheme;  // direct all-reduce: 15 senders per receiver queue up
    EXPECT_LE(r.queue_p50_bytes, r.queue_p99_bytes) << scheme;
    EXPECT_LE(r.queue_p99_bytes, static_cast<double>(r.queue_max_bytes)) << scheme;
    auto again = analysis::run_point(p);
    EXPECT_EQ(again.queue_max_bytes, r.queue_max_bytes);
    EXPECT_EQ(again.queue_p99_bytes, r.queue_p99_bytes);
  }
}
