#include "net/analysis/repro.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include "common/error.h"
#include "common/progress.h"
#include "net/analysis/congestion.h"
#include "net/sim/simulator.h"

namespace lookahead::net::analysis {

std::vector<std::string> repro_schemes() {
  return {"ecmp", "mprdma-2", "mprdma-4", "mprdma-8", "spray", "reps", "ethereal"};
}

Workload collective_workload(const Topology& topo, const collective::Collective& c, const std::string& scheme_name,
                             uint64_t seed, int* max_qps_per_host) {
  const bool reps = scheme_name == "reps";
  balance::Scheme scheme = reps ? balance::Scheme{balance::SchemeKind::spray, 1} : balance::parse_scheme(scheme_name);
  Workload w;
  int group = w.add_group(fmt::format("{}/{}", collective::kind_name(c.spec.kind), collective::algorithm_name(c.spec.algorithm)));
  std::vector<std::vector<int>> qps_of_flow(c.flows.size());
  int worst = 0;
  for (int s = 0; s < static_cast<int>(c.steps.size()); ++s) {
    auto plan = balance::make_plan(topo, step_flows(c, s), scheme, seed);
    auto per_host = plan.qps_per_host(topo.hosts());
    for (int q : per_host) worst = std::max(worst, q);
    for (const auto& qp : plan.qps) {
      const auto& flow = c.flows[c.steps[s][qp.flow]];
      FlowSpec f;
      f.src = qp.src_host;
      f.dst = qp.dst_host;
      f.bytes = qp.bytes;
      f.group = group;
      for (int d : flow.deps)
        for (int id : qps_of_flow[d]) f.deps.push_back(id);
      switch (qp.routing) {
        case balance::Routing::pinned:
          f.lb = LoadBalancing::source;
          f.path = qp.path;
          break;
        case balance::Routing::hashed:
          f.lb = LoadBalancing::ecmp;
          f.entropy = static_cast<int64_t>(qp.entropy);
          break;
        case balance::Routing::sprayed: f.lb = reps ? LoadBalancing::reps : LoadBalancing::spray; break;
      }
      qps_of_flow[flow.id].push_back(w.add_flow(f));
    }
  }
  if (max_qps_per_host) *max_qps_per_host = worst;
  return w;
}

ReproResult run_point(const ReproPoint& point) {
  auto start = std::chrono::steady_clock::now();
  auto rank_host = collective::place_ranks(point.collective.ranks, point.topology.hosts(), collective::Placement::linear, 0);
  auto c = collective::expand(point.collective, rank_host);
  Topology topo = point.topology;
  for (int l : point.fail) topo.set_link_up(l, false);  // the planners see the failure
  ReproResult r;
  Workload w = collective_workload(topo, c, point.scheme, point.seed, &r.max_qps_per_host);
  r.qps = static_cast<int>(w.flows.size());
  NetworkConfig cfg = point.config;
  cfg.seed = point.seed;
  Simulator sim(point.topology, std::move(w), cfg);
  for (int l : point.fail) sim.fail_link(l, 0, kNever, false);  // both directions are in `fail`
  double host_bps = static_cast<double>(point.topology.links[point.topology.host_uplink(0)].rate_bps);
  double until_us = point.until_us > 0 ? point.until_us
                                       : std::max(2000.0, 50.0 * 2.0 * point.collective.message_bytes * 8.0 / host_bps * 1e6);
  SimResult res = sim.run(static_cast<SimTime>(until_us * 1e6));
  r.finished = res.all_finished;
  r.end_us = static_cast<double>(res.end_ps) / 1e6;
  if (!res.groups.empty() && res.groups[0].finish_ps != kNever && r.finished)
    r.cct_us = static_cast<double>(res.groups[0].finish_ps) / 1e6;
  r.drops = res.drops;
  r.retransmits = res.retransmits;
  r.timeouts = res.timeouts;
  r.events = res.events;
  r.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

std::vector<ReproResult> run_grid(const std::vector<ReproPoint>& points, int threads, bool progress) {
  std::vector<ReproResult> results(points.size());
  std::atomic<size_t> next{0};
  std::mutex mutex;
  std::string first_error;
  ProgressBar bar("net repro", points.size(), progress);
  auto worker = [&] {
    for (size_t i = next++; i < points.size(); i = next++) {
      try {
        results[i] = run_point(points[i]);
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> lock(mutex);
        if (first_error.empty()) first_error = e.what();
      }
      std::lock_guard<std::mutex> lock(mutex);
      bar.advance();
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < std::max(1, threads); ++t) pool.emplace_back(worker);
  for (auto& t : pool) t.join();
  bar.finish();
  if (!first_error.empty()) fail("net repro: a grid point failed: {}", first_error);
  return results;
}

}  // namespace lookahead::net::analysis
