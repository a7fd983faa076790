#include "net/balance/collective_splitter.h"

#include <algorithm>

namespace lookahead::net::balance {

Scheme run_scheme(const std::string& name, std::string_view parameter) {
  if (name == "reps") return {SchemeKind::SPRAY, 1};
  if (name == "ethereal-known") return {SchemeKind::ETHEREAL, 1};
  return parse_scheme(name, parameter);
}

std::vector<FlowDemand> step_flows(const collective::Collective& c, int step) {
  std::vector<FlowDemand> flows;
  for (int id : c.steps.at(static_cast<size_t>(step))) {
    const auto& f = c.flows[id];
    flows.push_back({f.src_host, f.dst_host, f.bytes});
  }
  return flows;
}

FlowSpec qp_flow(const Qp& qp, bool reps) {
  FlowSpec f;
  f.src = qp.src_host;
  f.dst = qp.dst_host;
  f.bytes = qp.bytes;
  f.start_ps = qp.start_ps;  // a delay after the split (Simulator::on_split): Ethereal's window and jitter
  switch (qp.routing) {
    case Routing::PINNED:
      f.lb = LoadBalancing::SOURCE;
      f.path = qp.path;
      break;
    case Routing::HASHED:
      f.lb = LoadBalancing::ECMP;
      f.entropy = static_cast<int64_t>(qp.entropy);
      break;
    case Routing::SPRAYED: f.lb = reps ? LoadBalancing::REPS : LoadBalancing::SPRAY; break;
  }
  return f;
}

CollectiveSplitter::CollectiveSplitter(const Topology& plan_topo, const std::vector<Job>& jobs,
                                       const std::vector<collective::Collective>& collectives, const std::string& scheme,
                                       uint64_t seed, bool learn, const PlanTiming& timing)
    : timing_(timing),
      topo_(plan_topo),
      jobs_(jobs),
      cs_(collectives),
      scheme_(learn ? Scheme{SchemeKind::ETHEREAL, 1} : run_scheme(scheme)),
      reps_(scheme == "reps"),
      seed_(seed),
      learn_(learn),
      failed_(plan_topo) {}

// Flow-level dependencies keep the workload linear in QPs: with QP-level ones, every QP of a flow
// would depend on every QP of the flows before it (direct all-reduce under mprdma-8 at 256 hosts:
// 2040 x 2040 dependencies per host, about 10^9 in all). Each job is planned on its own (its steps
// are its batches); jobs that share a host share its NIC.
Workload CollectiveSplitter::workload() {
  std::vector<std::vector<int>> orders(cs_.size());
  static_qps_.assign(cs_.size(), {});
  for (size_t k = 0; k < cs_.size(); ++k) {
    const auto& c = cs_[k];
    std::vector<char> seen(c.flows.size(), 0);
    if (!learn_) static_qps_[k].assign(c.flows.size(), {});
    for (size_t s = 0; s < c.steps.size(); ++s) {
      auto plan = make_plan(topo_, step_flows(c, static_cast<int>(s)), scheme_, seed_, {}, timing_);
      for (const auto& qp : plan.qps) {
        int id = c.steps[s][qp.flow];
        if (!seen[id]) seen[id] = 1, orders[k].push_back(id);
        if (!learn_) static_qps_[k][id].push_back(qp_flow(qp, reps_));
      }
      if (!learn_) {
        total_qps_ += static_cast<int>(plan.qps.size());
        for (int q : plan.qps_per_host(topo_.hosts())) max_qps_per_host_ = std::max(max_qps_per_host_, q);
      }
    }
  }
  Workload w;
  auto ids = add_jobs(w, jobs_, cs_, seed_, orders, /*split_on_start=*/true);
  coll_of_.assign(w.flows.size(), {-1, -1});
  for (size_t k = 0; k < ids.size(); ++k)
    for (size_t f = 0; f < ids[k].size(); ++f) coll_of_[static_cast<size_t>(ids[k][f])] = {static_cast<int>(k), static_cast<int>(f)};
  return w;
}

std::vector<FlowSpec> CollectiveSplitter::split(int flow, uint64_t now_ps) {
  const auto [job, cflow] = coll_of_.at(static_cast<size_t>(flow));
  if (!learn_) return std::move(static_qps_[job][cflow]);
  const auto& cf = cs_[job].flows[cflow];
  auto it = batches_.find(std::make_tuple(job, cf.step, cf.src_host));
  if (it != batches_.end()) return it->second.at(cflow);
  return plan_batch(job, cf.step, cf.src_host, cflow, now_ps);
}

// The host's flows of this step: Ethereal's batch (they are ready together in these collectives).
std::vector<FlowSpec> CollectiveSplitter::plan_batch(int job, int step, int src_host, int flow, uint64_t now_ps) {
  const auto& c = cs_[job];
  std::vector<int> ids;
  std::vector<FlowDemand> demands;
  for (int id : c.steps.at(static_cast<size_t>(step)))
    if (c.flows[id].src_host == src_host) {
      ids.push_back(id);
      demands.push_back({c.flows[id].src_host, c.flows[id].dst_host, c.flows[id].bytes});
    }
  auto known = [&](int src, int dst, int path) { return failed_.known_failed(src, dst, path, now_ps); };
  auto plan = make_plan(topo_, demands, scheme_, seed_, known, timing_);
  std::map<int, std::vector<FlowSpec>> qps;
  for (const auto& qp : plan.qps) qps[ids[qp.flow]].push_back(qp_flow(qp, false));
  max_qps_per_host_ = std::max(max_qps_per_host_, static_cast<int>(plan.qps.size()));
  auto it = batches_.emplace(std::make_tuple(job, step, src_host), std::move(qps)).first;
  return it->second.at(flow);
}

}  // namespace lookahead::net::balance
