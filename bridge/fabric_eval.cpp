#include "bridge/fabric_eval.h"

#include <algorithm>
#include <map>
#include <sstream>

#include "bridge/even_split.h"
#include "common/error.h"
#include "net/analysis/congestion.h"
#include "net/balance/collective_splitter.h"
#include "net/balance/plan.h"
#include "net/sim/simulator.h"

namespace lookahead::bridge {

namespace {

const std::vector<std::string> kBridgeSchemes = {"ecmp", "spray", "reps", "ethereal", "ethereal-min", "ethereal-even"};

// The planner's scheme for a bridge scheme name: net's (reps = spraying's plan run with REPS), plus
// ethereal-even, which plan_even_pieces plans.
net::balance::Scheme plan_scheme(const std::string& name) {
  if (name == "ethereal-even") return {net::balance::SchemeKind::ETHEREAL_MIN, 1};
  return net::balance::run_scheme(name);
}

std::vector<net::balance::FlowDemand> demands(const net::Workload& w, const std::vector<int>& flows) {
  std::vector<net::balance::FlowDemand> d;
  d.reserve(flows.size());
  for (int id : flows) {
    const auto& f = w.flows[static_cast<size_t>(id)];
    d.push_back({f.src, f.dst, f.bytes});
  }
  return d;
}

double busiest_drain_us(const net::Topology& topo, const net::analysis::LinkLoads& loads) {
  return net::analysis::max_load(topo, loads, /*fabric_only=*/false).drain_us;
}

double min_two_hop_latency_us(const net::Topology& topo) {
  const auto& up = topo.links[static_cast<size_t>(topo.host_uplink(0))];
  const auto& down = topo.links[static_cast<size_t>(topo.host_downlink(0))];
  return static_cast<double>(up.latency_ps + down.latency_ps) / 1e6;
}

}  // namespace

std::vector<std::string> parse_bridge_schemes(const std::string& list, const std::string& parameter) {
  if (list == "all") return kBridgeSchemes;
  std::vector<std::string> out;
  std::stringstream in(list);
  for (std::string name; std::getline(in, name, ',');) {
    if (name.empty()) continue;
    if (std::find(kBridgeSchemes.begin(), kBridgeSchemes.end(), name) == kBridgeSchemes.end())
      fail("{}: unknown scheme '{}' (expected ecmp, spray, reps, ethereal, ethereal-min, ethereal-even or all)", parameter, name);
    if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
  }
  if (out.empty()) fail("{}: no scheme given", parameter);
  return out;
}

double SchemeEval::mean_layer_cct_us() const {
  if (layer_cct_us.empty()) return 0;
  double s = 0;
  for (double v : layer_cct_us) s += v;
  return s / static_cast<double>(layer_cct_us.size());
}

double phase_lower_bound_us(const net::Topology& topology, const std::vector<net::FlowSpec>& flows) {
  if (flows.empty()) return 0;
  std::vector<net::balance::FlowDemand> d;
  for (const auto& f : flows) d.push_back({f.src, f.dst, f.bytes});
  auto plan = net::balance::make_plan(topology, d, {net::balance::SchemeKind::SPRAY, 1}, 1);
  return busiest_drain_us(topology, net::analysis::link_loads(topology, plan)) + min_two_hop_latency_us(topology);
}

FabricEval evaluate_on_fabric(const net::Topology& topo, const MoeTraffic& traffic, const std::vector<std::string>& schemes,
                              const net::NetworkConfig& config, uint64_t seed, bool simulate) {
  const net::Workload& w = traffic.workload;
  FabricEval out;
  const double hop_us = min_two_hop_latency_us(topo);
  std::vector<double> spray_fabric(traffic.phases.size(), 0);
  const size_t L = static_cast<size_t>(traffic.layers);
  std::vector<std::vector<double>> layer_link_bytes(L, std::vector<double>(topo.links.size(), 0));
  std::vector<double> forward_link_bytes(topo.links.size(), 0);
  // Per layer and host: dispatch bytes into the host and combine bytes out of it.
  std::vector<std::vector<double>> dispatch_in(L, std::vector<double>(static_cast<size_t>(topo.hosts()), 0));
  std::vector<std::vector<double>> combine_out = dispatch_in;
  for (size_t p = 0; p < traffic.phases.size(); ++p) {
    const auto& ph = traffic.phases[p];
    const auto l = static_cast<size_t>(ph.layer);
    double bound = 0;
    if (!ph.flows.empty()) {
      auto plan = net::balance::make_plan(topo, demands(w, ph.flows), {net::balance::SchemeKind::SPRAY, 1}, seed);
      auto loads = net::analysis::link_loads(topo, plan);
      bound = busiest_drain_us(topo, loads) + hop_us;
      spray_fabric[p] = net::analysis::max_load(topo, loads, /*fabric_only=*/true).bytes;
      out.max_phase_spray_fabric_bytes = std::max(out.max_phase_spray_fabric_bytes, spray_fabric[p]);
      for (size_t k = 0; k < loads.bytes.size(); ++k) layer_link_bytes[l][k] += loads.bytes[k], forward_link_bytes[k] += loads.bytes[k];
      for (int id : ph.flows) {
        const auto& f = w.flows[static_cast<size_t>(id)];
        if (ph.combine) combine_out[l][static_cast<size_t>(f.src)] += static_cast<double>(f.bytes);
        else dispatch_in[l][static_cast<size_t>(f.dst)] += static_cast<double>(f.bytes);
      }
    }
    out.phase_bound_us.push_back(bound);
    out.phase_serial_us += bound;
  }
  auto busiest_us = [&](const std::vector<double>& link_bytes) {
    double us = 0;
    for (size_t k = 0; k < link_bytes.size(); ++k)
      us = std::max(us, link_bytes[k] * 8.0 / static_cast<double>(topo.links[k].rate_bps) * 1e6);
    return us;
  };
  double largest_layer = 0;
  for (size_t l = 0; l < L; ++l) {
    double chain = 0;
    for (int g = 0; g < topo.hosts(); ++g) {
      const double down = static_cast<double>(topo.links[static_cast<size_t>(topo.host_downlink(g))].rate_bps);
      const double up = static_cast<double>(topo.links[static_cast<size_t>(topo.host_uplink(g))].rate_bps);
      chain = std::max(chain, (dispatch_in[l][static_cast<size_t>(g)] * 8.0 / down + combine_out[l][static_cast<size_t>(g)] * 8.0 / up) * 1e6);
    }
    out.layer_bound_us.push_back(std::max(chain, busiest_us(layer_link_bytes[l])) + hop_us);
    largest_layer = std::max(largest_layer, out.layer_bound_us.back());
  }
  out.forward_bound_us = std::max(largest_layer, busiest_us(forward_link_bytes) + hop_us);
  // With a barrier between phases nothing overlaps: the phase-serial sum is itself a lower bound.
  if (traffic.sync == Sync::PHASE) out.forward_bound_us = std::max(out.forward_bound_us, out.phase_serial_us);

  for (const std::string& name : schemes) {
    SchemeEval ev;
    ev.scheme = name;
    const net::balance::Scheme scheme = plan_scheme(name);
    const bool reps = name == "reps";
    std::vector<std::vector<net::FlowSpec>> qps_of(w.flows.size());
    for (size_t p = 0; p < traffic.phases.size(); ++p) {
      const auto& ph = traffic.phases[p];
      if (ph.flows.empty()) {
        ev.phase_fluid_us.push_back(0);
        ev.phase_fabric_bytes.push_back(0);
        continue;
      }
      auto plan = name == "ethereal-even" ? plan_even_pieces(topo, demands(w, ph.flows))
                                          : net::balance::make_plan(topo, demands(w, ph.flows), scheme, seed);
      auto loads = net::analysis::link_loads(topo, plan);
      ev.phase_fluid_us.push_back(busiest_drain_us(topo, loads) + hop_us);
      const double fabric = net::analysis::max_load(topo, loads, /*fabric_only=*/true).bytes;
      ev.phase_fabric_bytes.push_back(fabric);
      ev.max_fabric_ratio_to_spray =
          std::max(ev.max_fabric_ratio_to_spray, spray_fabric[p] > 0 ? fabric / spray_fabric[p] : 1.0);
      for (int q : plan.qps_per_host(topo.hosts())) ev.max_qps_per_host = std::max(ev.max_qps_per_host, q);
      ev.total_qps += static_cast<int>(plan.qps.size());
      for (const auto& qp : plan.qps) qps_of[static_cast<size_t>(ph.flows[static_cast<size_t>(qp.flow)])].push_back(net::balance::qp_flow(qp, reps));
    }
    for (double v : ev.phase_fluid_us) ev.fluid_forward_us += v;

    if (simulate) {
      net::Workload sw = w;
      for (auto& f : sw.flows) f.split_on_start = true;
      net::NetworkConfig cfg = config;
      cfg.seed = seed;
      net::Simulator sim(topo, std::move(sw), cfg);
      sim.on_split([&](int flow, net::SimTime) { return std::move(qps_of.at(static_cast<size_t>(flow))); });
      // Give up at 100x the reference plus 10 ms: a scheme that needs that long has failed anyway.
      const auto until = static_cast<net::SimTime>((100.0 * out.phase_serial_us + 10'000.0) * 1e6);
      net::SimResult r = sim.run(until);
      ev.simulated = true;
      ev.finished = r.all_finished;
      ev.drops = r.drops;
      ev.retransmits = r.retransmits;
      ev.timeouts = r.timeouts;
      ev.events = r.events;
      std::vector<net::SimTime> layer_start(static_cast<size_t>(traffic.layers), net::kNever), layer_end(static_cast<size_t>(traffic.layers), 0);
      net::SimTime last = 0;
      for (const auto& ph : traffic.phases)
        for (int g : ph.groups) {
          const auto& gr = r.groups.at(static_cast<size_t>(g));
          if (gr.flows == 0) continue;
          const auto l = static_cast<size_t>(ph.layer);
          if (!ph.combine && gr.start_ps != net::kNever) layer_start[l] = std::min(layer_start[l], gr.start_ps);
          if (gr.finish_ps != net::kNever) {
            layer_end[l] = std::max(layer_end[l], gr.finish_ps);
            last = std::max(last, gr.finish_ps);
          }
        }
      for (size_t l = 0; l < layer_start.size(); ++l)
        ev.layer_cct_us.push_back(ev.finished && layer_start[l] != net::kNever ? static_cast<double>(layer_end[l] - layer_start[l]) / 1e6 : 0);
      ev.forward_us = ev.finished ? static_cast<double>(last) / 1e6 : 0;
    }
    out.schemes.push_back(std::move(ev));
  }
  return out;
}

}  // namespace lookahead::bridge
