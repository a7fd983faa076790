#pragma once
// The paper's packet-level experiment: a collective under a load-balancing scheme on the packet
// simulator (net/sim), and a grid of such points run in parallel.
//
// Contract:
// - collective_workload(): every collective flow becomes the QPs its scheme plans for its step
//   (balance::make_plan on the step's flows as one batch); a QP depends on every QP of the flows its
//   flow depends on, so a rank forwards data only after all of it arrived. ECMP/MP-RDMA QPs carry
//   their entropy, ethereal QPs their source-routed path, spray/REPS QPs spray per packet. All QPs
//   are in one group, whose finish time is the collective completion time (CCT).
// - run_point() runs ReproPoint::jobs when given (several collectives, net/workload/jobs.h), else
//   the one collective on hosts 0..ranks-1 from time 0; either way through the same per-job path.
// - run_point() with scheme "ethereal" runs the paper's Ethereal (balance::CollectiveSplitter): each
//   collective flow is planned when it becomes ready (Simulator::on_split), per (step, source host)
//   batch, over the paths that host has not learned to be failed; a source-routed QP's retransmission
//   timeout marks its path failed for that (source host, destination leaf/ToR) for 100 ms
//   (balance::FailedPaths) and moves the QP to the next path not known failed. It starts knowing
//   nothing about failures.
// - "ethereal-known" is the same planner told the failed links at the start (the steady state after
//   an earlier iteration's timeouts); collective_workload() plans "ethereal" that way too (statically).
//   Spraying plans around failed links known at the start (its fluid plan; packets spray obliviously);
//   ECMP does not know them.
// - run_point() is deterministic for its seed; run_grid() runs points on `threads` threads and
//   returns results in point order.
#include <cstdint>
#include <string>
#include <vector>

#include "net/balance/plan.h"
#include "net/collective/collective.h"
#include "net/sim/config.h"
#include "net/topo/topology.h"
#include "net/workload/jobs.h"
#include "net/workload/workload.h"

namespace lookahead::net::analysis {

// Scheme names of the packet-level grid: the plan schemes plus reps (planned like spray); also
// accepted: ethereal-known (see above), ethereal-min, ethereal-tiered.
std::vector<std::string> repro_schemes();

Workload collective_workload(const Topology& topo, const collective::Collective& c, const std::string& scheme,
                             uint64_t seed, int* max_qps_per_host = nullptr);

struct ReproPoint {
  std::string fabric;        // "leaf_spine" | "fat_tree" (label)
  Topology topology;         // built, with nothing failed
  std::vector<int> fail;     // directed link ids failed at time 0
  std::string failed_label;  // "" or e.g. "leaf0-spine0"
  collective::CollectiveSpec collective;
  std::string scheme;
  NetworkConfig config;
  uint64_t seed = 1;
  double until_us = 0;       // give up after this much simulated time (0: default_time_limit_us)
  // Several collectives (net/workload/jobs.h) instead of `collective` on every host; each job is
  // planned by `scheme` on its own, and the point's CCT is the last job's finish time.
  std::vector<Job> jobs;
  // Ethereal's batching window and piece start jitter (balance::PlanTiming; the paper's 100 ns and
  // 0-50 ns by default): the ethereal schemes' cross-leaf QPs start that long after their flow is ready.
  balance::PlanTiming timing = balance::kPaperTiming;
};

struct ReproResult {
  bool finished = false;
  double cct_us = 0;         // group finish time (if finished)
  double end_us = 0;         // simulated time when the run stopped
  int qps = 0, max_qps_per_host = 0;
  int learned_paths = 0;     // ethereal: (host, destination leaf, path) entries marked failed by a timeout
  uint64_t drops = 0, retransmits = 0, timeouts = 0, events = 0;
  int failed_qps = 0;        // QPs (and split flows) whose sender gave up after the retry limit: no CCT
  // Switch output queues (every port of a leaf/ToR, agg or spine/core): the worst port's time-weighted
  // p50 and p99 queue length over the run and the largest queue any port held (bytes; LinkResult's).
  double queue_p50_bytes = 0, queue_p99_bytes = 0;
  uint64_t queue_max_bytes = 0;
  double wall_s = 0;
  // Per job (one entry for a single collective): finish time, and completion time measured from
  // the job's first flow start (0 if it did not finish).
  std::vector<double> job_finish_us, job_cct_us;
};

// The default limit of a point's simulated time: after the latest job start and jitter, 50x the time
// to send twice every job's message at line rate one after another (at least 2 ms), plus 20 us per
// dependent step of every job (a bound on one step's round trips and RTO-free latency), so a ring
// on 512 hosts (1022 steps of small chunks, latency-bound) is not cut off as if it had stalled.
double default_time_limit_us(const std::vector<Job>& jobs, const std::vector<collective::Collective>& collectives,
                             double host_bps);

ReproResult run_point(const ReproPoint& point);
std::vector<ReproResult> run_grid(const std::vector<ReproPoint>& points, int threads, bool progress);

}  // namespace lookahead::net::analysis
