#include "net/analysis/repro.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <tuple>
#include <thread>

#include "common/error.h"
#include "common/progress.h"
#include "net/analysis/congestion.h"
#include "net/sim/simulator.h"

namespace lookahead::net::analysis {

std::vector<std::string> repro_schemes() {
  return {"ecmp", "mprdma-2", "mprdma-4", "mprdma-8", "spray", "reps", "ethereal"};
}

namespace {

balance::Scheme plan_scheme(const std::string& name) {
  if (name == "reps") return {balance::SchemeKind::spray, 1};
  if (name == "ethereal-known") return {balance::SchemeKind::ethereal, 1};
  return balance::parse_scheme(name);
}

// The QP a plan entry becomes in the simulator: source-routed, ECMP-hashed or sprayed.
FlowSpec qp_flow(const balance::Qp& qp, bool reps) {
  FlowSpec f;
  f.src = qp.src_host;
  f.dst = qp.dst_host;
  f.bytes = qp.bytes;
  f.start_ps = qp.start_ps;  // a delay after the split (Simulator::on_split): Ethereal's window and jitter
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
  return f;
}

// A collective on the simulator: one split_on_start flow per collective flow, with the collective's
// dependencies; when it becomes ready the simulator asks for its QPs (Simulator::on_split). Flow-level
// dependencies keep the workload linear in QPs: with QP-level ones, every QP of a flow would depend on
// every QP of the flows before it (direct all-reduce under mprdma-8 at 256 hosts: 2040 x 2040
// dependencies per host, about 10^9 in all).
// - learn (scheme "ethereal"): each (step, source host) batch is planned when its first flow becomes
//   ready, over the paths that host has not learned to be failed from QP timeouts.
// - otherwise: every step planned up front on plan_topo (which shows the failures the scheme knows).
class CollectiveSplitter {
 public:
  CollectiveSplitter(const Topology& plan_topo, const std::vector<Job>& jobs, const std::vector<collective::Collective>& cs,
                     const std::string& scheme, uint64_t seed, bool learn, const balance::PlanTiming& timing)
      : timing_(timing), topo_(plan_topo), jobs_(jobs), cs_(cs), scheme_(learn ? balance::Scheme{balance::SchemeKind::ethereal, 1} : plan_scheme(scheme)),
        reps_(scheme == "reps"), seed_(seed), learn_(learn) {}

  // Flows are added in the order the static plan lists their QPs (per step, per host, destination
  // leaves in the planner's seeded shuffle), so a host's NIC serves them in plan order (collective
  // order would make every host start with the same destination: synchronised incast). Each job is
  // planned on its own (its steps are its batches); jobs that share a host share its NIC.
  Workload workload() {
    std::vector<std::vector<int>> orders(cs_.size());
    static_qps_.assign(cs_.size(), {});
    for (size_t k = 0; k < cs_.size(); ++k) {
      const auto& c = cs_[k];
      std::vector<char> seen(c.flows.size(), 0);
      if (!learn_) static_qps_[k].assign(c.flows.size(), {});
      for (size_t s = 0; s < c.steps.size(); ++s) {
        auto plan = balance::make_plan(topo_, step_flows(c, static_cast<int>(s)), scheme_, seed_, {}, timing_);
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

  std::vector<FlowSpec> split(int sim_flow, SimTime now) {
    const auto [job, flow] = coll_of_.at(static_cast<size_t>(sim_flow));
    if (!learn_) return std::move(static_qps_[job][flow]);
    const auto& c = cs_[job];
    const auto& cf = c.flows[flow];
    auto key = std::make_tuple(job, cf.step, cf.src_host);
    auto it = batches_.find(key);
    if (it == batches_.end()) {
      // The host's flows of this step: Ethereal's batch (they are ready together in these collectives).
      std::vector<int> ids;
      std::vector<balance::FlowDemand> demands;
      for (int id : c.steps.at(static_cast<size_t>(cf.step)))
        if (c.flows[id].src_host == cf.src_host) {
          ids.push_back(id);
          demands.push_back({c.flows[id].src_host, c.flows[id].dst_host, c.flows[id].bytes});
        }
      auto known = [&](int src, int dst, int path) { return known_failed(src, dst, path, now); };
      auto plan = balance::make_plan(topo_, demands, scheme_, seed_, known, timing_);
      std::map<int, std::vector<FlowSpec>> qps;
      for (const auto& qp : plan.qps) qps[ids[qp.flow]].push_back(qp_flow(qp, false));
      max_qps_per_host_ = std::max(max_qps_per_host_, static_cast<int>(plan.qps.size()));
      it = batches_.emplace(key, std::move(qps)).first;
    }
    return it->second.at(flow);
  }

  // A QP timed out on `path`: mark it failed for (src, destination leaf) and move to the next path
  // the host does not know to be failed.
  int timeout(int src, int dst, int path, SimTime now) {
    auto& marks = failed_[{src, topo_.tor_of(dst)}];
    if (marks.find(path) == marks.end()) ++learned_;
    marks[path] = now + kEtherealFailedPathPs;
    const int count = topo_.path_count(src, dst);
    for (int k = 1; k < count; ++k) {
      int next = (path + k) % count;
      if (!known_failed(src, dst, next, now)) return next;
    }
    return -1;
  }

  int total_qps() const { return total_qps_; }  // static plans: every QP of the collective
  int max_qps_per_host() const { return max_qps_per_host_; }
  int learned() const { return learned_; }

 private:
  bool known_failed(int src, int dst, int path, SimTime now) const {
    auto it = failed_.find({src, topo_.tor_of(dst)});
    if (it == failed_.end()) return false;
    auto p = it->second.find(path);
    return p != it->second.end() && p->second > now;
  }

  balance::PlanTiming timing_;
  const Topology& topo_;
  const std::vector<Job>& jobs_;
  const std::vector<collective::Collective>& cs_;
  balance::Scheme scheme_;
  bool reps_;
  uint64_t seed_;
  bool learn_;
  std::vector<std::vector<std::vector<FlowSpec>>> static_qps_;                          // job -> collective flow -> QPs
  std::map<std::tuple<int, int, int>, std::map<int, std::vector<FlowSpec>>> batches_;  // (job, step, host) -> flow -> QPs
  std::map<std::pair<int, int>, std::map<int, SimTime>> failed_;                       // (host, dst leaf) -> path -> until
  std::vector<std::pair<int, int>> coll_of_;  // workload flow id -> (job, collective flow id)
  int max_qps_per_host_ = 0, learned_ = 0, total_qps_ = 0;
};

}  // namespace

Workload collective_workload(const Topology& topo, const collective::Collective& c, const std::string& scheme_name,
                             uint64_t seed, int* max_qps_per_host) {
  const bool reps = scheme_name == "reps";
  balance::Scheme scheme = plan_scheme(scheme_name);
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
  std::vector<Job> jobs = point.jobs;
  if (jobs.empty()) {
    // One collective on the first `ranks` hosts, starting at time 0: the paper's experiment.
    Job job;
    job.name = fmt::format("{}/{}", collective::kind_name(point.collective.kind), collective::algorithm_name(point.collective.algorithm));
    job.collective = point.collective;
    job.hosts = collective::place_ranks(point.collective.ranks, point.topology.hosts(), collective::Placement::linear, 0);
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
  CollectiveSplitter splitter(learn ? point.topology : topo, jobs, cs, point.scheme, point.seed, learn, point.timing);
  Workload w = splitter.workload();
  const int parents = static_cast<int>(w.flows.size());
  Simulator sim(point.topology, std::move(w), cfg);
  sim.on_split([&](int flow, SimTime now) { return splitter.split(flow, now); });
  if (learn)
    sim.on_source_timeout([&](int, int src, int dst, int path, SimTime now) { return splitter.timeout(src, dst, path, now); });
  for (int l : point.fail) sim.fail_link(l, 0, kNever, false);  // both directions are in `fail`
  double host_bps = static_cast<double>(point.topology.links[point.topology.host_uplink(0)].rate_bps);
  // Default limit: 50x the time to send twice every job's message at line rate, one after another,
  // after the latest start and jitter.
  double bytes = 0, latest_us = 0;
  for (const Job& j : jobs) {
    bytes += static_cast<double>(j.collective.message_bytes);
    latest_us = std::max(latest_us, static_cast<double>(j.start_ps + j.jitter_ps) / 1e6);
  }
  double until_us = point.until_us > 0 ? point.until_us : latest_us + std::max(2000.0, 50.0 * 2.0 * bytes * 8.0 / host_bps * 1e6);
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
    if (point.topology.nodes[static_cast<size_t>(l.from)].tier == Tier::host) continue;  // NICs: the senders' own queues
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
