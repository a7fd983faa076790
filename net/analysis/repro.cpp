#include "net/analysis/repro.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include "common/error.h"
#include "common/progress.h"
#include "net/balance/collective_splitter.h"
#include "net/core/rng.h"
#include "net/sim/simulator.h"

namespace lookahead::net::analysis {

std::vector<std::string> repro_schemes() {
  return {"ecmp", "mprdma-2", "mprdma-4", "mprdma-8", "spray", "reps", "ethereal"};
}

Workload collective_workload(const Topology& topo, const collective::Collective& c, const std::string& scheme_name,
                             uint64_t seed, int* max_qps_per_host) {
  const bool reps = scheme_name == "reps";
  balance::Scheme scheme = balance::run_scheme(scheme_name);
  Workload w;
  int group = w.add_group(fmt::format("{}/{}", collective::kind_name(c.spec.kind), collective::algorithm_name(c.spec.algorithm)));
  std::vector<std::vector<int>> qps_of_flow(c.flows.size());
  int worst = 0;
  for (int s = 0; s < static_cast<int>(c.steps.size()); ++s) {
    auto plan = balance::make_plan(topo, balance::step_flows(c, s), scheme, seed);
    auto per_host = plan.qps_per_host(topo.hosts());
    for (int q : per_host) worst = std::max(worst, q);
    for (const auto& qp : plan.qps) {
      const auto& flow = c.flows[c.steps[s][qp.flow]];
      FlowSpec f = balance::qp_flow(qp, reps);
      f.group = group;
      f.channel = 0;  // one communicator: a QP's messages to a peer go in order
      f.lane = static_cast<int>(qps_of_flow[flow.id].size());
      for (int d : flow.deps)
        for (int id : qps_of_flow[d]) f.deps.push_back(id);
      qps_of_flow[flow.id].push_back(w.add_flow(f));
    }
  }
  if (max_qps_per_host) *max_qps_per_host = worst;
  return w;
}

double default_time_limit_us(const std::vector<Job>& jobs, const std::vector<collective::Collective>& collectives,
                             double host_bps) {
  constexpr double kStepBoundUs = 20;
  double bytes = 0, latest_us = 0, steps = 0;
  for (const Job& j : jobs) {
    bytes += static_cast<double>(j.collective.message_bytes);
    latest_us = std::max(latest_us, static_cast<double>(j.start_ps + j.jitter_ps) / 1e6);
  }
  for (const auto& c : collectives) steps += static_cast<double>(c.steps.size());
  return latest_us + std::max(2000.0, 50.0 * 2.0 * bytes * 8.0 / host_bps * 1e6) + kStepBoundUs * steps;
}

ReproResult run_point(const ReproPoint& point) {
  auto start = std::chrono::steady_clock::now();
  std::vector<Job> jobs = point.jobs;
  if (jobs.empty()) {
    // One collective on the first `ranks` hosts, starting at time 0: the paper's experiment.
    Job job;
    job.name = fmt::format("{}/{}", collective::kind_name(point.collective.kind), collective::algorithm_name(point.collective.algorithm));
    job.collective = point.collective;
    job.hosts = collective::place_ranks(point.collective.ranks, point.topology.hosts(), collective::Placement::LINEAR, 0);
    jobs.push_back(std::move(job));
  }
  auto cs = expand_jobs(jobs, point.topology.hosts(), "net repro");
  Topology topo = point.topology;
  for (int l : point.fail) topo.set_link_up(l, false);  // the planners see the failure
  ReproResult r;
  NetworkConfig cfg = point.config;
  cfg.seed = point.seed;
  const bool learn = point.scheme == "ethereal";
  // Ethereal learns failures (plans on the topology without them); the others plan on what they know.
  balance::CollectiveSplitter splitter(learn ? point.topology : topo, jobs, cs, point.scheme, point.seed, learn, point.timing);
  Workload w = splitter.workload();
  const int parents = static_cast<int>(w.flows.size());
  Simulator sim(point.topology, std::move(w), cfg);
  sim.on_split([&](int flow, SimTime now) { return splitter.split(flow, now); });
  if (learn)
    sim.on_source_timeout([&](int flow, int src, int dst, int path, SimTime now) {
      return splitter.timeout(src, dst, path, now, splitmix64(static_cast<uint64_t>(flow)));  // spread the moved QPs
    });
  for (int l : point.fail) sim.fail_link(l, 0, kNever, false);  // both directions are in `fail`
  const double host_bps = static_cast<double>(point.topology.links[point.topology.host_uplink(0)].rate_bps);
  const double until_us = point.until_us > 0 ? point.until_us : default_time_limit_us(jobs, cs, host_bps);
  SimResult res = sim.run(static_cast<SimTime>(until_us * 1e6));
  r.finished = res.all_finished;
  // Learning ethereal: the QPs it opened (flows that never started open none); else the plan's QPs.
  r.qps = learn ? static_cast<int>(res.flows.size()) - parents : splitter.total_qps();
  r.max_qps_per_host = splitter.max_qps_per_host();
  r.learned_paths = splitter.learned();
  r.end_us = static_cast<double>(res.end_ps) / 1e6;
  // Groups are the jobs, in job order (add_jobs): the CCT is the last job's finish time.
  for (size_t k = 0; k < jobs.size() && k < res.groups.size(); ++k) {
    const auto& g = res.groups[k];
    const bool done = g.finish_ps != kNever && g.finished == g.flows;
    r.job_finish_us.push_back(done ? static_cast<double>(g.finish_ps) / 1e6 : 0.0);
    r.job_cct_us.push_back(done && g.start_ps != kNever ? static_cast<double>(g.finish_ps - g.start_ps) / 1e6 : 0.0);
    if (done) r.cct_us = std::max(r.cct_us, static_cast<double>(g.finish_ps) / 1e6);
  }
  if (!r.finished) r.cct_us = 0;
  r.drops = res.drops;
  r.retransmits = res.retransmits;
  r.timeouts = res.timeouts;
  r.failed_qps = res.failed;
  for (const auto& l : res.links) {
    if (point.topology.nodes[static_cast<size_t>(l.from)].tier == Tier::HOST) continue;  // NICs: the senders' own queues
    r.queue_p50_bytes = std::max(r.queue_p50_bytes, l.p50_queue_bytes);
    r.queue_p99_bytes = std::max(r.queue_p99_bytes, l.p99_queue_bytes);
    r.queue_max_bytes = std::max(r.queue_max_bytes, l.max_queue_bytes);
  }
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
