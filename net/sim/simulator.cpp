// The simulator's elements and their event handlers (contract in simulator.h).
//
// Elements, each with one job, all in flat arrays indexed by id:
//   Port      (one per directed link) serialises packets from its queues onto the link.
//   Link      delays a packet by its latency; a failed link loses what is on it.
//   Switch    routes an arriving packet to an output port (down by destination, up by the
//             packet's load-balancing mode), applies buffer limits, ECN and PFC.
//   Host NIC  a port that pulls the next packet round-robin from the host's active queue pairs.
//   QueuePair sender (window/rate, retransmission, entropy choice) and receiver (in-order or
//             selective) of one flow.
// Events carry (kind, target, arg) and are dispatched by a switch statement.
#include "net/sim/simulator.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"
#include "common/memory_limit.h"
#include "net/sim/event_list.h"
#include "net/sim/packet.h"
#include "net/transport/congestion.h"
#include "net/transport/connection.h"
#include "net/transport/queue_pair.h"
#include "net/transport/retransmit.h"

namespace lookahead::net {

namespace {

enum EventKind : uint8_t { kTxDone, kArrive, kFlowStart, kQpWake, kRto, kDcqcnTimer, kLinkState, kPause };

constexpr int kHistBuckets = 64;

inline SimTime serialisation_ps(uint32_t bytes, uint64_t rate_bps) {
  return (static_cast<uint64_t>(bytes) * 8 * 1'000'000'000'000ull + rate_bps - 1) / rate_bps;
}

struct PacketFifo {
  uint32_t head = kNoPacket, tail = kNoPacket;
  bool empty() const { return head == kNoPacket; }
};

struct Port {
  PacketFifo data, ctrl;
  uint64_t queued_bytes = 0;
  bool busy = false;
  bool paused = false;
  // Statistics.
  uint64_t tx_bytes = 0, tx_packets = 0, busy_ps = 0, max_queue = 0, drops = 0, ecn_marks = 0, pauses = 0;
  SimTime paused_since = 0, paused_ps = 0, last_change = 0;
};

}  // namespace

struct Simulator::Impl {
  Topology topo;
  Workload workload;
  NetworkConfig cfg;
  EventList events;
  PacketPool pool;
  Rng rng;
  SimTime now = 0;
  uint64_t processed = 0;

  std::vector<Port> ports;
  std::vector<uint64_t> hist;  // kHistBuckets per port, time-weighted queue occupancy (ps)
  uint32_t hist_bucket_bytes = 1;
  std::vector<uint64_t> switch_seed;
  std::vector<std::vector<int>> live_up;
  std::vector<uint64_t> shared_used;
  std::vector<uint64_t> ingress_bytes;
  std::vector<uint8_t> pause_sent;
  std::vector<std::vector<int>> active;  // per host: flows with data to send
  std::vector<size_t> rr;                // per host: round-robin position
  std::vector<QueuePair> qps;
  std::vector<std::vector<int>> dependents;
  ConnectionTable connections;  // REPS state per (source, destination) or per QP (cfg.reps_state)
  int finished = 0, failed = 0;
  SimTime base_rtt = 0;
  double max_cwnd = 0, init_cwnd = 0;
  std::function<void(SimTime, int)> progress;
  uint64_t progress_interval = 1 << 20;
  // Flows split when they become ready (FlowSpec::split_on_start): their QPs, added at run time.
  std::function<std::vector<FlowSpec>(int, SimTime)> splitter;
  std::function<int(int, int, int, int, SimTime)> rerouter;  // source-routed QP timed out: new path or -1
  std::vector<int> parent_of;                      // split QP -> the flow it carries, else -1
  std::vector<int> children_left;                  // split flow -> QPs not yet complete
  // Group gates (FlowSpec::after_groups), for the workload's own flows (not split QPs).
  size_t workload_flows = 0;                       // flows in the workload as given (QPs follow)
  std::vector<int> group_left;                     // group -> member flows not yet complete
  std::vector<std::vector<int>> group_waiters;     // group -> flows gated on it
  std::vector<int> gates_left;                     // flow -> gating groups not yet complete
  std::vector<SimTime> earliest;                   // flow -> earliest start (start_ps, gate + delay)

  Impl(Topology t, Workload w, NetworkConfig c) : topo(std::move(t)), workload(std::move(w)), cfg(c), rng(c.seed ^ 0x6e6574ull) {
    if (cfg.mtu_bytes < 64 || cfg.mtu_bytes + cfg.header_bytes > 65535)
      fail("network config: 'mtu' must be in [64, {}], got {}", 65535 - cfg.header_bytes, cfg.mtu_bytes);
    if (cfg.ack_every < 1) fail("network config: 'ack_every' must be at least 1");
    if (cfg.pfc && cfg.pfc_xon_bytes > cfg.pfc_xoff_bytes) fail("network config: 'pfc_xon_bytes' must not exceed 'pfc_xoff_bytes'");
    if (cfg.ecn_kmax_bytes < cfg.ecn_kmin_bytes) fail("network config: 'ecn_kmax_bytes' must be at least 'ecn_kmin_bytes'");
    if (cfg.rto_ps == 0) fail("network config: 'rto' must be positive");
    if (cfg.init_cwnd_bytes > 0 && cfg.init_cwnd_bytes < cfg.mtu_bytes)
      fail("network config: 'init_cwnd_bytes' must be 0 (default) or at least one MTU ({} bytes), got {}", cfg.mtu_bytes, cfg.init_cwnd_bytes);
    if (cfg.max_cwnd_bytes > 0 && cfg.max_cwnd_bytes < cfg.mtu_bytes)
      fail("network config: 'max_cwnd_bytes' must be 0 (default) or at least one MTU ({} bytes), got {}", cfg.mtu_bytes, cfg.max_cwnd_bytes);
    if (cfg.max_cwnd_bytes > 0 && cfg.init_cwnd_bytes > cfg.max_cwnd_bytes)
      fail("network config: 'init_cwnd_bytes' ({}) must not exceed 'max_cwnd_bytes' ({})", cfg.init_cwnd_bytes, cfg.max_cwnd_bytes);
    if (!(cfg.ecn_pmax >= 0 && cfg.ecn_pmax <= 1)) fail("network config: 'ecn_pmax' must be in [0, 1], got {}", cfg.ecn_pmax);
    for (auto [key, value] : {std::pair{"dctcp_g", cfg.dctcp_g}, std::pair{"dcqcn_g", cfg.dcqcn_g},
                              std::pair{"dcqcn_rai_fraction", cfg.dcqcn_rai_fraction},
                              std::pair{"dcqcn_min_rate_fraction", cfg.dcqcn_min_rate_fraction}})
      if (!(value > 0 && value <= 1)) fail("network config: '{}' must be in (0, 1], got {}", key, value);
    workload.validate(topo);
    size_t nlinks = topo.links.size(), nnodes = topo.nodes.size();
    ports.resize(nlinks);
    hist.assign(nlinks * kHistBuckets, 0);
    hist_bucket_bytes = cfg.mtu_bytes + cfg.header_bytes;
    switch_seed.resize(nnodes);
    for (size_t n = 0; n < nnodes; ++n) switch_seed[n] = ecmp_switch_seed(cfg.seed, static_cast<int>(n));
    live_up.resize(nnodes);
    for (size_t n = 0; n < nnodes; ++n) rebuild_live(static_cast<int>(n));
    shared_used.assign(nnodes, 0);
    ingress_bytes.assign(nlinks, 0);
    pause_sent.assign(nlinks, 0);
    active.resize(topo.hosts());
    rr.assign(topo.hosts(), 0);
    compute_base_rtt();
    setup_flows();
  }

  void rebuild_live(int n) {
    live_up[n].clear();
    for (int l : topo.up_ports[n])
      if (topo.links[l].up) live_up[n].push_back(l);
  }

  void compute_base_rtt() {
    base_rtt = 0;
    if (topo.hosts() < 2) return;
    int far = topo.hosts() - 1;
    auto path = topo.path_links(0, far, 0);
    for (int l : path) {
      const Link& link = topo.links[l];
      base_rtt += 2 * link.latency_ps + serialisation_ps(cfg.mtu_bytes + cfg.header_bytes, link.rate_bps) +
                  serialisation_ps(cfg.header_bytes, link.rate_bps);
    }
    double host_bps = static_cast<double>(topo.links[topo.host_uplink(0)].rate_bps);
    double bdp = host_bps * static_cast<double>(base_rtt) / 8e12;
    double fallback = cfg.cc == CongestionControl::dctcp ? std::max(kDefaultCwndBdps * bdp, bdp + 2.0 * cfg.mtu_bytes)
                                                         : bdp + 2.0 * cfg.mtu_bytes;
    max_cwnd = cfg.max_cwnd_bytes ? static_cast<double>(cfg.max_cwnd_bytes) : fallback;
    init_cwnd = cfg.init_cwnd_bytes ? std::min(max_cwnd, static_cast<double>(cfg.init_cwnd_bytes)) : max_cwnd;
  }

  void setup_flows() {
    size_t n = workload.flows.size();
    qps.resize(n);
    dependents.assign(n, {});
    parent_of.assign(n, -1);
    children_left.assign(n, 0);
    for (size_t i = 0; i < n; ++i) init_qp(static_cast<int>(i));
    workload_flows = n;
    group_left.assign(workload.groups.size(), 0);
    group_waiters.assign(workload.groups.size(), {});
    gates_left.assign(n, 0);
    earliest.assign(n, 0);
    for (size_t i = 0; i < n; ++i) {
      const FlowSpec& f = workload.flows[i];
      earliest[i] = f.start_ps;
      if (f.group >= 0) ++group_left[f.group];
      for (int g : f.after_groups) group_waiters[g].push_back(static_cast<int>(i));
      gates_left[i] = static_cast<int>(f.after_groups.size());
    }
    for (size_t g = 0; g < group_left.size(); ++g)
      if (group_left[g] == 0) open_gate(static_cast<int>(g), 0, false);  // an empty group is complete at time 0
    for (size_t i = 0; i < n; ++i)
      if (qps[i].deps_left == 0 && gates_left[i] == 0) events.schedule(earliest[i], kFlowStart, static_cast<uint32_t>(i));
  }

  // Group g completed at `at`: flows gated on it may start after_groups_delay_ps later.
  void open_gate(int g, SimTime at, bool schedule) {
    for (int w : group_waiters[g]) {
      earliest[w] = std::max(earliest[w], at + workload.flows[w].after_groups_delay_ps);
      if (--gates_left[w] == 0 && qps[w].deps_left == 0 && schedule)
        events.schedule(std::max(now, earliest[w]), kFlowStart, static_cast<uint32_t>(w));
    }
  }

  void init_qp(int i) {
    const FlowSpec& f = workload.flows[i];
    QueuePair& q = qps[i];
    q.src = f.src;
    q.dst = f.dst;
    q.packets = static_cast<uint32_t>((f.bytes + cfg.mtu_bytes - 1) / cfg.mtu_bytes);
    q.last_payload = static_cast<uint32_t>(f.bytes - uint64_t{q.packets - 1} * cfg.mtu_bytes);
    if (f.split_on_start) q.packets = 0;  // its QPs carry the bytes
    q.lb = f.lb ? *f.lb : cfg.lb;
    q.selective = cfg.receiver == ReceiverMode::selective ||
                  (cfg.receiver == ReceiverMode::automatic && (q.lb == LoadBalancing::spray || q.lb == LoadBalancing::reps));
    q.rng = Rng(cfg.seed * 0x100000001b3ull + static_cast<uint64_t>(i));
    q.entropy = f.entropy >= 0 ? static_cast<uint32_t>(f.entropy) : static_cast<uint32_t>(q.rng.next() >> 40);
    if (q.lb == LoadBalancing::source && !f.split_on_start) {
      int count = topo.path_count(f.src, f.dst);
      int path = f.path >= 0 ? f.path : static_cast<int>(q.entropy % static_cast<uint32_t>(count));
      q.route = topo.source_route(f.src, f.dst, path);
    }
    if (q.lb == LoadBalancing::reps)
      q.reps_conn = cfg.reps_state == RepsState::connection ? connections.index(q.src, q.dst) : connections.fresh();
    q.acked.resize(q.packets);
    q.outstanding.resize(q.packets);
    q.got.resize(q.packets);
    q.cwnd = init_cwnd;
    q.alpha = cfg.cc == CongestionControl::dctcp ? cfg.dctcp_alpha_init : 1.0;
    q.rate = q.target_rate = static_cast<double>(topo.links[topo.host_uplink(f.src)].rate_bps);
    q.deps_left = static_cast<int>(f.deps.size());
    for (int d : f.deps) dependents[d].push_back(i);
  }

  // A flow (or a split flow's last QP) completed at its sender: its dependents may start; a split
  // parent completes with its last QP.
  void complete_flow(int f) {
    QueuePair& q = qps[f];
    q.sender_done = true;
    q.finish = now;
    ++finished;
    for (int d : dependents[f])
      if (--qps[d].deps_left == 0 && gates_left[d] == 0) events.schedule(std::max(now, earliest[d]), kFlowStart, static_cast<uint32_t>(d));
    if (static_cast<size_t>(f) < workload_flows && workload.flows[f].group >= 0 && --group_left[workload.flows[f].group] == 0)
      open_gate(workload.flows[f].group, now, true);
    int parent = parent_of[f];
    if (parent >= 0 && --children_left[parent] == 0 && !qps[parent].failed) complete_flow(parent);
  }

  // The sender gave up (retry limit): the flow failed, and so does the split flow it carries. Its
  // dependents never start and its group gets no completion time.
  void fail_flow(int f) {
    QueuePair& q = qps[f];
    q.failed = true;
    q.sender_done = true;
    q.failed_at = now;
    ++failed;
    int parent = parent_of[f];
    if (parent >= 0 && !qps[parent].failed) fail_flow(parent);
  }

  // A split_on_start flow became ready: ask for its QPs and start them now.
  void start_split(int f) {
    if (!splitter) fail("simulator: flow {} is split_on_start but no on_split callback was given", f);
    std::vector<FlowSpec> parts = splitter(f, now);
    const FlowSpec parent = workload.flows[f];  // a copy: the flow table grows below
    uint64_t total = 0;
    for (const FlowSpec& c : parts) total += c.bytes;
    if (parts.empty() || total != parent.bytes)
      fail("simulator: the split of flow {} carries {} bytes in {} QPs, not the flow's {}", f, total, parts.size(), parent.bytes);
    qps[f].started = true;
    qps[f].start = now;
    children_left[f] = static_cast<int>(parts.size());
    for (FlowSpec c : parts) {
      if (c.src != parent.src || c.dst != parent.dst || c.bytes == 0 || c.split_on_start)
        fail("simulator: a QP of split flow {} must go {} -> {} with bytes > 0", f, parent.src, parent.dst);
      if (c.path >= topo.path_count(c.src, c.dst)) fail("simulator: a QP of split flow {} has path {} out of range", f, c.path);
      c.deps.clear();
      c.after_groups.clear();
      c.group = parent.group;
      c.start_ps = now + c.start_ps;  // the QP's own start_ps: a delay after the split (batching window, jitter)
      int id = static_cast<int>(workload.flows.size());
      workload.flows.push_back(c);
      qps.emplace_back();
      dependents.emplace_back();
      parent_of.push_back(f);
      children_left.push_back(0);
      init_qp(id);
      events.schedule(c.start_ps, kFlowStart, static_cast<uint32_t>(id));
    }
  }

  // ---- Ports -------------------------------------------------------------------------------

  void hist_account(uint32_t port) {
    Port& p = ports[port];
    uint64_t bucket = std::min<uint64_t>(p.queued_bytes / hist_bucket_bytes, kHistBuckets - 1);
    hist[port * kHistBuckets + bucket] += now - p.last_change;
    p.last_change = now;
  }

  static void push(PacketPool& pool, PacketFifo& q, uint32_t id) {
    pool[id].next = kNoPacket;
    if (q.tail == kNoPacket) q.head = id;
    else pool[q.tail].next = id;
    q.tail = id;
  }
  static uint32_t pop(PacketPool& pool, PacketFifo& q) {
    uint32_t id = q.head;
    q.head = pool[id].next;
    if (q.head == kNoPacket) q.tail = kNoPacket;
    return id;
  }

  void drop(uint32_t id, uint32_t link) {
    ports[link].drops++;
    const Packet& p = pool[id];
    if (p.type == PacketType::data) qps[p.flow].dropped++;
    pool.free(id);
  }

  void enqueue(uint32_t link, uint32_t id) {
    Port& port = ports[link];
    Packet& p = pool[id];
    if (!topo.links[link].up) return drop(id, link);
    if (p.type != PacketType::data) {
      push(pool, port.ctrl, id);
      if (!port.busy) start_tx(link);
      return;
    }
    int node = topo.links[link].from;
    if (!cfg.pfc) {
      bool full = cfg.shared_buffer_bytes > 0 ? shared_used[node] + p.size > cfg.shared_buffer_bytes
                                              : port.queued_bytes + p.size > cfg.port_buffer_bytes;
      if (full) return drop(id, link);
    }
    if (cfg.ecn_kmax_bytes > 0 && !p.ecn) {
      uint64_t q = port.queued_bytes;
      bool mark = false;
      if (q > cfg.ecn_kmax_bytes) mark = true;
      else if (q > cfg.ecn_kmin_bytes)
        mark = rng.uniform() < cfg.ecn_pmax * static_cast<double>(q - cfg.ecn_kmin_bytes) /
                                   static_cast<double>(cfg.ecn_kmax_bytes - cfg.ecn_kmin_bytes);
      if (mark) {
        p.ecn = true;
        port.ecn_marks++;
      }
    }
    hist_account(link);
    port.queued_bytes += p.size;
    port.max_queue = std::max(port.max_queue, port.queued_bytes);
    shared_used[node] += p.size;
    if (p.in_link >= 0) {
      uint64_t& in = ingress_bytes[p.in_link];
      in += p.size;
      if (cfg.pfc && !pause_sent[p.in_link] && in > cfg.pfc_xoff_bytes) {
        pause_sent[p.in_link] = 1;
        events.schedule(now + topo.links[p.in_link].latency_ps, kPause, static_cast<uint32_t>(p.in_link), 1);
      }
    }
    push(pool, port.data, id);
    if (!port.busy) start_tx(link);
  }

  // Picks the next packet for an idle port and starts serialising it.
  void start_tx(uint32_t link) {
    Port& port = ports[link];
    const Link& l = topo.links[link];
    while (true) {
      uint32_t id = kNoPacket;
      if (!port.ctrl.empty()) {
        id = pop(pool, port.ctrl);
      } else if (!port.paused && !port.data.empty()) {
        id = pop(pool, port.data);
        Packet& p = pool[id];
        hist_account(link);
        port.queued_bytes -= p.size;
        shared_used[l.from] -= p.size;
        if (p.in_link >= 0) {
          uint64_t& in = ingress_bytes[p.in_link];
          in -= p.size;
          if (pause_sent[p.in_link] && in <= cfg.pfc_xon_bytes) {
            pause_sent[p.in_link] = 0;
            events.schedule(now + topo.links[p.in_link].latency_ps, kPause, static_cast<uint32_t>(p.in_link), 0);
          }
        }
      } else if (!port.paused && l.from < topo.hosts()) {
        id = nic_pull(l.from);
      }
      if (id == kNoPacket) return;
      if (!l.up) {
        drop(id, link);
        continue;
      }
      uint32_t size = pool[id].size;
      SimTime ser = serialisation_ps(size, l.rate_bps);
      port.busy = true;
      port.tx_bytes += size;
      port.tx_packets++;
      port.busy_ps += ser;
      events.schedule(now + ser, kTxDone, link, id);
      return;
    }
  }

  void on_tx_done(uint32_t link, uint32_t id) {
    ports[link].busy = false;
    events.schedule(now + topo.links[link].latency_ps, kArrive, link, id);
    start_tx(link);
  }

  void on_pause(uint32_t link, bool pause) {
    Port& port = ports[link];
    if (pause == port.paused) return;
    port.paused = pause;
    if (pause) {
      port.pauses++;
      port.paused_since = now;
    } else {
      port.paused_ps += now - port.paused_since;
      if (!port.busy) start_tx(link);
    }
  }

  // ---- Switches ------------------------------------------------------------------------------

  void on_arrive(uint32_t link, uint32_t id) {
    const Link& l = topo.links[link];
    if (!l.up) return drop(id, link);  // lost on a failed link
    if (l.to < topo.hosts()) return host_receive(l.to, id);
    Packet& p = pool[id];
    p.in_link = static_cast<int32_t>(link);
    int node = l.to;
    Tier tier = topo.nodes[node].tier;
    int out;
    if (topo.is_below(node, p.dst)) {
      int parallel = tier == Tier::spine && topo.three_tier() ? p.parallel[1] : p.parallel[0];
      out = topo.down_link(node, p.dst, parallel);
    } else {
      int t = tier == Tier::leaf ? 0 : 1;
      if (p.lb == static_cast<uint8_t>(LoadBalancing::source)) {
        const auto& ups = topo.up_ports[node];
        if (p.route.port[t] >= ups.size()) return drop(id, link);
        out = ups[p.route.port[t]];
      } else {
        const auto& live = live_up[node];
        if (live.empty()) return drop(id, link);
        out = live[ecmp_choice(switch_seed[node], p.entropy, p.src, p.dst, static_cast<uint32_t>(live.size()))];
      }
      p.parallel[t] = static_cast<uint8_t>(topo.links[out].parallel);
    }
    enqueue(static_cast<uint32_t>(out), id);
  }

  void on_link_state(uint32_t link, bool up) {
    topo.set_link_up(static_cast<int>(link), up);
    rebuild_live(topo.links[link].from);
    if (up && !ports[link].busy) start_tx(link);
  }

  // ---- Hosts and queue pairs -----------------------------------------------------------------

  // A QP may have packets to send again (rewound by a NACK or a timeout): back into its NIC's list.
  void wake_qp(int f) {
    QueuePair& q = qps[f];
    if (q.in_active || q.sender_done || !q.started || next_seq(q) >= q.packets) return;
    q.in_active = true;
    active[q.src].push_back(f);
  }

  void poke_nic(int host) {
    uint32_t link = static_cast<uint32_t>(topo.host_uplink(host));
    if (!ports[link].busy) start_tx(link);
  }

  uint32_t payload_of(const QueuePair& q, uint32_t seq) const { return seq + 1 == q.packets ? q.last_payload : cfg.mtu_bytes; }

  // Next packet number the sender would send, or packets if none.
  uint32_t next_seq(QueuePair& q) {
    if (!q.selective) return q.next_send;
    while (q.rtx_cursor < q.high_sent && (q.acked.get(q.rtx_cursor) || q.outstanding.get(q.rtx_cursor))) ++q.rtx_cursor;
    if (q.rtx_cursor < q.high_sent) return q.rtx_cursor;
    return q.high_sent;
  }

  uint32_t nic_pull(int host) {
    auto& list = active[host];
    size_t n = list.size();
    for (size_t k = 0; k < n && !list.empty(); ++k) {
      size_t i = rr[host] % list.size();
      int f = list[i];
      QueuePair& q = qps[f];
      uint32_t seq = q.sender_done ? q.packets : next_seq(q);
      if (seq >= q.packets) {
        // Done, or every packet sent and awaiting ACKs: leave the list (wake_qp() puts it back when a
        // NACK or timeout rewinds it), so a NIC with thousands of waiting QPs does not scan them all
        // for every packet. The next QP moves into slot i: round-robin order is unchanged.
        q.in_active = false;
        list.erase(list.begin() + static_cast<long>(i));
        rr[host] = i;
        continue;
      }
      rr[host] = i + 1;
      uint64_t inflight = q.selective ? q.inflight : q.next_send - q.snd_una;
      double limit = cfg.cc == CongestionControl::dctcp ? q.cwnd : max_cwnd;
      if (inflight > 0 && static_cast<double>((inflight + 1) * cfg.mtu_bytes) > limit) continue;
      if (cfg.cc == CongestionControl::dcqcn && q.next_tx > now) {
        if (!q.wake_pending) {
          q.wake_pending = true;
          events.schedule(q.next_tx, kQpWake, static_cast<uint32_t>(f));
        }
        continue;
      }
      return send_data(f, seq);
    }
    return kNoPacket;
  }

  uint32_t send_data(int f, uint32_t seq) {
    QueuePair& q = qps[f];
    uint32_t id = pool.alloc();
    Packet& p = pool[id];
    p = Packet{};
    p.flow = static_cast<uint32_t>(f);
    p.seq = seq;
    p.src = q.src;
    p.dst = q.dst;
    p.size = static_cast<uint16_t>(payload_of(q, seq) + cfg.header_bytes);
    p.type = PacketType::data;
    p.lb = static_cast<uint8_t>(q.lb);
    switch (q.lb) {
      case LoadBalancing::ecmp: p.entropy = q.entropy; break;
      case LoadBalancing::source: p.entropy = q.entropy; p.route = q.route; break;
      case LoadBalancing::spray: p.entropy = static_cast<uint32_t>(q.rng.next() >> 40); break;
      case LoadBalancing::reps: {
        RepsConnection& c = connections.reps(q.reps_conn);
        p.entropy = c.entropies.next(q.rng, now < c.frozen_until);
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
    if (cfg.cc == CongestionControl::dcqcn) {
      q.next_tx = now + static_cast<SimTime>(static_cast<double>(p.size) * 8e12 / q.rate);
      if (!q.dcqcn_pending) {
        // The DCQCN timer runs while the flow sends; it recovers rate and decays alpha.
        q.dcqcn_pending = true;
        events.schedule(now + cfg.dcqcn_period_ps, kDcqcnTimer, static_cast<uint32_t>(f));
      }
    }
    if (!q.rto_pending) {
      q.rto_pending = true;
      q.last_progress = now;
      events.schedule(now + cfg.rto_ps, kRto, static_cast<uint32_t>(f));
    }
    return id;
  }

  void send_ctrl(int f, const Packet& data, PacketType type, uint32_t cum, bool ecn) {
    const QueuePair& q = qps[f];
    uint32_t id = pool.alloc();
    Packet& a = pool[id];
    a = Packet{};
    a.flow = static_cast<uint32_t>(f);
    a.seq = data.seq;
    a.cum = cum;
    a.entropy = data.entropy;
    a.src = q.dst;
    a.dst = q.src;
    a.size = static_cast<uint16_t>(cfg.header_bytes);
    a.type = type;
    a.lb = data.lb;
    a.ecn = ecn;
    a.route = data.route;
    enqueue(static_cast<uint32_t>(topo.host_uplink(q.dst)), id);
  }

  void host_receive(int host, uint32_t id) {
    Packet p = pool[id];
    pool.free(id);
    (void)host;
    if (p.type == PacketType::data) receive_data(static_cast<int>(p.flow), p);
    else receive_ack(static_cast<int>(p.flow), p);
  }

  void receive_data(int f, const Packet& p) {
    QueuePair& q = qps[f];
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
        send_ctrl(f, p, PacketType::nack, q.expected, p.ecn);
      }
      return;
    }
    if (!fresh) {
      q.duplicates++;
      send_ctrl(f, p, PacketType::ack, q.expected, p.ecn);
      return;
    }
    q.delivered++;
    q.received++;
    bool complete = q.received == q.packets;
    if (++q.since_ack >= cfg.ack_every || p.ecn || complete) {
      q.since_ack = 0;
      send_ctrl(f, p, PacketType::ack, q.expected, p.ecn);
    }
    if (complete && !q.receiver_done) {  // the flow completes when the sender has the last ACK
      q.receiver_done = true;
      q.receiver_done_at = now;
    }
  }

  void mark_acked(QueuePair& q, uint32_t seq, uint64_t& newly) {
    if (q.acked.get(seq)) return;
    q.acked.set(seq);
    newly += payload_of(q, seq);
    if (q.outstanding.get(seq)) {
      q.outstanding.clear(seq);
      q.inflight--;
    }
  }

  void receive_ack(int f, const Packet& a) {
    QueuePair& q = qps[f];
    if (q.sender_done) return;
    if (a.ecn) q.ecn_acks++;
    uint64_t newly = 0;
    if (q.selective) {
      if (a.seq < q.packets) mark_acked(q, a.seq, newly);
      while (q.snd_una < a.cum) mark_acked(q, q.snd_una++, newly);
      while (q.snd_una < q.packets && q.acked.get(q.snd_una)) ++q.snd_una;
    } else {
      if (a.cum > q.snd_una) {
        for (uint32_t s = q.snd_una; s < a.cum; ++s) newly += payload_of(q, s);
        q.snd_una = a.cum;
        if (q.next_send < q.snd_una) q.next_send = q.snd_una;
      }
      if (a.type == PacketType::nack && q.next_send > q.snd_una) q.next_send = q.snd_una;  // go back N
    }
    if (q.lb == LoadBalancing::reps) connections.reps(q.reps_conn).entropies.on_ack(a.entropy, a.ecn);
    if (newly > 0) {
      q.last_progress = now;
      on_ack_progress(q);
    }
    congestion_on_ack(q, newly, a.ecn);
    if (q.snd_una >= q.packets) return complete_flow(f);
    wake_qp(f);
    poke_nic(q.src);
  }

  void congestion_on_ack(QueuePair& q, uint64_t newly, bool marked) {
    if (cfg.cc == CongestionControl::dctcp) dctcp_on_ack(q, cfg, newly, marked, max_cwnd);
    else if (cfg.cc == CongestionControl::dcqcn && marked)
      dcqcn_on_marked_ack(q, cfg, static_cast<double>(topo.links[topo.host_uplink(q.src)].rate_bps), now);
  }

  void on_dcqcn_timer(int f) {
    QueuePair& q = qps[f];
    q.dcqcn_pending = false;
    if (q.sender_done) return;
    dcqcn_on_timer(q, cfg, static_cast<double>(topo.links[topo.host_uplink(q.src)].rate_bps));
    q.dcqcn_pending = true;
    events.schedule(now + cfg.dcqcn_period_ps, kDcqcnTimer, static_cast<uint32_t>(f));
  }

  void on_rto(int f) {
    QueuePair& q = qps[f];
    q.rto_pending = false;
    if (q.sender_done) return;
    uint32_t outstanding = q.selective ? q.inflight : q.next_send - q.snd_una;
    if (outstanding == 0 && q.high_sent == q.snd_una) return;  // nothing in flight: the next send rearms
    if (now < q.last_progress + cfg.rto_ps) {
      q.rto_pending = true;
      events.schedule(q.last_progress + cfg.rto_ps, kRto, static_cast<uint32_t>(f));
      return;
    }
    if (on_retransmission_timeout(q, cfg) == TimeoutOutcome::give_up) return fail_flow(f);
    if (q.lb == LoadBalancing::source && rerouter) {  // the sender learns: move the QP off a suspect path
      int path = topo.path_index(q.src, q.dst, q.route);
      int next = rerouter(f, q.src, q.dst, path, now);
      if (next >= 0 && next != path) q.route = topo.source_route(q.src, q.dst, next);
    }
    if (q.lb == LoadBalancing::reps)
      connections.reps(q.reps_conn).frozen_until = now + (cfg.reps_freeze_ps ? cfg.reps_freeze_ps : cfg.rto_ps);
    q.last_progress = now;
    q.rto_pending = true;
    events.schedule(now + cfg.rto_ps, kRto, static_cast<uint32_t>(f));
    wake_qp(f);
    poke_nic(q.src);
  }

  void on_flow_start(int f) {
    if (workload.flows[f].split_on_start) return start_split(f);
    QueuePair& q = qps[f];
    q.started = true;
    q.start = now;
    q.in_active = true;
    active[q.src].push_back(f);
    poke_nic(q.src);
  }

  void dispatch(const Event& e) {
    switch (e.kind) {
      case kTxDone: on_tx_done(e.target, e.arg); break;
      case kArrive: on_arrive(e.target, e.arg); break;
      case kFlowStart: on_flow_start(static_cast<int>(e.target)); break;
      case kQpWake:
        qps[e.target].wake_pending = false;
        poke_nic(qps[e.target].src);
        break;
      case kRto: on_rto(static_cast<int>(e.target)); break;
      case kDcqcnTimer: on_dcqcn_timer(static_cast<int>(e.target)); break;
      case kLinkState: on_link_state(e.target, e.arg != 0); break;
      case kPause: on_pause(e.target, e.arg != 0); break;
    }
  }

  SimResult run(SimTime until) {
    while (!events.empty() && finished < static_cast<int>(qps.size())) {  // split flows add QPs
      if (events.top().time > until) {
        now = until;
        break;
      }
      Event e = events.pop();
      now = e.time;
      dispatch(e);
      if ((++processed % progress_interval) == 0 && progress) progress(now, finished);
    }
    return collect();
  }

  SimResult collect() {
    SimResult r;
    r.end_ps = now;
    r.events = processed;
    r.all_finished = finished == static_cast<int>(qps.size());
    r.failed = failed;
    // Data packets still in the network: in port queues and in events (serialising or on a link).
    std::vector<uint64_t> in_net(qps.size(), 0);
    auto count = [&](uint32_t id) {
      if (pool[id].type == PacketType::data) in_net[pool[id].flow]++;
    };
    for (const Port& p : ports)
      for (uint32_t id = p.data.head; id != kNoPacket; id = pool[id].next) count(id);
    events.for_each([&](const Event& e) {
      if (e.kind == kTxDone || e.kind == kArrive) count(e.arg);
    });
    r.flows.resize(qps.size());
    for (size_t i = 0; i < qps.size(); ++i) {
      const QueuePair& q = qps[i];
      FlowResult& f = r.flows[i];
      f.id = static_cast<int>(i);
      f.src = q.src;
      f.dst = q.dst;
      f.group = workload.flows[i].group;
      f.bytes = workload.flows[i].bytes;
      f.start_ps = q.start;
      f.finish_ps = q.finish;
      f.receiver_done_ps = q.receiver_done_at;
      f.failed = q.failed;
      f.failed_ps = q.failed_at;
      f.packets = q.packets;
      f.sent_packets = q.sent_packets;
      f.retransmits = q.retransmits;
      f.delivered = q.delivered;
      f.duplicates = q.duplicates;
      f.dropped = q.dropped;
      f.in_network = in_net[i];
      f.ecn_acks = q.ecn_acks;
      f.timeouts = q.timeouts;
      f.lb = load_balancing_name(q.lb);
      r.retransmits += q.retransmits;
      r.timeouts += q.timeouts;
    }
    r.links.resize(ports.size());
    for (size_t l = 0; l < ports.size(); ++l) {
      hist_account(static_cast<uint32_t>(l));
      const Port& p = ports[l];
      LinkResult& o = r.links[l];
      o.id = static_cast<int>(l);
      o.from = topo.links[l].from;
      o.to = topo.links[l].to;
      o.rate_bps = topo.links[l].rate_bps;
      o.tx_bytes = p.tx_bytes;
      o.tx_packets = p.tx_packets;
      o.utilisation = now > 0 ? static_cast<double>(p.busy_ps) / static_cast<double>(now) : 0;
      o.max_queue_bytes = p.max_queue;
      const uint64_t* h = &hist[l * kHistBuckets];
      uint64_t total = 0;
      for (int b = 0; b < kHistBuckets; ++b) total += h[b];
      auto pct = [&](double frac) {
        uint64_t acc = 0;
        for (int b = 0; b < kHistBuckets; ++b) {
          acc += h[b];
          if (total > 0 && static_cast<double>(acc) >= frac * static_cast<double>(total))
            return static_cast<double>(b) * hist_bucket_bytes;
        }
        return 0.0;
      };
      o.p50_queue_bytes = pct(0.5);
      o.p99_queue_bytes = pct(0.99);
      o.drops = p.drops;
      o.ecn_marks = p.ecn_marks;
      o.pauses = p.pauses;
      o.paused_ps = p.paused_ps + (p.paused ? now - p.paused_since : 0);
      r.drops += p.drops;
      r.ecn_marks += p.ecn_marks;
      r.pauses += p.pauses;
    }
    r.groups.resize(workload.groups.size());
    for (size_t g = 0; g < r.groups.size(); ++g) r.groups[g].name = workload.groups[g];
    for (const FlowResult& f : r.flows) {
      if (f.group < 0) continue;
      GroupResult& g = r.groups[f.group];
      g.flows++;
      g.start_ps = std::min(g.start_ps, f.start_ps);
      if (f.finish_ps != kNever) g.finished++;
      if (f.failed) g.failed++;
    }
    for (const FlowResult& f : r.flows) {
      if (f.group < 0) continue;
      GroupResult& g = r.groups[f.group];
      if (g.finished == g.flows) g.finish_ps = g.finish_ps == kNever ? f.finish_ps : std::max(g.finish_ps, f.finish_ps);
    }
    return r;
  }
};

// About 6 KB per host (ports, queues, queue pairs) and 1.1 KB per flow (measured: permutation on
// fat_tree k=32/48, all_to_all on k=8/12).
Simulator::Simulator(Topology topology, Workload workload, NetworkConfig config) {
  const double hosts = topology.hosts(), flows = static_cast<double>(workload.flows.size());
  require_memory(hosts * 6500.0 + flows * 1200.0, fmt::format("simulating {:.0f} hosts and {:.0f} flows", hosts, flows));
  impl_ = new Impl(std::move(topology), std::move(workload), config);
}

Simulator::~Simulator() { delete impl_; }

void Simulator::fail_link(int link, SimTime down_ps, SimTime up_ps, bool both) {
  if (link < 0 || link >= static_cast<int>(impl_->topo.links.size()))
    fail("link failure: link {} does not exist ({} links)", link, impl_->topo.links.size());
  if (up_ps != kNever && up_ps <= down_ps) fail("link failure: link {} comes back up before it fails", link);
  std::vector<int> targets{link};
  if (both) targets.push_back(impl_->topo.reverse_link(link));
  for (int l : targets) {
    impl_->events.schedule(down_ps, kLinkState, static_cast<uint32_t>(l), 0);
    if (up_ps != kNever) impl_->events.schedule(up_ps, kLinkState, static_cast<uint32_t>(l), 1);
  }
}

void Simulator::on_progress(std::function<void(SimTime, int)> callback, uint64_t interval_events) {
  impl_->progress = std::move(callback);
  impl_->progress_interval = std::max<uint64_t>(1, interval_events);
}

SimResult Simulator::run(SimTime until_ps) { return impl_->run(until_ps); }
void Simulator::on_split(std::function<std::vector<FlowSpec>(int flow, SimTime now)> split) { impl_->splitter = std::move(split); }
void Simulator::on_source_timeout(std::function<int(int flow, int src, int dst, int path, SimTime now)> reroute) {
  impl_->rerouter = std::move(reroute);
}
const Topology& Simulator::topology() const { return impl_->topo; }
SimTime Simulator::base_rtt_ps() const { return impl_->base_rtt; }

SimResult simulate(const Topology& topology, const Workload& workload, const NetworkConfig& config, SimTime until_ps) {
  Simulator sim(topology, workload, config);
  return sim.run(until_ps);
}

}  // namespace lookahead::net
