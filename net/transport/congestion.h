#pragma once
// Congestion control of a queue pair, driven by ECN echoes in ACKs.
//
// - DCTCP-style window: per window of data, alpha <- (1-g) alpha + g * (marked fraction); one cut
//   cwnd <- cwnd (1 - alpha/2) per marked window; +1 MTU per window of unmarked ACKs, capped at
//   max_cwnd (NetworkConfig: by default two bandwidth-delay products; alpha starts at
//   dctcp_alpha_init).
// - DCQCN-style rate: a marked ACK stands for a CNP; at most one cut per cnp interval:
//   alpha <- (1-g) alpha + g, target <- rate, rate <- rate (1 - alpha/2). A periodic timer decays
//   alpha when no CNP came and raises the rate: fast recovery towards the target for 5 periods,
//   then additive and hyper increase of the target. Sending is paced at `rate` and the window
//   stays capped at max_cwnd.
#include "net/sim/config.h"
#include "net/transport/queue_pair.h"

namespace lookahead::net {

void dctcp_on_ack(QueuePair& q, const NetworkConfig& cfg, uint64_t newly_acked_bytes, bool marked, double max_cwnd);
void dcqcn_on_marked_ack(QueuePair& q, const NetworkConfig& cfg, double line_bps, SimTime now);
void dcqcn_on_timer(QueuePair& q, const NetworkConfig& cfg, double line_bps);

}  // namespace lookahead::net
