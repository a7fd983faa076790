#pragma once
// The MoE all-to-all of bridge/traffic.h on the fabric, per load-balancing scheme: the fluid checker
// (net/analysis/congestion.h) on every phase, and the packet simulator (net/sim) on the whole
// forward pass with its dependencies.
//
// Contract:
// - Schemes: ecmp, spray, reps (planned as spray, sprayed with REPS in the simulator), ethereal (the
//   paper's equal-split planner), ethereal-min (the unequal-size planner of net/balance: every path
//   of a (source host, destination leaf) batch gets exactly its byte share, fewest pieces) and
//   ethereal-even (bridge/even_split.h: the same byte shares in equal pieces, the same number on
//   every path). Each phase (one layer's
//   dispatch or combine) is one batch: balance::make_plan on its flows, seeded.
// - Bounds (ideal spraying's fluid link loads; every byte also crosses two host links, whose
//   propagation is added once per phase or layer):
//   phase bound   the busiest link's drain time in that phase alone.
//   layer bound   a true lower bound on a layer's CCT (first dispatch start to last combine byte):
//                 the larger of (a) over hosts g, g's dispatch bytes in / its downlink rate + its
//                 combine bytes out / its uplink rate (g's experts send nothing back before all
//                 their tokens arrived), and (b) over links, the layer's bytes on it / its rate.
//   forward bound a true lower bound on the forward pass: the larger of the busiest link's bytes
//                 over the whole pass / its rate and the largest layer bound.
//   phase-serial  the sum of phase bounds: the best a barrier per phase (each layer's dispatch and
//                 combine as separate collectives) can do. Per-host dependencies let hosts overlap
//                 phases, so the simulator can beat it (by up to 2x when one host's NIC is the
//                 bottleneck of both phases); it is a reference, not a bound. Under Sync::PHASE
//                 (a barrier between phases) it is a bound, and the forward bound includes it.
// - Simulation: every flow of the workload is split into its plan's QPs when it becomes ready
//   (Simulator::on_split), so dependencies stay per flow. Per-layer CCT = last combine byte of the
//   layer minus first dispatch start of the layer; forward pass = the last flow's finish.
#include <cstdint>
#include <string>
#include <vector>

#include "bridge/traffic.h"
#include "net/sim/config.h"
#include "net/topo/topology.h"

namespace lookahead::bridge {

// "ecmp,spray,reps,ethereal,ethereal-min,ethereal-even" parsed and checked; "all" means that list.
std::vector<std::string> parse_bridge_schemes(const std::string& list, const std::string& parameter = "--schemes");

struct SchemeEval {
  std::string scheme;
  // Fluid (per phase, in phase order).
  std::vector<double> phase_fluid_us;      // busiest link's drain time under this plan (NICs included)
  std::vector<double> phase_fabric_bytes;  // busiest switch-to-switch link's bytes
  double fluid_forward_us = 0;             // sum of phase_fluid_us
  double max_fabric_ratio_to_spray = 0;    // worst phase: busiest fabric link / ideal spraying's
  int max_qps_per_host = 0;                // over phases
  int total_qps = 0;                       // over the forward pass
  // Packet simulation (when run).
  bool simulated = false, finished = false;
  std::vector<double> layer_cct_us;        // per layer
  double forward_us = 0;                   // last finish
  uint64_t drops = 0, retransmits = 0, timeouts = 0, events = 0;
  double mean_layer_cct_us() const;
};

struct FabricEval {
  std::vector<double> phase_bound_us;      // per phase
  std::vector<double> layer_bound_us;      // per layer
  double forward_bound_us = 0;
  double phase_serial_us = 0;              // sum of phase bounds (reference)
  double max_phase_spray_fabric_bytes = 0;
  std::vector<SchemeEval> schemes;
};

// Runs the fluid checker for every scheme, and the packet simulator when `simulate`.
FabricEval evaluate_on_fabric(const net::Topology& topology, const MoeTraffic& traffic, const std::vector<std::string>& schemes,
                              const net::NetworkConfig& config, uint64_t seed, bool simulate);

// Ideal-spraying lower bound of one batch of flows (drain of the busiest link + two host-link
// propagation delays), in microseconds; 0 for no flows.
double phase_lower_bound_us(const net::Topology& topology, const std::vector<net::FlowSpec>& flows);

}  // namespace lookahead::bridge
