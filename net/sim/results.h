#pragma once
// Simulation results as JSON and CSV.
//
// Contract: output depends only on the SimResult (no wall-clock values), so the same seed gives
// byte-identical files. Times are reported in microseconds (floating point, exact to the ps
// values' decimal expansion up to 1e-6 us); unfinished flows have null finish / fct. Each flow has a
// state: finished (its sender holds the last ACK), failed (the sender gave up after the retry
// limit), unfinished (still running when the run stopped) or not_started (e.g. waiting on a failed
// flow); a group with a failed member is "failed" and has no completion time.
#include <nlohmann/json.hpp>
#include <string>

#include "net/sim/simulator.h"
#include "net/topo/topology.h"

namespace lookahead::net {

struct FlowSummary {
  int flows = 0, finished = 0, failed = 0, not_started = 0;
  double mean_fct_us = 0, p50_fct_us = 0, p99_fct_us = 0, max_fct_us = 0;
  double last_finish_us = 0;
  double max_link_utilisation = 0;
  uint64_t max_queue_bytes = 0;
};
FlowSummary summarise(const SimResult& r);
const char* flow_state(const FlowResult& f);  // "finished" | "failed" | "unfinished" | "not_started"

// include_links: also list every link that carried traffic.
nlohmann::json results_json(const SimResult& r, const Topology& topology, bool include_links);
std::string flows_csv(const SimResult& r);
std::string links_csv(const SimResult& r, const Topology& topology);

}  // namespace lookahead::net
