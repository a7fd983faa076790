// Ethereal's batching window and piece start jitter (balance::PlanTiming, issue 17 item 4): seeded,
// only on the ethereal schemes' cross-leaf QPs, paths and bytes unchanged; the simulator starts a
// split QP its start_ps after the split; a repro point with the paper's timing ends that much later.
#include <gtest/gtest.h>

#include <set>

#include "net/analysis/repro.h"
#include "net/balance/plan.h"
#include "net/sim/simulator.h"

using namespace lookahead::net;

namespace {

Topology fabric() {
  LeafSpineSpec spec;
  spec.leaves = 4, spec.spines = 4, spec.hosts_per_leaf = 4;
  return build_leaf_spine(spec);
}

// Host 0 to every other host (three under its own leaf), 1 MiB each.
std::vector<balance::FlowDemand> fan_out(const Topology& t) {
  std::vector<balance::FlowDemand> flows;
  for (int d = 1; d < t.hosts(); ++d) flows.push_back({0, d, 1 << 20});
  return flows;
}

}  // namespace

TEST(BalancePlanTiming, WindowAndJitterOnEtherealCrossLeafPiecesOnly) {
  Topology t = fabric();
  auto flows = fan_out(t);
  for (const char* name : {"ethereal", "ethereal-min"}) {
    auto scheme = balance::parse_scheme(name);
    auto plain = balance::make_plan(t, flows, scheme, 7);
    auto timed = balance::make_plan(t, flows, scheme, 7, {}, balance::kPaperTiming);
    auto again = balance::make_plan(t, flows, scheme, 7, {}, balance::kPaperTiming);
    ASSERT_EQ(plain.qps.size(), timed.qps.size());
    std::set<uint64_t> starts;
    for (size_t i = 0; i < timed.qps.size(); ++i) {
      const auto& q = timed.qps[i];
      EXPECT_EQ(q.path, plain.qps[i].path);  // the plan itself is unchanged
      EXPECT_EQ(q.bytes, plain.qps[i].bytes);
      EXPECT_EQ(plain.qps[i].start_ps, 0u);
      EXPECT_EQ(q.start_ps, again.qps[i].start_ps);  // seeded
      if (t.tor_of(q.src_host) == t.tor_of(q.dst_host)) {
        EXPECT_EQ(q.start_ps, 0u) << "same-leaf flows bypass the balancer";
      } else {
        EXPECT_GE(q.start_ps, 100'000u);
        EXPECT_LE(q.start_ps, 150'000u);
        starts.insert(q.start_ps);
      }
    }
    EXPECT_GT(starts.size(), 4u) << name << ": pieces get different jitter";
  }
  for (const char* name : {"ecmp", "mprdma-4", "spray"})
    for (const auto& q : balance::make_plan(t, flows, balance::parse_scheme(name), 7, {}, balance::kPaperTiming).qps)
      EXPECT_EQ(q.start_ps, 0u) << name;
  // Another seed, other jitter.
  auto a = balance::make_plan(t, flows, balance::parse_scheme("ethereal"), 7, {}, balance::kPaperTiming);
  auto b = balance::make_plan(t, flows, balance::parse_scheme("ethereal"), 8, {}, balance::kPaperTiming);
  bool differs = false;
  for (size_t i = 0; i < a.qps.size() && i < b.qps.size(); ++i) differs |= a.qps[i].start_ps != b.qps[i].start_ps;
  EXPECT_TRUE(differs);
}

TEST(BalancePlanTiming, SimulatorStartsASplitQpItsStartAfterTheSplit) {
  Topology t = fabric();
  Workload w;
  FlowSpec a;
  a.src = 0, a.dst = 4, a.bytes = 100'000, a.lb = LoadBalancing::SOURCE, a.split_on_start = true;
  w.add_flow(a);
  Simulator sim(t, w, NetworkConfig{});
  sim.on_split([&](int, SimTime) {
    FlowSpec q0, q1;
    q0.src = q1.src = 0, q0.dst = q1.dst = 4;
    q0.lb = q1.lb = LoadBalancing::SOURCE;
    q0.bytes = q1.bytes = 50'000;
    q0.path = 0, q1.path = 1;
    q1.start_ps = 123'000;  // 123 ns after the split
    return std::vector<FlowSpec>{q0, q1};
  });
  SimResult r = sim.run();
  ASSERT_TRUE(r.all_finished);
  ASSERT_EQ(r.flows.size(), 3u);
  EXPECT_EQ(r.flows[1].start_ps, 0u);
  EXPECT_EQ(r.flows[2].start_ps, 123'000u);
}

TEST(BalancePlanTiming, ReproPointWithThePapersTimingEndsLater) {
  analysis::ReproPoint p;
  p.fabric = "leaf_spine";
  p.topology = fabric();
  p.collective.kind = collective::Kind::ALL_REDUCE;
  p.collective.algorithm = collective::Algorithm::RING;
  p.collective.ranks = p.topology.hosts();
  p.collective.message_bytes = 1 << 20;
  p.scheme = "ethereal";
  EXPECT_EQ(p.timing.batch_window_ps, 100'000u);  // the paper's defaults
  EXPECT_EQ(p.timing.jitter_ps, 50'000u);
  auto with = analysis::run_point(p);
  p.timing = {};
  auto without = analysis::run_point(p);
  ASSERT_TRUE(with.finished && without.finished);
  // Ring: 2(p-1) = 30 steps; a cross-leaf QP waits its window (100 ns) and up to 50 ns of jitter, a
  // same-leaf one not, so the collective ends later, by at most 30 x 150 ns (measured: +0.8 us).
  EXPECT_GT(with.cct_us, without.cct_us + 0.1);
  EXPECT_LT(with.cct_us, without.cct_us + 30 * 0.15);
  // Spraying has no window.
  p.scheme = "spray";
  p.timing = balance::kPaperTiming;
  auto spray_with = analysis::run_point(p);
  p.timing = {};
  EXPECT_EQ(spray_with.cct_us, analysis::run_point(p).cct_us);
}
