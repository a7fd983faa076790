// Collective -> packet-simulator workload, and one small grid point per scheme on the simulator.
#include <gtest/gtest.h>

#include <set>

#include "common/error.h"
#include "net/analysis/congestion.h"
#include "net/analysis/repro.h"
#include "net/analysis/repro_grid.h"
#include "net/analysis/repro_report.h"

#include <fmt/format.h>

using namespace lookahead::net;

namespace {

Topology small_leaf_spine() {
  LeafSpineSpec spec;
  spec.leaves = 4;
  spec.spines = 4;
  spec.hosts_per_leaf = 4;
  return build_leaf_spine(spec);
}

collective::Collective hd(const Topology& topo, uint64_t bytes) {
  collective::CollectiveSpec spec;
  spec.algorithm = collective::Algorithm::HALVING_DOUBLING;
  spec.ranks = topo.hosts();
  spec.message_bytes = bytes;
  return collective::expand(spec, collective::place_ranks(spec.ranks, topo.hosts(), collective::Placement::LINEAR, 0));
}

}  // namespace

TEST(AnalysisRepro, WorkloadCarriesPlansAndDependencies) {
  auto topo = small_leaf_spine();
  auto c = hd(topo, 1 << 20);
  int max_qps = 0;
  Workload w = analysis::collective_workload(topo, c, "ethereal", 1, &max_qps);
  // hd on 16 ranks, 4 per leaf: steps at distance 8 and 4 cross leaves (n = 1 -> 4 pieces), 2 and 1 do not.
  EXPECT_EQ(max_qps, 4);
  uint64_t bytes = 0;
  for (const auto& f : w.flows) {
    bytes += f.bytes;
    ASSERT_TRUE(f.lb.has_value());
    EXPECT_EQ(*f.lb, LoadBalancing::SOURCE);
    EXPECT_GE(f.path, 0);
    for (int d : f.deps) EXPECT_EQ(w.flows[d].dst, f.src);  // data arrives at the sender first
  }
  uint64_t total = 0;
  for (const auto& f : c.flows) total += f.bytes;
  EXPECT_EQ(bytes, total);
  EXPECT_NO_THROW(w.validate(topo));
  Workload e = analysis::collective_workload(topo, c, "mprdma-4", 1);
  EXPECT_EQ(e.flows.size(), 4 * c.flows.size());
  for (const auto& f : e.flows) EXPECT_EQ(*f.lb, LoadBalancing::ECMP);
  Workload r = analysis::collective_workload(topo, c, "reps", 1);
  for (const auto& f : r.flows) EXPECT_EQ(*f.lb, LoadBalancing::REPS);
  EXPECT_THROW(analysis::collective_workload(topo, c, "nope", 1), lookahead::Error);
}

TEST(AnalysisRepro, SmallPointsFinishOnTheSimulator) {
  analysis::ReproPoint p;
  p.fabric = "leaf_spine";
  p.topology = small_leaf_spine();
  p.collective.algorithm = collective::Algorithm::HALVING_DOUBLING;
  p.collective.ranks = 16;
  p.collective.message_bytes = 256 << 10;
  p.config.mtu_bytes = 9000;
  std::vector<analysis::ReproPoint> points;
  for (const char* s : {"ecmp", "spray", "ethereal"}) {
    p.scheme = s;
    points.push_back(p);
  }
  auto results = analysis::run_grid(points, 2, false);
  for (size_t i = 0; i < results.size(); ++i) {
    EXPECT_TRUE(results[i].finished) << points[i].scheme;
    // Lower bound: every rank sends 2(p-1)/p of 256 KiB through its 400 Gbit/s NIC.
    EXPECT_GT(results[i].cct_us, 2.0 * 15 / 16 * (256 << 10) * 8 / 400e9 * 1e6) << points[i].scheme;
  }
  // The same seed gives the same simulated CCT.
  auto again = analysis::run_point(points[2]);
  EXPECT_EQ(again.cct_us, results[2].cct_us);
}

TEST(AnalysisRepro, EtherealLearnsAFailedPathFromQpTimeouts) {
  // A failed cable leaf0-spine0 at time 0. "ethereal" starts knowing nothing: its QPs pinned through
  // spine0 time out, the path is marked failed for (host, destination leaf), the QP moves to the next
  // path and later batches are planned over the remaining ones. "ethereal-known" is told at the start.
  analysis::ReproPoint p;
  p.fabric = "leaf_spine_fail";
  p.topology = small_leaf_spine();
  p.fail = analysis::parse_failed_cable(p.topology, "leaf0-spine0", "test");
  p.failed_label = "leaf0-spine0";
  p.collective.algorithm = collective::Algorithm::HALVING_DOUBLING;
  p.collective.ranks = 16;
  p.collective.message_bytes = 256 << 10;
  p.config.mtu_bytes = 9000;
  p.scheme = "ethereal";
  auto learned = analysis::run_point(p);
  p.scheme = "ethereal-known";
  auto known = analysis::run_point(p);
  ASSERT_TRUE(learned.finished);
  ASSERT_TRUE(known.finished);
  EXPECT_GT(learned.timeouts, 0u);
  EXPECT_GT(learned.learned_paths, 0);
  EXPECT_EQ(known.timeouts, 0u);
  // Learning costs at least one retransmission timeout (200 us) over knowing.
  EXPECT_GT(learned.cct_us, known.cct_us + 150);
  // Without a failure, learning ethereal plans exactly what the static plan does: same CCT within a
  // packet's serialisation (event order of the QP starts may differ).
  p.fail.clear();
  p.failed_label.clear();
  p.scheme = "ethereal";
  auto clean_learn = analysis::run_point(p);
  p.scheme = "ethereal-known";
  auto clean_known = analysis::run_point(p);
  ASSERT_TRUE(clean_learn.finished);
  EXPECT_EQ(clean_learn.timeouts, 0u);
  EXPECT_EQ(clean_learn.learned_paths, 0);
  EXPECT_EQ(clean_learn.max_qps_per_host, clean_known.max_qps_per_host);
  EXPECT_EQ(clean_learn.qps, clean_known.qps);
  EXPECT_NEAR(clean_learn.cct_us, clean_known.cct_us, 0.5);
}

TEST(AnalysisRepro, ReportsSayWhetherADnfGaveUpOrRanOutOfTime) {
  // Host 0's own cable fails (no scheme can route around it), with no retries: the QPs to and from
  // host 0 give up at their first timeout, so the point does not finish, and the CSVs and the
  // markdown say how many gave up.
  analysis::GridSpec spec;
  spec.quick = true;
  spec.fabrics = "leaf_spine_fail";
  spec.algos = "ring";
  spec.sizes = "64KiB";
  spec.schemes = "ecmp";
  spec.seeds = 2;
  analysis::ReproGrid grid = analysis::make_repro_grid(spec);
  ASSERT_EQ(grid.runs.size(), 2u);
  std::vector<analysis::ReproResult> results;
  for (auto& run : grid.runs) {
    const int up = run.topology.host_uplink(0);
    const auto& l = run.topology.links[static_cast<size_t>(up)];
    run.fail = {up};
    for (size_t k = 0; k < run.topology.links.size(); ++k)
      if (run.topology.links[k].from == l.to && run.topology.links[k].to == l.from) run.fail.push_back(static_cast<int>(k));
    run.config.retry_limit = 0;
    results.push_back(analysis::run_point(run));
    EXPECT_FALSE(results.back().finished);
    EXPECT_GT(results.back().failed_qps, 0);
  }
  const auto rep = analysis::aggregate_seeds(grid, results, 2);
  EXPECT_EQ(rep.results[0].failed_qps, results[0].failed_qps + results[1].failed_qps);
  const std::string csv = analysis::grid_csv(grid, rep, 2);
  EXPECT_NE(csv.find("queue_max_bytes,failed_qps,seeds"), std::string::npos) << csv;
  EXPECT_NE(csv.find(fmt::format(",{},2,", rep.results[0].failed_qps)), std::string::npos) << csv;
  EXPECT_NE(analysis::grid_seeds_csv(grid, results).find(fmt::format(",{}\n", results[1].failed_qps)), std::string::npos);
  const std::string md = analysis::grid_markdown(grid, rep, spec, 100, 50);
  EXPECT_NE(md.find(fmt::format("DNF ({} QPs gave up)", rep.results[0].failed_qps)), std::string::npos) << md;

  // A time limit too short for anything to finish: no QP gave up.
  analysis::ReproPoint p = grid.runs[0];
  p.config.retry_limit = 7;
  p.until_us = 1;
  const auto late = analysis::run_point(p);
  EXPECT_FALSE(late.finished);
  EXPECT_EQ(late.failed_qps, 0);
  std::vector<analysis::ReproResult> both = {late, late};
  EXPECT_NE(analysis::grid_markdown(grid, analysis::aggregate_seeds(grid, both, 2), spec, 100, 50).find("DNF (time limit)"),
            std::string::npos);
}

// --rto-us: every run of the grid gets the timeout, the shard fingerprint tells the grids apart, the
// report says it, and a QP that cannot get through gives up only after it.
TEST(AnalysisRepro, RtoSetsEveryRunsTimeout) {
  analysis::GridSpec spec;
  spec.quick = true;
  spec.fabrics = "leaf_spine_fail";
  spec.algos = "ring";
  spec.sizes = "64KiB";
  spec.schemes = "ecmp,spray";
  const analysis::ReproGrid base = analysis::make_repro_grid(spec);
  spec.rto_us = 2000;
  const analysis::ReproGrid slow = analysis::make_repro_grid(spec);
  ASSERT_EQ(base.runs.size(), slow.runs.size());
  for (size_t i = 0; i < base.runs.size(); ++i) {
    EXPECT_EQ(base.runs[i].config.rto_ps, NetworkConfig{}.rto_ps);
    EXPECT_EQ(slow.runs[i].config.rto_ps, SimTime{2'000'000'000});
  }
  EXPECT_NE(analysis::grid_fingerprint(base.runs), analysis::grid_fingerprint(slow.runs));
  std::vector<analysis::ReproResult> none(slow.runs.size());
  const auto md = analysis::grid_markdown(slow, analysis::aggregate_seeds(slow, none, 1), spec, 100, 50);
  EXPECT_NE(md.find("Retransmission timeout 2000 us"), std::string::npos) << md;

  // Host 0's cable fails and QPs give up at their first timeout: not before the RTO.
  auto end_with_dead_host = [](analysis::ReproPoint run) {
    const int up = run.topology.host_uplink(0);
    const auto& l = run.topology.links[static_cast<size_t>(up)];
    run.fail = {up};
    for (size_t k = 0; k < run.topology.links.size(); ++k)
      if (run.topology.links[k].from == l.to && run.topology.links[k].to == l.from) run.fail.push_back(static_cast<int>(k));
    run.config.retry_limit = 0;
    return analysis::run_point(run).end_us;
  };
  const double base_end = end_with_dead_host(base.runs[0]), slow_end = end_with_dead_host(slow.runs[0]);
  EXPECT_GE(base_end, 200);
  EXPECT_LT(base_end, 2000);
  EXPECT_GE(slow_end, 2000);
}

// --cc: every run of the grid gets the congestion control, the fingerprint tells the grids apart, the
// report says it, and the runs differ (DCQCN paces each QP at a rate cut on marks; DCTCP cuts windows).
TEST(AnalysisRepro, CcSetsEveryRunsCongestionControl) {
  analysis::GridSpec spec;
  spec.quick = true;
  spec.fabrics = "leaf_spine";
  spec.algos = "hd";
  spec.sizes = "4MiB";
  spec.schemes = "ecmp";
  const analysis::ReproGrid base = analysis::make_repro_grid(spec);
  spec.cc = CongestionControl::DCQCN;
  const analysis::ReproGrid rate = analysis::make_repro_grid(spec);
  ASSERT_EQ(base.runs.size(), rate.runs.size());
  for (size_t i = 0; i < base.runs.size(); ++i) {
    EXPECT_EQ(base.runs[i].config.cc, CongestionControl::DCTCP);
    EXPECT_EQ(rate.runs[i].config.cc, CongestionControl::DCQCN);
  }
  EXPECT_NE(analysis::grid_fingerprint(base.runs), analysis::grid_fingerprint(rate.runs));
  std::vector<analysis::ReproResult> none(rate.runs.size());
  const auto md = analysis::grid_markdown(rate, analysis::aggregate_seeds(rate, none, 1), spec, 100, 50);
  EXPECT_NE(md.find("Congestion control dcqcn"), std::string::npos) << md;
  EXPECT_EQ(analysis::grid_markdown(base, analysis::aggregate_seeds(base, none, 1), analysis::GridSpec{}, 100, 50)
                .find("Congestion control"),
            std::string::npos);
  // ECMP's hd all-reduce collides on the spines: the two controls react differently.
  const auto window = analysis::run_point(base.runs[0]), paced = analysis::run_point(rate.runs[0]);
  ASSERT_TRUE(window.finished);
  ASSERT_TRUE(paced.finished);
  EXPECT_NE(window.cct_us, paced.cct_us);
  EXPECT_NE(window.events, paced.events);
}

// --rendezvous: every run's collective gets it, the fingerprint tells the grids apart, the report says it.
TEST(AnalysisRepro, RendezvousReachesEveryRunsCollective) {
  analysis::GridSpec spec;
  spec.quick = true;
  spec.fabrics = "leaf_spine";
  spec.algos = "hd,ring";
  spec.sizes = "1MiB";
  spec.schemes = "spray";
  const analysis::ReproGrid eager = analysis::make_repro_grid(spec);
  spec.rendezvous = true;
  const analysis::ReproGrid sync = analysis::make_repro_grid(spec);
  ASSERT_EQ(eager.runs.size(), sync.runs.size());
  for (size_t i = 0; i < eager.runs.size(); ++i) {
    EXPECT_FALSE(eager.runs[i].collective.rendezvous);
    EXPECT_TRUE(sync.runs[i].collective.rendezvous);
  }
  EXPECT_NE(analysis::grid_fingerprint(eager.runs), analysis::grid_fingerprint(sync.runs));
  std::vector<analysis::ReproResult> none(sync.runs.size());
  EXPECT_NE(analysis::grid_markdown(sync, analysis::aggregate_seeds(sync, none, 1), spec, 100, 50).find("Rendezvous"),
            std::string::npos);
}

// The default time limit grows with the dependent steps: a ring on 512 hosts (1022 steps) of 1 MiB
// is latency-bound (~2.2 us per step at 400 Gbit/s with the ACK trip) and must not be cut at the
// bandwidth bound (2.1 ms), as it was before (every scheme "DNF (time limit)" on the 512-host
// fat-tree at 1 MiB while 2 MiB finished in 2.4 ms).
TEST(AnalysisRepro, DefaultTimeLimitCoversALatencyBoundRing) {
  auto limit_for = [](int ranks, collective::Algorithm algo, uint64_t bytes) {
    Job job;
    job.name = "ar";
    job.collective.kind = collective::Kind::ALL_REDUCE;
    job.collective.algorithm = algo;
    job.collective.message_bytes = bytes;
    job.collective.ranks = ranks;
    job.hosts = collective::place_ranks(ranks, ranks, collective::Placement::LINEAR, 0);
    std::vector<Job> jobs{job};
    return analysis::default_time_limit_us(jobs, expand_jobs(jobs, ranks), 400e9);
  };
  const double ring512 = limit_for(512, collective::Algorithm::RING, 1 << 20);
  EXPECT_GE(ring512, 1022 * 20.0 + 2000.0);
  EXPECT_GT(ring512, 1022 * 2.2 * 5);  // several times the latency-bound CCT
  // Bandwidth-bound points keep their old limit plus a few steps' allowance.
  const double hd64 = limit_for(64, collective::Algorithm::HALVING_DOUBLING, 256u << 20);
  const double bandwidth = 50.0 * 2.0 * (256u << 20) * 8.0 / 400e9 * 1e6;
  EXPECT_NEAR(hd64, bandwidth + 12 * 20.0, 1e-6);  // hd all-reduce on 64 ranks: 2 x 6 steps
}
