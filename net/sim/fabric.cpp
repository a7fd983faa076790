#include "net/sim/fabric.h"

#include <algorithm>

#include "net/transport/endpoint.h"

namespace lookahead::net {

namespace {

void push(PacketPool& pool, PacketFifo& q, uint32_t id) {
  pool[id].next = kNoPacket;
  if (q.tail == kNoPacket) q.head = id;
  else pool[q.tail].next = id;
  q.tail = id;
}

uint32_t pop(PacketPool& pool, PacketFifo& q) {
  uint32_t id = q.head;
  q.head = pool[id].next;
  if (q.head == kNoPacket) q.tail = kNoPacket;
  return id;
}

}  // namespace

void Fabric::init() {
  SimState& s = s_;
  const Topology& topo = s.topo;
  size_t nlinks = topo.links.size(), nnodes = topo.nodes.size();
  s.ports.resize(nlinks);
  s.hist.assign(nlinks * kHistBuckets, 0);
  s.hist_bucket_bytes = s.cfg.mtu_bytes + s.cfg.header_bytes;
  s.switch_seed.resize(nnodes);
  for (size_t n = 0; n < nnodes; ++n) s.switch_seed[n] = ecmp_switch_seed(s.cfg.seed, static_cast<int>(n));
  s.live_up.resize(nnodes);
  for (size_t n = 0; n < nnodes; ++n) rebuild_live(static_cast<int>(n));
  s.shared_used.assign(nnodes, 0);
  s.ingress_bytes.assign(nlinks, 0);
  s.pause_sent.assign(nlinks, 0);
}

void Fabric::rebuild_live(int n) {
  SimState& s = s_;
  s.live_up[n].clear();
  for (int l : s.topo.up_ports[n])
    if (s.topo.links[l].up) s.live_up[n].push_back(l);
}

void Fabric::hist_account(uint32_t port) {
  SimState& s = s_;
  Port& p = s.ports[port];
  uint64_t bucket = std::min<uint64_t>(p.queued_bytes / s.hist_bucket_bytes, kHistBuckets - 1);
  s.hist[port * kHistBuckets + bucket] += s.now - p.last_change;
  p.last_change = s.now;
}

void Fabric::drop(uint32_t id, uint32_t link) {
  SimState& s = s_;
  s.ports[link].drops++;
  const Packet& p = s.pool[id];
  if (p.type == PacketType::DATA) s.qps[p.flow].dropped++;
  s.pool.free(id);
}

void Fabric::enqueue(uint32_t link, uint32_t id) {
  SimState& s = s_;
  const NetworkConfig& cfg = s.cfg;
  Port& port = s.ports[link];
  Packet& p = s.pool[id];
  if (!s.topo.links[link].up) return drop(id, link);
  if (p.type != PacketType::DATA) {
    push(s.pool, port.ctrl, id);
    if (!port.busy) start_tx(link);
    return;
  }
  int node = s.topo.links[link].from;
  if (!cfg.pfc) {
    bool full = cfg.shared_buffer_bytes > 0 ? s.shared_used[node] + p.size > cfg.shared_buffer_bytes
                                            : port.queued_bytes + p.size > cfg.port_buffer_bytes;
    if (full) return drop(id, link);
  }
  if (cfg.ecn_kmax_bytes > 0 && !p.ecn) {
    uint64_t q = port.queued_bytes;
    bool mark = false;
    if (q > cfg.ecn_kmax_bytes) mark = true;
    else if (q > cfg.ecn_kmin_bytes)
      mark = s.ecn_rng.uniform() < cfg.ecn_pmax * static_cast<double>(q - cfg.ecn_kmin_bytes) /
                                        static_cast<double>(cfg.ecn_kmax_bytes - cfg.ecn_kmin_bytes);
    if (mark) {
      p.ecn = true;
      port.ecn_marks++;
    }
  }
  hist_account(link);
  port.queued_bytes += p.size;
  port.max_queue = std::max(port.max_queue, port.queued_bytes);
  s.shared_used[node] += p.size;
  if (p.in_link >= 0) {
    uint64_t& in = s.ingress_bytes[p.in_link];
    in += p.size;
    if (cfg.pfc && !s.pause_sent[p.in_link] && in > cfg.pfc_xoff_bytes) {
      s.pause_sent[p.in_link] = 1;
      s.events.schedule(s.now + s.topo.links[p.in_link].latency_ps, kPause, static_cast<uint32_t>(p.in_link), 1);
    }
  }
  push(s.pool, port.data, id);
  if (!port.busy) start_tx(link);
}

// Picks the next packet for an idle port: control first, then queued data unless paused, then (a
// host's port) the NIC's next packet.
void Fabric::start_tx(uint32_t link) {
  SimState& s = s_;
  Port& port = s.ports[link];
  const Link& l = s.topo.links[link];
  while (true) {
    uint32_t id = kNoPacket;
    if (!port.ctrl.empty()) {
      id = pop(s.pool, port.ctrl);
    } else if (!port.paused && !port.data.empty()) {
      id = pop(s.pool, port.data);
      Packet& p = s.pool[id];
      hist_account(link);
      port.queued_bytes -= p.size;
      s.shared_used[l.from] -= p.size;
      if (p.in_link >= 0) {
        uint64_t& in = s.ingress_bytes[p.in_link];
        in -= p.size;
        if (s.pause_sent[p.in_link] && in <= s.cfg.pfc_xon_bytes) {
          s.pause_sent[p.in_link] = 0;
          s.events.schedule(s.now + s.topo.links[p.in_link].latency_ps, kPause, static_cast<uint32_t>(p.in_link), 0);
        }
      }
    } else if (!port.paused && l.from < s.topo.hosts()) {
      id = hosts_.nic_pull(l.from);
    }
    if (id == kNoPacket) return;
    if (!l.up) {
      drop(id, link);
      continue;
    }
    uint32_t size = s.pool[id].size;
    SimTime ser = serialisation_ps(size, l.rate_bps);
    port.busy = true;
    port.tx_bytes += size;
    port.tx_packets++;
    port.busy_ps += ser;
    s.events.schedule(s.now + ser, kTxDone, link, id);
    return;
  }
}

void Fabric::on_tx_done(uint32_t link, uint32_t id) {
  SimState& s = s_;
  s.ports[link].busy = false;
  s.events.schedule(s.now + s.topo.links[link].latency_ps, kArrive, link, id);
  start_tx(link);
}

void Fabric::on_pause(uint32_t link, bool pause) {
  SimState& s = s_;
  Port& port = s.ports[link];
  if (pause == port.paused) return;
  port.paused = pause;
  if (pause) {
    port.pauses++;
    port.paused_since = s.now;
  } else {
    port.paused_ps += s.now - port.paused_since;
    if (!port.busy) start_tx(link);
  }
}

// A switch routes down by destination, up by the packet's load-balancing mode (its source route,
// or an ECMP hash of its entropy over the live up-ports).
uint32_t Fabric::on_arrive(uint32_t link, uint32_t id) {
  SimState& s = s_;
  const Topology& topo = s.topo;
  const Link& l = topo.links[link];
  if (!l.up) {  // lost on a failed link
    drop(id, link);
    return kNoPacket;
  }
  if (l.to < topo.hosts()) return id;
  Packet& p = s.pool[id];
  p.in_link = static_cast<int32_t>(link);
  int node = l.to;
  Tier tier = topo.nodes[node].tier;
  int out;
  if (topo.is_below(node, p.dst)) {
    int parallel = tier == Tier::SPINE && topo.three_tier() ? p.parallel[1] : p.parallel[0];
    out = topo.down_link(node, p.dst, parallel);
  } else {
    int t = tier == Tier::LEAF ? 0 : 1;
    if (p.lb == static_cast<uint8_t>(LoadBalancing::SOURCE)) {
      const auto& ups = topo.up_ports[node];
      if (p.route.port[t] >= ups.size()) {
        drop(id, link);
        return kNoPacket;
      }
      out = ups[p.route.port[t]];
    } else {
      const auto& live = s.live_up[node];
      if (live.empty()) {
        drop(id, link);
        return kNoPacket;
      }
      out = live[ecmp_choice(s.switch_seed[node], p.entropy, p.src, p.dst, static_cast<uint32_t>(live.size()))];
    }
    p.parallel[t] = static_cast<uint8_t>(topo.links[out].parallel);
  }
  enqueue(static_cast<uint32_t>(out), id);
  return kNoPacket;
}

void Fabric::on_link_state(uint32_t link, bool up) {
  SimState& s = s_;
  s.topo.set_link_up(static_cast<int>(link), up);
  rebuild_live(s.topo.links[link].from);
  if (up && !s.ports[link].busy) start_tx(link);
}

}  // namespace lookahead::net
