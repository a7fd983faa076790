#pragma once
// The packet simulator's state: one struct of flat arrays indexed by link, node, host or flow id,
// shared by the parts that run it.
//
// Contract: Simulator (net/sim/simulator.cpp) owns a SimState and runs the event loop; the fabric
// (net/sim/fabric.h: ports, links, switches) and the host endpoints (net/transport/endpoint.h:
// NICs and queue pairs) index it directly. A plain struct instead of objects behind interfaces
// keeps the per-packet path free of indirect calls and each element's fields in one array.
// Each section names the part that writes it; the others only read it, with the exceptions noted.
#include <cstdint>
#include <functional>
#include <vector>

#include "net/sim/config.h"
#include "net/core/event_list.h"
#include "net/sim/packet.h"
#include "net/core/rng.h"
#include "net/core/time.h"
#include "net/topo/topology.h"
#include "net/transport/connection.h"
#include "net/transport/queue_pair.h"
#include "net/workload/workload.h"

namespace lookahead::net {

// What an Event wakes (Event::kind); the simulator dispatches on it.
enum EventKind : uint8_t { kTxDone, kArrive, kFlowStart, kQpWake, kRto, kDcqcnTimer, kLinkState, kPause };

inline constexpr int kHistBuckets = 64;  // queue-occupancy histogram buckets per port, one packet each

inline SimTime serialisation_ps(uint32_t bytes, uint64_t rate_bps) {
  return (static_cast<uint64_t>(bytes) * 8 * 1'000'000'000'000ull + rate_bps - 1) / rate_bps;
}

// An intrusive FIFO of packets, linked through Packet::next.
struct PacketFifo {
  uint32_t head = kNoPacket, tail = kNoPacket;
  bool empty() const { return head == kNoPacket; }
};

// The output port of one directed link.
struct Port {
  PacketFifo data, ctrl;
  uint64_t queued_bytes = 0;
  bool busy = false;
  bool paused = false;
  // Statistics.
  uint64_t tx_bytes = 0, tx_packets = 0, busy_ps = 0, max_queue = 0, drops = 0, ecn_marks = 0, pauses = 0;
  SimTime paused_since = 0, paused_ps = 0, last_change = 0;
};

struct SimState {
  // Shared. The fabric changes topo's link state (failures); both parts schedule events and
  // allocate and free packets.
  Topology topo;
  Workload workload;  // grows when a split flow adds its QPs (Simulator)
  NetworkConfig cfg;
  EventList events;
  PacketPool pool;
  SimTime now = 0;

  // Fabric (net/sim/fabric.cpp).
  Rng ecn_rng;                          // RED-style ECN marking draws
  std::vector<Port> ports;              // per link
  std::vector<uint64_t> hist;           // kHistBuckets per port, time-weighted queue occupancy (ps)
  uint32_t hist_bucket_bytes = 1;
  std::vector<uint64_t> switch_seed;    // per node: its ECMP hash seed
  std::vector<std::vector<int>> live_up;  // per node: up-ports whose link is up
  std::vector<uint64_t> shared_used;    // per node: bytes in its shared buffer
  std::vector<uint64_t> ingress_bytes;  // per link: bytes buffered at its `to` switch (PFC)
  std::vector<uint8_t> pause_sent;      // per link: its `to` switch paused it

  // Endpoints (net/transport/endpoint.cpp). The fabric counts a lost data packet in its QP's
  // `dropped`; the Simulator sets a QP up and marks it started, complete or failed.
  std::vector<QueuePair> qps;             // per flow
  std::vector<std::vector<int>> active;   // per host: flows with data to send
  std::vector<size_t> rr;                 // per host: round-robin position in `active`
  ConnectionTable connections;            // REPS state per (source, destination) or per QP (cfg.reps_state)
  SendLanes lanes;                        // send order of a connection's messages (FlowSpec::channel)
  double max_cwnd = 0, init_cwnd = 0;     // bytes
  // A source-routed QP timed out: the path to move it to (-1 or the same: stay).
  std::function<int(int flow, int src, int dst, int path, SimTime now)> rerouter;

  SimState(Topology t, Workload w, NetworkConfig c)
      : topo(std::move(t)), workload(std::move(w)), cfg(c), ecn_rng(c.seed ^ 0x6e6574ull) {}
};

}  // namespace lookahead::net
