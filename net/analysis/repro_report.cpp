#include "net/analysis/repro_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>

namespace lookahead::net::analysis {

namespace {

// Why a point did not finish: QPs that gave up after the retry limit, or (none) the time limit.
std::string dnf_reason(int failed_qps) {
  return failed_qps > 0 ? fmt::format(" ({} QP{} gave up)", failed_qps, failed_qps == 1 ? "" : "s") : " (time limit)";
}

std::string point_key(const ReproPoint& p) {
  return fmt::format("{}|{}|{}", p.fabric, collective::algorithm_name(p.collective.algorithm), p.collective.message_bytes);
}

// One fabric's section: per algorithm, sizes x schemes; QPs per host; the worst switch queues.
std::string fabric_section(const ReproGrid& grid, const GridReport& rep, const ReproFabric& fab, int seeds) {
  const auto& points = grid.points;
  const auto& results = rep.results;
  const auto& stats = rep.stats;
  auto s = fab.topo.summary();
  std::string md = fmt::format("\n## {}: {} hosts, {} paths{}\n", fab.name, s.hosts, s.max_paths,
                    fab.failed_label.empty() ? "" : ", failed cable " + fab.failed_label);
  for (const auto& a : grid.algos) {
    md += fmt::format("\n### {}\n\n| size |", a);
    for (const auto& sc : grid.schemes) md += " " + sc + " |";
    md += "\n|---|";
    for (size_t k = 0; k < grid.schemes.size(); ++k) md += "---|";
    md += "\n";
    for (const auto& sz : grid.sizes) {
      md += "| " + sz + " |";
      for (const auto& sc : grid.schemes) {
        size_t i = 0;
        while (i < points.size() &&
               (points[i].fabric != fab.name || points[i].scheme != sc ||
                points[i].collective.algorithm != collective::parse_algorithm(a) ||
                points[i].collective.message_bytes != collective::parse_bytes(sz, "--sizes")))
          ++i;
        if (i == points.size()) {
          md += " = ethereal |";  // ethereal-known without a failure
          continue;
        }
        const auto& r = results[i];
        // No ratio where spray did not finish every seed (its mean is undefined).
        std::string rel = rep.ratio[i] > 0 ? fmt::format(" ({:.2f})", rep.ratio[i]) : " (-)";
        if (!r.finished)
          md += (stats[i].finished > 0 ? fmt::format(" DNF in {} of {} seeds", seeds - stats[i].finished, seeds) : " DNF") +
                dnf_reason(r.failed_qps) + " |";
        else if (seeds > 1)
          md += fmt::format(" {:.0f} [{:.0f}-{:.0f}]{} |", r.cct_us, stats[i].min, stats[i].max, rel);
        else
          md += fmt::format(" {:.0f}{} |", r.cct_us, rel);
      }
      md += "\n";
    }
  }
  md += "\nQPs per host (max over steps and sizes):";
  for (const auto& sc : grid.schemes) {
    int q = -1;
    for (size_t i = 0; i < points.size(); ++i)
      if (points[i].fabric == fab.name && points[i].scheme == sc) q = std::max(q, results[i].max_qps_per_host);
    if (q >= 0) md += fmt::format(" {} {};", sc, q);
  }
  md += "\n\nSwitch queues, worst port (time-weighted p99 / largest, KiB; the worst point over sizes, algorithms and seeds):";
  for (const auto& sc : grid.schemes) {
    double p99 = -1;
    uint64_t most = 0;
    for (size_t i = 0; i < points.size(); ++i)
      if (points[i].fabric == fab.name && points[i].scheme == sc)
        p99 = std::max(p99, results[i].queue_p99_bytes), most = std::max(most, results[i].queue_max_bytes);
    if (p99 >= 0) md += fmt::format(" {} {:.0f} / {:.0f};", sc, p99 / 1024.0, static_cast<double>(most) / 1024.0);
  }
  md += "\n";
  return md;
}

}  // namespace

GridReport aggregate_seeds(const ReproGrid& grid, const std::vector<ReproResult>& run_results, int seeds) {
  const auto& points = grid.points;
  GridReport rep;
  auto& results = rep.results;
  auto& stats = rep.stats;
  results.assign(points.size(), {});
  stats.assign(points.size(), {});
  for (size_t i = 0; i < points.size(); ++i) {
    std::vector<ReproResult> mine(run_results.begin() + static_cast<std::ptrdiff_t>(i * seeds),
                                            run_results.begin() + static_cast<std::ptrdiff_t>((i + 1) * seeds));
    stats[i] = seed_stats(mine);
    results[i] = mine[0];
    results[i].finished = stats[i].all_finished;
    results[i].cct_us = stats[i].mean;
    for (const auto& r : mine) {
      results[i].max_qps_per_host = std::max(results[i].max_qps_per_host, r.max_qps_per_host);
      results[i].qps = std::max(results[i].qps, r.qps);
      results[i].queue_p50_bytes = std::max(results[i].queue_p50_bytes, r.queue_p50_bytes);  // worst seed
      results[i].queue_p99_bytes = std::max(results[i].queue_p99_bytes, r.queue_p99_bytes);
      results[i].queue_max_bytes = std::max(results[i].queue_max_bytes, r.queue_max_bytes);
    }
    if (seeds > 1) {
      results[i].drops = results[i].retransmits = results[i].timeouts = results[i].events = 0;
      results[i].failed_qps = 0;
      results[i].wall_s = 0;
      for (const auto& r : mine) {
        results[i].failed_qps += r.failed_qps;
        results[i].drops += r.drops;
        results[i].retransmits += r.retransmits;
        results[i].timeouts += r.timeouts;
        results[i].events += r.events;
        results[i].wall_s += r.wall_s;
      }
    }
  }
  std::map<std::string, double> spray_cct;  // fabric|algo|size -> spray CCT
  for (size_t i = 0; i < points.size(); ++i)
    if (points[i].scheme == "spray" && results[i].finished) spray_cct[point_key(points[i])] = results[i].cct_us;
  rep.ratio.assign(points.size(), 0.0);
  for (size_t i = 0; i < points.size(); ++i) {
    auto it = spray_cct.find(point_key(points[i]));
    rep.ratio[i] = it != spray_cct.end() && results[i].finished ? results[i].cct_us / it->second : 0.0;
  }
  return rep;
}

std::string grid_csv(const ReproGrid& grid, const GridReport& rep, int seeds) {
  const auto& points = grid.points;
  const auto& results = rep.results;
  const auto& stats = rep.stats;
  // CSV: one row per point (with several seeds: the mean CCT, its min and max, and totals of the
  // counters over the seeds; ratio_to_spray is the ratio of the means over the same seeds).
  // Queue columns: the worst switch port's time-weighted p50 and p99 and the largest queue (bytes; the
  // worst seed's).
  // failed_qps: QPs whose sender gave up after the retry limit (summed over seeds); a point that did
  // not finish with 0 ran out of time instead.
  std::string csv = "fabric,failed,algo,size_bytes,scheme,finished,cct_us,ratio_to_spray,qps,max_qps_per_host,drops,retransmits,timeouts,events,wall_s,"
                    "queue_p50_bytes,queue_p99_bytes,queue_max_bytes,failed_qps";
  csv += seeds > 1 ? ",seeds,cct_min_us,cct_max_us\n" : "\n";
  for (size_t i = 0; i < points.size(); ++i) {
    const auto& p = points[i];
    const auto& r = results[i];
    csv += fmt::format("{},{},{},{},{},{},{:.3f},{:.4f},{},{},{},{},{},{},{:.2f},{:.0f},{:.0f},{}", p.fabric, p.failed_label,
                       collective::algorithm_name(p.collective.algorithm), p.collective.message_bytes, p.scheme,
                       r.finished ? 1 : 0, r.cct_us, rep.ratio[i], r.qps, r.max_qps_per_host, r.drops, r.retransmits, r.timeouts,
                       r.events, r.wall_s, r.queue_p50_bytes, r.queue_p99_bytes, r.queue_max_bytes);
    csv += fmt::format(",{}", r.failed_qps);
    csv += seeds > 1 ? fmt::format(",{},{:.3f},{:.3f}\n", seeds, stats[i].min, stats[i].max) : "\n";
  }
  return csv;
}

std::string grid_seeds_csv(const ReproGrid& grid, const std::vector<ReproResult>& run_results) {
  const auto& runs = grid.runs;
  // Per seed: every run, its ratio against spray of the same seed.
  std::string seeds_csv;
  {
    std::map<std::string, double> spray_seed;
    auto seed_key = [&](const ReproPoint& p) { return fmt::format("{}|{}", point_key(p), p.seed); };
    for (size_t i = 0; i < runs.size(); ++i)
      if (runs[i].scheme == "spray" && run_results[i].finished) spray_seed[seed_key(runs[i])] = run_results[i].cct_us;
    seeds_csv = "fabric,failed,algo,size_bytes,scheme,seed,finished,cct_us,ratio_to_spray_same_seed,failed_qps\n";
    for (size_t i = 0; i < runs.size(); ++i) {
      auto it = spray_seed.find(seed_key(runs[i]));
      double rr = it != spray_seed.end() && run_results[i].finished ? run_results[i].cct_us / it->second : 0.0;
      seeds_csv += fmt::format("{},{},{},{},{},{},{},{:.3f},{:.4f},{}\n", runs[i].fabric, runs[i].failed_label,
                               collective::algorithm_name(runs[i].collective.algorithm), runs[i].collective.message_bytes,
                               runs[i].scheme, runs[i].seed, run_results[i].finished ? 1 : 0, run_results[i].cct_us, rr,
                               run_results[i].failed_qps);
    }
  }
  return seeds_csv;
}

std::string grid_markdown(const ReproGrid& grid, const GridReport& rep, const GridSpec& spec, double batch_window_ns, double jitter_ns) {
  const int seeds = spec.seeds;
  // Markdown: per fabric and algorithm, sizes x schemes, CCT in us and (ratio to spray).
  std::string md = fmt::format("# lookahead net repro{}\n\nAll-reduce collective completion time (us) per scheme; in brackets the ratio "
                               "to spray (oblivious packet spraying; (-) where spray did not finish). DNF: did not finish, with why: QPs that gave up after "
                               "the retry limit (7 timeouts in a row; summed over seeds), or the time limit. ethereal starts knowing no "
                               "failure and learns failed paths from QP timeouts (first iteration); ethereal-known is told the failed "
                               "link at the start (the steady state).\n",
                               spec.quick ? " --quick" : "");
  md += fmt::format("\nEthereal's QPs (ethereal, ethereal-known, ethereal-min, ethereal-tiered) to other leaves start {:g} ns (batching "
                    "window) plus a seeded 0-{:g} ns jitter after their flow is ready (--batch-window-ns, --jitter-ns).\n",
                    batch_window_ns, jitter_ns);
  if (spec.rto_us > 0) md += fmt::format("\nRetransmission timeout {:g} us (--rto-us; default 200).\n", spec.rto_us);
  if (spec.cc)
    md += fmt::format("\nCongestion control {} (--cc; default dctcp, the paper's DCTCP-style ECN windows).\n",
                      congestion_control_name(*spec.cc));
  if (spec.rendezvous)
    md += "\nRendezvous (--rendezvous): on ring and hd a send also waits until its receiver has finished its previous step "
          "(MPI_Sendrecv per step); direct and dbt as without it.\n";
  if (seeds > 1)
    md += fmt::format("\nEach cell: mean CCT over {} seeds ({}..{}) [min-max] (ratio of the mean to spray's mean over the same "
                      "seeds). Per-seed runs: net-repro-seeds.csv.\n",
                      seeds, spec.seed, spec.seed + static_cast<uint64_t>(seeds) - 1);
  for (const auto& fab : grid.fabrics) md += fabric_section(grid, rep, fab, seeds);
  return md;
}

std::string jobs_csv(const Scenario& sc, const std::vector<ReproPoint>& runs, const std::vector<ReproResult>& results) {
  std::map<uint64_t, double> spray;  // seed -> spray makespan
  for (size_t i = 0; i < runs.size(); ++i)
    if (runs[i].scheme == "spray" && results[i].finished) spray[runs[i].seed] = results[i].cct_us;
  std::string csv = "spec,scheme,seed,finished,makespan_us,ratio_to_spray_same_seed,qps,max_qps_per_host,drops,retransmits,timeouts,events,wall_s,"
                    "queue_p50_bytes,queue_p99_bytes,queue_max_bytes,failed_qps";
  for (const auto& j : sc.jobs) csv += fmt::format(",cct_us_{}", j.name);
  csv += "\n";
  for (size_t i = 0; i < runs.size(); ++i) {
    const auto& r = results[i];
    auto it = spray.find(runs[i].seed);
    double ratio = it != spray.end() && r.finished ? r.cct_us / it->second : 0.0;
    csv += fmt::format("{},{},{},{},{:.3f},{:.4f},{},{},{},{},{},{},{:.2f}", runs[i].fabric, runs[i].scheme, runs[i].seed, r.finished ? 1 : 0,
                       r.cct_us, ratio, r.qps, r.max_qps_per_host, r.drops, r.retransmits, r.timeouts, r.events, r.wall_s);
    csv += fmt::format(",{:.0f},{:.0f},{},{}", r.queue_p50_bytes, r.queue_p99_bytes, r.queue_max_bytes, r.failed_qps);
    for (size_t k = 0; k < sc.jobs.size(); ++k) csv += fmt::format(",{:.3f}", k < r.job_cct_us.size() ? r.job_cct_us[k] : 0.0);
    csv += "\n";
  }
  return csv;
}

std::string jobs_markdown(const std::string& spec_path, const Scenario& sc, bool failed, const std::vector<ReproPoint>& runs,
                          const std::vector<ReproResult>& results, int seeds, uint64_t seed) {
  auto summary = sc.topology.summary();
  std::string md = fmt::format("# lookahead net repro --jobs {}\n\n{} hosts, {} paths{}; {} job(s):\n\n", spec_path, summary.hosts,
                               summary.max_paths, !failed ? "" : ", failed links at time 0", sc.jobs.size());
  for (const auto& j : sc.jobs) {
    std::vector<std::string> after;
    for (int a : j.after) after.push_back(sc.jobs[static_cast<size_t>(a)].name);
    // Hosts: "a..b" when the ranks sit on consecutive hosts in order, else the list (shortened).
    bool consecutive = true;
    for (size_t r = 1; r < j.hosts.size(); ++r) consecutive = consecutive && j.hosts[r] == j.hosts[r - 1] + 1;
    std::string hosts = consecutive ? fmt::format("{}..{}", j.hosts.front(), j.hosts.back())
                        : j.hosts.size() <= 8 ? fmt::format("{}", fmt::join(j.hosts, ","))
                                              : fmt::format("{},... (placed)", fmt::join(j.hosts.begin(), j.hosts.begin() + 4, ","));
    md += fmt::format("- {}: {}/{} {} B on {} ranks (hosts {}), start {} us, jitter up to {} us{}\n", j.name,
                      collective::kind_name(j.collective.kind), collective::algorithm_name(j.collective.algorithm),
                      j.collective.message_bytes, j.hosts.size(), hosts, static_cast<double>(j.start_ps) / 1e6,
                      static_cast<double>(j.jitter_ps) / 1e6, after.empty() ? "" : fmt::format(", after {}", fmt::join(after, ", ")));
  }
  md += fmt::format("\nMakespan (us, last job's finish): mean over {} seed(s) ({}..{}) [min-max] (ratio of means to spray); per "
                    "job: mean completion time from its first flow's start (us).\n\n| scheme | makespan |",
                    seeds, seed, seed + static_cast<uint64_t>(seeds) - 1);
  for (const auto& j : sc.jobs) md += " " + j.name + " |";
  md += " QPs/host |\n|---|---|";
  for (size_t k = 0; k < sc.jobs.size(); ++k) md += "---|";
  md += "---|\n";
  double spray_mean = 0;
  for (size_t i = 0; i < runs.size(); i += static_cast<size_t>(seeds)) {
    std::vector<ReproResult> mine(results.begin() + static_cast<std::ptrdiff_t>(i),
                                            results.begin() + static_cast<std::ptrdiff_t>(i) + seeds);
    auto st = seed_stats(mine);
    if (runs[i].scheme == "spray" && st.all_finished) spray_mean = st.mean;
  }
  for (size_t i = 0; i < runs.size(); i += static_cast<size_t>(seeds)) {
    std::vector<ReproResult> mine(results.begin() + static_cast<std::ptrdiff_t>(i),
                                            results.begin() + static_cast<std::ptrdiff_t>(i) + seeds);
    auto st = seed_stats(mine);
    md += "| " + runs[i].scheme + " |";
    if (!st.all_finished) {
      int gave_up = 0;
      for (const auto& r : mine) gave_up += r.failed_qps;
      md += (st.finished > 0 ? fmt::format(" DNF in {} of {} seeds", seeds - st.finished, seeds) : std::string(" DNF")) +
            dnf_reason(gave_up) + " |";
    } else {
      md += fmt::format(" {:.0f} [{:.0f}-{:.0f}]", st.mean, st.min, st.max);
      md += spray_mean > 0 ? fmt::format(" ({:.2f}) |", st.mean / spray_mean) : " |";
    }
    int qps = 0;
    for (size_t k = 0; k < sc.jobs.size(); ++k) {
      double sum = 0;
      int n = 0;
      for (const auto& r : mine)
        if (k < r.job_cct_us.size() && r.job_cct_us[k] > 0) sum += r.job_cct_us[k], ++n;
      md += n == seeds ? fmt::format(" {:.0f} |", sum / n) : " DNF |";
    }
    for (const auto& r : mine) qps = std::max(qps, r.max_qps_per_host);
    md += fmt::format(" {} |\n", qps);
  }
  return md;
}

}  // namespace lookahead::net::analysis
