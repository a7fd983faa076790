// Transport reliability: a flow completes when its sender holds the last ACK, a sender
// that keeps timing out gives up after the retry limit and the flow FAILS, and REPS keeps its learned
// entropies per connection across collective steps.
#include <gtest/gtest.h>

#include "common/error.h"
#include "net/sim/results.h"
#include "net/sim/simulator.h"
#include "net/scenario/spec.h"

using namespace lookahead::net;

namespace {

Topology leaf_spine(int leaves, int spines, int hosts_per_leaf) {
  LeafSpineSpec s;
  s.leaves = leaves;
  s.spines = spines;
  s.hosts_per_leaf = hosts_per_leaf;
  s.host_gbps = 100;
  s.host_latency_ns = 500;
  s.fabric_latency_ns = 500;
  return build_leaf_spine(s);
}

SimTime ser(uint64_t bytes, uint64_t bps) { return (bytes * 8 * 1'000'000'000'000ull + bps - 1) / bps; }

// Host 0 -> host 4 pinned to path 1 (via spine 1), 10 packets; host 4 -> 5 depends on it.
Workload pinned_with_dependent() {
  Workload w;
  int g = w.add_group("step0"), g1 = w.add_group("step1");
  FlowSpec f;
  f.src = 0, f.dst = 4, f.bytes = 40'960, f.lb = LoadBalancing::SOURCE, f.path = 1, f.group = g;
  w.add_flow(f);
  w.add_flow(4, 5, 10'000, 0, {0}, g1);
  return w;
}

}  // namespace

TEST(TransportReliability, FctIncludesTheAckTripBackToTheSender) {
  // One flow between two hosts under one leaf: two hops each way. The receiver has the last byte at
  // receiver_done_ps; the flow completes when its ACK (a 64-byte header, strict priority, idle reverse
  // path) is back at the sender: exactly two hops of serialisation + propagation later.
  Topology t = leaf_spine(1, 1, 2);
  for (uint64_t bytes : {uint64_t{4096}, uint64_t{1'000'000}}) {
    Workload w;
    w.add_flow(0, 1, bytes);
    SimResult r = simulate(t, w, NetworkConfig{});
    ASSERT_TRUE(r.all_finished);
    const FlowResult& f = r.flows[0];
    ASSERT_NE(f.receiver_done_ps, kNever);
    EXPECT_EQ(f.finish_ps - f.receiver_done_ps, 2 * (500'000 + ser(64, 100'000'000'000ull))) << bytes;
    EXPECT_STREQ(flow_state(f), "finished");
  }
}

TEST(TransportReliability, LostAcksMakeTheSenderRetryThenFailAfterTheRetryLimit) {
  // The data path (leaf0 -> spine1 -> leaf1) works; the ACK path back (leaf1 -> spine1) is down, one
  // direction only. The receiver gets every byte, but the sender never hears an ACK: it times out,
  // retransmits, and gives up at timeout retry_limit + 1. The flow FAILED (never "finished"), its
  // dependent never starts, its group has no completion time, and the run stops there.
  Topology t = leaf_spine(2, 2, 4);
  auto path = t.path_links(0, 4, 1);
  for (uint32_t limit : {7u, 2u}) {
    NetworkConfig cfg;
    cfg.retry_limit = limit;
    Simulator sim(t, pinned_with_dependent(), cfg);
    sim.fail_link(t.reverse_link(path[2]), 0, kNever, /*both=*/false);
    SimResult r = sim.run(100'000'000'000);  // 100 ms: far beyond the retry budget
    const FlowResult& f = r.flows[0];
    EXPECT_NE(f.receiver_done_ps, kNever) << "the data arrived";
    EXPECT_EQ(f.finish_ps, kNever) << "a flow whose ACKs are lost must not finish";
    EXPECT_TRUE(f.failed);
    EXPECT_EQ(f.timeouts, limit + 1);
    EXPECT_GT(f.retransmits, 0u);
    EXPECT_GE(f.failed_ps, (limit + 1) * cfg.rto_ps);
    EXPECT_LT(f.failed_ps, (limit + 2) * cfg.rto_ps);
    EXPECT_EQ(r.flows[1].start_ps, kNever) << "the dependent of a failed flow never starts";
    EXPECT_FALSE(r.all_finished);
    EXPECT_EQ(r.failed, 1);
    EXPECT_EQ(r.groups[0].failed, 1);
    EXPECT_EQ(r.groups[0].finish_ps, kNever) << "no completion time for a group with a failed flow";
    EXPECT_LT(r.end_ps, f.failed_ps + cfg.rto_ps) << "the run stops when nothing is left to happen";
    EXPECT_TRUE(r.conserved());
    FlowSummary s = summarise(r);
    EXPECT_EQ(s.failed, 1);
    EXPECT_EQ(s.not_started, 1);
    EXPECT_EQ(s.finished, 0);
    EXPECT_STREQ(flow_state(f), "failed");
    EXPECT_STREQ(flow_state(r.flows[1]), "not_started");
    EXPECT_NE(flows_csv(r).find(",failed,"), std::string::npos);
  }
}

TEST(TransportReliability, AckPathBackBeforeTheRetryLimitFinishesLateNotEarly) {
  // The ACK path is down for the first 500 us, then back: the sender retries until an ACK gets
  // through and the flow finishes then, not when its data arrived (within the first few us).
  Topology t = leaf_spine(2, 2, 4);
  auto path = t.path_links(0, 4, 1);
  Simulator sim(t, pinned_with_dependent(), NetworkConfig{});
  const SimTime back = 500'000'000;
  sim.fail_link(t.reverse_link(path[2]), 0, back, /*both=*/false);
  SimResult r = sim.run(100'000'000'000);
  ASSERT_TRUE(r.all_finished);
  const FlowResult& f = r.flows[0];
  EXPECT_LT(f.receiver_done_ps, 10'000'000u);
  EXPECT_GT(f.finish_ps, back);
  EXPECT_GE(f.timeouts, 2u);
  EXPECT_FALSE(f.failed);
  EXPECT_EQ(r.flows[1].start_ps, f.finish_ps);
  EXPECT_EQ(r.failed, 0);
  EXPECT_TRUE(r.conserved());
}

TEST(TransportReliability, ARetryCountsOnlyOnceItsRetransmissionHasLeftTheNic) {
  // Host 0's NIC serves 101 QPs round-robin, one packet each per turn: a turn comes every ~34 us,
  // longer than the 10 us RTO. QP 0's only packet is dropped (its path's first link is down for the
  // first 2 us: leaf 0 -> spine 1); it times out at 10 us and its retransmission then waits for its turn. The timer
  // restarts when the retransmission is sent, so the wait is not a string of failed retries: with
  // retry_limit 2 the flow finishes (it gave up at 30 us when every RTO re-armed at the timeout).
  Topology t = leaf_spine(2, 2, 4);
  Workload w;
  FlowSpec lossy;
  lossy.src = 0, lossy.dst = 4, lossy.bytes = 4096, lossy.lb = LoadBalancing::SOURCE, lossy.path = 1;
  w.add_flow(lossy);
  for (int i = 0; i < 100; ++i) {
    FlowSpec bg;
    bg.src = 0, bg.dst = 4 + i % 4, bg.bytes = 65'536, bg.lb = LoadBalancing::SOURCE, bg.path = 0;
    w.add_flow(bg);
  }
  NetworkConfig cfg;
  cfg.rto_ps = 10'000'000;
  cfg.retry_limit = 2;
  Simulator sim(t, w, cfg);
  sim.fail_link(t.path_links(0, 4, 1)[1], 0, 2'000'000, /*both=*/false);
  SimResult r = sim.run(100'000'000'000);
  const FlowResult& f = r.flows[0];
  EXPECT_EQ(f.dropped, 1u);
  EXPECT_FALSE(f.failed);
  ASSERT_NE(f.finish_ps, kNever);
  EXPECT_EQ(f.timeouts, 1u);
  EXPECT_EQ(f.retransmits, 1u);
  EXPECT_GT(f.finish_ps, (cfg.retry_limit + 1) * cfg.rto_ps) << "the retransmission waited longer than the old retry budget";
  EXPECT_TRUE(r.all_finished);
  EXPECT_TRUE(r.conserved());
}

TEST(TransportReliability, ADataPathFailureFailsTheFlowAndItsSplitParent) {
  // A pinned QP of a split flow on a dead uplink (no reroute callback): it fails after the retry
  // limit, and the split flow it carries fails with it (no bogus completion from the other QP).
  Topology t = leaf_spine(2, 2, 4);
  Workload w;
  FlowSpec a;
  a.src = 0, a.dst = 4, a.bytes = 200'000, a.lb = LoadBalancing::SOURCE, a.split_on_start = true;
  a.group = w.add_group("coll");
  w.add_flow(a);
  NetworkConfig cfg;
  cfg.retry_limit = 3;
  Simulator sim(t, w, cfg);
  sim.fail_link(t.path_links(0, 4, 1)[1], 0);
  sim.on_split([&](int, SimTime) {
    FlowSpec q0, q1;
    q0.src = q1.src = 0, q0.dst = q1.dst = 4;
    q0.lb = q1.lb = LoadBalancing::SOURCE;
    q0.bytes = 120'000, q0.path = 0;
    q1.bytes = 80'000, q1.path = 1;
    return std::vector<FlowSpec>{q0, q1};
  });
  SimResult r = sim.run(100'000'000'000);
  ASSERT_EQ(r.flows.size(), 3u);
  EXPECT_NE(r.flows[1].finish_ps, kNever);  // the QP on the live path finishes
  EXPECT_TRUE(r.flows[2].failed);
  EXPECT_EQ(r.flows[2].timeouts, 4u);
  EXPECT_TRUE(r.flows[0].failed);
  EXPECT_EQ(r.flows[0].finish_ps, kNever);
  EXPECT_EQ(r.failed, 2);
  EXPECT_EQ(r.groups[0].finish_ps, kNever);
  EXPECT_TRUE(r.conserved());
}

TEST(TransportReliability, RepsKeepsItsLearnedEntropiesAcrossStepsPerConnection) {
  // Spine 1's downlink to leaf 1 is dead (leaf 0's ECMP cannot see it). Six dependent 8-packet flows
  // host 0 -> host 4, one per "collective step", each its own QP. Per connection, REPS carries the
  // entropies it learned in step 1 into the later steps: their packets avoid the dead spine (no drop,
  // no timeout). Per QP (the old behaviour) every step explores afresh and loses packets again.
  Topology t = leaf_spine(2, 4, 4);
  Workload w;
  for (int step = 0; step < 6; ++step) w.add_flow(0, 4, 8 * 4096, 0, step ? std::vector<int>{step - 1} : std::vector<int>{});
  auto run = [&](RepsState mode) {
    NetworkConfig cfg;
    cfg.lb = LoadBalancing::REPS;
    cfg.reps_state = mode;
    Simulator sim(t, w, cfg);
    sim.fail_link(t.path_links(0, 4, 1)[2], 0);
    return sim.run(100'000'000'000);
  };
  SimResult conn = run(RepsState::CONNECTION), qp = run(RepsState::QP);
  ASSERT_TRUE(conn.all_finished);
  ASSERT_TRUE(qp.all_finished);
  EXPECT_GT(conn.flows[0].dropped, 0u) << "step 1 has to learn the failure";
  uint64_t later_drops_conn = 0, later_drops_qp = 0, later_timeouts_conn = 0, later_timeouts_qp = 0;
  for (int step = 1; step < 6; ++step) {
    later_drops_conn += conn.flows[step].dropped;
    later_timeouts_conn += conn.flows[step].timeouts;
    later_drops_qp += qp.flows[step].dropped;
    later_timeouts_qp += qp.flows[step].timeouts;
  }
  EXPECT_EQ(later_drops_conn, 0u);
  EXPECT_EQ(later_timeouts_conn, 0u);
  EXPECT_GT(later_drops_qp, 0u);
  EXPECT_GT(later_timeouts_qp, 0u);
  EXPECT_LT(conn.flows[5].finish_ps, qp.flows[5].finish_ps);
  EXPECT_TRUE(conn.conserved());
  EXPECT_TRUE(qp.conserved());
}

TEST(TransportReliability, SpecFieldsAndTheirErrors) {
  const std::string topo = R"("topology": {"kind": "leaf_spine", "leaves": 2, "spines": 2, "hosts_per_leaf": 2})";
  Scenario sc = parse_scenario("{" + topo + R"(, "network": {"retry_limit": 3, "reps_state": "qp", "init_cwnd_bytes": 8192,
                                 "max_cwnd_bytes": 65536}})",
                               "spec.json");
  EXPECT_EQ(sc.network.retry_limit, 3u);
  EXPECT_EQ(sc.network.reps_state, RepsState::QP);
  EXPECT_EQ(sc.network.init_cwnd_bytes, 8192u);
  EXPECT_EQ(sc.network.max_cwnd_bytes, 65536u);
  EXPECT_EQ(NetworkConfig{}.retry_limit, 7u);
  EXPECT_EQ(NetworkConfig{}.reps_state, RepsState::CONNECTION);
  auto error_of = [&](const std::string& network) {
    try {
      parse_scenario("{" + topo + R"(, "network": )" + network + "}", "spec.json");
    } catch (const lookahead::Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(error_of(R"({"reps_state": "flow"})").find("network.reps_state: expected connection or qp"), std::string::npos);
  EXPECT_NE(error_of(R"({"retry_limit": -1})").find("retry_limit"), std::string::npos);
  // Windows below one MTU, or an initial window above the cap, are refused by the simulator.
  Topology t = leaf_spine(1, 1, 2);
  Workload w;
  w.add_flow(0, 1, 1000);
  NetworkConfig small;
  small.max_cwnd_bytes = 100;
  EXPECT_THROW(simulate(t, w, small), lookahead::Error);
  NetworkConfig inverted;
  inverted.init_cwnd_bytes = 200'000;
  inverted.max_cwnd_bytes = 100'000;
  EXPECT_THROW(simulate(t, w, inverted), lookahead::Error);
}
