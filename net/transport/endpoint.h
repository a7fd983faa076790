#pragma once
// The host endpoints: each host's NIC and the queue pairs on it. Senders pace by window or rate,
// choose each packet's entropy or source route, retransmit on NACK or timeout and give up at the
// retry limit; receivers accept in order (go-back-N) or selectively and answer with ACKs/NACKs;
// ECN echoes drive congestion control.
//
// Contract: the endpoints own SimState's endpoint section (queue pairs' sender and receiver state,
// the NICs' active lists, REPS connections, window caps). They hand packets to the fabric
// (Fabric::enqueue for ACKs/NACKs, Fabric::poke to wake a host's idle port, which then pulls data
// through nic_pull) and take the packets the fabric delivers to a host (receive). They decide when
// a flow's sender is done or gives up but do not act on it: receive() and on_rto() report it and
// the Simulator, which owns dependencies, groups and split flows, completes or fails the flow.
// They schedule only kQpWake, kRto and kDcqcnTimer events.
#include <cstdint>

#include "net/sim/state.h"

namespace lookahead::net {

class Fabric;

class Endpoints {
 public:
  Endpoints(SimState& state, Fabric& fabric) : s_(state), fabric_(fabric) {}
  // Sizes the NIC lists and the window caps (from the fabric's longest round trip).
  void init(SimTime base_rtt_ps);
  // Sets up flow `f`'s queue pair from its FlowSpec (qps[f] exists, default-constructed).
  void setup_qp(int f);

  // The flow is posted now: it sends at once, or after the messages before it on its lane
  // (FlowSpec::channel).
  void start(int f);
  // The next data packet host's NIC sends (round-robin over its QPs allowed to send), or kNoPacket.
  uint32_t nic_pull(int host);
  // A packet arrived at its destination host. Returns the flow whose sender just received its
  // last ACK (the caller completes it), else -1.
  int receive(uint32_t packet);
  void on_wake(int f);  // a paced (DCQCN) QP may send again
  // The QP's retransmission timer fired. Returns true if the sender gave up (the caller fails the
  // flow).
  bool on_rto(int f);
  void on_dcqcn_timer(int f);

 private:
  void wake_qp(int f);
  void activate(int f);      // into its NIC's list of QPs with data to send
  void release_lane(int f);  // f has sent all its packets: the next message on its lane may start
  void poke_nic(int host);
  uint32_t payload_of(const QueuePair& q, uint32_t seq) const { return seq + 1 == q.packets ? q.last_payload : s_.cfg.mtu_bytes; }
  uint32_t next_seq(QueuePair& q);
  uint32_t send_data(int f, uint32_t seq);
  void send_ctrl(int f, const Packet& data, PacketType type, uint32_t cum, bool ecn);
  void receive_data(int f, const Packet& p);
  bool receive_ack(int f, const Packet& a);
  void mark_acked(QueuePair& q, uint32_t seq, uint64_t& newly);
  void congestion_on_ack(QueuePair& q, uint64_t newly, bool marked);
  double line_rate(const QueuePair& q) const {
    return static_cast<double>(s_.topo.links[s_.topo.host_uplink(q.src)].rate_bps);
  }

  SimState& s_;
  Fabric& fabric_;
};

}  // namespace lookahead::net
