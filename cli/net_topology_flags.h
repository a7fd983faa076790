#pragma once
// Topology flags shared by `lookahead net run` and `lookahead net topo` (and any other net
// command that builds a fabric from flags): --topology leaf_spine|fat_tree plus the spec keys.
#include <CLI/CLI.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "common/error.h"
#include "net/topo/topology.h"

namespace lookahead::cli {

struct TopologyFlags {
  std::string kind = "leaf_spine";
  net::LeafSpineSpec leaf_spine;
  net::FatTreeSpec fat_tree;
  double gbps = 0, fabric_gbps = 0, agg_core_gbps = 0, latency_ns = -1, oversubscription = 0;
  std::vector<CLI::Option*> options;  // every topology flag, to detect use together with --spec
  std::vector<CLI::Option*> leaf_spine_only, fat_tree_only;  // refused with the other --topology

  void add(CLI::App& cmd) {
    auto ls = [&](CLI::Option* o) { options.push_back(o), leaf_spine_only.push_back(o); };
    auto ft = [&](CLI::Option* o) { options.push_back(o), fat_tree_only.push_back(o); };
    options.push_back(cmd.add_option("--topology", kind, "leaf_spine or fat_tree (default leaf_spine)"));
    ls(cmd.add_option("--leaves", leaf_spine.leaves, "leaf switches (leaf_spine only, default 16)"));
    ls(cmd.add_option("--spines", leaf_spine.spines, "spine switches (leaf_spine only, default 16)"));
    ls(cmd.add_option("--hosts-per-leaf", leaf_spine.hosts_per_leaf, "hosts per leaf (leaf_spine only, default 16)"));
    ls(cmd.add_option("--parallel-links", leaf_spine.parallel_links,
                      "cables per leaf-spine pair (leaf_spine only, default 1; fat_tree: --tor-parallel-links, "
                      "--core-parallel-links)"));
    ft(cmd.add_option("--k", fat_tree.k, "k-ary fat-tree, even, 2..256 (fat_tree only; default 4 unless --pods)"));
    ft(cmd.add_option("--pods", fat_tree.pods, "pods (fat_tree only; default: from --k)"));
    ft(cmd.add_option("--tors-per-pod", fat_tree.tors_per_pod, "ToRs per pod (fat_tree only; default: from --k)"));
    ft(cmd.add_option("--aggs-per-pod", fat_tree.aggs_per_pod, "aggregation switches per pod (fat_tree only; default: from --k)"));
    ft(cmd.add_option("--cores", fat_tree.cores,
                      "core switches, a multiple of --aggs-per-pod: agg j of every pod links to core group j "
                      "(fat_tree only; default: from --k)"));
    ft(cmd.add_option("--hosts-per-tor", fat_tree.hosts_per_tor, "hosts per ToR (fat_tree only; default: from --k)"));
    ft(cmd.add_option("--tor-parallel-links", fat_tree.tor_parallel_links, "cables per ToR-agg pair (fat_tree only, default 1)"));
    ft(cmd.add_option("--core-parallel-links", fat_tree.core_parallel_links,
                      "cables per agg-core pair (fat_tree only, default 1; net repro's fat_tree: 16)"));
    ft(cmd.add_option("--agg-core-gbps", agg_core_gbps, "agg-to-core link rate in Gbit/s (fat_tree only; default: --fabric-gbps)"));
    options.push_back(cmd.add_option("--hosts", leaf_spine.hosts, "total hosts instead of per leaf/ToR (default: from the per-switch count)"));
    options.push_back(cmd.add_option("--gbps", gbps, "host link rate in Gbit/s, > 0 (default: leaf_spine 400, fat_tree 100)"));
    options.push_back(cmd.add_option("--fabric-gbps", fabric_gbps, "switch-to-switch link rate (fat_tree: ToR-agg) (default: host rate)"));
    options.push_back(cmd.add_option("--latency-ns", latency_ns, "propagation latency of every link in ns (default 500)"));
    options.push_back(cmd.add_option("--oversubscription", oversubscription,
                                     "leaf/ToR down:up capacity ratio, >= 1; sets the leaf/ToR uplink rate (default: from "
                                     "the link rates). fat_tree: refused if the aggregation tier would be worse than it"));
  }
  bool any_given() const {
    for (auto* o : options)
      if (o->count() > 0) return true;
    return false;
  }
  // A flag that was given is always used, so the topology builders validate it (never replaced by
  // the default); 0 means "derived" in the specs' fabric rate and oversubscription, so those two
  // are checked here when given. A flag of the other topology kind is an error, never ignored.
  net::Topology build() {
    auto given = [&](const char* name) {
      for (auto* o : options)
        if (o->check_name(name)) return o->count() > 0;
      return false;
    };
    if (kind != "leaf_spine" && kind != "fat_tree") fail("--topology: expected leaf_spine or fat_tree, got '{}'", kind);
    const auto& foreign = kind == "leaf_spine" ? fat_tree_only : leaf_spine_only;
    for (auto* o : foreign)
      if (o->count() > 0) {
        if (o->check_name("--parallel-links"))
          fail("--parallel-links: a leaf_spine flag; a fat_tree takes --tor-parallel-links (ToR-agg cables) and "
               "--core-parallel-links (agg-core cables)");
        fail("{}: a {} flag; it does nothing with --topology {}", o->get_name(), kind == "leaf_spine" ? "fat_tree" : "leaf_spine",
             kind);
      }
    if (given("--fabric-gbps") && !(fabric_gbps > 0))
      fail("--fabric-gbps must be a positive rate in Gbit/s, got {}", fabric_gbps);
    if (given("--agg-core-gbps") && !(agg_core_gbps > 0))
      fail("--agg-core-gbps must be a positive rate in Gbit/s, got {}", agg_core_gbps);
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
    net::FatTreeSpec s = fat_tree;
    s.hosts = leaf_spine.hosts;
    if (given("--gbps")) s.host_gbps = gbps;
    s.tor_agg_gbps = fabric_gbps;
    s.agg_core_gbps = agg_core_gbps;
    s.oversubscription = oversubscription;
    if (given("--latency-ns")) s.host_latency_ns = s.fabric_latency_ns = latency_ns;
    if (given("--k") && s.k == 0) fail("--k must be an even number in [2, 256], got 0");
    if (s.k == 0 && s.pods == 0) s.k = 4;
    net::Topology t = net::build_fat_tree(s);
    if (given("--oversubscription")) check_aggregation_tier(t);
    return t;
  }

  // --oversubscription sets the ToR uplinks; the aggregation tier follows from the shape. A fabric
  // worse than asked for is refused, with the cables or rate that would make it match.
  void check_aggregation_tier(const net::Topology& t) const {
    auto capacity = [&](const std::vector<int>& ports) {
      double c = 0;
      for (int l : ports) c += static_cast<double>(t.links[l].rate_bps);
      return c;
    };
    const double down = capacity(t.down_ports[t.first_agg]), up = capacity(t.up_ports[t.first_agg]);
    const double agg = down / up;
    if (agg > oversubscription * (1 + 1e-9)) {
      const int cores_per_agg = t.cores / t.aggs_per_pod;
      const double core_link = static_cast<double>(t.links[t.up_ports[t.first_agg][0]].rate_bps);
      const double want_up = down / oversubscription;
      const int cables = static_cast<int>(std::ceil(want_up / (cores_per_agg * core_link) - 1e-9));
      fail("--oversubscription {:g}: the ToRs are {:g}:1 but the aggregation switches of this fat-tree are {:g}:1 ({} cables "
           "down to ToRs, {} up to cores); for {:g}:1 there too give --core-parallel-links {} or --agg-core-gbps {:g}",
           oversubscription, oversubscription, agg, t.down_ports[t.first_agg].size(), t.up_ports[t.first_agg].size(),
           oversubscription, cables, want_up / (cores_per_agg * t.core_parallel) / 1e9);
    }
  }
};

}  // namespace lookahead::cli
