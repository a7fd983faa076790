// Simulator analytic checks: exact line-rate FCT, fair sharing under each CC, ECMP collisions,
// PFC pauses instead of drops, conservation, determinism, dependencies and failures.
#include <gtest/gtest.h>

#include <set>

#include "common/error.h"
#include "net/balance/plan.h"
#include "net/core/event_list.h"
#include "net/sim/simulator.h"

using namespace lookahead::net;

namespace {

Topology small_leaf_spine(int leaves = 2, int spines = 2, int hosts_per_leaf = 4, double gbps = 100) {
  LeafSpineSpec s;
  s.leaves = leaves;
  s.spines = spines;
  s.hosts_per_leaf = hosts_per_leaf;
  s.host_gbps = gbps;
  s.host_latency_ns = 500;
  s.fabric_latency_ns = 500;
  return build_leaf_spine(s);
}

SimTime ser(uint64_t bytes, uint64_t bps) { return (bytes * 8 * 1'000'000'000'000ull + bps - 1) / bps; }

}  // namespace

TEST(SimEventList, OrdersByTimeThenInsertion) {
  EventList ev;
  ev.schedule(5, 0, 1);
  ev.schedule(3, 0, 2);
  ev.schedule(5, 0, 3);
  ev.schedule(3, 0, 4);
  ev.schedule(1, 0, 5);
  std::vector<uint32_t> order;
  while (!ev.empty()) order.push_back(ev.pop().target);
  EXPECT_EQ(order, (std::vector<uint32_t>{5, 2, 4, 1, 3}));
}

TEST(SimEventList, CalendarMatchesHeapOrder) {
  // Random times near and far (beyond the wheel's horizon), many ties, interleaved with pops.
  EventList cal;
  EventHeap heap;
  Rng rng(42);
  uint64_t seq = 0;
  SimTime now = 0;
  for (int round = 0; round < 20000; ++round) {
    int adds = static_cast<int>(rng.next() % 3);
    for (int a = 0; a < adds; ++a) {
      uint64_t r = rng.next();
      SimTime dt = (r & 3) == 0 ? (r >> 8) % 1'000'000'000 : (r >> 8) % 4096;
      cal.schedule(now + dt, 0, static_cast<uint32_t>(seq));
      heap.push(Event{now + dt, seq, static_cast<uint32_t>(seq), 0, 0});
      ++seq;
    }
    if (!heap.empty() && (rng.next() & 1)) {
      Event a = cal.pop(), b = heap.pop();
      ASSERT_EQ(a.time, b.time);
      ASSERT_EQ(a.target, b.target);
      now = a.time;
    }
  }
  while (!heap.empty()) {
    Event a = cal.pop(), b = heap.pop();
    ASSERT_EQ(a.time, b.time);
    ASSERT_EQ(a.target, b.target);
  }
  EXPECT_TRUE(cal.empty());
}

TEST(SimEventList, BurstsAtTheCurrentTimeKeepHeapOrder) {
  // Half of the events at the time of the last pop (the same-time FIFO), the rest near (many ties)
  // or far, with top() checked against pop().
  EventList cal;
  EventHeap heap;
  Rng rng(7);
  uint64_t seq = 0;
  SimTime now = 0;
  int same_time = 0;
  for (int round = 0; round < 20000; ++round) {
    int adds = static_cast<int>(rng.next() % 4);
    for (int a = 0; a < adds; ++a) {
      uint64_t r = rng.next();
      // Near times on a coarse grid, so the current bucket often holds earlier events tied with
      // the FIFO's (which must come after them).
      SimTime dt = (r & 1) ? 0 : (r & 6) == 0 ? (r >> 8) % 1'000'000'000 : ((r >> 8) % 4) * 1024;
      same_time += dt == 0;
      cal.schedule(now + dt, 0, static_cast<uint32_t>(seq));
      heap.push(Event{now + dt, seq, static_cast<uint32_t>(seq), 0, 0});
      ++seq;
    }
    if (!heap.empty() && (rng.next() % 3) != 0) {
      ASSERT_EQ(cal.top().target, heap.top().target);
      Event a = cal.pop(), b = heap.pop();
      ASSERT_EQ(a.time, b.time);
      ASSERT_EQ(a.target, b.target);
      now = a.time;
    }
  }
  while (!heap.empty()) {
    Event a = cal.pop(), b = heap.pop();
    ASSERT_EQ(a.time, b.time);
    ASSERT_EQ(a.target, b.target);
  }
  EXPECT_TRUE(cal.empty());
  EXPECT_GT(same_time, 10000);
}

TEST(SimEventList, SetupBeforeTheFirstPopKeepsHeapOrder) {
  // A run's setup schedules every flow that starts at time 0 (hundreds of thousands at fabric
  // scale) before anything is popped: the first bucket is then appended to and sorted once. Ties,
  // times inside the first bucket, later buckets and far ones, then interleaved adds and pops.
  EventList cal;
  EventHeap heap;
  Rng rng(11);
  uint64_t seq = 0;
  auto add = [&](SimTime t) {
    cal.schedule(t, 0, static_cast<uint32_t>(seq));
    heap.push(Event{t, seq, static_cast<uint32_t>(seq), 0, 0});
    ++seq;
  };
  for (int i = 0; i < 20000; ++i) {
    uint64_t r = rng.next();
    add((r & 3) == 0 ? (r >> 8) % 1000 : (r & 3) == 1 ? 0 : (r & 3) == 2 ? (r >> 8) % 8192 : (r >> 8) % 1'000'000'000);
  }
  ASSERT_EQ(cal.top().target, heap.top().target);
  SimTime now = 0;
  for (int round = 0; round < 20000; ++round) {
    Event a = cal.pop(), b = heap.pop();
    ASSERT_EQ(a.time, b.time);
    ASSERT_EQ(a.target, b.target);
    now = a.time;
    if (round % 3 == 0) add(now + rng.next() % 2048);
  }
  while (!heap.empty()) {
    Event a = cal.pop(), b = heap.pop();
    ASSERT_EQ(a.time, b.time);
    ASSERT_EQ(a.target, b.target);
  }
  EXPECT_TRUE(cal.empty());
}

TEST(SimCore, OneFlowAtLineRateIsExact) {
  Topology t = small_leaf_spine();
  for (uint64_t bytes : {uint64_t{4096}, uint64_t{100'000}, uint64_t{1'000'000}}) {
    Workload w;
    w.add_flow(0, 5, bytes, 1000);
    NetworkConfig cfg;
    SimResult r = simulate(t, w, cfg);
    ASSERT_TRUE(r.all_finished);
    // Reference: a tandem of FIFO store-and-forward hops (NIC, leaf, spine, leaf), each 100G
    // with 500 ns propagation, fed back to back: end[i] = max(arrive[i], end[i-1]) + ser(size_i).
    uint64_t full = (bytes + 4095) / 4096;
    uint64_t bps = 100'000'000'000ull;
    std::vector<SimTime> arrive(full, 1000);
    for (int hop = 0; hop < 4; ++hop) {
      SimTime prev_end = 0;
      for (uint64_t i = 0; i < full; ++i) {
        uint64_t size = (i + 1 == full ? bytes - (full - 1) * 4096 : 4096) + 64;
        prev_end = std::max(arrive[i], prev_end) + ser(size, bps);
        arrive[i] = prev_end + 500'000;
      }
    }
    // The receiver holds the last byte then; the flow completes when its ACK (64 bytes, strict
    // priority, idle reverse path) is back at the sender, four hops later.
    SimTime expect = arrive.back();
    EXPECT_EQ(r.flows[0].receiver_done_ps, expect) << bytes;
    EXPECT_EQ(r.flows[0].finish_ps, expect + 4 * (ser(64, bps) + 500'000)) << bytes;
    EXPECT_EQ(r.flows[0].sent_packets, full);
    EXPECT_TRUE(r.conserved());
  }
}

TEST(SimCore, IncastSharesEgressFairlyUnderEachCc) {
  for (auto cc : {CongestionControl::DCTCP, CongestionControl::DCQCN}) {
    Topology t = small_leaf_spine(2, 2, 8);
    Workload w;
    for (int s = 0; s < 4; ++s) w.add_flow(s, 4, 2'000'000);  // one leaf: the only bottleneck is host 4's downlink
    NetworkConfig cfg;
    cfg.cc = cc;
    cfg.port_buffer_bytes = 4 << 20;
    SimResult r = simulate(t, w, cfg);
    ASSERT_TRUE(r.all_finished);
    SimTime lo = kNever, hi = 0;
    for (const auto& f : r.flows) {
      lo = std::min(lo, f.finish_ps - f.start_ps);
      hi = std::max(hi, f.finish_ps - f.start_ps);
    }
    // Equal shares: each flow's completion within 5% of the others' (DCTCP: 10%; its spread over
    // 2 MB is chaotic in the window: 2-7% for caps of 100-150 KB, 4.7% with the old one-BDP cap),
    // and the egress kept busy.
    double spread = cc == CongestionControl::DCTCP ? 0.10 : 0.05;
    EXPECT_LT(static_cast<double>(hi - lo) / hi, spread) << "cc " << static_cast<int>(cc);
    double ideal = 4 * 2e6 * 8 / 100e9 * 1e12;
    EXPECT_LT(static_cast<double>(hi), ideal * 1.15) << "cc " << static_cast<int>(cc);
    EXPECT_TRUE(r.conserved());
    EXPECT_GT(r.ecn_marks, 0u);
  }
}

TEST(SimCore, EcmpCollisionDoublesCompletionTime) {
  // Hosts 0 and 1 (leaf 0) send to 4 and 5 (leaf 1); host links 100G, the fabric 100G: a shared
  // uplink halves each flow's rate.
  Topology t = small_leaf_spine(2, 2, 4);
  uint64_t leaf0 = static_cast<uint64_t>(t.first_leaf);
  NetworkConfig cfg;
  uint64_t seed0 = ecmp_switch_seed(cfg.seed, static_cast<int>(leaf0));
  auto spine_of = [&](uint32_t entropy, int src, int dst) { return ecmp_choice(seed0, entropy, src, dst, 2); };
  // Find entropies: a pair on the same uplink and a pair on different uplinks.
  int e_same = -1, e_apart = -1;
  for (int e = 0; e < 64 && (e_same < 0 || e_apart < 0); ++e) {
    if (spine_of(e, 1, 5) == spine_of(0, 0, 4) && e_same < 0) e_same = e;
    if (spine_of(e, 1, 5) != spine_of(0, 0, 4) && e_apart < 0) e_apart = e;
  }
  ASSERT_GE(e_same, 0);
  ASSERT_GE(e_apart, 0);
  auto run = [&](int e1) {
    Workload w;
    FlowSpec a;
    a.src = 0, a.dst = 4, a.bytes = 4'000'000, a.entropy = 0;
    FlowSpec b = a;
    b.src = 1, b.dst = 5, b.entropy = e1;
    w.add_flow(a);
    w.add_flow(b);
    SimResult r = simulate(t, w, cfg);
    EXPECT_TRUE(r.all_finished);
    return static_cast<double>(std::max(r.flows[0].finish_ps, r.flows[1].finish_ps));
  };
  double together = run(e_same), apart = run(e_apart);
  EXPECT_NEAR(together / apart, 2.0, 0.1);
}

TEST(SimCore, PlannerEcmpPathIsTheSimulatorsPath) {
  // The planner's ECMP/MP-RDMA plans predict where the simulator's hash sends a flow: both use
  // net/route's ecmp_switch_seed + ecmp_choice. On a k=4 fat-tree across pods both tiers hash.
  FatTreeSpec spec;
  spec.k = 4;
  Topology t = build_fat_tree(spec);
  NetworkConfig cfg;
  cfg.seed = 7;
  int src = 0, dst = t.hosts() - 1;
  ASSERT_EQ(t.path_count(src, dst), 4);
  std::set<int> seen;
  for (uint32_t entropy = 0; entropy < 12; ++entropy) {
    int path = lookahead::net::balance::ecmp_path(t, src, dst, entropy, cfg.seed);
    seen.insert(path);
    Workload w;
    FlowSpec f;
    f.src = src, f.dst = dst, f.bytes = 40'000, f.entropy = entropy;
    w.add_flow(f);
    SimResult r = simulate(t, w, cfg);
    ASSERT_TRUE(r.all_finished);
    for (int p = 0; p < t.path_count(src, dst); ++p) {
      auto links = t.path_links(src, dst, p);
      // links[1]: ToR -> agg, links[2]: agg -> core; the planned path carries the data, others none.
      uint64_t bytes = r.links[links[1]].tx_bytes + r.links[links[2]].tx_bytes;
      if (p == path) {
        EXPECT_GE(bytes, 80'000u) << "entropy " << entropy << " path " << p;
      } else {
        EXPECT_EQ(r.links[links[2]].tx_bytes, 0u) << "entropy " << entropy << " path " << p;
      }
    }
  }
  EXPECT_GT(seen.size(), 1u);  // the hash spreads entropies over paths
}

TEST(SimCore, PfcPausesInsteadOfDropping) {
  Topology t = small_leaf_spine(2, 2, 4);
  Workload w;
  for (int s = 0; s < 4; ++s) w.add_flow(s, 4, 1'000'000);
  NetworkConfig cfg;
  cfg.cc = CongestionControl::NONE;
  cfg.port_buffer_bytes = 200'000;
  SimResult lossy = simulate(t, w, cfg);
  EXPECT_GT(lossy.drops, 0u);
  cfg.pfc = true;
  cfg.pfc_xoff_bytes = 60'000;
  cfg.pfc_xon_bytes = 30'000;
  SimResult lossless = simulate(t, w, cfg);
  EXPECT_TRUE(lossless.all_finished);
  EXPECT_EQ(lossless.drops, 0u);
  EXPECT_GT(lossless.pauses, 0u);
  EXPECT_EQ(lossless.retransmits, 0u);
  EXPECT_TRUE(lossless.conserved());
  uint64_t max_q = 0;
  for (const auto& l : lossless.links) max_q = std::max(max_q, l.max_queue_bytes);
  EXPECT_LT(max_q, 400'000u);
}

TEST(SimCore, ConservationWithDropsAndRetransmits) {
  for (auto lb : {LoadBalancing::ECMP, LoadBalancing::SPRAY, LoadBalancing::REPS}) {
    Topology t = small_leaf_spine(2, 2, 4);
    Workload w;
    for (int s = 0; s < 4; ++s) w.add_flow(s, 4 + (s % 2), 500'000);
    NetworkConfig cfg;
    cfg.lb = lb;
    cfg.cc = CongestionControl::NONE;
    cfg.port_buffer_bytes = 30'000;
    cfg.rto_ps = 50'000'000;
    SimResult r = simulate(t, w, cfg);
    EXPECT_TRUE(r.all_finished) << load_balancing_name(lb);
    EXPECT_GT(r.drops, 0u);
    EXPECT_GT(r.retransmits, 0u);
    for (const auto& f : r.flows) {
      EXPECT_TRUE(f.conserved()) << f.sent_packets << " " << f.delivered << " " << f.duplicates << " " << f.dropped << " "
                                 << f.in_network;
      EXPECT_EQ(f.delivered, f.packets);
    }
  }
}

TEST(SimCore, SameSeedSameResult) {
  FatTreeSpec spec;
  spec.k = 4;
  Topology t = build_fat_tree(spec);
  Workload w;
  add_permutation(w, t.hosts(), 300'000, 7);
  NetworkConfig cfg;
  cfg.lb = LoadBalancing::SPRAY;
  cfg.seed = 9;
  SimResult a = simulate(t, w, cfg), b = simulate(t, w, cfg);
  ASSERT_EQ(a.flows.size(), b.flows.size());
  for (size_t i = 0; i < a.flows.size(); ++i) EXPECT_EQ(a.flows[i].finish_ps, b.flows[i].finish_ps);
  EXPECT_EQ(a.events, b.events);
  cfg.seed = 10;
  SimResult c = simulate(t, w, cfg);
  bool differs = false;
  for (size_t i = 0; i < a.flows.size(); ++i) differs |= a.flows[i].finish_ps != c.flows[i].finish_ps;
  EXPECT_TRUE(differs);
}

TEST(SimCore, DependenciesAndGroups) {
  Topology t = small_leaf_spine();
  Workload w;
  int g0 = w.add_group("step0"), g1 = w.add_group("step1");
  int a = w.add_flow(0, 4, 100'000, 0, {}, g0);
  int b = w.add_flow(1, 5, 200'000, 0, {}, g0);
  int c = w.add_flow(4, 0, 100'000, 0, {a, b}, g1);
  SimResult r = simulate(t, w, NetworkConfig{});
  ASSERT_TRUE(r.all_finished);
  EXPECT_EQ(r.flows[c].start_ps, std::max(r.flows[a].finish_ps, r.flows[b].finish_ps));
  EXPECT_EQ(r.groups[g0].finish_ps, r.flows[b].finish_ps);
  EXPECT_EQ(r.groups[g1].finish_ps, r.flows[c].finish_ps);
  Workload cyclic;
  cyclic.add_flow(0, 4, 1000, 0, {1});
  cyclic.add_flow(4, 0, 1000, 0, {0});
  EXPECT_THROW(simulate(t, cyclic, NetworkConfig{}), lookahead::Error);
}

TEST(SimCore, SourceRoutingPinsPathsAndFailuresLoseTraffic) {
  Topology t = small_leaf_spine(2, 2, 4);
  Workload w;
  FlowSpec f;
  f.src = 0, f.dst = 4, f.bytes = 400'000, f.lb = LoadBalancing::SOURCE, f.path = 1;
  w.add_flow(f);
  SimResult r = simulate(t, w, NetworkConfig{});
  ASSERT_TRUE(r.all_finished);
  auto path = t.path_links(0, 4, 1), other = t.path_links(0, 4, 0);
  EXPECT_GT(r.links[path[1]].tx_bytes, 400'000u);
  EXPECT_EQ(r.links[other[1]].tx_bytes, 0u);
  EXPECT_GT(r.links[t.reverse_link(path[2])].tx_packets, 0u);  // ACKs come back on the same spine
  // The pinned path fails for good: the flow cannot finish. Spraying with REPS routes around it.
  Simulator pinned(t, w, NetworkConfig{});
  pinned.fail_link(path[1], 2'000'000);
  SimResult rp = pinned.run(5'000'000'000);
  EXPECT_FALSE(rp.all_finished);
  EXPECT_TRUE(rp.conserved());
  Workload sprayed;
  sprayed.add_flow(0, 4, 400'000);
  NetworkConfig reps;
  reps.lb = LoadBalancing::REPS;
  Simulator s(t, sprayed, reps);
  // The spine's downlink fails: the leaf's ECMP cannot see it, REPS must learn it.
  s.fail_link(path[2], 2'000'000);
  SimResult rr = s.run(5'000'000'000);
  EXPECT_TRUE(rr.all_finished);
  EXPECT_GT(rr.drops, 0u);
  EXPECT_TRUE(rr.conserved());
}

TEST(SimCore, SplitOnStartAndTimeoutReroute) {
  // Flow 0 (host 0 -> 4) is split when it starts into two source-routed QPs on paths 0 and 1; flow 1
  // (host 4 -> 5) depends on it. Path 1's uplink leaf0 -> spine1 is down from the start: that QP times out, the
  // reroute callback moves it to path 0, and everything completes and is conserved.
  Topology t = small_leaf_spine(2, 2, 4);
  Workload w;
  FlowSpec a;
  a.src = 0, a.dst = 4, a.bytes = 200'000, a.lb = LoadBalancing::SOURCE, a.split_on_start = true;
  w.add_flow(a);
  w.add_flow(4, 5, 10'000, 0, {0});  // under one leaf: away from the dead cable
  Simulator sim(t, w, NetworkConfig{});
  auto dead = t.path_links(0, 4, 1);
  sim.fail_link(dead[1], 0);
  int splits = 0, reroutes = 0;
  sim.on_split([&](int flow, SimTime now) {
    ++splits;
    EXPECT_EQ(flow, 0);
    EXPECT_EQ(now, 0u);
    FlowSpec q0, q1;
    q0.src = q1.src = 0, q0.dst = q1.dst = 4;
    q0.lb = q1.lb = LoadBalancing::SOURCE;
    q0.bytes = 120'000, q0.path = 0;
    q1.bytes = 80'000, q1.path = 1;
    return std::vector<FlowSpec>{q0, q1};
  });
  sim.on_source_timeout([&](int flow, int src, int dst, int path, SimTime) {
    ++reroutes;
    EXPECT_EQ(flow, 3);  // the second QP (ids 2 and 3 follow the workload's two flows)
    EXPECT_EQ(src, 0);
    EXPECT_EQ(dst, 4);
    EXPECT_EQ(path, 1);
    return 0;
  });
  SimResult r = sim.run(10'000'000'000);
  ASSERT_TRUE(r.all_finished);
  EXPECT_EQ(splits, 1);
  EXPECT_EQ(reroutes, 1);
  ASSERT_EQ(r.flows.size(), 4u);
  EXPECT_EQ(r.flows[0].sent_packets, 0u);  // the split flow sends nothing itself
  EXPECT_EQ(r.flows[0].finish_ps, std::max(r.flows[2].finish_ps, r.flows[3].finish_ps));
  EXPECT_EQ(r.flows[1].start_ps, r.flows[0].finish_ps);  // its dependent starts when the last QP is done
  EXPECT_EQ(r.flows[3].timeouts, 1u);
  EXPECT_GT(r.flows[3].dropped, 0u);
  EXPECT_GT(r.flows[3].finish_ps, NetworkConfig{}.rto_ps);
  EXPECT_TRUE(r.conserved());
  // Without the callback a split flow is an error, not a crash.
  Simulator bare(t, w, NetworkConfig{});
  EXPECT_THROW(bare.run(), lookahead::Error);
}
