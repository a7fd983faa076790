#include "net/transport/retransmit.h"

#include <algorithm>

namespace lookahead::net {

TimeoutOutcome on_retransmission_timeout(QueuePair& q, const NetworkConfig& cfg) {
  q.timeouts++;
  if (q.retries >= cfg.retry_limit) return TimeoutOutcome::GIVE_UP;
  q.retries++;
  if (q.selective) {
    for (uint32_t s = q.snd_una; s < q.high_sent; ++s) q.outstanding.clear(s);
    q.inflight = 0;
    q.rtx_cursor = q.snd_una;
  } else {
    q.next_send = q.snd_una;
  }
  q.cwnd = std::max<double>(cfg.mtu_bytes, q.cwnd / 2);
  return TimeoutOutcome::RETRANSMIT;
}

}  // namespace lookahead::net
