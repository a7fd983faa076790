#pragma once
// The packet-level simulator: ports (output queues that serialise onto links), links (propagation
// delay, failures), switches (routing per LoadBalancing, buffers, ECN, PFC), host NICs and RDMA-like
// queue pairs (transport), driven by one EventList.
//
// Contract:
// - Simulator(topology, workload, config) validates the workload against the topology (throws
//   lookahead::Error); run() simulates until every flow has completed or `until_ps` passes, and
//   returns SimResult. The same inputs and seed give identical results.
// - Each directed link has one output port at its `from` node. A port serialises one packet at a
//   time at the link rate (store-and-forward); the packet arrives at `to` one latency later.
// - ACKs/NACKs travel in a strict-priority control queue, are not buffered against the data
//   buffer, and follow the flow's path selection (same entropy or source route, reversed).
// - A flow completes when its sender holds the ACK of its last byte (first byte sent to last ACK
//   received, as htsim and RDMA NICs report; ASTRA-sim's ns-3 backend also notifies the receiver
//   then); dependents start and groups count it then. The receiver's own completion (every byte
//   held) is reported beside it (receiver_done_ps).
// - A sender that times out config.retry_limit + 1 times in a row without an acknowledged byte gives
//   up: the flow FAILED (failed_ps; finish_ps stays kNever). A split flow fails with its first failed
//   QP; flows that depend on a failed flow never start; a group with a failed member has no
//   completion time. run() stops when nothing is left to happen (or at until_ps).
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "net/sim/config.h"
#include "net/core/time.h"
#include "net/topo/topology.h"
#include "net/workload/workload.h"

namespace lookahead::net {

struct FlowResult {
  int id = 0, src = 0, dst = 0, group = -1;
  uint64_t bytes = 0;
  SimTime start_ps = kNever, finish_ps = kNever;  // kNever: did not start / finish
  SimTime receiver_done_ps = kNever;  // the receiver held every byte (before finish_ps by the ACK's trip)
  bool failed = false;                // the sender gave up after the retry limit
  SimTime failed_ps = kNever;
  uint64_t packets = 0;         // packets of the message
  uint64_t sent_packets = 0;    // data transmissions including retransmissions
  uint64_t retransmits = 0;
  uint64_t delivered = 0;       // distinct packets the receiver accepted
  uint64_t duplicates = 0;      // data packets that arrived but were not new (or discarded out of order)
  uint64_t dropped = 0;         // data packets of this flow lost in the network
  uint64_t in_network = 0;      // data packets still in flight when the run ended
  uint64_t ecn_acks = 0;        // marked ACKs the sender saw
  uint64_t timeouts = 0;
  std::string lb;
  bool conserved() const { return sent_packets == delivered + duplicates + dropped + in_network; }
};

struct LinkResult {
  int id = 0, from = 0, to = 0;
  uint64_t rate_bps = 0;
  uint64_t tx_bytes = 0, tx_packets = 0;
  double utilisation = 0;  // busy time / run time
  uint64_t max_queue_bytes = 0;
  double p50_queue_bytes = 0, p99_queue_bytes = 0;  // time-weighted, bucketed to one packet size
  uint64_t drops = 0, ecn_marks = 0, pauses = 0;
  SimTime paused_ps = 0;
};

struct GroupResult {
  std::string name;
  int flows = 0, finished = 0, failed = 0;  // failed > 0: the group (a collective) failed, no completion time
  SimTime start_ps = kNever, finish_ps = kNever;
};

struct SimResult {
  SimTime end_ps = 0;       // simulated time when the run stopped
  bool all_finished = false;
  uint64_t events = 0;
  uint64_t drops = 0, ecn_marks = 0, pauses = 0, retransmits = 0, timeouts = 0;
  int failed = 0;           // flows that failed (split flows and their failed QPs both count)
  std::vector<FlowResult> flows;
  std::vector<LinkResult> links;
  std::vector<GroupResult> groups;
  bool conserved() const {
    for (const auto& f : flows)
      if (!f.conserved()) return false;
    return true;
  }
};

class Simulator {
 public:
  Simulator(Topology topology, Workload workload, NetworkConfig config);
  ~Simulator();
  Simulator(const Simulator&) = delete;
  Simulator& operator=(const Simulator&) = delete;

  // A link fails at `down_ps` (both directions if `both`), and comes back at `up_ps` (kNever: stays down).
  void fail_link(int link, SimTime down_ps, SimTime up_ps = kNever, bool both = true);
  // Called about every `interval_events` events with the simulated time (for progress bars).
  void on_progress(std::function<void(SimTime now, int finished_flows)> callback, uint64_t interval_events = 1 << 20);
  SimResult run(SimTime until_ps = kNever);

  // Flows marked FlowSpec::split_on_start are split when they become ready (dependencies done,
  // start time reached): `split(flow, now)` returns the queue pairs that carry the flow's bytes (src
  // and dst the flow's, bytes summing to the flow's; lb, path, entropy used; deps and group are the
  // flow's; a QP's start_ps is a delay after the split, e.g. a batching window and start jitter).
  // The flow sends nothing itself and completes when its last QP does; its dependents wait for that. The QPs get the next flow ids (they follow the workload's flows in SimResult.flows).
  // The planner uses this to plan a batch with what the sender knows at that moment.
  void on_split(std::function<std::vector<FlowSpec>(int flow, SimTime now)> split);
  // A source-routed QP's retransmission timeout: `reroute(flow, src, dst, path, now)` gets the path
  // it is pinned to and returns the path to move it to (-1 or the same: stay); later packets,
  // retransmissions included, take the new path. Ethereal's failure detection.
  void on_source_timeout(std::function<int(int flow, int src, int dst, int path, SimTime now)> reroute);

  const Topology& topology() const;
  SimTime base_rtt_ps() const;  // longest-path round trip of a full packet and its ACK, no queueing

 private:
  struct Impl;
  Impl* impl_;
};

// Convenience: build, run, return.
SimResult simulate(const Topology& topology, const Workload& workload, const NetworkConfig& config, SimTime until_ps = kNever);

}  // namespace lookahead::net
