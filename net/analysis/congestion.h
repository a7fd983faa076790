#pragma once
// Fluid maximum-congestion checker (section 2 of the paper): for a batch of flows that arrive
// together (one collective step) and a load-balancing plan, the bytes every directed link carries,
// with no queueing, timing or packet effects.
//
// Contract:
// - link_loads(): pinned and hashed QPs add their bytes to every link of their path; sprayed QPs
//   add bytes/P to every link of each of the P live paths (ideal spraying, the paper's lower bound
//   on 1:1 fabrics). Bytes on a path with a failed link are counted as black-holed (and still added
//   to the links up to and beyond it, so the loads show where the traffic would go).
// - The congestion of a link is its bytes, and its drain time bytes*8/rate; max_* report the worst
//   link. Host NIC links are included (they bound every scheme equally).
// - check_step(): runs every scheme on one batch and reports per scheme the max link bytes, the
//   ratio to spraying's, QPs per host and black-holed bytes; the theorem holds for a plan when its
//   max link bytes equal spraying's up to integer rounding (one byte per QP on the link).
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "net/balance/plan.h"
#include "net/topo/topology.h"

namespace lookahead::net::analysis {

struct LinkLoads {
  std::vector<double> bytes;       // per directed link id
  std::vector<int> qps;            // per link: pinned/hashed QPs crossing it (rounding allowance)
  double blackholed_bytes = 0;     // bytes whose path crosses a failed link
};

LinkLoads link_loads(const Topology& topo, const balance::Plan& plan);

struct MaxLoad {
  double bytes = 0;
  int link = -1;            // the most loaded link by bytes (-1 if nothing moved)
  double drain_us = 0;      // the largest bytes*8/rate over links, in microseconds
  int drain_link = -1;
};
// Over fabric links only (leaf/ToR and above) when fabric_only, else over every link.
MaxLoad max_load(const Topology& topo, const LinkLoads& loads, bool fabric_only);

struct SchemeResult {
  std::string scheme;
  double max_bytes = 0;      // max over fabric links (switch-to-switch)
  double max_drain_us = 0;  // fabric links
  double step_us = 0;       // largest drain time over all links, NICs included: the fluid step time
  double ratio_to_spray = 0; // max_bytes / spraying's max_bytes (1 when both are 0)
  int qps = 0;
  int max_qps_per_host = 0;
  double blackholed_bytes = 0;
  bool matches_spray = false;  // max_bytes == spraying's within rounding
  std::string max_link;        // description of the most loaded link
};

struct StepResult {
  int step = 0;
  int flows = 0;
  uint64_t bytes = 0;
  int cross_leaf_flows = 0;
  double spray_max_bytes = 0;  // the reference: ideal spraying's max fabric link bytes
  double spray_step_us = 0;    // and its fluid step time
  std::vector<SchemeResult> schemes;  // in the order given; spraying is always computed
};

// Runs the schemes on one batch. Spraying is computed as the reference even if not listed.
StepResult check_step(const Topology& topo, const std::vector<balance::FlowDemand>& flows,
                      const std::vector<balance::Scheme>& schemes, uint64_t seed);

std::string link_name(const Topology& topo, int link);  // e.g. "leaf3->spine5"

// A (source host, destination leaf/ToR) batch whose flows differ in size: the paper's theorem and the
// equal-size ethereal split assume one size per batch. The first such batch in flow order, if any.
struct UnequalBatch {
  int src_host = 0;
  int dst_tor = 0;  // node id of the destination leaf/ToR
  uint64_t bytes_a = 0, bytes_b = 0;  // two of its sizes
};
std::optional<UnequalBatch> find_unequal_batch(const Topology& topo, const std::vector<balance::FlowDemand>& flows);

// Parses a cable to fail, "leaf3-spine5" (also tor/agg/core/host names as link_name prints them,
// or a directed link id); returns both directed link ids. Throws naming `parameter`.
std::vector<int> parse_failed_cable(const Topology& topo, const std::string& text, const std::string& parameter);

}  // namespace lookahead::net::analysis
