// Jobs (net/workload/jobs.h): several collectives in sequence or concurrently, with seeded start
// jitter; the simulator's group gates they use; the spec's "jobs" key; bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "common/error.h"
#include "net/analysis/repro.h"
#include "net/sim/simulator.h"
#include "net/workload/jobs.h"
#include "net/scenario/spec.h"

using namespace lookahead::net;

namespace {

Topology fabric() {  // 4 leaves x 4 spines x 4 hosts
  LeafSpineSpec spec;
  spec.leaves = spec.spines = spec.hosts_per_leaf = 4;
  return build_leaf_spine(spec);
}

Job job(const std::string& name, collective::Algorithm algo, uint64_t bytes, std::vector<int> hosts) {
  Job j;
  j.name = name;
  j.collective.kind = collective::Kind::ALL_REDUCE;
  j.collective.algorithm = algo;
  j.collective.message_bytes = bytes;
  j.collective.ranks = static_cast<int>(hosts.size());
  j.hosts = std::move(hosts);
  return j;
}

std::vector<int> range(int first, int count) {
  std::vector<int> out;
  for (int i = 0; i < count; ++i) out.push_back(first + i);
  return out;
}

SimResult simulate_jobs(const Topology& topo, const std::vector<Job>& jobs, uint64_t seed) {
  Workload w;
  add_jobs(w, jobs, expand_jobs(jobs, topo.hosts()), seed);
  NetworkConfig cfg;
  cfg.seed = seed;
  cfg.lb = LoadBalancing::SPRAY;
  return simulate(topo, w, cfg);
}

analysis::ReproResult run_jobs(const Topology& topo, const std::vector<Job>& jobs, const std::string& scheme) {
  analysis::ReproPoint p;
  p.fabric = "leaf_spine";
  p.topology = topo;
  p.scheme = scheme;
  p.jobs = jobs;
  return analysis::run_point(p);
}

std::string spec_error(const std::string& jobs) {
  std::string text = R"({"topology": {"kind": "leaf_spine", "leaves": 2, "spines": 2, "hosts_per_leaf": 4}, "jobs": )" + jobs + "}";
  try {
    parse_scenario(text, "spec.json");
  } catch (const lookahead::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(WorkloadJobs, GroupGateStartsAFlowItsDelayAfterTheGroupCompletes) {
  Topology topo = fabric();
  Workload w;
  int g = w.add_group("first");
  w.add_flow(0, 5, 100'000, 0, {}, g);
  w.add_flow(1, 6, 50'000, 0, {}, g);
  FlowSpec gated;
  gated.src = 2;
  gated.dst = 7;
  gated.bytes = 10'000;
  gated.after_groups = {g};
  gated.after_groups_delay_ps = 3'000'000;  // 3 us
  w.add_flow(gated);
  SimResult r = simulate(topo, w, NetworkConfig{});
  ASSERT_TRUE(r.all_finished);
  SimTime group_done = std::max(r.flows[0].finish_ps, r.flows[1].finish_ps);
  EXPECT_EQ(r.flows[2].start_ps, group_done + 3'000'000);
}

TEST(WorkloadJobs, GroupGateCycleIsRejected) {
  Topology topo = fabric();
  Workload w;
  int g = w.add_group("self");
  FlowSpec f;
  f.src = 0;
  f.dst = 1;
  f.bytes = 1000;
  f.group = g;
  f.after_groups = {g};  // waits for its own group
  w.add_flow(f);
  EXPECT_THROW(w.validate(topo), lookahead::Error);
}

TEST(WorkloadJobs, AJobAfterAnotherStartsOnlyWhenItFinishes) {
  Topology topo = fabric();
  std::vector<Job> jobs{job("a2a", collective::Algorithm::DIRECT, 256 << 10, range(0, 16)),
                        job("ar", collective::Algorithm::RING, 256 << 10, range(0, 16))};
  jobs[0].collective.kind = collective::Kind::ALL_TO_ALL;
  jobs[1].after = {0};
  SimResult r = simulate_jobs(topo, jobs, 1);
  ASSERT_TRUE(r.all_finished);
  ASSERT_EQ(r.groups.size(), 2u);
  const SimTime first_done = r.groups[0].finish_ps;
  ASSERT_NE(first_done, kNever);
  int second = 0;
  for (const auto& f : r.flows)
    if (f.group == 1) {
      ++second;
      EXPECT_GE(f.start_ps, first_done) << "flow " << f.id;
    }
  EXPECT_GT(second, 0);
  EXPECT_EQ(r.groups[1].start_ps, first_done);  // no jitter: the ring starts the moment the all-to-all ends
  EXPECT_GT(r.groups[1].finish_ps, first_done);
}

TEST(WorkloadJobs, JitterDelaysEachRanksFlowsAndIsDeterministicPerSeed) {
  Job a = job("a", collective::Algorithm::RING, 64 << 10, range(0, 8));
  a.jitter_ps = 20'000'000;  // 20 us
  auto j1 = rank_jitter_ps(a, 0, 1), j1_again = rank_jitter_ps(a, 0, 1), j2 = rank_jitter_ps(a, 0, 2);
  EXPECT_EQ(j1, j1_again);
  EXPECT_NE(j1, j2);
  for (uint64_t d : j1) EXPECT_LE(d, a.jitter_ps);
  EXPECT_GT(*std::max_element(j1.begin(), j1.end()), 0u);
  EXPECT_EQ(std::set<uint64_t>(j1.begin(), j1.end()).size(), j1.size());  // distinct per rank (63-bit draws)

  // On the simulator: with no `after` a rank's flows start no earlier than start + its jitter;
  // after another job, no earlier than that job's finish + its jitter.
  Topology topo = fabric();
  Job b = job("b", collective::Algorithm::RING, 64 << 10, range(8, 8));
  b.jitter_ps = 20'000'000;
  b.after = {0};
  std::vector<Job> jobs{a, b};
  auto cs = expand_jobs(jobs, topo.hosts());
  SimResult r = simulate_jobs(topo, jobs, 1);
  ASSERT_TRUE(r.all_finished);
  auto ja = rank_jitter_ps(jobs[0], 0, 1), jb = rank_jitter_ps(jobs[1], 1, 1);
  for (size_t i = 0; i < cs[0].flows.size(); ++i) EXPECT_GE(r.flows[i].start_ps, ja[cs[0].flows[i].src_rank]);
  bool some_exact = false;
  for (size_t i = 0; i < cs[1].flows.size(); ++i) {
    const auto& f = r.flows[cs[0].flows.size() + i];
    SimTime entry = r.groups[0].finish_ps + jb[cs[1].flows[i].src_rank];
    EXPECT_GE(f.start_ps, entry);
    some_exact = some_exact || f.start_ps == entry;
  }
  EXPECT_TRUE(some_exact);  // first-step flows start exactly at their rank's entry
  // The same seed gives the same run; another seed another one.
  SimResult again = simulate_jobs(topo, jobs, 1), other = simulate_jobs(topo, jobs, 2);
  EXPECT_EQ(again.groups[1].finish_ps, r.groups[1].finish_ps);
  EXPECT_NE(other.groups[1].start_ps, r.groups[1].start_ps);
}

TEST(WorkloadJobs, ConcurrentJobsOnDisjointHostsFinishAsAloneAndSlowerWhenTheyShareLinks) {
  Topology topo = fabric();
  // Leaves 0-1 and leaves 2-3: no link in common (spine ports are per link).
  Job left = job("left", collective::Algorithm::HALVING_DOUBLING, 1 << 20, range(0, 8));
  Job right = job("right", collective::Algorithm::HALVING_DOUBLING, 1 << 20, range(8, 8));
  auto alone_left = run_jobs(topo, {left}, "ethereal");
  auto alone_right = run_jobs(topo, {right}, "ethereal");
  auto together = run_jobs(topo, {left, right}, "ethereal");
  ASSERT_TRUE(alone_left.finished && alone_right.finished && together.finished);
  ASSERT_EQ(together.job_cct_us.size(), 2u);
  EXPECT_NEAR(together.job_cct_us[0], alone_left.cct_us, 0.01 * alone_left.cct_us);
  EXPECT_NEAR(together.job_cct_us[1], alone_right.cct_us, 0.01 * alone_right.cct_us);
  EXPECT_NEAR(together.cct_us, std::max(alone_left.cct_us, alone_right.cct_us), 0.01 * together.cct_us);

  // Two jobs on the same 16 hosts share every NIC and uplink: each takes clearly longer than alone.
  Job all1 = job("all1", collective::Algorithm::HALVING_DOUBLING, 1 << 20, range(0, 16));
  Job all2 = job("all2", collective::Algorithm::HALVING_DOUBLING, 1 << 20, range(0, 16));
  auto alone = run_jobs(topo, {all1}, "ethereal");
  auto shared = run_jobs(topo, {all1, all2}, "ethereal");
  ASSERT_TRUE(alone.finished && shared.finished);
  EXPECT_GT(shared.job_cct_us[0], 1.5 * alone.cct_us);
  EXPECT_GT(shared.job_cct_us[1], 1.5 * alone.cct_us);
  // And in sequence the second starts after the first: makespan about twice one alone.
  all2.after = {0};
  auto sequence = run_jobs(topo, {all1, all2}, "ethereal");
  ASSERT_TRUE(sequence.finished);
  EXPECT_GT(sequence.cct_us, 1.9 * alone.cct_us);
  EXPECT_GE(sequence.job_finish_us[1] - sequence.job_cct_us[1], sequence.job_finish_us[0] - 1e-6);
}

TEST(WorkloadJobs, SpecJobsLoadIntoTheWorkload) {
  std::string text = R"({"topology": {"kind": "leaf_spine", "leaves": 2, "spines": 2, "hosts_per_leaf": 4}, "seed": 3,
    "flows": [{"src": 0, "dst": 1, "bytes": 1000}],
    "jobs": [{"id": "ar", "size": "64KiB", "hosts": [0, 1, "host4", 5], "after": "a2a", "jitter_us": 2},
             {"id": "a2a", "collective": "alltoall", "size": 8192, "ranks": 4, "first_host": 4, "start_us": 10}]})";
  Scenario sc = parse_scenario(text, "spec.json");
  ASSERT_EQ(sc.jobs.size(), 2u);
  EXPECT_EQ(sc.job_flows_begin, 1u);
  EXPECT_EQ(sc.jobs[0].hosts, (std::vector<int>{0, 1, 4, 5}));
  EXPECT_EQ(sc.jobs[0].collective.algorithm, collective::Algorithm::RING);
  EXPECT_EQ(sc.jobs[0].collective.message_bytes, 65536u);
  EXPECT_EQ(sc.jobs[0].after, std::vector<int>{1});
  EXPECT_EQ(sc.jobs[0].jitter_ps, 2'000'000u);
  EXPECT_EQ(sc.jobs[1].collective.kind, collective::Kind::ALL_TO_ALL);
  EXPECT_EQ(sc.jobs[1].hosts, (std::vector<int>{4, 5, 6, 7}));
  EXPECT_EQ(sc.jobs[1].start_ps, 10'000'000u);
  // ring all-reduce on 4 ranks: 2 * 3 steps x 4 flows; all-to-all: 12 flows.
  ASSERT_EQ(sc.workload.flows.size(), 1u + 24u + 12u);
  const auto& first_ar = sc.workload.flows[1];
  ASSERT_EQ(first_ar.after_groups.size(), 1u);
  EXPECT_EQ(sc.workload.groups[first_ar.after_groups[0]], "a2a");
  EXPECT_LE(first_ar.after_groups_delay_ps, 2'000'000u);
  EXPECT_EQ(sc.workload.flows.back().start_ps, 10'000'000u);
  NetworkConfig cfg = sc.network;
  SimResult r = simulate(sc.topology, sc.workload, cfg);
  EXPECT_TRUE(r.all_finished);
}

// "rendezvous": ring and hd become step-synchronous. With ranks entering up to 20 us apart, an eager
// hd rank that is ahead pushes a later step onto a lagging peer while the peer still receives an
// earlier one; under rendezvous a rank's step-t + 1 receive never starts before its step-t receive
// has finished.
TEST(WorkloadJobs, RendezvousKeepsEachRanksReceivesInStepOrder) {
  auto overlaps = [](bool rendezvous) {
    std::string text = R"({"topology": {"kind": "leaf_spine", "leaves": 4, "spines": 4, "hosts_per_leaf": 4}, "seed": 5,
      "jobs": [{"id": "ar", "algo": "hd", "size": "1MiB", "jitter_us": 20, "rendezvous": )" +
                       std::string(rendezvous ? "true" : "false") + "}]}";
    Scenario sc = parse_scenario(text, "spec.json");
    EXPECT_EQ(sc.jobs[0].collective.rendezvous, rendezvous);
    const auto cs = expand_jobs(sc.jobs, sc.topology.hosts());
    SimResult r = simulate(sc.topology, sc.workload, sc.network);
    EXPECT_TRUE(r.all_finished);
    const auto& c = cs[0];
    int count = 0;
    for (const auto& f : c.flows)
      for (const auto& g : c.flows) {
        if (g.dst_rank != f.dst_rank || g.step != f.step + 1) continue;
        const auto& rf = r.flows[sc.job_flows_begin + static_cast<size_t>(f.id)];
        const auto& rg = r.flows[sc.job_flows_begin + static_cast<size_t>(g.id)];
        count += rg.start_ps < rf.finish_ps;
      }
    return count;
  };
  EXPECT_GT(overlaps(false), 0);
  EXPECT_EQ(overlaps(true), 0);
  EXPECT_TRUE(spec_error(R"([{"id": "a", "size": 4096, "rendezvous": 1}])").find("rendezvous") != std::string::npos);
}

TEST(WorkloadJobs, BadJobsAreErrorsNamingTheProblem) {
  auto has = [](const std::string& error, const std::string& text) {
    return error.find(text) != std::string::npos ? ::testing::AssertionSuccess()
                                                 : ::testing::AssertionFailure() << "error was: '" << error << "'";
  };
  EXPECT_TRUE(has(spec_error(R"([{"id": "a", "size": 4096, "after": ["nope"]}])"), "unknown job \"nope\""));
  EXPECT_TRUE(has(spec_error(R"([{"id": "a", "size": 4096, "after": "b"}, {"id": "b", "size": 4096, "after": "a"}])"), "cycle"));
  EXPECT_TRUE(has(spec_error(R"([{"id": "a", "size": 4096, "after": "a"}])"), "the job itself"));
  EXPECT_TRUE(has(spec_error(R"([{"id": "a", "size": 4096, "ranks": 9}])"), "9 ranks do not fit on 8 hosts"));
  EXPECT_TRUE(has(spec_error(R"([{"id": "a", "size": 4096, "ranks": 4, "first_host": 6}])"), "run past the last host"));
  EXPECT_TRUE(has(spec_error(R"([{"id": "a", "size": 4096, "hosts": [0, 0]}])"), "holds two ranks"));
  EXPECT_TRUE(has(spec_error(R"([{"id": "a", "size": 4096, "hosts": [0, 9]}])"), "does not exist"));
  EXPECT_TRUE(has(spec_error(R"([{"id": "a", "size": 4096}, {"id": "a", "size": 4096}])"), "duplicate job id"));
  EXPECT_TRUE(has(spec_error(R"([{"id": "a", "size": 4}])"), "job 'a'"));  // 4 bytes on 8 ranks
  EXPECT_TRUE(has(spec_error(R"([{"id": "a", "size": 4096, "algo": "hd", "ranks": 6}])"), "power-of-two"));
  EXPECT_TRUE(has(spec_error(R"([{"id": "a", "size": 4096, "placement": "snake"}])"), "placement"));
  EXPECT_TRUE(has(spec_error(R"([{"id": "a", "size": 4096, "colective": "alltoall"}])"), "unknown key 'colective'"));
  EXPECT_TRUE(has(spec_error(R"([{"size": 4096}])"), "missing key 'id'"));
  // More ranks than hosts through the API too.
  Topology topo = fabric();
  EXPECT_THROW(expand_jobs({job("big", collective::Algorithm::RING, 4096, range(0, 17))}, topo.hosts()), lookahead::Error);
  EXPECT_THROW(expand_jobs({}, topo.hosts()), lookahead::Error);
}
