// `lookahead bridge run`: the expert-parallel all-to-all of one batch (as `bridge traffic` builds it)
// through the fluid checker and the packet simulator under ECMP, spraying, REPS, Ethereal's equal
// split and the unequal-size planner; per-layer and forward-pass completion against the bound.
#include <fmt/format.h>

#include <algorithm>

#include <nlohmann/json.hpp>

#include "bridge/fabric_eval.h"
#include "bridge/traffic.h"
#include "cli/bridge_flags.h"
#include "cli/command.h"
#include "net/analysis/paper_fabrics.h"

namespace {

using namespace lookahead;

struct RunOptions {
  cli::BridgeFlags flags;
  std::string schemes = "all";
  int batch = 0;
  bool fluid_only = false, json = false, pfc = false;
};

void print_json(const RunOptions& o, const net::Topology& topo, const std::vector<uint64_t>& loads, const bridge::MoeTraffic& traffic,
                const bridge::FabricEval& ev) {
  nlohmann::json j;
  j["hosts"] = topo.hosts();
  j["experts"] = o.flags.experts;
  j["expert_tokens"] = loads;
  j["layers"] = traffic.layers;
  j["bound"] = {{"layer_us", ev.layer_bound_us}, {"forward_us", ev.forward_bound_us}, {"phase_us", ev.phase_bound_us},
                {"phase_serial_us", ev.phase_serial_us}};
  for (const auto& s : ev.schemes)
    j["schemes"].push_back({{"scheme", s.scheme},
                            {"fluid_forward_us", s.fluid_forward_us},
                            {"max_fabric_ratio_to_spray", s.max_fabric_ratio_to_spray},
                            {"max_fabric_link_bytes", *std::max_element(s.phase_fabric_bytes.begin(), s.phase_fabric_bytes.end())},
                            {"max_qps_per_host", s.max_qps_per_host},
                            {"qps", s.total_qps},
                            {"simulated", s.simulated},
                            {"finished", s.finished},
                            {"layer_cct_us", s.layer_cct_us},
                            {"mean_layer_cct_us", s.mean_layer_cct_us()},
                            {"forward_us", s.forward_us},
                            {"drops", s.drops},
                            {"retransmits", s.retransmits},
                            {"timeouts", s.timeouts}});
  fmt::print("{}\n", j.dump(1));
}

void print_table(const RunOptions& o, const net::Topology& topo, size_t tokens, const std::vector<uint64_t>& loads,
                 const bridge::MoeTraffic& traffic, const bridge::FabricEval& ev) {
  double layer_bound = 0;  // the layers' mean bound (layers differ only by rounding under Read-ME routing)
  for (double b : ev.layer_bound_us) layer_bound += b / static_cast<double>(ev.layer_bound_us.size());
  std::string loads_text;
  for (size_t e = 0; e < loads.size(); ++e) loads_text += fmt::format("{}{}", e ? " " : "", loads[e]);
  fmt::print("{} tokens (expert loads {}), {} experts on {} hosts, placement {}, {} layers x (dispatch + combine), {} B/token, sync {}\n",
             tokens, loads_text, o.flags.experts, topo.hosts(), o.flags.placement, traffic.layers, traffic.bytes_per_token, o.flags.sync);
  fmt::print("lower bound (ideal spraying, fluid, + 2 host-link latencies): layer {:.2f} us, forward pass {:.2f} us; phase-serial "
             "reference (a barrier per phase) {:.2f} us\n\n",
             layer_bound, ev.forward_bound_us, ev.phase_serial_us);
  fmt::print("| scheme | layer CCT us (mean) | / bound | forward pass us | / bound | fluid phase-serial us | busiest fabric link MB (/ spray) | max QPs per host | drops | retransmits |\n");
  fmt::print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
  for (const auto& s : ev.schemes) {
    std::string sim = "| - | - | - | - ";
    if (s.simulated)
      sim = s.finished ? fmt::format("| {:.2f} | {:.3f} | {:.2f} | {:.3f} ", s.mean_layer_cct_us(), s.mean_layer_cct_us() / layer_bound, s.forward_us,
                                     s.forward_us / ev.forward_bound_us)
                       : std::string("| unfinished | - | unfinished | - ");
    const double busiest = *std::max_element(s.phase_fabric_bytes.begin(), s.phase_fabric_bytes.end());
    fmt::print("| {} {}| {:.2f} | {:.3f} ({:.3f}) | {} | {} | {} |\n", s.scheme, sim, s.fluid_forward_us, busiest / 1e6, s.max_fabric_ratio_to_spray,
               s.max_qps_per_host, s.simulated ? fmt::format("{}", s.drops) : "-", s.simulated ? fmt::format("{}", s.retransmits) : "-");
  }
}

void run_bridge(RunOptions& o) {
  o.flags.check();
  if (o.batch < 0) fail("--batch must be >= 0 (got {})", o.batch);
  const auto schemes = bridge::parse_bridge_schemes(o.schemes);
  net::Topology topo = o.flags.topo.build();
  const auto batches = o.flags.batches(o.batch + 1);
  const std::vector<int32_t>& experts = batches.back();
  const auto loads = bridge::expert_loads(experts, o.flags.experts);
  const auto placement = bridge::place_experts(o.flags.experts, topo.hosts(), o.flags.slots_per_host,
                                               bridge::parse_placement(o.flags.placement), loads);
  const auto traffic = bridge::moe_traffic(bridge::traffic_matrix(experts, placement, topo.hosts()), o.flags.layers,
                                           o.flags.bytes_per_token(), bridge::parse_sync(o.flags.sync));
  net::NetworkConfig config = net::analysis::paper_network_config();
  config.pfc = o.pfc;
  const bridge::FabricEval ev = bridge::evaluate_on_fabric(topo, traffic, schemes, config, o.flags.seed, !o.fluid_only);
  if (o.json)
    print_json(o, topo, loads, traffic, ev);
  else
    print_table(o, topo, experts.size(), loads, traffic, ev);
}

const bool registered = lookahead::cli::register_command(
    {"bridge", "run", "Simulate a batch's expert-parallel all-to-all under ECMP, spraying, REPS, Ethereal and unequal splitting",
     [](CLI::App& cmd) {
       auto o = std::make_shared<RunOptions>();
       o->flags.add(cmd);
       cmd.add_option("--batch", o->batch, "which batch of the routed tokens (0 = the first --batch-tokens tokens)")->capture_default_str();
       cmd.add_option("--schemes", o->schemes, "comma list of ecmp, spray, reps, ethereal, ethereal-min, ethereal-even, or all")->capture_default_str();
       cmd.add_flag("--fluid-only", o->fluid_only, "only the fluid checker (no packet simulation)");
       cmd.add_flag("--pfc", o->pfc, "lossless fabric (PFC) instead of the paper's lossy DCTCP setup (9000 B MTU, 64 MB shared buffers)");
       cmd.add_flag("--json", o->json, "machine-readable output");
       cmd.callback([o] { run_bridge(*o); });
     }});

}  // namespace
