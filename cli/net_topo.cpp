// `lookahead net topo [topology flags | --spec FILE] [--json]`: a fabric's summary.
#include <fmt/format.h>

#include <memory>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/net_topology_flags.h"
#include "cli/resource_flags.h"
#include "net/scenario/spec.h"

namespace {

struct TopoOptions {
  lookahead::cli::TopologyFlags topo;
  std::string spec;
  std::string memory_limit = "auto";
  bool json = false;
};

void run_topo(TopoOptions& o) {
  using namespace lookahead::net;
  lookahead::cli::apply_memory_limit(o.memory_limit);
  if (!o.spec.empty() && o.topo.any_given()) lookahead::fail("--spec: topology flags cannot be combined with a spec file");
  Topology t = o.spec.empty() ? o.topo.build() : load_scenario(o.spec).topology;
  TopologySummary s = t.summary();
  uint64_t host_bps = t.links[t.host_uplink(0)].rate_bps;
  if (o.json) {
    nlohmann::json j = {{"kind", s.kind},           {"hosts", s.hosts},
                        {"switches", s.switches},   {"links", s.links},
                        {"tiers", s.tiers},         {"bisection_gbps", s.bisection_bps / 1e9},
                        {"oversubscription", s.oversubscription}, {"max_paths", s.max_paths},
                        {"host_gbps", host_bps / 1e9}};
    if (t.three_tier()) {
      j["tor_parallel_links"] = t.leaf_parallel;
      j["core_parallel_links"] = t.core_parallel;
    } else {
      j["parallel_links"] = t.leaf_parallel;
    }
    fmt::print("{}\n", j.dump(2));
    return;
  }
  fmt::print("{}: {} hosts, {} switches ({} tiers), {} directed links\n", s.kind, s.hosts, s.switches, s.tiers, s.links);
  if (t.three_tier())
    fmt::print("  {} pods x ({} ToRs + {} aggs), {} cores, {} hosts per ToR, {} cable(s) per ToR-agg pair, {} per agg-core pair\n",
               t.pods, t.tors_per_pod, t.aggs_per_pod, t.cores, t.hosts_per_leaf, t.leaf_parallel, t.core_parallel);
  else
    fmt::print("  {} leaves, {} spines, {} hosts per leaf, {} cable(s) per leaf-spine pair\n", t.leaves, t.spines, t.hosts_per_leaf,
               t.leaf_parallel);
  fmt::print("  host links {:g} Gbit/s; bisection {:g} Gbit/s; oversubscription {:g}:1; up to {} paths between hosts\n",
             host_bps / 1e9, s.bisection_bps / 1e9, s.oversubscription, s.max_paths);
}

const bool registered = lookahead::cli::register_command(
    {"net", "topo", "Print a fabric's summary (hosts, switches, links, bisection bandwidth)", [](CLI::App& cmd) {
       auto o = std::make_shared<TopoOptions>();
       o->topo.add(cmd);
       cmd.add_option("--spec", o->spec, "JSON scenario spec (its topology)");
       cmd.add_flag("--json", o->json, "print JSON");
       lookahead::cli::add_memory_limit_flag(cmd, o->memory_limit);
       cmd.callback([o] { run_topo(*o); });
     }});

}  // namespace
