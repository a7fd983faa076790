#include "net/balance/plan.h"

#include <algorithm>
#include <charconv>
#include <map>
#include <numeric>
#include <random>

#include "common/error.h"
#include "net/balance/split_plan.h"
#include "net/route/path_selection.h"

namespace lookahead::net::balance {

PlanTiming plan_timing_ns(double batch_window_ns, double jitter_ns) {
  if (!(batch_window_ns >= 0) || batch_window_ns > 1e9) fail("--batch-window-ns: must be in [0, 1e9] ns, got {}", batch_window_ns);
  if (!(jitter_ns >= 0) || jitter_ns > 1e9) fail("--jitter-ns: must be in [0, 1e9] ns, got {}", jitter_ns);
  return {ns_to_ps(batch_window_ns), ns_to_ps(jitter_ns)};
}

namespace {

uint64_t mix(uint64_t a, uint64_t b) { return net::splitmix64(a ^ net::splitmix64(b)); }

void check_flow(const Topology& topo, const FlowDemand& f, size_t i) {
  if (f.src_host < 0 || f.src_host >= topo.hosts() || f.dst_host < 0 || f.dst_host >= topo.hosts())
    fail("flow {}: host out of range ({} -> {}, the topology has {} hosts)", i, f.src_host, f.dst_host, topo.hosts());
  if (f.src_host == f.dst_host) fail("flow {}: source and destination are the same host {}", i, f.src_host);
  if (f.bytes == 0) fail("flow {}: 0 bytes", i);
}

std::vector<int> live_up_ports(const Topology& topo, int node) {
  std::vector<int> live;
  const auto& ports = topo.up_ports[node];
  for (int i = 0; i < static_cast<int>(ports.size()); ++i)
    if (topo.links[ports[i]].up) live.push_back(i);
  return live;
}

}  // namespace

std::string Scheme::name() const {
  switch (kind) {
    case SchemeKind::ECMP: return "ecmp";
    case SchemeKind::MPRDMA: return "mprdma-" + std::to_string(subflows);
    case SchemeKind::SPRAY: return "spray";
    case SchemeKind::ETHEREAL: return "ethereal";
    case SchemeKind::ETHEREAL_MIN: return "ethereal-min";
    case SchemeKind::ETHEREAL_TIERED: return "ethereal-tiered";
  }
  return "?";
}

Scheme parse_scheme(std::string_view name, std::string_view parameter) {
  if (name == "ecmp") return {SchemeKind::ECMP, 1};
  if (name == "spray") return {SchemeKind::SPRAY, 1};
  if (name == "ethereal") return {SchemeKind::ETHEREAL, 1};
  if (name == "ethereal-min") return {SchemeKind::ETHEREAL_MIN, 1};
  if (name == "ethereal-tiered") return {SchemeKind::ETHEREAL_TIERED, 1};
  if (name.starts_with("mprdma-")) {
    std::string_view x = name.substr(7);
    int subflows = 0;
    auto [ptr, ec] = std::from_chars(x.data(), x.data() + x.size(), subflows);
    if (ec == std::errc() && ptr == x.data() + x.size() && subflows >= 1 && subflows <= 1024)
      return {SchemeKind::MPRDMA, subflows};
  }
  fail("{}: unknown scheme '{}' (expected ecmp, mprdma-X with X in 1..1024, spray, ethereal, ethereal-min or ethereal-tiered)",
       parameter, name);
}

std::vector<Scheme> all_schemes() {
  return {{SchemeKind::ECMP, 1},  {SchemeKind::MPRDMA, 2},   {SchemeKind::MPRDMA, 4},
          {SchemeKind::MPRDMA, 8}, {SchemeKind::SPRAY, 1},   {SchemeKind::ETHEREAL, 1},
          {SchemeKind::ETHEREAL_MIN, 1}};
}

std::vector<int> Plan::qps_per_host(int hosts) const {
  std::vector<int> count(hosts, 0);
  for (const auto& qp : qps) ++count[qp.src_host];
  return count;
}

int ecmp_port(uint32_t entropy, int switch_node, int src, int dst, int ports, uint64_t seed) {
  return static_cast<int>(ecmp_choice(ecmp_switch_seed(seed, switch_node), entropy, src, dst, static_cast<uint32_t>(ports)));
}

int ecmp_path(const Topology& topo, int src, int dst, uint32_t entropy, uint64_t seed) {
  int count = topo.path_count(src, dst);
  if (count == 1) return 0;
  int tor = topo.tor_of(src);
  auto live_tor = live_up_ports(topo, tor);
  if (live_tor.empty()) fail("ecmp: switch {} has no live up-port", tor);
  SourceRoute route;
  route.port[0] = static_cast<uint16_t>(live_tor[ecmp_port(entropy, tor, src, dst, static_cast<int>(live_tor.size()), seed)]);
  if (topo.three_tier() && topo.pod_of(src) != topo.pod_of(dst)) {
    int agg = topo.links[topo.up_ports[tor][route.port[0]]].to;
    auto live_agg = live_up_ports(topo, agg);
    if (live_agg.empty()) fail("ecmp: switch {} has no live up-port", agg);
    route.port[1] = static_cast<uint16_t>(live_agg[ecmp_port(entropy, agg, src, dst, static_cast<int>(live_agg.size()), seed)]);
  }
  return topo.path_index(src, dst, route);
}

namespace {

Plan hashed_plan(const Topology& topo, const std::vector<FlowDemand>& flows, const Scheme& scheme, uint64_t seed) {
  Plan plan{scheme, {}};
  const int x = scheme.kind == SchemeKind::MPRDMA ? scheme.subflows : 1;
  plan.qps.reserve(flows.size() * static_cast<size_t>(x));
  for (size_t i = 0; i < flows.size(); ++i) {
    const auto& f = flows[i];
    if (f.bytes < static_cast<uint64_t>(x))
      fail("flow {}: {} bytes cannot be cut into {} subflows (message smaller than the number of pieces)", i, f.bytes,
           x);
    uint64_t offset = 0;
    for (int j = 0; j < x; ++j) {
      Qp qp;
      qp.flow = static_cast<int>(i);
      qp.src_host = f.src_host;
      qp.dst_host = f.dst_host;
      qp.offset = offset;
      qp.bytes = f.bytes / static_cast<uint64_t>(x) + (static_cast<uint64_t>(j) < f.bytes % static_cast<uint64_t>(x));
      qp.routing = Routing::HASHED;
      // A fresh random source port per QP, as a NIC would pick: derived from the seed and the QP.
      qp.entropy = static_cast<uint32_t>(mix(mix(seed, (static_cast<uint64_t>(f.src_host) << 32) | static_cast<uint32_t>(f.dst_host)),
                       (static_cast<uint64_t>(i) << 16) | static_cast<uint64_t>(j)));
      qp.path = ecmp_path(topo, f.src_host, f.dst_host, qp.entropy, seed);
      offset += qp.bytes;
      plan.qps.push_back(qp);
    }
  }
  return plan;
}

// Splits one batch (flows of one source towards one destination) over `paths` in the scheme's way.
std::vector<Piece> split_batch(const std::vector<uint64_t>& sizes, const std::vector<int>& paths, SchemeKind kind) {
  bool equal = std::all_of(sizes.begin(), sizes.end(), [&](uint64_t b) { return b == sizes[0]; });
  // The tiered second stage may see pieces one byte apart: the equal scheme would not balance them.
  if (kind == SchemeKind::ETHEREAL_MIN || (kind == SchemeKind::ETHEREAL_TIERED && !equal))
    return split_batch_min_pieces(sizes, paths);
  return split_batch_equal(sizes, paths);
}

Plan ethereal_plan(const Topology& topo, const std::vector<FlowDemand>& flows, const Scheme& scheme, uint64_t seed,
                   const KnownFailed& known_failed) {
  Plan plan{scheme, {}};
  // Batches: per source host, per destination leaf/ToR (node id), flows in input order.
  std::map<int, std::map<int, std::vector<int>>> batches;
  for (size_t i = 0; i < flows.size(); ++i)
    batches[flows[i].src_host][topo.tor_of(flows[i].dst_host)].push_back(static_cast<int>(i));
  for (auto& [src, by_leaf] : batches) {
    std::mt19937_64 rng(mix(seed, static_cast<uint64_t>(src)));
    // Tiered fat-tree plan, stage 2 input: pieces already on ToR up-port u, per (destination pod, u).
    struct StagePiece {
      int flow;
      uint64_t offset, bytes;
    };
    std::map<std::pair<int, int>, std::vector<StagePiece>> on_uplink;
    // Destination order shuffled per host (which leaf's batch goes first does not change loads, but
    // keeps the RNG stream per batch independent of how many leaves there are).
    std::vector<int> leaves;
    for (const auto& entry : by_leaf) leaves.push_back(entry.first);
    std::shuffle(leaves.begin(), leaves.end(), rng);
    for (int leaf : leaves) {
      std::vector<int>& batch = by_leaf[leaf];
      if (leaf == topo.tor_of(src)) {  // same leaf: one path, nothing to balance
        for (int i : batch)
          plan.qps.push_back({i, src, flows[i].dst_host, 0, flows[i].bytes, Routing::PINNED, 0, 0});
        continue;
      }
      std::shuffle(batch.begin(), batch.end(), rng);  // which flows go whole and which are split
      const int dst = flows[batch[0]].dst_host;
      std::vector<int> paths = topo.live_paths(src, dst);
      if (paths.empty()) fail("{}: no live path from host {} to leaf node {}", scheme.name(), src, leaf);
      if (known_failed) {
        std::vector<int> good;
        for (int p : paths)
          if (!known_failed(src, dst, p)) good.push_back(p);
        if (!good.empty()) paths = std::move(good);
      }
      std::vector<uint64_t> sizes;
      for (int i : batch) sizes.push_back(flows[i].bytes);
      const bool tiered = scheme.kind == SchemeKind::ETHEREAL_TIERED && topo.three_tier() &&
                          topo.pod_of(src) != topo.pod_of(dst) &&
                          static_cast<int>(paths.size()) == topo.path_count(src, dst);
      if (tiered) {
        // Stage 1: balance this batch over the ToR up-ports only (the agg -> destination ToR downlinks
        // need exactly that); the core choice is balanced per destination pod in stage 2.
        std::vector<int> ports(topo.up_ports[topo.tor_of(src)].size());
        std::iota(ports.begin(), ports.end(), 0);
        std::shuffle(ports.begin(), ports.end(), rng);
        for (const auto& piece : split_batch(sizes, ports, scheme.kind))
          on_uplink[{topo.pod_of(dst), piece.path}].push_back({batch[piece.flow], piece.offset, piece.bytes});
        continue;
      }
      std::shuffle(paths.begin(), paths.end(), rng);
      for (const auto& piece : split_batch(sizes, paths, scheme.kind)) {
        int i = batch[piece.flow];
        plan.qps.push_back({i, src, flows[i].dst_host, piece.offset, piece.bytes, Routing::PINNED, piece.path, 0});
      }
    }
    // Stage 2: per (destination pod, ToR up-port u), the pieces on u split over the aggregation
    // up-ports (cores): every agg -> core and core -> destination-agg link then gets spraying's share.
    const int tor_up = static_cast<int>(topo.up_ports[topo.tor_of(src)].size());
    for (auto& [key, pieces] : on_uplink) {
      const int u = key.second;
      const int agg = topo.links[topo.up_ports[topo.tor_of(src)][u]].to;
      std::vector<int> cores(topo.up_ports[agg].size());
      std::iota(cores.begin(), cores.end(), 0);
      std::shuffle(cores.begin(), cores.end(), rng);
      std::vector<uint64_t> sizes;
      for (const auto& p : pieces) sizes.push_back(p.bytes);
      for (const auto& sub : split_batch(sizes, cores, scheme.kind)) {
        const auto& p = pieces[sub.flow];
        plan.qps.push_back({p.flow, src, flows[p.flow].dst_host, p.offset + sub.offset, sub.bytes, Routing::PINNED,
                            u + tor_up * sub.path, 0});
      }
    }
  }
  return plan;
}

}  // namespace

Plan make_plan(const Topology& topo, const std::vector<FlowDemand>& flows, const Scheme& scheme, uint64_t seed,
               const KnownFailed& known_failed, const PlanTiming& timing) {
  for (size_t i = 0; i < flows.size(); ++i) check_flow(topo, flows[i], i);
  switch (scheme.kind) {
    case SchemeKind::ECMP:
    case SchemeKind::MPRDMA: return hashed_plan(topo, flows, scheme, seed);
    case SchemeKind::SPRAY: {
      Plan plan{scheme, {}};
      for (size_t i = 0; i < flows.size(); ++i)
        plan.qps.push_back({static_cast<int>(i), flows[i].src_host, flows[i].dst_host, 0, flows[i].bytes,
                            Routing::SPRAYED, -1, 0});
      return plan;
    }
    case SchemeKind::ETHEREAL:
    case SchemeKind::ETHEREAL_MIN:
    case SchemeKind::ETHEREAL_TIERED: {
      Plan plan = ethereal_plan(topo, flows, scheme, seed, known_failed);
      if (timing.batch_window_ps == 0 && timing.jitter_ps == 0) return plan;
      // Cross-leaf pieces start after the window plus a seeded jitter per piece, from an RNG of its
      // own per source host (the plan's shuffles stay as without timing).
      std::map<int, std::mt19937_64> jitter;
      for (auto& qp : plan.qps) {
        if (topo.tor_of(qp.src_host) == topo.tor_of(qp.dst_host)) continue;
        auto it = jitter.try_emplace(qp.src_host, mix(mix(seed, 0x6a09e667f3bcc909ull), static_cast<uint64_t>(qp.src_host))).first;
        qp.start_ps = timing.batch_window_ps + (timing.jitter_ps > 0 ? it->second() % (timing.jitter_ps + 1) : 0);
      }
      return plan;
    }
  }
  return {};
}

}  // namespace lookahead::net::balance
