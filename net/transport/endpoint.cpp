#include "net/transport/endpoint.h"

#include <algorithm>

#include "net/sim/fabric.h"
#include "net/transport/congestion.h"
#include "net/transport/retransmit.h"

namespace lookahead::net {

void Endpoints::init(SimTime base_rtt) {
  SimState& s = s_;
  const NetworkConfig& cfg = s.cfg;
  s.active.resize(s.topo.hosts());
  s.rr.assign(s.topo.hosts(), 0);
  if (s.topo.hosts() < 2) return;  // no flow can run
  double host_bps = static_cast<double>(s.topo.links[s.topo.host_uplink(0)].rate_bps);
  double bdp = host_bps * static_cast<double>(base_rtt) / 8e12;
  double fallback = cfg.cc == CongestionControl::DCTCP ? std::max(kDefaultCwndBdps * bdp, bdp + 2.0 * cfg.mtu_bytes)
                                                       : bdp + 2.0 * cfg.mtu_bytes;
  s.max_cwnd = cfg.max_cwnd_bytes ? static_cast<double>(cfg.max_cwnd_bytes) : fallback;
  s.init_cwnd = cfg.init_cwnd_bytes ? std::min(s.max_cwnd, static_cast<double>(cfg.init_cwnd_bytes)) : s.max_cwnd;
}

void Endpoints::setup_qp(int i) {
  SimState& s = s_;
  const NetworkConfig& cfg = s.cfg;
  const FlowSpec& f = s.workload.flows[i];
  QueuePair& q = s.qps[i];
  q.src = f.src;
  q.dst = f.dst;
  q.packets = static_cast<uint32_t>((f.bytes + cfg.mtu_bytes - 1) / cfg.mtu_bytes);
  q.last_payload = static_cast<uint32_t>(f.bytes - uint64_t{q.packets - 1} * cfg.mtu_bytes);
  if (f.split_on_start) q.packets = 0;  // its QPs carry the bytes
  q.lb = f.lb ? *f.lb : cfg.lb;
  q.selective = cfg.receiver == ReceiverMode::SELECTIVE ||
                (cfg.receiver == ReceiverMode::AUTOMATIC && (q.lb == LoadBalancing::SPRAY || q.lb == LoadBalancing::REPS));
  q.rng = Rng(cfg.seed * 0x100000001b3ull + static_cast<uint64_t>(i));
  q.entropy = f.entropy >= 0 ? static_cast<uint32_t>(f.entropy) : static_cast<uint32_t>(q.rng.next() >> 40);
  if (q.lb == LoadBalancing::SOURCE && !f.split_on_start) {
    int count = s.topo.path_count(f.src, f.dst);
    int path = f.path >= 0 ? f.path : static_cast<int>(q.entropy % static_cast<uint32_t>(count));
    q.route = s.topo.source_route(f.src, f.dst, path);
  }
  if (q.lb == LoadBalancing::REPS)
    q.reps_conn = cfg.reps_state == RepsState::CONNECTION ? s.connections.index(q.src, q.dst) : s.connections.fresh();
  if (f.channel >= 0 && !f.split_on_start) q.send_lane = s.lanes.index(f.channel, f.src, f.dst, f.lane);
  q.acked.resize(q.packets);
  q.outstanding.resize(q.packets);
  q.got.resize(q.packets);
  q.cwnd = s.init_cwnd;
  q.alpha = cfg.cc == CongestionControl::DCTCP ? cfg.dctcp_alpha_init : 1.0;
  q.rate = q.target_rate = line_rate(q);
}

void Endpoints::start(int f) {
  SimState& s = s_;
  QueuePair& q = s.qps[f];
  q.started = true;
  q.start = s.now;  // posted: time spent behind earlier messages of its lane counts in its FCT
  if (q.send_lane >= 0) {
    SendLane& lane = s.lanes.lane(q.send_lane);
    if (lane.sending >= 0) {
      lane.waiting.push_back(f);
      return;
    }
    lane.sending = f;
  }
  activate(f);
  poke_nic(q.src);
}

void Endpoints::activate(int f) {
  QueuePair& q = s_.qps[f];
  q.in_active = true;
  s_.active[q.src].push_back(f);
}

// QP f has sent every packet once (or gave up): the next message posted on its lane may send. Its
// NIC is not poked: this runs inside nic_pull, whose port pulls again when the packet is out.
void Endpoints::release_lane(int f) {
  SimState& s = s_;
  SendLane& lane = s.lanes.lane(s.qps[f].send_lane);
  if (lane.sending != f) return;
  lane.sending = -1;
  while (!lane.waiting.empty()) {
    int next = lane.waiting.front();
    lane.waiting.pop_front();
    if (s.qps[next].sender_done) continue;
    lane.sending = next;
    activate(next);
    return;
  }
}

void Endpoints::on_wake(int f) {
  SimState& s = s_;
  s.qps[f].wake_pending = false;
  poke_nic(s.qps[f].src);
}

// A QP may have packets to send again (rewound by a NACK or a timeout): back into its NIC's list.
void Endpoints::wake_qp(int f) {
  SimState& s = s_;
  QueuePair& q = s.qps[f];
  if (q.in_active || q.sender_done || !q.started || next_seq(q) >= q.packets) return;
  activate(f);
}

void Endpoints::poke_nic(int host) { fabric_.poke(static_cast<uint32_t>(s_.topo.host_uplink(host))); }

// Next packet number the sender would send, or packets if none.
uint32_t Endpoints::next_seq(QueuePair& q) {
  if (!q.selective) return q.next_send;
  while (q.rtx_cursor < q.high_sent && (q.acked.get(q.rtx_cursor) || q.outstanding.get(q.rtx_cursor))) ++q.rtx_cursor;
  if (q.rtx_cursor < q.high_sent) return q.rtx_cursor;
  return q.high_sent;
}

uint32_t Endpoints::nic_pull(int host) {
  SimState& s = s_;
  const NetworkConfig& cfg = s.cfg;
  auto& list = s.active[host];
  size_t n = list.size();
  for (size_t k = 0; k < n && !list.empty(); ++k) {
    size_t i = s.rr[host] % list.size();
    int f = list[i];
    QueuePair& q = s.qps[f];
    uint32_t seq = q.sender_done ? q.packets : next_seq(q);
    if (seq >= q.packets) {
      // Done, or every packet sent and awaiting ACKs: leave the list (wake_qp() puts it back when a
      // NACK or timeout rewinds it), so a NIC with thousands of waiting QPs does not scan them all
      // for every packet. The next QP moves into slot i: round-robin order is unchanged.
      q.in_active = false;
      list.erase(list.begin() + static_cast<long>(i));
      s.rr[host] = i;
      continue;
    }
    s.rr[host] = i + 1;
    uint64_t inflight = q.selective ? q.inflight : q.next_send - q.snd_una;
    double limit = cfg.cc == CongestionControl::DCTCP ? q.cwnd : s.max_cwnd;
    if (inflight > 0 && static_cast<double>((inflight + 1) * cfg.mtu_bytes) > limit) continue;
    if (cfg.cc == CongestionControl::DCQCN && q.next_tx > s.now) {
      if (!q.wake_pending) {
        q.wake_pending = true;
        s.events.schedule(q.next_tx, kQpWake, static_cast<uint32_t>(f));
      }
      continue;
    }
    return send_data(f, seq);
  }
  return kNoPacket;
}

uint32_t Endpoints::send_data(int f, uint32_t seq) {
  SimState& s = s_;
  const NetworkConfig& cfg = s.cfg;
  QueuePair& q = s.qps[f];
  uint32_t id = s.pool.alloc();
  Packet& p = s.pool[id];
  p = Packet{};
  p.flow = static_cast<uint32_t>(f);
  p.seq = seq;
  p.src = q.src;
  p.dst = q.dst;
  p.size = static_cast<uint16_t>(payload_of(q, seq) + cfg.header_bytes);
  p.type = PacketType::DATA;
  p.lb = static_cast<uint8_t>(q.lb);
  switch (q.lb) {
    case LoadBalancing::ECMP: p.entropy = q.entropy; break;
    case LoadBalancing::SOURCE: p.entropy = q.entropy; p.route = q.route; break;
    case LoadBalancing::SPRAY: p.entropy = static_cast<uint32_t>(q.rng.next() >> 40); break;
    case LoadBalancing::REPS: {
      RepsConnection& c = s.connections.reps(q.reps_conn);
      p.entropy = c.entropies.next(q.rng, s.now < c.frozen_until);
      break;
    }
  }
  q.sent_packets++;
  if (seq < q.high_sent) q.retransmits++;
  if (q.selective) {
    q.outstanding.set(seq);
    q.inflight++;
    if (seq == q.high_sent) q.high_sent++;
  } else {
    q.next_send = seq + 1;
    q.high_sent = std::max(q.high_sent, q.next_send);
  }
  if (q.send_lane >= 0 && q.high_sent == q.packets) release_lane(f);
  if (cfg.cc == CongestionControl::DCQCN) {
    q.next_tx = s.now + static_cast<SimTime>(static_cast<double>(p.size) * 8e12 / q.rate);
    if (!q.dcqcn_pending) {
      // The DCQCN timer runs while the flow sends; it recovers rate and decays alpha.
      q.dcqcn_pending = true;
      s.events.schedule(s.now + cfg.dcqcn_period_ps, kDcqcnTimer, static_cast<uint32_t>(f));
    }
  }
  if (!q.rto_pending) {
    q.rto_pending = true;
    q.last_progress = s.now;
    s.events.schedule(s.now + cfg.rto_ps, kRto, static_cast<uint32_t>(f));
  }
  return id;
}

// ACKs and NACKs retrace the data packet's path choice (its entropy or source route), reversed.
void Endpoints::send_ctrl(int f, const Packet& data, PacketType type, uint32_t cum, bool ecn) {
  SimState& s = s_;
  const QueuePair& q = s.qps[f];
  uint32_t id = s.pool.alloc();
  Packet& a = s.pool[id];
  a = Packet{};
  a.flow = static_cast<uint32_t>(f);
  a.seq = data.seq;
  a.cum = cum;
  a.entropy = data.entropy;
  a.src = q.dst;
  a.dst = q.src;
  a.size = static_cast<uint16_t>(s.cfg.header_bytes);
  a.type = type;
  a.lb = data.lb;
  a.ecn = ecn;
  a.route = data.route;
  fabric_.enqueue(static_cast<uint32_t>(s.topo.host_uplink(q.dst)), id);
}

int Endpoints::receive(uint32_t id) {
  SimState& s = s_;
  Packet p = s.pool[id];
  s.pool.free(id);
  int f = static_cast<int>(p.flow);
  if (p.type == PacketType::DATA) {
    receive_data(f, p);
    return -1;
  }
  return receive_ack(f, p) ? f : -1;
}

void Endpoints::receive_data(int f, const Packet& p) {
  SimState& s = s_;
  QueuePair& q = s.qps[f];
  bool fresh = false;
  if (q.selective) {
    if (!q.got.get(p.seq)) {
      q.got.set(p.seq);
      fresh = true;
      while (q.expected < q.packets && q.got.get(q.expected)) ++q.expected;
    }
  } else if (p.seq == q.expected) {
    fresh = true;
    ++q.expected;
  } else if (p.seq > q.expected) {
    // Go-back-N: discard and ask once per gap for a resend from `expected`.
    q.duplicates++;
    if (q.nack_for != q.expected) {
      q.nack_for = q.expected;
      send_ctrl(f, p, PacketType::NACK, q.expected, p.ecn);
    }
    return;
  }
  if (!fresh) {
    q.duplicates++;
    send_ctrl(f, p, PacketType::ACK, q.expected, p.ecn);
    return;
  }
  q.delivered++;
  q.received++;
  bool complete = q.received == q.packets;
  if (++q.since_ack >= s.cfg.ack_every || p.ecn || complete) {
    q.since_ack = 0;
    send_ctrl(f, p, PacketType::ACK, q.expected, p.ecn);
  }
  if (complete && !q.receiver_done) {  // the flow completes when the sender has the last ACK
    q.receiver_done = true;
    q.receiver_done_at = s.now;
  }
}

void Endpoints::mark_acked(QueuePair& q, uint32_t seq, uint64_t& newly) {
  if (q.acked.get(seq)) return;
  q.acked.set(seq);
  newly += payload_of(q, seq);
  if (q.outstanding.get(seq)) {
    q.outstanding.clear(seq);
    q.inflight--;
  }
}

// Returns true when this ACK completed the flow at its sender.
bool Endpoints::receive_ack(int f, const Packet& a) {
  SimState& s = s_;
  QueuePair& q = s.qps[f];
  if (q.sender_done) return false;
  if (a.ecn) q.ecn_acks++;
  uint64_t newly = 0;
  if (q.selective) {
    if (a.seq < q.packets) mark_acked(q, a.seq, newly);
    while (q.snd_una < a.cum) mark_acked(q, q.snd_una++, newly);
    while (q.snd_una < q.packets && q.acked.get(q.snd_una)) ++q.snd_una;
  } else {
    if (a.cum > q.snd_una) {
      for (uint32_t seq = q.snd_una; seq < a.cum; ++seq) newly += payload_of(q, seq);
      q.snd_una = a.cum;
      if (q.next_send < q.snd_una) q.next_send = q.snd_una;
    }
    if (a.type == PacketType::NACK && q.next_send > q.snd_una) q.next_send = q.snd_una;  // go back N
  }
  if (q.lb == LoadBalancing::REPS) s.connections.reps(q.reps_conn).entropies.on_ack(a.entropy, a.ecn);
  if (newly > 0) {
    q.last_progress = s.now;
    on_ack_progress(q);
  }
  congestion_on_ack(q, newly, a.ecn);
  if (q.snd_una >= q.packets) return true;
  wake_qp(f);
  poke_nic(q.src);
  return false;
}

void Endpoints::congestion_on_ack(QueuePair& q, uint64_t newly, bool marked) {
  SimState& s = s_;
  const NetworkConfig& cfg = s.cfg;
  if (cfg.cc == CongestionControl::DCTCP) dctcp_on_ack(q, cfg, newly, marked, s.max_cwnd);
  else if (cfg.cc == CongestionControl::DCQCN && marked) dcqcn_on_marked_ack(q, cfg, line_rate(q), s.now);
}

void Endpoints::on_dcqcn_timer(int f) {
  SimState& s = s_;
  QueuePair& q = s.qps[f];
  q.dcqcn_pending = false;
  if (q.sender_done) return;
  dcqcn_on_timer(q, s.cfg, line_rate(q));
  q.dcqcn_pending = true;
  s.events.schedule(s.now + s.cfg.dcqcn_period_ps, kDcqcnTimer, static_cast<uint32_t>(f));
}

bool Endpoints::on_rto(int f) {
  SimState& s = s_;
  const NetworkConfig& cfg = s.cfg;
  QueuePair& q = s.qps[f];
  SimTime now = s.now;
  q.rto_pending = false;
  if (q.sender_done) return false;
  uint32_t outstanding = q.selective ? q.inflight : q.next_send - q.snd_una;
  if (outstanding == 0 && q.high_sent == q.snd_una) return false;  // nothing in flight: the next send rearms
  if (now < q.last_progress + cfg.rto_ps) {
    q.rto_pending = true;
    s.events.schedule(q.last_progress + cfg.rto_ps, kRto, static_cast<uint32_t>(f));
    return false;
  }
  if (on_retransmission_timeout(q, cfg) == TimeoutOutcome::GIVE_UP) {
    // The messages posted behind it still go (a real QP in error flushes them; here the flow's
    // failure already fails its collective).
    if (q.send_lane >= 0) {
      release_lane(f);
      poke_nic(q.src);
    }
    return true;
  }
  if (q.lb == LoadBalancing::SOURCE && s.rerouter) {  // the sender learns: move the QP off a suspect path
    int path = s.topo.path_index(q.src, q.dst, q.route);
    int next = s.rerouter(f, q.src, q.dst, path, now);
    if (next >= 0 && next != path) q.route = s.topo.source_route(q.src, q.dst, next);
  }
  if (q.lb == LoadBalancing::REPS)
    s.connections.reps(q.reps_conn).frozen_until = now + (cfg.reps_freeze_ps ? cfg.reps_freeze_ps : cfg.rto_ps);
  // The timer restarts when the retransmission leaves the NIC (send_data arms it), not now: a NIC
  // serving many QPs round-robin may take longer than an RTO to reach this one, and a retry that
  // was never sent must not count against the retry limit (an RDMA NIC's transport timer runs for
  // packets it has sent).
  wake_qp(f);
  poke_nic(q.src);
  return false;
}

}  // namespace lookahead::net
