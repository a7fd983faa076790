#pragma once
// Topology flags shared by `lookahead net run` and `lookahead net topo` (and any other net
// command that builds a fabric from flags): --topology leaf_spine|fat_tree plus the spec keys.
#include <CLI/CLI.hpp>

#include <string>

#include "common/error.h"
#include "net/topo/topology.h"

namespace lookahead::cli {

struct TopologyFlags {
  std::string kind = "leaf_spine";
  net::LeafSpineSpec leaf_spine;
  net::FatTreeSpec fat_tree;
  double gbps = 0, fabric_gbps = 0, latency_ns = -1, oversubscription = 0;
  std::vector<CLI::Option*> options;  // every topology flag, to detect use together with --spec

  void add(CLI::App& cmd) {
    options.push_back(cmd.add_option("--topology", kind, "leaf_spine or fat_tree (default leaf_spine)"));
    options.push_back(cmd.add_option("--leaves", leaf_spine.leaves, "leaf switches (leaf_spine, default 16)"));
    options.push_back(cmd.add_option("--spines", leaf_spine.spines, "spine switches (leaf_spine, default 16)"));
    options.push_back(cmd.add_option("--hosts-per-leaf", leaf_spine.hosts_per_leaf, "hosts per leaf (default 16)"));
    options.push_back(cmd.add_option("--parallel-links", leaf_spine.parallel_links, "cables per leaf-spine pair (default 1)"));
    options.push_back(cmd.add_option("--k", fat_tree.k, "k-ary fat-tree, even, 2..256 (fat_tree; default 4 unless --pods)"));
    options.push_back(cmd.add_option("--pods", fat_tree.pods, "pods (fat_tree; default: from --k)"));
    options.push_back(cmd.add_option("--tors-per-pod", fat_tree.tors_per_pod, "ToRs per pod (fat_tree; default: from --k)"));
    options.push_back(cmd.add_option("--aggs-per-pod", fat_tree.aggs_per_pod, "aggregation switches per pod (fat_tree; default: from --k)"));
    options.push_back(cmd.add_option("--cores", fat_tree.cores, "core switches (fat_tree; default: from --k)"));
    options.push_back(cmd.add_option("--hosts-per-tor", fat_tree.hosts_per_tor, "hosts per ToR (fat_tree; default: from --k)"));
    options.push_back(cmd.add_option("--hosts", leaf_spine.hosts, "total hosts instead of per leaf/ToR (default: from the per-switch count)"));
    options.push_back(cmd.add_option("--gbps", gbps, "host link rate in Gbit/s, > 0 (default: leaf_spine 400, fat_tree 100)"));
    options.push_back(cmd.add_option("--fabric-gbps", fabric_gbps, "switch-to-switch link rate (default: host rate)"));
    options.push_back(cmd.add_option("--latency-ns", latency_ns, "propagation latency of every link in ns (default 500)"));
    options.push_back(cmd.add_option("--oversubscription", oversubscription, "leaf/ToR down:up capacity ratio, >= 1 (default: from the link rates)"));
  }
  bool any_given() const {
    for (auto* o : options)
      if (o->count() > 0) return true;
    return false;
  }
  // A flag that was given is always used, so the topology builders validate it (never replaced by
  // the default); 0 means "derived" in the specs' fabric rate and oversubscription, so those two
  // are checked here when given.
  net::Topology build() {
    auto given = [&](const char* name) {
      for (auto* o : options)
        if (o->check_name(name)) return o->count() > 0;
      return false;
    };
    if (given("--fabric-gbps") && !(fabric_gbps > 0))
      fail("--fabric-gbps must be a positive rate in Gbit/s, got {}", fabric_gbps);
    if (given("--oversubscription") && !(oversubscription >= 1))
      fail("--oversubscription must be at least 1, got {}", oversubscription);
    if (kind == "leaf_spine") {
      net::LeafSpineSpec s = leaf_spine;
      if (given("--gbps")) s.host_gbps = gbps;
      s.fabric_gbps = fabric_gbps;
      s.oversubscription = oversubscription;
      if (given("--latency-ns")) s.host_latency_ns = s.fabric_latency_ns = latency_ns;
      return net::build_leaf_spine(s);
    }
    if (kind == "fat_tree") {
      net::FatTreeSpec s = fat_tree;
      s.hosts = leaf_spine.hosts;
      if (given("--gbps")) s.host_gbps = gbps;
      s.tor_agg_gbps = fabric_gbps;
      s.oversubscription = oversubscription;
      if (given("--latency-ns")) s.host_latency_ns = s.fabric_latency_ns = latency_ns;
      if (given("--k") && s.k == 0) fail("--k must be an even number in [2, 256], got 0");
      if (s.k == 0 && s.pods == 0) s.k = 4;
      return net::build_fat_tree(s);
    }
    fail("--topology: expected leaf_spine or fat_tree, got '{}'", kind);
  }
};

}  // namespace lookahead::cli
