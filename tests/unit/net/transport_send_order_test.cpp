// Connection send order (FlowSpec::channel): messages posted on one connection go out one at a time
// in the order they became ready, as an RDMA QP works through its send queue; flows without a
// channel (or on other channels or lanes) share the NIC round-robin. The order is what lets a chain
// of dependent messages (a ring's steps) pipeline instead of finishing all at once.
#include <gtest/gtest.h>

#include "net/sim/results.h"
#include "net/sim/simulator.h"

using namespace lookahead::net;

namespace {

// Two hosts under one leaf (or three for the chain), 100 Gbit/s, 500 ns links.
Topology one_leaf(int hosts) {
  LeafSpineSpec s;
  s.leaves = 1;
  s.spines = 1;
  s.hosts_per_leaf = hosts;
  s.host_gbps = 100;
  return build_leaf_spine(s);
}

constexpr uint64_t kBytes = 1'000'000;
// One message's serialisation: 245 packets of <= 4096 B payload + 64 B header each (81.25 us).
constexpr double kAloneUs = (kBytes + 245 * 64) * 8.0 / 100e9 * 1e6;

FlowSpec message(int src, int dst, int channel, int lane = 0) {
  FlowSpec f;
  f.src = src;
  f.dst = dst;
  f.bytes = kBytes;
  f.channel = channel;
  f.lane = lane;
  return f;
}

double us(SimTime t) { return static_cast<double>(t) / 1e6; }

}  // namespace

TEST(TransportSendOrder, MessagesOnOneConnectionGoOneAfterTheOther) {
  Topology t = one_leaf(2);
  Workload w;
  w.add_flow(message(0, 1, 7));
  w.add_flow(message(0, 1, 7));
  SimResult r = simulate(t, w, NetworkConfig{});
  ASSERT_TRUE(r.all_finished);
  // The first has the link to itself: done after one message time (plus a few hops); the second
  // was posted at 0 too (its FCT counts the wait) and is received one message time later.
  EXPECT_EQ(r.flows[0].start_ps, 0u);
  EXPECT_EQ(r.flows[1].start_ps, 0u);
  EXPECT_NEAR(us(r.flows[0].receiver_done_ps), kAloneUs, 3.0);
  EXPECT_NEAR(us(r.flows[1].receiver_done_ps), 2 * kAloneUs, 3.0);
}

TEST(TransportSendOrder, FlowsWithoutAChannelOrOnOtherLanesShareTheNic) {
  Topology t = one_leaf(2);
  for (auto [c0, l0, c1, l1] : {std::array{-1, 0, -1, 0}, std::array{1, 0, 2, 0}, std::array{1, 0, 1, 1}}) {
    Workload w;
    w.add_flow(message(0, 1, c0, l0));
    w.add_flow(message(0, 1, c1, l1));
    SimResult r = simulate(t, w, NetworkConfig{});
    ASSERT_TRUE(r.all_finished);
    // Round-robin: both are received at about twice a message time, within a packet of each other.
    for (int f : {0, 1}) EXPECT_NEAR(us(r.flows[f].receiver_done_ps), 2 * kAloneUs, 3.0) << c0 << l0 << c1 << l1;
  }
  // Same channel, other destination: another connection.
  Topology t3 = one_leaf(3);
  Workload w;
  w.add_flow(message(0, 1, 1));
  w.add_flow(message(0, 2, 1));
  SimResult r = simulate(t3, w, NetworkConfig{});
  for (int f : {0, 1}) EXPECT_NEAR(us(r.flows[f].receiver_done_ps), 2 * kAloneUs, 3.0);
}

TEST(TransportSendOrder, AChainOfDependentMessagesPipelinesOnlyWhenOrdered) {
  // Host 0 posts four messages to host 1 at once; host 1 forwards each to host 2 when it has it
  // (the shape of a ring that fell behind by several steps). In order, host 1 starts forwarding
  // after one message time and the last arrives at host 2 after about five; round-robin, host 1
  // gets all four together at four message times and forwards them together: about eight.
  Topology t = one_leaf(3);
  for (int channel : {0, -1}) {
    Workload w;
    for (int k = 0; k < 4; ++k) w.add_flow(message(0, 1, channel));
    for (int k = 0; k < 4; ++k) {
      FlowSpec f = message(1, 2, channel);
      f.deps = {k};
      w.add_flow(f);
    }
    SimResult r = simulate(t, w, NetworkConfig{});
    ASSERT_TRUE(r.all_finished);
    double last = 0;
    for (int k = 4; k < 8; ++k) last = std::max(last, us(r.flows[k].receiver_done_ps));
    if (channel >= 0) EXPECT_LT(last, 5.5 * kAloneUs);
    else EXPECT_GT(last, 7.5 * kAloneUs);
  }
}

TEST(TransportSendOrder, ASplitFlowsQpsAreTheLanesOfItsConnection) {
  // Two messages split in two QPs each: lane k of the second waits for lane k of the first, so the
  // first message completes after one message time, the second after two.
  Topology t = one_leaf(2);
  Workload w;
  for (int k = 0; k < 2; ++k) {
    FlowSpec f = message(0, 1, 3);
    f.split_on_start = true;
    w.add_flow(f);
  }
  Simulator sim(t, w, NetworkConfig{});
  sim.on_split([](int, SimTime) {
    FlowSpec half;
    half.src = 0;
    half.dst = 1;
    half.bytes = kBytes / 2;
    half.channel = 99;  // ignored: a split flow's QPs are its own connection's lanes
    return std::vector<FlowSpec>{half, half};
  });
  SimResult r = sim.run();
  ASSERT_TRUE(r.all_finished);
  EXPECT_NEAR(us(r.flows[0].finish_ps), kAloneUs, 4.0);
  EXPECT_NEAR(us(r.flows[1].finish_ps), 2 * kAloneUs, 4.0);
}
