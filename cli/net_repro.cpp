// `lookahead net repro [--quick]`: the paper's packet-level grid (all-reduce CCT per algorithm, size,
// scheme, with and without a failed link, leaf-spine and fat-tree) on the packet simulator, points in
// parallel over the cores; writes <out>/net-repro.csv and <out>/net-repro.md and prints the table.
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli/command.h"
#include "common/input_file.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "net/analysis/paper_fabrics.h"
#include "net/analysis/plot.h"
#include "net/analysis/repro.h"
#include "net/analysis/repro_grid.h"
#include "net/analysis/repro_report.h"
#include "net/scenario/spec.h"

namespace {

using namespace lookahead::net;
using lookahead::fail;

struct ReproOptions {
  bool quick = false;
  std::string fabrics;  // comma list; default per mode
  std::string sizes, algos, schemes;
  int threads = 0;
  std::string out = ".";
  uint64_t seed = 1;
  int chunks = 4;
  bool plot_only = false;
  int seeds = 1;
  std::string jobs;  // a JSON spec with "jobs": run those under every scheme instead of the grid
  // Sharding (grid mode): this process runs runs i with i % count == index (analysis/repro_grid.h).
  bool shard = false;            // index and count from the MPI / Slurm launcher's environment
  int shard_index = -1, shard_count = 0;
  int merge_shards = 0;          // only merge <out>/net-repro.shard-*-of-N.csv, run nothing
  double shard_timeout_s = 0;    // shard 0's wait for the others (0: no limit)
  bool no_wall = false;          // wall_s written as 0: byte-identical reruns and merges
  double batch_window_ns = 100, jitter_ns = 50;  // Ethereal's timing (balance::PlanTiming), the paper's values
  double rto_us = -1;  // unset: the network's default (200 us)
  std::string cc;      // unset: the paper's DCTCP-style windows
  bool rendezvous = false;  // ring/hd sends wait for the receiver's previous step (collective::CollectiveSpec)
};


balance::PlanTiming plan_timing(const ReproOptions& o) { return balance::plan_timing_ns(o.batch_window_ns, o.jitter_ns); }

int thread_count(const ReproOptions& o) { return o.threads > 0 ? o.threads : std::max(1u, std::thread::hardware_concurrency()); }

void create_out_dir(const std::string& out) {
  std::error_code ec;
  std::filesystem::create_directories(out, ec);
  if (ec || !std::filesystem::is_directory(out)) fail("--out: cannot create directory '{}'", out);
}

// --plot-only: redraw the plots from <out>/net-repro.csv (e.g. after merging the CSVs of several runs).
void plot_only(const ReproOptions& o) {
  std::string path = o.out + "/net-repro.csv";
  const std::string text = lookahead::read_input_file(path, "--plot-only");
  for (const auto& p : analysis::write_repro_plots(text, o.out)) fmt::print("wrote {}\n", p);
}

// The --jobs spec's runs: every scheme (ethereal-known only with a failure) under every seed.
std::vector<analysis::ReproPoint> jobs_runs(const ReproOptions& o, const Scenario& sc, const std::vector<int>& failed) {
  // The paper's network unless the spec sets one.
  const bool own_network = nlohmann::json::parse(lookahead::read_input_file(o.jobs, "--jobs")).contains("network");
  NetworkConfig cfg = own_network ? sc.network : analysis::paper_network_config();
  if (o.rto_us > 0) cfg.rto_ps = static_cast<SimTime>(o.rto_us * 1e6);  // overrides the spec's too
  if (!o.cc.empty()) cfg.cc = parse_congestion_control(o.cc, "--cc");        // so does this
  create_out_dir(o.out);
  std::vector<analysis::ReproPoint> runs;
  for (const auto& scheme : analysis::run_scheme_list(o.schemes)) {
    if (scheme == "ethereal-known" && failed.empty()) continue;
    for (int k = 0; k < o.seeds; ++k) {
      analysis::ReproPoint p;
      p.fabric = std::filesystem::path(o.jobs).stem().string();
      p.topology = sc.topology;
      p.fail = failed;
      p.scheme = scheme;
      p.config = cfg;
      p.timing = plan_timing(o);
      p.seed = o.seed + static_cast<uint64_t>(k);
      p.until_us = sc.until_ps == kNever ? 0 : static_cast<double>(sc.until_ps) / 1e6;
      p.jobs = sc.jobs;
      if (o.rendezvous)
        for (auto& job : p.jobs) job.collective.rendezvous = true;  // as the spec's "rendezvous": true
      runs.push_back(std::move(p));
    }
  }
  return runs;
}

// --jobs SPEC: the spec's jobs under every scheme and seed. Writes <out>/net-repro-jobs.csv (one row
// per scheme and seed) and <out>/net-repro-jobs.md (per scheme: mean makespan over the seeds, its
// min-max, the ratio to spray's mean, and each job's mean completion time).
void run_jobs(const ReproOptions& o) {
  Scenario sc = load_scenario(o.jobs);
  if (sc.jobs.empty()) fail("--jobs: '{}' has no 'jobs'", o.jobs);
  if (sc.job_flows_begin != 0) fail("--jobs: '{}' also has 'flows', 'workload' or 'matrix'; --jobs runs only its jobs", o.jobs);
  std::vector<int> failed;
  for (const auto& f : sc.failures) {
    if (f.down_ps != 0 || f.up_ps != kNever)
      fail("--jobs: '{}': only failures at time 0 that stay down are supported (the planners are told them at the start)", o.jobs);
    failed.push_back(f.link);
    if (f.both) failed.push_back(sc.topology.reverse_link(f.link));
  }
  const auto runs = jobs_runs(o, sc, failed);
  const auto results = analysis::run_grid(runs, thread_count(o), true);
  const std::string md = analysis::jobs_markdown(o.jobs, sc, !failed.empty(), runs, results, o.seeds, o.seed);
  std::string base = o.out + "/net-repro-jobs";
  lookahead::write_file_atomic(base + ".csv", analysis::jobs_csv(sc, runs, results));
  lookahead::write_file_atomic(base + ".md", md);
  fmt::print("{}\nwrote {}.csv and {}.md\n", md, base, base);
}

// The shard this process runs: --shard-index/--shard-count, the launcher's (--shard), or the whole grid.
analysis::Shard resolve_shard(const ReproOptions& o) {
  const bool explicit_shard = o.shard_index >= 0 || o.shard_count > 0;
  if (o.shard && explicit_shard) fail("--shard: takes the shard from the launcher; do not combine it with --shard-index/--shard-count");
  if (explicit_shard) {
    if (o.shard_count < 1) fail("--shard-count: must be at least 1 (got {}); give it with --shard-index", o.shard_count);
    if (o.shard_index < 0 || o.shard_index >= o.shard_count)
      fail("--shard-index: must be in [0, {}) (got {})", o.shard_count, o.shard_index);
    return {o.shard_index, o.shard_count};
  }
  return o.shard ? analysis::shard_from_environment() : analysis::Shard{};
}

void check_flags(const ReproOptions& o) {
  if (o.seeds < 1) fail("--seeds: must be at least 1 (got {})", o.seeds);
  if (o.rto_us != -1 && !(o.rto_us > 0 && o.rto_us <= 1e7))
    fail("--rto-us: must be a time in us above 0, at most 10 s (got {:g})", o.rto_us);
  if (!o.cc.empty()) parse_congestion_control(o.cc, "--cc");
  if (o.merge_shards < 0) fail("--merge-shards: must be at least 1 (got {})", o.merge_shards);
  if (o.merge_shards > 0 && (o.shard || o.shard_index >= 0 || o.shard_count > 0))
    fail("--merge-shards: merges finished shards; do not combine it with --shard/--shard-index/--shard-count");
  if (!o.jobs.empty() && (o.shard || o.shard_index >= 0 || o.shard_count > 0 || o.merge_shards > 0))
    fail("--jobs: runs on one process; --shard, --shard-index/--shard-count and --merge-shards shard the grid");
}

// Writes net-repro.csv, .md, -seeds.csv (several seeds) and the plots; prints the table.
void write_grid_report(const ReproOptions& o, const analysis::ReproGrid& grid, const analysis::GridSpec& spec,
                       const std::vector<analysis::ReproResult>& run_results, int threads) {
  const auto rep = analysis::aggregate_seeds(grid, run_results, o.seeds);
  const std::string csv = analysis::grid_csv(grid, rep, o.seeds);
  const std::string md = analysis::grid_markdown(grid, rep, spec, o.batch_window_ns, o.jitter_ns);
  std::string base = o.out + "/net-repro";
  lookahead::write_file_atomic(base + ".csv", csv);
  lookahead::write_file_atomic(base + ".md", md);
  if (o.seeds > 1) lookahead::write_file_atomic(base + "-seeds.csv", analysis::grid_seeds_csv(grid, run_results));
  auto plots = analysis::write_repro_plots(csv, o.out);
  fmt::print("{}", md);
  double wall = 0;
  for (const auto& r : rep.results) wall += r.wall_s;
  fmt::print("\n{} points x {} seed(s) on {} threads ({:.1f} s of simulation); wrote {}.csv, {}.md{} and {} plot(s): {}\n",
             grid.points.size(), o.seeds, threads, wall, base, base, o.seeds > 1 ? ", " + base + "-seeds.csv" : "", plots.size(),
             fmt::join(plots, ", "));
}

void run_repro(ReproOptions& o) {
  if (o.plot_only) return plot_only(o);
  check_flags(o);
  if (!o.jobs.empty()) return run_jobs(o);
  create_out_dir(o.out);  // before hours of simulation, not after
  analysis::GridSpec spec;
  spec.quick = o.quick;
  spec.fabrics = o.fabrics, spec.sizes = o.sizes, spec.algos = o.algos, spec.schemes = o.schemes;
  spec.chunks = o.chunks;
  spec.seed = o.seed;
  spec.seeds = o.seeds;
  spec.timing = plan_timing(o);
  spec.rto_us = std::max(o.rto_us, 0.0);
  if (!o.cc.empty()) spec.cc = parse_congestion_control(o.cc, "--cc");
  spec.rendezvous = o.rendezvous;
  const analysis::ReproGrid grid = analysis::make_repro_grid(spec);
  analysis::ShardOptions so;
  so.out = o.out;
  so.merge_shards = o.merge_shards;
  so.shard_timeout_s = o.shard_timeout_s;
  if (o.merge_shards == 0) so.shard = resolve_shard(o);
  const int threads = thread_count(o);
  std::vector<analysis::ReproResult> run_results;
  std::vector<std::string> merged_files;
  if (!analysis::run_sharded(so, grid.runs, threads, run_results, merged_files)) return;
  if (o.no_wall)
    for (auto& r : run_results) r.wall_s = 0;
  write_grid_report(o, grid, spec, run_results, threads);
  // The shards are in the merged report now.
  for (const auto& f : merged_files) std::remove(f.c_str());
  if (!merged_files.empty()) fmt::print("merged {} shard files\n", merged_files.size());
}

const bool registered = lookahead::cli::register_command(
    {"net", "repro", "Reproduce the paper's packet-level grid (CCT per algorithm, size, scheme; failures; fat-tree)",
     [](CLI::App& cmd) {
       auto o = std::make_shared<ReproOptions>();
       cmd.add_flag("--quick", o->quick, "a small subset (8x8x8 leaf-spine, 1 and 4 MiB, with and without a failed link)");
       cmd.add_option("--fabrics", o->fabrics, "comma list of leaf_spine, leaf_spine_fail, fat_tree (default all three; --quick: the first two)");
       cmd.add_option("--sizes", o->sizes, "comma list of all-reduce sizes (default 1MiB..256MiB; quick 1MiB,4MiB)");
       cmd.add_option("--algos", o->algos, "comma list of direct, hd, ring, dbt (default all)");
       cmd.add_option("--schemes", o->schemes,
                      std::string("comma list of ") + lookahead::net::balance::kSchemeNames +
                          ", reps, ethereal-known (default ecmp,mprdma-2,mprdma-4,mprdma-8,spray,reps,ethereal,ethereal-known; "
                          "ethereal learns failed paths from QP timeouts, ethereal-known is told them at the start and runs "
                          "only where a link failed)");
       cmd.add_option("--threads", o->threads, "parallel points (default: the machine's cores)");
       cmd.add_option("--chunks", o->chunks, "dbt pipeline chunks per tree (default 4)");
       cmd.add_option("--seed", o->seed, "seed (default 1)");
       cmd.add_option("--out", o->out, "directory for net-repro.csv, net-repro.md and net-repro-<fabric>.svg (default .)");
       cmd.add_flag("--plot-only", o->plot_only, "only redraw the SVG plots from <out>/net-repro.csv");
       cmd.add_option("--seeds", o->seeds,
                      "run every point with this many seeds (--seed, --seed+1, ...); cells show the mean CCT and its min-max "
                      "(default 1)");
       cmd.add_option("--jobs", o->jobs,
                      "JSON spec with 'jobs' (several collectives, in sequence or concurrently; see `net run --spec`): run them "
                      "under every --schemes scheme and --seeds seed on the spec's topology instead of the grid");
       cmd.add_flag("--shard", o->shard,
                    "run this process's share of the grid, rank and size from the launcher (mpirun: OMPI_COMM_WORLD_RANK/SIZE; "
                    "also PMI_RANK/SIZE, SLURM_PROCID/NTASKS); rank 0 waits for the others' shard files in --out (a "
                    "directory every rank sees) and writes the merged report");
       cmd.add_option("--shard-index", o->shard_index, "this process's shard, 0..--shard-count - 1 (instead of --shard)");
       cmd.add_option("--shard-count", o->shard_count, "number of shards (instead of --shard; default 1: no sharding)");
       cmd.add_option("--merge-shards", o->merge_shards,
                      "run nothing: merge <out>/net-repro.shard-I-of-N.csv of N shards (of this same grid) into the report");
       cmd.add_option("--shard-timeout-s", o->shard_timeout_s, "how long shard 0 waits for the other shards (default 0: no limit)");
       cmd.add_option("--batch-window-ns", o->batch_window_ns,
                      "Ethereal's batching window: the ethereal schemes' cross-leaf QPs start this long after their flow is "
                      "ready (default 100, the paper's; 0: at once)");
       cmd.add_option("--jitter-ns", o->jitter_ns,
                      "seeded uniform start jitter of each ethereal piece on top of the window, 0..this (default 50, the "
                      "paper's)");
       cmd.add_option("--rto-us", o->rto_us,
                      "retransmission timeout of every QP in us (default 200; RDMA NICs' local ACK timeout is ms: 4.096 us x "
                      "2^k)");
       cmd.add_option("--cc", o->cc,
                      "congestion control of every QP: dctcp (the paper's ECN windows, default), dcqcn (RoCE NICs: a rate "
                      "per QP, cut on CNPs) or none");
       cmd.add_flag("--rendezvous", o->rendezvous,
                    "step-synchronous ring and hd (MPI_Sendrecv with rendezvous): a send also waits until its receiver "
                    "has finished its previous step (default: as soon as its data is there); direct and dbt are the same "
                    "either way");
       cmd.add_flag("--no-wall", o->no_wall, "write wall_s as 0, so reruns and sharded runs give byte-identical CSVs");
       cmd.callback([o] { run_repro(*o); });
     }});

}  // namespace
