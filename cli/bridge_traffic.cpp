// `lookahead bridge traffic`: the expert-parallel all-to-all of one batch, from pre-gated routing,
// as a `lookahead net run --spec` scenario (per-flow bytes, per-layer dispatch and combine, and the
// dependencies between them: bridge/traffic.h).
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "bridge/traffic.h"
#include "cli/bridge_flags.h"
#include "cli/command.h"
#include "common/atomic_file.h"

namespace {

using namespace lookahead;

struct TrafficOptions {
  cli::BridgeFlags flags;
  std::string out, save_trace, lb = "ecmp";
  int batch = 0;
  bool json = false;
};

// --save-trace: every routed token (batches 0..--batch), one expert id per line (--trace input).
void save_trace(const TrafficOptions& o, const std::vector<std::vector<int32_t>>& batches) {
  std::string text = fmt::format("# experts of {} tokens ({} batches of {}), one per token\n", o.flags.batch_tokens * (o.batch + 1),
                                 o.batch + 1, o.flags.batch_tokens);
  for (const auto& b : batches)
    for (int32_t e : b) text += fmt::format("{}\n", e);
  lookahead::write_file_atomic(o.save_trace, text);
}

void print_traffic(const TrafficOptions& o, const net::Topology& topo, size_t tokens, const std::vector<uint64_t>& loads,
                   const bridge::ExpertPlacement& placement, const bridge::TrafficMatrix& matrix, const bridge::MoeTraffic& traffic,
                   uint64_t phase_bytes, uint64_t min_flow, uint64_t max_flow) {
  fmt::print("batch {}: {} tokens, {} experts on {} hosts ({} {} leaf/ToR), placement {} ({} slots per host)\n", o.batch,
             tokens, o.flags.experts, topo.hosts(), topo.kind, topo.hosts_per_leaf, o.flags.placement,
             placement.slots_per_host);
  std::string loads_text;
  for (size_t e = 0; e < loads.size(); ++e)
    loads_text += fmt::format("{}{}:{} on h{}", e ? ", " : "", e, loads[e], fmt::join(placement.replicas[e], "/h"));
  fmt::print("expert tokens: {}\n", loads_text);
  fmt::print("remote tokens {} of {} ({:.1f}%); {} bytes per token per hop; per layer: dispatch + combine, {} flows each, "
             "{} bytes each (flows {}..{} bytes)\n",
             matrix.remote_tokens(), tokens, 100.0 * static_cast<double>(matrix.remote_tokens()) / static_cast<double>(tokens),
             traffic.bytes_per_token, traffic.phases[0].flows.size(), phase_bytes, traffic.phases[0].flows.empty() ? 0 : min_flow, max_flow);
  fmt::print("{} layers: {} flows in all (Read-ME routes a token to one expert for every layer, so every layer repeats this "
             "matrix; layer l+1's dispatch from a host waits for layer l's combine into it)\n",
             traffic.layers, traffic.workload.flows.size());
  if (topo.hosts() <= 16) {
    fmt::print("tokens src\\dst:\n");
    for (int h = 0; h < topo.hosts(); ++h) fmt::print("  h{:<3} {}\n", h, fmt::join(matrix.tokens[static_cast<size_t>(h)], " "));
  }
  if (!o.out.empty()) fmt::print("wrote {} (lookahead net run --spec {})\n", o.out, o.out);
}

void run_traffic(TrafficOptions& o) {
  o.flags.check();
  if (o.batch < 0) fail("--batch must be >= 0 (got {})", o.batch);
  net::Topology topo = o.flags.topo.build();
  net::parse_load_balancing(o.lb, "--lb");
  const auto batches = o.flags.batches(o.batch + 1);
  const std::vector<int32_t>& experts = batches.back();
  if (!o.save_trace.empty()) save_trace(o, batches);
  const auto loads = bridge::expert_loads(experts, o.flags.experts);
  const auto placement = bridge::place_experts(o.flags.experts, topo.hosts(), o.flags.slots_per_host,
                                               bridge::parse_placement(o.flags.placement), loads);
  const auto matrix = bridge::traffic_matrix(experts, placement, topo.hosts());
  const auto traffic = bridge::moe_traffic(matrix, o.flags.layers, o.flags.bytes_per_token(),
                                           bridge::parse_sync(o.flags.sync));
  if (!o.out.empty()) lookahead::write_file_atomic(o.out, bridge::scenario_json(topo, traffic, o.lb, o.flags.seed).dump(1) + "\n");

  uint64_t phase_bytes = 0, min_flow = ~uint64_t{0}, max_flow = 0;
  for (int id : traffic.phases.at(0).flows) {
    const uint64_t b = traffic.workload.flows[static_cast<size_t>(id)].bytes;
    phase_bytes += b, min_flow = std::min(min_flow, b), max_flow = std::max(max_flow, b);
  }
  if (o.json) {
    nlohmann::json j;
    j["experts"] = o.flags.experts;
    j["hosts"] = topo.hosts();
    j["expert_tokens"] = loads;
    j["placement"] = {{"kind", o.flags.placement}, {"slots_per_host", placement.slots_per_host}, {"replicas", placement.replicas}};
    j["tokens"] = matrix.tokens;
    j["bytes_per_token"] = traffic.bytes_per_token;
    j["layers"] = traffic.layers;
    j["flows"] = traffic.workload.flows.size();
    j["flows_per_phase"] = traffic.phases.at(0).flows.size();
    j["phase_bytes"] = phase_bytes;
    fmt::print("{}\n", j.dump(1));
    return;
  }
  print_traffic(o, topo, experts.size(), loads, placement, matrix, traffic, phase_bytes, min_flow, max_flow);
}

const bool registered = lookahead::cli::register_command(
    {"bridge", "traffic", "Expert-parallel all-to-all of a batch from pre-gated routing, as a net spec (per-flow bytes, layer dependencies)",
     [](CLI::App& cmd) {
       auto o = std::make_shared<TrafficOptions>();
       o->flags.add(cmd);
       cmd.add_option("--batch", o->batch, "which batch of the routed tokens (0 = the first --batch-tokens tokens)")->capture_default_str();
       cmd.add_option("--out", o->out, "write the scenario spec (JSON) for lookahead net run --spec");
       cmd.add_option("--save-trace", o->save_trace, "write every routed token's expert (batches 0..--batch) as a --trace file");
       cmd.add_option("--lb", o->lb, "the spec's network load balancing: ecmp, spray, source or reps")->capture_default_str();
       cmd.add_flag("--json", o->json, "print expert loads, placement and the token matrix as JSON");
       cmd.callback([o] { run_traffic(*o); });
     }});

}  // namespace
