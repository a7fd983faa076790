#include "net/transport/congestion.h"

#include <algorithm>

namespace lookahead::net {

void dctcp_on_ack(QueuePair& q, const NetworkConfig& cfg, uint64_t newly, bool marked, double max_cwnd) {
  q.window_acked += newly;
  if (marked) q.window_marked += newly;
  if (q.snd_una >= q.window_end) {
    // One window of data acknowledged: update alpha, cut once if anything was marked.
    double frac = q.window_acked ? static_cast<double>(q.window_marked) / static_cast<double>(q.window_acked) : 0;
    q.alpha = (1 - cfg.dctcp_g) * q.alpha + cfg.dctcp_g * frac;
    if (q.window_marked > 0) q.cwnd = std::max<double>(cfg.mtu_bytes, q.cwnd * (1 - q.alpha / 2));
    q.window_acked = q.window_marked = 0;
    q.window_end = q.high_sent;
  }
  if (!marked && newly > 0) q.cwnd = std::min(max_cwnd, q.cwnd + static_cast<double>(cfg.mtu_bytes) * static_cast<double>(newly) / q.cwnd);
}

void dcqcn_on_marked_ack(QueuePair& q, const NetworkConfig& cfg, double line, SimTime now) {
  q.cnp_in_period = true;
  if (now >= q.last_cut + cfg.dcqcn_cnp_interval_ps || q.last_cut == 0) {
    q.alpha = (1 - cfg.dcqcn_g) * q.alpha + cfg.dcqcn_g;
    q.target_rate = q.rate;
    q.rate = std::max(line * cfg.dcqcn_min_rate_fraction, q.rate * (1 - q.alpha / 2));
    q.last_cut = now;
    q.stage = 0;
  }
}

void dcqcn_on_timer(QueuePair& q, const NetworkConfig& cfg, double line) {
  if (!q.cnp_in_period) q.alpha *= (1 - cfg.dcqcn_g);
  q.cnp_in_period = false;
  if (q.rate < line) {
    ++q.stage;
    double rai = line * cfg.dcqcn_rai_fraction;
    if (q.stage > 5) q.target_rate = std::min(line, q.target_rate + (q.stage > 10 ? rai * (q.stage - 10) : rai));
    q.rate = std::min(line, (q.rate + q.target_rate) / 2);
    if (q.target_rate - q.rate < line * 1e-4) q.rate = q.target_rate;
  }
}

}  // namespace lookahead::net
