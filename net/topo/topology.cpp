// Leaf-spine and fat-tree builders, path enumeration and summaries (contract in topology.h).
#include "net/topo/topology.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include <fmt/format.h>

#include "common/error.h"
#include "common/memory_limit.h"

namespace lookahead::net {

const char* tier_name(Tier tier) {
  switch (tier) {
    case Tier::HOST: return "host";
    case Tier::LEAF: return "leaf";
    case Tier::AGG: return "agg";
    case Tier::SPINE: return "spine";
  }
  return "?";
}

int Topology::add_node(Tier tier, int index, int pod) {
  nodes.push_back(Node{tier, index, pod});
  up_ports.emplace_back();
  down_ports.emplace_back();
  return static_cast<int>(nodes.size()) - 1;
}

int Topology::add_cable(int lower, int upper, uint64_t rate_bps, uint64_t latency_ps, int parallel) {
  int up_id = static_cast<int>(links.size());
  links.push_back(Link{lower, upper, rate_bps, latency_ps, true, true, parallel});
  links.push_back(Link{upper, lower, rate_bps, latency_ps, true, false, parallel});
  reverse_.push_back(up_id + 1);
  reverse_.push_back(up_id);
  up_ports[lower].push_back(up_id);
  down_ports[upper].push_back(up_id + 1);
  return up_id;
}

void Topology::finish(int host_count) {
  host_count_ = host_count;
  host_tor_.assign(host_count, -1);
  host_down_.assign(host_count, -1);
  for (int h = 0; h < host_count; ++h) {
    int up = up_ports[h].at(0);
    host_tor_[h] = links[up].to;
    host_down_[h] = reverse_[up];
  }
}

bool Topology::is_below(int node, int dst_host) const {
  switch (nodes[node].tier) {
    case Tier::HOST: return node == dst_host;
    case Tier::LEAF: return host_tor_[dst_host] == node;
    case Tier::AGG: return nodes[node].pod == pod_of(dst_host);
    case Tier::SPINE: return true;
  }
  return false;
}

int Topology::down_link(int node, int dst_host, int parallel) const {
  const Node& n = nodes[node];
  switch (n.tier) {
    case Tier::LEAF: return host_down_[dst_host];
    case Tier::AGG: {
      int tor_in_pod = nodes[host_tor_[dst_host]].index % tors_per_pod;
      return down_ports[node][tor_in_pod * leaf_parallel + parallel % leaf_parallel];
    }
    case Tier::SPINE:
      if (three_tier()) return down_ports[node][pod_of(dst_host) * core_parallel + parallel % core_parallel];
      return down_ports[node][nodes[host_tor_[dst_host]].index * leaf_parallel + parallel % leaf_parallel];
    case Tier::HOST: break;
  }
  LOOKAHEAD_CHECK(false && "down_link from a host");
}

int Topology::path_count(int src, int dst) const {
  if (src == dst) return 0;
  int src_tor = host_tor_[src];
  if (src_tor == host_tor_[dst]) return 1;
  int tor_up = static_cast<int>(up_ports[src_tor].size());
  if (!three_tier() || pod_of(src) == pod_of(dst)) return tor_up;
  int agg_up = static_cast<int>(up_ports[first_agg].size());
  return tor_up * agg_up;
}

static void check_hosts(const Topology& t, int src, int dst) {
  if (src < 0 || src >= t.hosts()) fail("host {} does not exist (topology has {} hosts)", src, t.hosts());
  if (dst < 0 || dst >= t.hosts()) fail("host {} does not exist (topology has {} hosts)", dst, t.hosts());
  if (src == dst) fail("no path from host {} to itself", src);
}

std::vector<int> Topology::path_links(int src, int dst, int path) const {
  check_hosts(*this, src, dst);
  int count = path_count(src, dst);
  if (path < 0 || path >= count) fail("path {} out of range: hosts {} -> {} have {} paths", path, src, dst, count);
  std::vector<int> out;
  out.push_back(host_uplink(src));
  int tor = host_tor_[src];
  if (tor != host_tor_[dst]) {
    int tor_up = static_cast<int>(up_ports[tor].size());
    if (!three_tier() || pod_of(src) == pod_of(dst)) {
      int l1 = up_ports[tor][path];
      out.push_back(l1);
      out.push_back(down_link(links[l1].to, dst, links[l1].parallel));
    } else {
      int l1 = up_ports[tor][path % tor_up];
      int agg = links[l1].to;
      int l2 = up_ports[agg][path / tor_up];
      int core = links[l2].to;
      int l3 = down_link(core, dst, links[l2].parallel);
      int l4 = down_link(links[l3].to, dst, links[l1].parallel);
      out.insert(out.end(), {l1, l2, l3, l4});
    }
  }
  out.push_back(host_down_[dst]);
  return out;
}

SourceRoute Topology::source_route(int src, int dst, int path) const {
  check_hosts(*this, src, dst);
  int count = path_count(src, dst);
  if (path < 0 || path >= count) fail("path {} out of range: hosts {} -> {} have {} paths", path, src, dst, count);
  SourceRoute r;
  int tor_up = static_cast<int>(up_ports[host_tor_[src]].size());
  if (count == 1 && host_tor_[src] == host_tor_[dst]) return r;
  r.port[0] = static_cast<uint16_t>(path % tor_up);
  r.port[1] = static_cast<uint16_t>(path / tor_up);
  return r;
}

int Topology::path_index(int src, int dst, const SourceRoute& route) const {
  check_hosts(*this, src, dst);
  if (host_tor_[src] == host_tor_[dst]) {
    if (route.port[0] != 0 || route.port[1] != 0) fail("source route for hosts {} -> {} under one leaf must be (0, 0)", src, dst);
    return 0;
  }
  int tor_up = static_cast<int>(up_ports[host_tor_[src]].size());
  int count = path_count(src, dst);
  int path = route.port[0] + tor_up * route.port[1];
  if (route.port[0] >= tor_up || path >= count)
    fail("source route ({}, {}) out of range for hosts {} -> {} ({} paths)", route.port[0], route.port[1], src, dst, count);
  return path;
}

bool Topology::path_is_live(int src, int dst, int path) const {
  for (int l : path_links(src, dst, path))
    if (!links[l].up) return false;
  return true;
}

std::vector<int> Topology::live_paths(int src, int dst) const {
  std::vector<int> out;
  int count = path_count(src, dst);
  for (int p = 0; p < count; ++p)
    if (path_is_live(src, dst, p)) out.push_back(p);
  return out;
}

void Topology::set_link_up(int link, bool up) {
  if (link < 0 || link >= static_cast<int>(links.size())) fail("link {} does not exist ({} links)", link, links.size());
  links[link].up = up;
}

TopologySummary Topology::summary() const {
  TopologySummary s;
  s.kind = kind;
  s.hosts = host_count_;
  s.switches = switches();
  s.links = static_cast<int>(links.size());
  s.tiers = three_tier() ? 3 : 2;
  auto capacity = [&](const std::vector<int>& ports) {
    double c = 0;
    for (int l : ports) c += static_cast<double>(links[l].rate_bps);
    return c;
  };
  double host_cap = host_count_ > 0 ? static_cast<double>(links[host_uplink(0)].rate_bps) : 0;
  double tor_down = capacity(down_ports[first_leaf]);
  double tor_up = capacity(up_ports[first_leaf]);
  s.oversubscription = tor_down / tor_up;
  double bisection = host_count_ / 2.0 * host_cap;
  int tors = three_tier() ? pods * tors_per_pod : leaves;
  bisection = std::min(bisection, tors / 2.0 * tor_up);
  if (three_tier()) {
    double agg_down = capacity(down_ports[first_agg]);
    double agg_up = capacity(up_ports[first_agg]);
    s.oversubscription = std::max(s.oversubscription, agg_down / agg_up);
    if (pods > 1) bisection = std::min(bisection, pods / 2.0 * aggs_per_pod * agg_up);
    s.max_paths = static_cast<int>(up_ports[first_leaf].size() * up_ports[first_agg].size());
  } else {
    s.max_paths = static_cast<int>(up_ports[first_leaf].size());
  }
  s.bisection_bps = bisection;
  return s;
}

namespace {

// Link rates from 1 Mbps to 1 Pbps: positive, and small enough that bits per second and the
// picoseconds of one packet's serialisation fit their integer types.
void require_positive(const char* kind, const char* key, double value) {
  if (!(value > 0) || !std::isfinite(value)) fail("{} spec: '{}' must be positive, got {}", kind, key, value);
  if (value < 1e-3 || value > 1e6) fail("{} spec: '{}' must be in [0.001, 1000000] Gbps, got {}", kind, key, value);
}

// Propagation latencies up to one second (picoseconds must fit the simulator's clock with room).
void require_latency(const char* kind, const char* key, double value) {
  if (!(value >= 0) || !std::isfinite(value)) fail("{} spec: '{}' must not be negative, got {}", kind, key, value);
  if (value > 1e9) fail("{} spec: '{}' must be at most 1e9 ns (1 s), got {}", kind, key, value);
}

void require_count(const char* kind, const char* key, int value, int max) {
  if (value < 1) fail("{} spec: '{}' must be at least 1, got {}", kind, key, value);
  if (value > max) fail("{} spec: '{}' must be at most {}, got {}", kind, key, max, value);
}

// The graph costs about 400 bytes per host and per cable (measured: fat_tree k=64, 65536 hosts,
// 25 MB); 1 KiB each leaves room for paths and tables.
void require_topology_memory(const char* kind, double hosts, double fabric_cables) {
  require_memory((hosts + fabric_cables) * 1024.0, fmt::format("a {} topology of {:.0f} hosts", kind, hosts));
}

}  // namespace

Topology build_leaf_spine(const LeafSpineSpec& spec) {
  const char* kind = "leaf_spine";
  require_count(kind, "leaves", spec.leaves, 1 << 16);
  require_count(kind, "spines", spec.spines, 4096);
  require_count(kind, "parallel_links", spec.parallel_links, 64);
  if (spec.spines * spec.parallel_links > 65535) fail("{} spec: 'spines' x 'parallel_links' must be at most 65535", kind);
  int hosts_per_leaf = spec.hosts_per_leaf;
  if (spec.hosts != 0) {
    if (spec.hosts < 0) fail("{} spec: 'hosts' must be positive, got {}", kind, spec.hosts);
    if (spec.hosts % spec.leaves != 0)
      fail("{} spec: 'hosts' ({}) is not divisible by 'leaves' ({})", kind, spec.hosts, spec.leaves);
    hosts_per_leaf = spec.hosts / spec.leaves;
  }
  require_count(kind, "hosts_per_leaf", hosts_per_leaf, 65535);
  if (static_cast<int64_t>(hosts_per_leaf) * spec.leaves > (1 << 22)) fail("{} spec: more than 4194304 hosts", kind);
  require_topology_memory(kind, static_cast<double>(hosts_per_leaf) * spec.leaves,
                          static_cast<double>(spec.leaves) * spec.spines * spec.parallel_links);
  require_positive(kind, "host_gbps", spec.host_gbps);
  require_latency(kind, "host_latency_ns", spec.host_latency_ns);
  require_latency(kind, "fabric_latency_ns", spec.fabric_latency_ns);
  double fabric_gbps = spec.fabric_gbps;
  int uplinks = spec.spines * spec.parallel_links;
  if (spec.oversubscription != 0) {
    if (spec.fabric_gbps != 0) fail("{} spec: set either 'oversubscription' or 'fabric_gbps', not both", kind);
    if (!(spec.oversubscription >= 1) || !std::isfinite(spec.oversubscription))
      fail("{} spec: 'oversubscription' must be at least 1, got {}", kind, spec.oversubscription);
    fabric_gbps = hosts_per_leaf * spec.host_gbps / (uplinks * spec.oversubscription);
  } else if (fabric_gbps == 0) {
    fabric_gbps = spec.host_gbps;
  }
  require_positive(kind, "fabric_gbps", fabric_gbps);

  Topology t;
  t.kind = "leaf_spine";
  t.leaves = spec.leaves;
  t.spines = spec.spines;
  t.hosts_per_leaf = hosts_per_leaf;
  t.leaf_parallel = spec.parallel_links;
  int hosts = hosts_per_leaf * spec.leaves;
  for (int h = 0; h < hosts; ++h) t.add_node(Tier::HOST, h, h / hosts_per_leaf);
  t.first_leaf = hosts;
  for (int l = 0; l < spec.leaves; ++l) t.add_node(Tier::LEAF, l, l);
  t.first_spine = t.first_leaf + spec.leaves;
  t.first_agg = t.first_spine;  // no aggregation tier
  for (int s = 0; s < spec.spines; ++s) t.add_node(Tier::SPINE, s, -1);
  uint64_t host_bps = gbps_to_bps(spec.host_gbps), fabric_bps = gbps_to_bps(fabric_gbps);
  uint64_t host_ps = ns_to_ps(spec.host_latency_ns), fabric_ps = ns_to_ps(spec.fabric_latency_ns);
  for (int h = 0; h < hosts; ++h) t.add_cable(h, t.first_leaf + h / hosts_per_leaf, host_bps, host_ps, 0);
  for (int l = 0; l < spec.leaves; ++l)
    for (int p = 0; p < uplinks; ++p)
      t.add_cable(t.first_leaf + l, t.first_spine + p % spec.spines, fabric_bps, fabric_ps, p / spec.spines);
  t.finish(hosts);
  return t;
}

Topology build_fat_tree(const FatTreeSpec& in) {
  const char* kind = "fat_tree";
  FatTreeSpec spec = in;
  if (spec.k != 0) {
    if (spec.k < 2 || spec.k % 2 != 0 || spec.k > 256) fail("{} spec: 'k' must be an even number in [2, 256], got {}", kind, spec.k);
    const char* explicit_key = spec.pods ? "pods" : spec.tors_per_pod ? "tors_per_pod" : spec.aggs_per_pod ? "aggs_per_pod"
                               : spec.cores ? "cores" : spec.hosts_per_tor ? "hosts_per_tor" : nullptr;
    if (explicit_key) fail("{} spec: 'k' conflicts with '{}' (give k or explicit counts)", kind, explicit_key);
    int half = spec.k / 2;
    spec.pods = spec.k;
    spec.tors_per_pod = half;
    spec.aggs_per_pod = half;
    spec.cores = half * half;
    if (spec.hosts == 0) spec.hosts_per_tor = half;
  }
  require_count(kind, "pods", spec.pods, 4096);
  require_count(kind, "tors_per_pod", spec.tors_per_pod, 4096);
  require_count(kind, "aggs_per_pod", spec.aggs_per_pod, 4096);
  require_count(kind, "cores", spec.cores, 1 << 16);
  require_count(kind, "tor_parallel_links", spec.tor_parallel_links, 64);
  require_count(kind, "core_parallel_links", spec.core_parallel_links, 64);
  if (spec.cores % spec.aggs_per_pod != 0)
    fail("{} spec: 'cores' ({}) must be a multiple of 'aggs_per_pod' ({})", kind, spec.cores, spec.aggs_per_pod);
  int cores_per_agg = spec.cores / spec.aggs_per_pod;
  int tor_up = spec.aggs_per_pod * spec.tor_parallel_links;
  int agg_up = cores_per_agg * spec.core_parallel_links;
  if (tor_up > 65535) fail("{} spec: 'aggs_per_pod' x 'tor_parallel_links' must be at most 65535", kind);
  if (agg_up > 65535) fail("{} spec: cores per agg x 'core_parallel_links' must be at most 65535", kind);
  if (static_cast<int64_t>(tor_up) * agg_up > (1 << 30)) fail("{} spec: too many paths per host pair", kind);
  int tors = spec.pods * spec.tors_per_pod;
  int hosts_per_tor = spec.hosts_per_tor;
  if (spec.hosts != 0) {
    if (spec.hosts < 0) fail("{} spec: 'hosts' must be positive, got {}", kind, spec.hosts);
    if (spec.hosts % tors != 0) fail("{} spec: 'hosts' ({}) is not divisible by the number of ToRs ({})", kind, spec.hosts, tors);
    hosts_per_tor = spec.hosts / tors;
  }
  require_count(kind, "hosts_per_tor", hosts_per_tor, 65535);
  if (static_cast<int64_t>(hosts_per_tor) * tors > (1 << 22)) fail("{} spec: more than 4194304 hosts", kind);
  require_topology_memory(kind, static_cast<double>(hosts_per_tor) * tors,
                          static_cast<double>(tors) * spec.aggs_per_pod * spec.tor_parallel_links +
                              static_cast<double>(spec.pods) * spec.cores * spec.core_parallel_links);
  require_positive(kind, "host_gbps", spec.host_gbps);
  require_latency(kind, "host_latency_ns", spec.host_latency_ns);
  require_latency(kind, "fabric_latency_ns", spec.fabric_latency_ns);
  double tor_agg = spec.tor_agg_gbps;
  if (spec.oversubscription != 0) {
    if (spec.tor_agg_gbps != 0) fail("{} spec: set either 'oversubscription' or 'tor_agg_gbps', not both", kind);
    if (!(spec.oversubscription >= 1) || !std::isfinite(spec.oversubscription))
      fail("{} spec: 'oversubscription' must be at least 1, got {}", kind, spec.oversubscription);
    tor_agg = hosts_per_tor * spec.host_gbps / (tor_up * spec.oversubscription);
  } else if (tor_agg == 0) {
    tor_agg = spec.host_gbps;
  }
  require_positive(kind, "tor_agg_gbps", tor_agg);
  double agg_core = spec.agg_core_gbps == 0 ? tor_agg : spec.agg_core_gbps;
  require_positive(kind, "agg_core_gbps", agg_core);

  Topology t;
  t.kind = "fat_tree";
  t.pods = spec.pods;
  t.tors_per_pod = spec.tors_per_pod;
  t.aggs_per_pod = spec.aggs_per_pod;
  t.cores = spec.cores;
  t.leaves = tors;
  t.spines = spec.cores;
  t.hosts_per_leaf = hosts_per_tor;
  t.leaf_parallel = spec.tor_parallel_links;
  t.core_parallel = spec.core_parallel_links;
  int hosts = hosts_per_tor * tors;
  for (int h = 0; h < hosts; ++h) t.add_node(Tier::HOST, h, (h / hosts_per_tor) / spec.tors_per_pod);
  t.first_leaf = hosts;
  for (int i = 0; i < tors; ++i) t.add_node(Tier::LEAF, i, i / spec.tors_per_pod);
  t.first_agg = t.first_leaf + tors;
  for (int i = 0; i < spec.pods * spec.aggs_per_pod; ++i) t.add_node(Tier::AGG, i, i / spec.aggs_per_pod);
  t.first_spine = t.first_agg + spec.pods * spec.aggs_per_pod;
  for (int c = 0; c < spec.cores; ++c) t.add_node(Tier::SPINE, c, -1);
  uint64_t host_bps = gbps_to_bps(spec.host_gbps), tor_bps = gbps_to_bps(tor_agg), core_bps = gbps_to_bps(agg_core);
  uint64_t host_ps = ns_to_ps(spec.host_latency_ns), fabric_ps = ns_to_ps(spec.fabric_latency_ns);
  for (int h = 0; h < hosts; ++h) t.add_cable(h, t.first_leaf + h / hosts_per_tor, host_bps, host_ps, 0);
  for (int i = 0; i < tors; ++i) {
    int pod = i / spec.tors_per_pod;
    for (int p = 0; p < tor_up; ++p)
      t.add_cable(t.first_leaf + i, t.first_agg + pod * spec.aggs_per_pod + p % spec.aggs_per_pod, tor_bps, fabric_ps,
                  p / spec.aggs_per_pod);
  }
  for (int pod = 0; pod < spec.pods; ++pod)
    for (int j = 0; j < spec.aggs_per_pod; ++j)
      for (int q = 0; q < agg_up; ++q)
        t.add_cable(t.first_agg + pod * spec.aggs_per_pod + j, t.first_spine + j * cores_per_agg + q % cores_per_agg, core_bps,
                    fabric_ps, q / cores_per_agg);
  t.finish(hosts);
  return t;
}

std::string node_name(const Topology& t, int node) {
  const Node& n = t.nodes[node];
  switch (n.tier) {
    case Tier::HOST: return fmt::format("host{}", n.index);
    case Tier::LEAF: return fmt::format("{}{}", t.three_tier() ? "tor" : "leaf", n.index);
    case Tier::AGG: return fmt::format("agg{}", n.index);
    case Tier::SPINE: return fmt::format("{}{}", t.three_tier() ? "core" : "spine", n.index);
  }
  return "?";
}

int node_by_name(const Topology& t, const std::string& name, const std::string& key) {
  size_t digits = name.find_first_of("0123456789");
  if (digits == std::string::npos || digits == 0) fail("{}: bad node name '{}' (expected e.g. host3, leaf0, agg2, spine1)", key, name);
  std::string prefix = name.substr(0, digits);
  int index = 0;
  try {
    size_t used = 0;
    index = std::stoi(name.substr(digits), &used);
    if (used != name.size() - digits) throw std::invalid_argument("trailing");
  } catch (const std::exception&) {
    fail("{}: bad node name '{}'", key, name);
  }
  int first = 0, count = 0;
  if (prefix == "host") first = 0, count = t.hosts();
  else if (prefix == "leaf" || prefix == "tor") first = t.first_leaf, count = t.leaves;
  else if (prefix == "agg") first = t.first_agg, count = t.three_tier() ? t.pods * t.aggs_per_pod : 0;
  else if (prefix == "spine" || prefix == "core") first = t.first_spine, count = t.spines;
  else fail("{}: bad node name '{}' (prefix host, leaf, tor, agg, spine or core)", key, name);
  if (index < 0 || index >= count) fail("{}: node '{}' does not exist ({} {} nodes)", key, name, count, prefix);
  return first + index;
}

}  // namespace lookahead::net
