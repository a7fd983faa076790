#pragma once
// Ethereal at run time: a collective's steps split into queue pairs (QPs) as they become ready, and
// the scheme names the packet-level runs accept. The simulator asks for a flow's QPs when the flow
// is ready (Simulator::on_split) and reports a source-routed QP's timeout (on_source_timeout).
//
// Contract:
// - run_scheme(name): the plan scheme behind a run's scheme name: parse_scheme's names, plus "reps"
//   (planned like spray; its QPs spray with REPS) and "ethereal-known" (ethereal, told the failed
//   links at the start). Throws lookahead::Error naming `parameter` on an unknown name.
// - step_flows(c, step): the flows of one collective step as plan demands, in step order.
// - qp_flow(qp, reps): the simulator flow a planned QP becomes: pinned QPs source-routed on their
//   path, hashed QPs ECMP with their entropy, sprayed QPs spray (REPS when `reps`); same hosts, bytes
//   and start delay (Qp::start_ps).
// - CollectiveSplitter over jobs and their expanded collectives (net/workload/jobs.h):
//   - workload(): one split_on_start flow per collective flow (add_jobs: one group per job, the
//     collective's dependencies), added in the order the static plan lists their QPs (per step, per
//     host, destination leaves in the planner's seeded shuffle), so a host's NIC serves them in plan
//     order. Call it once, before split().
//   - split(flow, now): the QPs of workload flow `flow`; together they carry exactly its bytes.
//     Static (learn false): every step is planned up front on plan_topo, which shows the failures the
//     scheme knows; each flow's QPs are handed out once. Learning (scheme "ethereal", learn true):
//     the flow's (job, step, source host) batch, Ethereal's batch, is planned when its first flow
//     asks, over the paths that host does not know to be failed at `now` (FailedPaths), so a path
//     learnt failed before a step is ready is not used by that step.
//   - timeout(src, dst, path, now, spread): FailedPaths::timeout (the path to move the QP to, or -1).
//   - total_qps(): static plans' QPs in all; max_qps_per_host(): the most QPs one host opens in a
//     step (learning: in a batch planned so far); learned(): paths marked failed so far.
//   Deterministic for its seed. Keeps references to plan_topo, jobs and collectives.
#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "net/balance/failed_paths.h"
#include "net/balance/plan.h"
#include "net/collective/collective.h"
#include "net/topo/topology.h"
#include "net/workload/jobs.h"
#include "net/workload/workload.h"

namespace lookahead::net::balance {

Scheme run_scheme(const std::string& name, std::string_view parameter = "--scheme");
std::vector<FlowDemand> step_flows(const collective::Collective& c, int step);
FlowSpec qp_flow(const Qp& qp, bool reps);

class CollectiveSplitter {
 public:
  CollectiveSplitter(const Topology& plan_topo, const std::vector<Job>& jobs, const std::vector<collective::Collective>& collectives,
                     const std::string& scheme, uint64_t seed, bool learn, const PlanTiming& timing);

  Workload workload();
  std::vector<FlowSpec> split(int flow, uint64_t now_ps);
  int timeout(int src, int dst, int path, uint64_t now_ps, uint64_t spread = 0) { return failed_.timeout(src, dst, path, now_ps, spread); }

  int total_qps() const { return total_qps_; }
  int max_qps_per_host() const { return max_qps_per_host_; }
  int learned() const { return failed_.learned(); }

 private:
  std::vector<FlowSpec> plan_batch(int job, int step, int src_host, int flow, uint64_t now_ps);

  PlanTiming timing_;
  const Topology& topo_;
  const std::vector<Job>& jobs_;
  const std::vector<collective::Collective>& cs_;
  Scheme scheme_;
  bool reps_;
  uint64_t seed_;
  bool learn_;
  FailedPaths failed_;
  std::vector<std::vector<std::vector<FlowSpec>>> static_qps_;                          // job -> collective flow -> QPs
  std::map<std::tuple<int, int, int>, std::map<int, std::vector<FlowSpec>>> batches_;  // (job, step, host) -> flow -> QPs
  std::vector<std::pair<int, int>> coll_of_;  // workload flow id -> (job, collective flow id)
  int max_qps_per_host_ = 0, total_qps_ = 0;
};

}  // namespace lookahead::net::balance
