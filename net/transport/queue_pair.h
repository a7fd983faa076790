#pragma once
// RDMA-like queue pair state: the sender (window or rate, retransmission, entropy choice) and the
// receiver (in-order with go-back-N, or selective with a bitmap) of one flow. The simulator
// (net/sim) drives it; congestion.h updates its congestion-control fields.
//
// Contract: packet numbers run 0..packets-1; every packet carries `mtu` payload bytes except the
// last (`last_payload`). Bitmaps are sized once when the flow is set up, not per packet.
#include <cstdint>
#include <vector>

#include "net/route/path_selection.h"
#include "net/core/rng.h"
#include "net/core/time.h"
#include "net/topo/topology.h"

namespace lookahead::net {

struct Bits {
  std::vector<uint64_t> words;
  void resize(uint64_t n) { words.assign((n + 63) / 64, 0); }
  bool get(uint64_t i) const { return (words[i >> 6] >> (i & 63)) & 1; }
  void set(uint64_t i) { words[i >> 6] |= uint64_t{1} << (i & 63); }
  void clear(uint64_t i) { words[i >> 6] &= ~(uint64_t{1} << (i & 63)); }
};

struct QueuePair {
  // Message.
  int src = 0, dst = 0;
  uint32_t packets = 0;
  uint32_t last_payload = 0;
  LoadBalancing lb = LoadBalancing::ECMP;
  bool selective = false;
  uint32_t entropy = 0;
  SourceRoute route;
  Rng rng{1};
  int reps_conn = -1;      // REPS: its entry in the ConnectionTable (net/transport/connection.h)
  int send_lane = -1;      // with FlowSpec::channel: its connection's QP in SendLanes (sends in order)
  // Lifecycle. The flow completes when the sender holds the last ACK (sender_done, `finish`), or
  // fails when it gives up after the retry limit (failed, `finish` stays never, `failed_at`).
  bool started = false, sender_done = false, receiver_done = false, failed = false;
  bool in_active = false;  // in its host NIC's list of QPs that may have a packet to send
  int deps_left = 0;
  SimTime start = kNever, finish = kNever;
  SimTime receiver_done_at = kNever;  // when the receiver held every byte
  SimTime failed_at = kNever;
  // Sender.
  uint32_t snd_una = 0;    // every packet below is acknowledged
  uint32_t next_send = 0;  // in-order: next packet number to (re)send
  uint32_t high_sent = 0;  // one past the highest packet number ever sent
  uint32_t rtx_cursor = 0; // selective: where the scan for lost packets resumes
  uint32_t inflight = 0;   // selective: packets sent and neither acknowledged nor timed out
  Bits acked, outstanding;
  SimTime last_progress = 0;
  uint32_t retries = 0;    // retransmission timeouts in a row without an acknowledged byte
  bool rto_pending = false, wake_pending = false, dcqcn_pending = false;
  // Congestion control.
  double cwnd = 0;          // bytes
  double alpha = 1.0;
  uint64_t window_acked = 0, window_marked = 0;
  uint32_t window_end = 0;
  double rate = 0, target_rate = 0;  // DCQCN, bits/s
  SimTime next_tx = 0, last_cut = 0;
  bool cnp_in_period = false;
  int stage = 0;
  // Receiver.
  uint32_t expected = 0;
  uint32_t nack_for = 0xffffffffu;
  uint32_t received = 0;
  uint32_t since_ack = 0;
  Bits got;
  // Statistics.
  uint64_t sent_packets = 0, retransmits = 0, delivered = 0, duplicates = 0, dropped = 0, ecn_acks = 0, timeouts = 0;
};


}  // namespace lookahead::net
