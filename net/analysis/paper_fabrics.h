#pragma once
// The fabrics and network of the paper's packet-level grid (`lookahead net repro`, `bridge run`): the
// fabrics as topology specs, so the CLI's topology flags can be checked to build the same fabric
// (tests/integration/net_cli_flags_test).
//
// - Leaf-spine: 16 leaves x 16 spines x 16 hosts, 400 Gbps, 500 ns, 1:1 (quick: 8 x 8 x 8).
// - Fat-tree: 512 GPUs, 32 ToRs, 32 aggregation switches, 16 cores, 1:1 at 400 Gbps: 2 pods of 16
//   ToRs (16 hosts each) and 16 aggs; agg j of both pods links to core j over 16 parallel cables
//   (quick: 2 pods x 4 ToRs x 4 hosts, 4 aggs, 4 cores, 4 cables). The same from flags:
//   net topo --topology fat_tree --pods 2 --tors-per-pod 16 --aggs-per-pod 16 --cores 16
//            --hosts-per-tor 16 --core-parallel-links 16 --gbps 400 --oversubscription 1
#include "net/sim/config.h"
#include "net/topo/topology.h"

namespace lookahead::net::analysis {

inline LeafSpineSpec paper_leaf_spine_spec(bool quick) {
  LeafSpineSpec spec;  // defaults: 16 x 16 x 16, 400 Gbps, 500 ns
  if (quick) spec.leaves = spec.spines = spec.hosts_per_leaf = 8;
  return spec;
}

inline FatTreeSpec paper_fat_tree_spec(bool quick) {
  FatTreeSpec spec;
  spec.host_gbps = 400;
  spec.pods = 2;
  const int n = quick ? 4 : 16;
  spec.tors_per_pod = spec.aggs_per_pod = spec.cores = spec.hosts_per_tor = n;
  spec.core_parallel_links = n;
  return spec;
}

// The paper's network (v2's setup): 9000-byte payloads, DCTCP-style ECN at 200 KiB, 64 MiB shared
// switch buffers, no PFC.
inline NetworkConfig paper_network_config() {
  NetworkConfig cfg;
  cfg.mtu_bytes = 9000;
  cfg.shared_buffer_bytes = 64ull << 20;
  cfg.ecn_kmin_bytes = cfg.ecn_kmax_bytes = 200 * 1024;
  cfg.cc = CongestionControl::DCTCP;
  return cfg;
}

}  // namespace lookahead::net::analysis
