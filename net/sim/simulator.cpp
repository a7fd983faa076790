// The simulator's event loop, the flows' lifecycle and the results (contract in simulator.h).
//
// The work is split over flat arrays (net/sim/state.h): the fabric (net/sim/fabric.h) moves
// packets through ports, links and switches; the endpoints (net/transport/endpoint.h) are the
// hosts' NICs and queue pairs. This file pops events and dispatches them with a switch (no virtual
// call per event), and starts, completes and fails flows: dependencies, group gates and split flows.
#include "net/sim/simulator.h"

#include <algorithm>

#include "common/error.h"
#include "common/memory_limit.h"
#include "net/sim/fabric.h"
#include "net/sim/state.h"
#include "net/transport/endpoint.h"

namespace lookahead::net {

namespace {

void validate(const NetworkConfig& cfg) {
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
}

// Longest-path round trip of a full packet and its ACK, no queueing.
SimTime base_rtt_of(const Topology& topo, const NetworkConfig& cfg) {
  SimTime rtt = 0;
  if (topo.hosts() < 2) return rtt;
  for (int l : topo.path_links(0, topo.hosts() - 1, 0)) {
    const Link& link = topo.links[l];
    rtt += 2 * link.latency_ps + serialisation_ps(cfg.mtu_bytes + cfg.header_bytes, link.rate_bps) +
           serialisation_ps(cfg.header_bytes, link.rate_bps);
  }
  return rtt;
}

// The time-weighted p-quantile of one port's queue histogram, in bytes (bucket lower bounds).
double queue_quantile(const uint64_t* hist, uint32_t bucket_bytes, double frac) {
  uint64_t total = 0;
  for (int b = 0; b < kHistBuckets; ++b) total += hist[b];
  uint64_t acc = 0;
  for (int b = 0; b < kHistBuckets; ++b) {
    acc += hist[b];
    if (total > 0 && static_cast<double>(acc) >= frac * static_cast<double>(total)) return static_cast<double>(b) * bucket_bytes;
  }
  return 0.0;
}

}  // namespace

struct Simulator::Impl {
  SimState s;
  Fabric fabric{s, endpoints};
  Endpoints endpoints{s, fabric};
  uint64_t processed = 0;
  int finished = 0, failed = 0;
  SimTime base_rtt = 0;
  std::function<void(SimTime, int)> progress;
  uint64_t progress_interval = 1 << 20;
  // Flows split when they become ready (FlowSpec::split_on_start): their QPs, added at run time.
  std::function<std::vector<FlowSpec>(int, SimTime)> splitter;
  std::vector<std::vector<int>> dependents;        // flow -> flows that wait for it
  std::vector<int> parent_of;                      // split QP -> the flow it carries, else -1
  std::vector<int> children_left;                  // split flow -> QPs not yet complete
  // Group gates (FlowSpec::after_groups), for the workload's own flows (not split QPs).
  size_t workload_flows = 0;                       // flows in the workload as given (QPs follow)
  std::vector<int> group_left;                     // group -> member flows not yet complete
  std::vector<std::vector<int>> group_waiters;     // group -> flows gated on it
  std::vector<int> gates_left;                     // flow -> gating groups not yet complete
  std::vector<SimTime> earliest;                   // flow -> earliest start (start_ps, gate + delay)

  Impl(Topology t, Workload w, NetworkConfig c) : s(std::move(t), std::move(w), c) {
    validate(s.cfg);
    s.workload.validate(s.topo);
    fabric.init();
    base_rtt = base_rtt_of(s.topo, s.cfg);
    endpoints.init(base_rtt);
    setup_flows();
  }

  void setup_flows() {
    const Workload& workload = s.workload;
    size_t n = workload.flows.size();
    s.qps.resize(n);
    dependents.assign(n, {});
    parent_of.assign(n, -1);
    children_left.assign(n, 0);
    for (size_t i = 0; i < n; ++i) setup_flow(static_cast<int>(i));
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
      if (s.qps[i].deps_left == 0 && gates_left[i] == 0) s.events.schedule(earliest[i], kFlowStart, static_cast<uint32_t>(i));
  }

  void setup_flow(int i) {
    endpoints.setup_qp(i);
    const FlowSpec& f = s.workload.flows[i];
    s.qps[i].deps_left = static_cast<int>(f.deps.size());
    for (int d : f.deps) dependents[d].push_back(i);
  }

  // Group g completed at `at`: flows gated on it may start after_groups_delay_ps later.
  void open_gate(int g, SimTime at, bool schedule) {
    for (int w : group_waiters[g]) {
      earliest[w] = std::max(earliest[w], at + s.workload.flows[w].after_groups_delay_ps);
      if (--gates_left[w] == 0 && s.qps[w].deps_left == 0 && schedule)
        s.events.schedule(std::max(s.now, earliest[w]), kFlowStart, static_cast<uint32_t>(w));
    }
  }

  // A flow (or a split flow's last QP) completed at its sender: its dependents may start; a split
  // parent completes with its last QP.
  void complete_flow(int f) {
    QueuePair& q = s.qps[f];
    q.sender_done = true;
    q.finish = s.now;
    ++finished;
    for (int d : dependents[f])
      if (--s.qps[d].deps_left == 0 && gates_left[d] == 0) s.events.schedule(std::max(s.now, earliest[d]), kFlowStart, static_cast<uint32_t>(d));
    const std::vector<FlowSpec>& flows = s.workload.flows;
    if (static_cast<size_t>(f) < workload_flows && flows[f].group >= 0 && --group_left[flows[f].group] == 0)
      open_gate(flows[f].group, s.now, true);
    int parent = parent_of[f];
    if (parent >= 0 && --children_left[parent] == 0 && !s.qps[parent].failed) complete_flow(parent);
  }

  // The sender gave up (retry limit): the flow failed, and so does the split flow it carries. Its
  // dependents never start and its group gets no completion time.
  void fail_flow(int f) {
    QueuePair& q = s.qps[f];
    q.failed = true;
    q.sender_done = true;
    q.failed_at = s.now;
    ++failed;
    int parent = parent_of[f];
    if (parent >= 0 && !s.qps[parent].failed) fail_flow(parent);
  }

  // A split_on_start flow became ready: ask for its QPs and start them now.
  void start_split(int f) {
    if (!splitter) fail("simulator: flow {} is split_on_start but no on_split callback was given", f);
    std::vector<FlowSpec> parts = splitter(f, s.now);
    const FlowSpec parent = s.workload.flows[f];  // a copy: the flow table grows below
    uint64_t total = 0;
    for (const FlowSpec& c : parts) total += c.bytes;
    if (parts.empty() || total != parent.bytes)
      fail("simulator: the split of flow {} carries {} bytes in {} QPs, not the flow's {}", f, total, parts.size(), parent.bytes);
    s.qps[f].started = true;
    s.qps[f].start = s.now;
    children_left[f] = static_cast<int>(parts.size());
    int lane = 0;
    for (FlowSpec c : parts) {
      if (c.src != parent.src || c.dst != parent.dst || c.bytes == 0 || c.split_on_start)
        fail("simulator: a QP of split flow {} must go {} -> {} with bytes > 0", f, parent.src, parent.dst);
      if (c.path >= s.topo.path_count(c.src, c.dst)) fail("simulator: a QP of split flow {} has path {} out of range", f, c.path);
      c.deps.clear();
      c.after_groups.clear();
      c.group = parent.group;
      c.channel = parent.channel;  // its QPs are the connection's lanes
      c.lane = lane++;
      c.start_ps = s.now + c.start_ps;  // the QP's own start_ps: a delay after the split (batching window, jitter)
      int id = static_cast<int>(s.workload.flows.size());
      s.workload.flows.push_back(c);
      s.qps.emplace_back();
      dependents.emplace_back();
      parent_of.push_back(f);
      children_left.push_back(0);
      setup_flow(id);
      s.events.schedule(c.start_ps, kFlowStart, static_cast<uint32_t>(id));
    }
  }

  void on_flow_start(int f) {
    if (s.workload.flows[f].split_on_start) return start_split(f);
    endpoints.start(f);
  }

  void dispatch(const Event& e) {
    switch (e.kind) {
      case kTxDone: fabric.on_tx_done(e.target, e.arg); break;
      case kArrive:
        if (uint32_t packet = fabric.on_arrive(e.target, e.arg); packet != kNoPacket)
          if (int done = endpoints.receive(packet); done >= 0) complete_flow(done);
        break;
      case kFlowStart: on_flow_start(static_cast<int>(e.target)); break;
      case kQpWake: endpoints.on_wake(static_cast<int>(e.target)); break;
      case kRto:
        if (endpoints.on_rto(static_cast<int>(e.target))) fail_flow(static_cast<int>(e.target));
        break;
      case kDcqcnTimer: endpoints.on_dcqcn_timer(static_cast<int>(e.target)); break;
      case kLinkState: fabric.on_link_state(e.target, e.arg != 0); break;
      case kPause: fabric.on_pause(e.target, e.arg != 0); break;
    }
  }

  SimResult run(SimTime until) {
    while (!s.events.empty() && finished < static_cast<int>(s.qps.size())) {  // split flows add QPs
      if (s.events.top().time > until) {
        s.now = until;
        break;
      }
      Event e = s.events.pop();
      s.now = e.time;
      dispatch(e);
      if ((++processed % progress_interval) == 0 && progress) progress(s.now, finished);
    }
    return collect();
  }

  SimResult collect() {
    SimResult r;
    r.end_ps = s.now;
    r.events = processed;
    r.all_finished = finished == static_cast<int>(s.qps.size());
    r.failed = failed;
    collect_flows(r);
    collect_links(r);
    collect_groups(r);
    return r;
  }

  // Data packets still in the network per flow: in port queues and in events (serialising or on a link).
  std::vector<uint64_t> in_network() const {
    std::vector<uint64_t> in_net(s.qps.size(), 0);
    auto count = [&](uint32_t id) {
      if (s.pool[id].type == PacketType::DATA) in_net[s.pool[id].flow]++;
    };
    for (const Port& p : s.ports)
      for (uint32_t id = p.data.head; id != kNoPacket; id = s.pool[id].next) count(id);
    s.events.for_each([&](const Event& e) {
      if (e.kind == kTxDone || e.kind == kArrive) count(e.arg);
    });
    return in_net;
  }

  void collect_flows(SimResult& r) const {
    std::vector<uint64_t> in_net = in_network();
    r.flows.resize(s.qps.size());
    for (size_t i = 0; i < s.qps.size(); ++i) {
      const QueuePair& q = s.qps[i];
      FlowResult& f = r.flows[i];
      f.id = static_cast<int>(i);
      f.src = q.src;
      f.dst = q.dst;
      f.group = s.workload.flows[i].group;
      f.bytes = s.workload.flows[i].bytes;
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
  }

  void collect_links(SimResult& r) {
    const SimTime now = s.now;
    r.links.resize(s.ports.size());
    for (size_t l = 0; l < s.ports.size(); ++l) {
      fabric.hist_account(static_cast<uint32_t>(l));
      const Port& p = s.ports[l];
      LinkResult& o = r.links[l];
      o.id = static_cast<int>(l);
      o.from = s.topo.links[l].from;
      o.to = s.topo.links[l].to;
      o.rate_bps = s.topo.links[l].rate_bps;
      o.tx_bytes = p.tx_bytes;
      o.tx_packets = p.tx_packets;
      o.utilisation = now > 0 ? static_cast<double>(p.busy_ps) / static_cast<double>(now) : 0;
      o.max_queue_bytes = p.max_queue;
      o.p50_queue_bytes = queue_quantile(&s.hist[l * kHistBuckets], s.hist_bucket_bytes, 0.5);
      o.p99_queue_bytes = queue_quantile(&s.hist[l * kHistBuckets], s.hist_bucket_bytes, 0.99);
      o.drops = p.drops;
      o.ecn_marks = p.ecn_marks;
      o.pauses = p.pauses;
      o.paused_ps = p.paused_ps + (p.paused ? now - p.paused_since : 0);
      r.drops += p.drops;
      r.ecn_marks += p.ecn_marks;
      r.pauses += p.pauses;
    }
  }

  void collect_groups(SimResult& r) const {
    r.groups.resize(s.workload.groups.size());
    for (size_t g = 0; g < r.groups.size(); ++g) r.groups[g].name = s.workload.groups[g];
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
  const Topology& topo = impl_->s.topo;
  if (link < 0 || link >= static_cast<int>(topo.links.size()))
    fail("link failure: link {} does not exist ({} links)", link, topo.links.size());
  if (up_ps != kNever && up_ps <= down_ps) fail("link failure: link {} comes back up before it fails", link);
  std::vector<int> targets{link};
  if (both) targets.push_back(topo.reverse_link(link));
  for (int l : targets) {
    impl_->s.events.schedule(down_ps, kLinkState, static_cast<uint32_t>(l), 0);
    if (up_ps != kNever) impl_->s.events.schedule(up_ps, kLinkState, static_cast<uint32_t>(l), 1);
  }
}

void Simulator::on_progress(std::function<void(SimTime, int)> callback, uint64_t interval_events) {
  impl_->progress = std::move(callback);
  impl_->progress_interval = std::max<uint64_t>(1, interval_events);
}

SimResult Simulator::run(SimTime until_ps) { return impl_->run(until_ps); }
void Simulator::on_split(std::function<std::vector<FlowSpec>(int flow, SimTime now)> split) { impl_->splitter = std::move(split); }
void Simulator::on_source_timeout(std::function<int(int flow, int src, int dst, int path, SimTime now)> reroute) {
  impl_->s.rerouter = std::move(reroute);
}
const Topology& Simulator::topology() const { return impl_->s.topo; }
SimTime Simulator::base_rtt_ps() const { return impl_->base_rtt; }

SimResult simulate(const Topology& topology, const Workload& workload, const NetworkConfig& config, SimTime until_ps) {
  Simulator sim(topology, workload, config);
  return sim.run(until_ps);
}

}  // namespace lookahead::net
