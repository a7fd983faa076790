#pragma once
// Datacenter fabrics as plain graphs: leaf-spine (2-tier) and fat-tree (3-tier), independent of
// the simulator, so the planner and the fluid checker can use them too.
//
// Contract:
// - Node ids: hosts first (node id == host id, 0..hosts-1), then leaf/ToR switches, then
//   aggregation switches (fat-tree only), then spine/core switches.
// - Every physical cable is two directed links (one per direction) with a rate in bits/s, a
//   propagation latency in ps and an up/down state. Link ids are dense, 0..links-1.
// - Each node has ordered up-ports and down-ports (outgoing link ids). Hosts have one up-port.
//   Up-port order spreads consecutive indices over different next-tier switches: a leaf's up-port p
//   goes to spine p % spines over parallel cable p / spines (fat-tree ToR: agg p % aggs_per_pod;
//   agg: core j*cores_per_agg + p % cores_per_agg, cable p / cores_per_agg).
// - Going down is determined by the destination; with parallel cables the downward cable has the
//   same parallel index as the cable used on the way up (symmetric), see down_link().
// - Paths between two hosts are the up-port choices: leaf-spine path i = leaf up-port i;
//   fat-tree across pods i = tor_port + tor_up_ports * agg_port, within a pod i = tor_port,
//   under one ToR exactly one path (index 0). A SourceRoute is the up-port index per switch tier.
// - Builders validate specs and throw lookahead::Error naming the offending key.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace lookahead::net {

enum class Tier : uint8_t { HOST = 0, LEAF = 1, AGG = 2, SPINE = 3 };  // leaf == ToR, spine == core
const char* tier_name(Tier tier);

struct Node {
  Tier tier = Tier::HOST;
  int index = 0;  // position within its tier
  int pod = -1;   // fat-tree pod of hosts, ToRs and aggs; leaf-spine: leaf of a host, leaf's own index; -1 otherwise
};

struct Link {
  int from = 0;
  int to = 0;
  uint64_t rate_bps = 0;
  uint64_t latency_ps = 0;
  bool up = true;     // false: failed (packets sent on it are lost)
  bool upward = true; // true: goes away from the hosts (host->leaf, leaf->spine, ToR->agg, agg->core)
  int parallel = 0;   // index among parallel cables between the same two switches
};

// Up-port index per switch tier along a path: port[0] at the source leaf/ToR, port[1] at the
// source aggregation switch (fat-tree across pods only; otherwise 0).
struct SourceRoute {
  std::array<uint16_t, 2> port{0, 0};
  bool operator==(const SourceRoute&) const = default;
};

struct LeafSpineSpec {
  int leaves = 16;
  int spines = 16;
  int hosts_per_leaf = 16;
  int hosts = 0;            // optional: total hosts instead of hosts_per_leaf (must divide by leaves)
  int parallel_links = 1;   // cables between each leaf and each spine
  double host_gbps = 400;
  double fabric_gbps = 0;       // leaf<->spine rate; 0: host_gbps, or derived from oversubscription
  double oversubscription = 0;  // 0: derived from rates; else sets fabric_gbps (must be >= 1)
  double host_latency_ns = 500;
  double fabric_latency_ns = 500;
};

struct FatTreeSpec {
  int k = 0;  // k-ary shortcut: k pods, k/2 ToRs and aggs per pod, (k/2)^2 cores, k/2 hosts per ToR
  int pods = 0;
  int tors_per_pod = 0;
  int aggs_per_pod = 0;
  int cores = 0;  // must be a multiple of aggs_per_pod: agg j of every pod links to core group j
  int hosts_per_tor = 0;
  int hosts = 0;  // optional: total hosts instead of hosts_per_tor (must divide by ToRs)
  int tor_parallel_links = 1;   // cables between each ToR and each agg of its pod
  int core_parallel_links = 1;  // cables between each agg and each core of its group
  double host_gbps = 100;
  double tor_agg_gbps = 0;      // 0: host_gbps, or derived from oversubscription
  double agg_core_gbps = 0;     // 0: tor_agg_gbps
  double oversubscription = 0;  // at the ToR; 0: derived from rates; else sets tor_agg_gbps (>= 1)
  double host_latency_ns = 500;
  double fabric_latency_ns = 500;
};

struct TopologySummary {
  std::string kind;
  int hosts = 0;
  int switches = 0;
  int links = 0;  // directed links (2 per cable)
  int tiers = 0;  // switch tiers
  double bisection_bps = 0;     // half the hosts to the other half, limited by the narrowest tier
  double oversubscription = 0;  // worst down/up capacity ratio over leaf/ToR and agg switches
  int max_paths = 0;            // paths between two hosts in different pods / leaves
};

class Topology {
 public:
  std::string kind;  // "leaf_spine" or "fat_tree"
  std::vector<Node> nodes;
  std::vector<Link> links;
  std::vector<std::vector<int>> up_ports;    // per node, ordered outgoing upward link ids
  std::vector<std::vector<int>> down_ports;  // per node, outgoing downward link ids

  int hosts() const { return host_count_; }
  int switches() const { return static_cast<int>(nodes.size()) - host_count_; }
  int tor_of(int host) const { return host_tor_[host]; }  // node id of the host's leaf/ToR
  int pod_of(int host) const { return nodes[host_tor_[host]].pod; }  // fat-tree pod; leaf-spine: leaf index
  int host_uplink(int host) const { return up_ports[host][0]; }
  int host_downlink(int host) const { return host_down_[host]; }
  bool three_tier() const { return kind == "fat_tree"; }
  // The downward link from switch `node` towards `dst_host` using parallel cable `parallel`
  // (taken modulo the number of parallel cables). Requires dst_host to be below node.
  int down_link(int node, int dst_host, int parallel) const;
  bool is_below(int node, int dst_host) const;  // dst_host reachable from node by going down only

  // Paths: every choice of up-ports between two distinct hosts (see the contract above).
  int path_count(int src, int dst) const;
  std::vector<int> path_links(int src, int dst, int path) const;  // directed link ids, src NIC first
  SourceRoute source_route(int src, int dst, int path) const;
  int path_index(int src, int dst, const SourceRoute& route) const;
  bool path_is_live(int src, int dst, int path) const;  // every link of the path is up
  std::vector<int> live_paths(int src, int dst) const;  // path indices with no failed link

  void set_link_up(int link, bool up);  // also use reverse_link() to fail both directions
  int reverse_link(int link) const { return reverse_[link]; }

  TopologySummary summary() const;

  // Builder internals (public for the builders in topology.cpp).
  int add_node(Tier tier, int index, int pod);
  int add_cable(int lower, int upper, uint64_t rate_bps, uint64_t latency_ps, int parallel);  // returns upward id
  void finish(int host_count);

  // Shape, filled by the builders.
  int leaves = 0, spines = 0, aggs_per_pod = 0, pods = 0, tors_per_pod = 0, cores = 0;
  int hosts_per_leaf = 0, leaf_parallel = 1, core_parallel = 1;
  int first_leaf = 0, first_agg = 0, first_spine = 0;

 private:
  int host_count_ = 0;
  std::vector<int> host_tor_;
  std::vector<int> host_down_;
  std::vector<int> reverse_;
};

// Builders. Throw lookahead::Error naming the spec key on impossible specs.
Topology build_leaf_spine(const LeafSpineSpec& spec);
Topology build_fat_tree(const FatTreeSpec& spec);

// Unit helpers for specs.
inline uint64_t gbps_to_bps(double gbps) { return static_cast<uint64_t>(gbps * 1e9 + 0.5); }
inline uint64_t ns_to_ps(double ns) { return static_cast<uint64_t>(ns * 1e3 + 0.5); }

// Node names used by specs, CSVs and reports: host<N>, leaf<N> (tor<N>), agg<N>, spine<N> (core<N>).
int node_by_name(const Topology& topology, const std::string& name, const std::string& key);
std::string node_name(const Topology& topology, int node);

}  // namespace lookahead::net
