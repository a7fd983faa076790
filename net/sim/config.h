#pragma once
// Parameters of a simulated network: packets, switch buffers, ECN, PFC, transport, load balancing.
// Defaults follow the paper's setting where it gives one (DCTCP-style ECN, shared buffers, PFC
// optional) with a 4096-byte payload.
#include <cstdint>

#include "net/route/path_selection.h"
#include "net/core/time.h"

namespace lookahead::net {

enum class CongestionControl : uint8_t { DCTCP = 0, DCQCN = 1, NONE = 2 };
enum class ReceiverMode : uint8_t { AUTOMATIC = 0, IN_ORDER = 1, SELECTIVE = 2 };  // AUTOMATIC: IN_ORDER for ECMP/SOURCE
// Where REPS keeps its recycled entropies and freeze state: per connection (source, destination
// host), shared by every QP between them and kept across collective steps (REPS as specified), or
// per QP (a fresh buffer for every flow: the earlier behaviour, for comparison).
enum class RepsState : uint8_t { CONNECTION = 0, QP = 1 };

// The names specs and flags use for these enums; the parsers throw lookahead::Error naming `key`.
const char* congestion_control_name(CongestionControl cc);  // dctcp | dcqcn | none
CongestionControl parse_congestion_control(const std::string& name, const std::string& key);
const char* reps_state_name(RepsState state);  // connection | qp
RepsState parse_reps_state(const std::string& name, const std::string& key);

inline constexpr double kDefaultCwndBdps = 2.0;

struct NetworkConfig {
  uint32_t mtu_bytes = 4096;    // payload per packet
  uint32_t header_bytes = 64;   // per-packet overhead on the wire; ACKs are header-only
  // Buffers: a per-port limit, or (shared_buffer_bytes > 0) one pool per switch shared by its ports.
  uint64_t port_buffer_bytes = 1 << 20;
  uint64_t shared_buffer_bytes = 0;
  // ECN marking on enqueue: above kmax always, between kmin and kmax with probability rising
  // linearly to pmax (RED-style); kmin == kmax is a plain threshold. 0 disables marking.
  // Default: DCTCP's single threshold K = 100 KB.
  uint64_t ecn_kmin_bytes = 100 * 1024;
  uint64_t ecn_kmax_bytes = 100 * 1024;
  double ecn_pmax = 0.2;
  // PFC: a switch pauses an ingress link when the bytes it has buffered from it exceed xoff, and
  // resumes it below xon. Lossless mode never drops for lack of buffer (the pause is trusted).
  bool pfc = false;
  uint64_t pfc_xoff_bytes = 256 * 1024;
  uint64_t pfc_xon_bytes = 128 * 1024;
  // Transport.
  CongestionControl cc = CongestionControl::DCTCP;
  LoadBalancing lb = LoadBalancing::ECMP;
  ReceiverMode receiver = ReceiverMode::AUTOMATIC;
  uint32_t ack_every = 1;             // ACK coalescing: one ACK per this many data packets
  // Window: a QP starts at init_cwnd and never exceeds max_cwnd (DCQCN and none: the cap only).
  // 0 = default: under DCTCP max_cwnd = kDefaultCwndBdps (2) bandwidth-delay products of the longest
  // path (host link rate x base RTT); under DCQCN/none one BDP + 2 MTU (rate-based: the window is
  // only a safety bound); init_cwnd = max_cwnd. One BDP + 2 MTU capped spraying below the fabric
  // (queueing adds to the RTT the window must cover); docs/results/net-sim.md has the measurement.
  uint64_t init_cwnd_bytes = 0;
  uint64_t max_cwnd_bytes = 0;
  SimTime rto_ps = 200'000'000;       // 200 us
  // Retransmission timeouts in a row without an acknowledged byte before the sender gives up and the
  // flow FAILS (RDMA's retry_cnt, 7 at most on real NICs): the flow fails at timeout retry_limit + 1.
  uint32_t retry_limit = 7;
  SimTime reps_freeze_ps = 0;         // 0: one RTO
  RepsState reps_state = RepsState::CONNECTION;
  double dctcp_g = 1.0 / 16;
  // DCTCP's alpha at flow start. 0 (default): cuts follow the measured marked fraction from the first
  // window. 1 (RFC 8257's conservative choice, Linux): the first marked window halves cwnd, and a
  // short flow recovers by one MTU per RTT (measured in docs/results/net-sim.md).
  double dctcp_alpha_init = 0.0;
  double dcqcn_g = 1.0 / 16;
  SimTime dcqcn_period_ps = 55'000'000;      // rate-increase / alpha-decay timer (55 us)
  SimTime dcqcn_cnp_interval_ps = 50'000'000;  // at most one rate cut per 50 us
  double dcqcn_rai_fraction = 0.005;  // additive increase as a fraction of line rate
  double dcqcn_min_rate_fraction = 0.001;
  uint64_t seed = 1;
};

}  // namespace lookahead::net
