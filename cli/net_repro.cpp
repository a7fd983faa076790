// `lookahead net repro [--quick]`: the paper's packet-level grid (all-reduce CCT per algorithm, size,
// scheme, with and without a failed link, leaf-spine and fat-tree) on the packet simulator, points in
// parallel over the cores; writes <out>/net-repro.csv and <out>/net-repro.md and prints the table.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <memory>
#include <sstream>
#include <thread>

#include "cli/command.h"
#include "common/input_file.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "net/analysis/congestion.h"
#include "net/analysis/paper_fabrics.h"
#include "net/analysis/plot.h"
#include "net/analysis/repro.h"
#include "net/workload/spec.h"

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
  // Sharding (grid mode): this process runs runs i with i % count == index; see run_sharded().
  bool shard = false;            // index and count from the MPI / Slurm launcher's environment
  int shard_index = -1, shard_count = 0;
  int merge_shards = 0;          // only merge <out>/net-repro.shard-*-of-N.csv, run nothing
  double shard_timeout_s = 0;    // shard 0's wait for the others (0: no limit)
  bool no_wall = false;          // wall_s written as 0: byte-identical reruns and merges
  double batch_window_ns = 100, jitter_ns = 50;  // Ethereal's timing (balance::PlanTiming), the paper's values
};

balance::PlanTiming plan_timing(const ReproOptions& o) { return balance::plan_timing_ns(o.batch_window_ns, o.jitter_ns); }

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

// A fabric of the grid: the built topology and the cable (if any) failed at the start.
struct Fabric {
  std::string name;
  Topology topo;
  std::vector<int> fail;
  std::string failed_label;
};

Fabric make_fabric(const std::string& name, bool quick) {
  Fabric f;
  f.name = name;
  if (name == "leaf_spine" || name == "leaf_spine_fail") {
    f.topo = build_leaf_spine(analysis::paper_leaf_spine_spec(quick));
  } else if (name == "fat_tree") {
    f.topo = build_fat_tree(analysis::paper_fat_tree_spec(quick));
  } else {
    fail("--fabrics: unknown fabric '{}' (expected leaf_spine, leaf_spine_fail, fat_tree)", name);
  }
  if (name == "leaf_spine_fail") {
    f.failed_label = "leaf0-spine0";
    f.fail = analysis::parse_failed_cable(f.topo, f.failed_label, "--fabrics");
  }
  return f;
}

// CCT over the seeds of one point: mean, min and max of the finished runs.
struct SeedStats {
  int finished = 0;
  bool all_finished = false;
  double mean = 0, min = 0, max = 0;
};

SeedStats seed_stats(const std::vector<analysis::ReproResult>& runs) {
  SeedStats s;
  double sum = 0;
  for (const auto& r : runs) {
    if (!r.finished) continue;
    s.min = s.finished == 0 ? r.cct_us : std::min(s.min, r.cct_us);
    s.max = s.finished == 0 ? r.cct_us : std::max(s.max, r.cct_us);
    sum += r.cct_us;
    ++s.finished;
  }
  s.all_finished = s.finished == static_cast<int>(runs.size()) && !runs.empty();
  s.mean = s.all_finished ? sum / s.finished : 0;
  return s;
}

// --plot-only: redraw the plots from <out>/net-repro.csv (e.g. after merging the CSVs of several runs).
void plot_only(const ReproOptions& o) {
  std::string path = o.out + "/net-repro.csv";
  const std::string text = lookahead::read_input_file(path, "--plot-only");
  for (const auto& p : analysis::write_repro_plots(text, o.out)) fmt::print("wrote {}\n", p);
}

std::vector<std::string> scheme_list(const ReproOptions& o) {
  auto names = split(!o.schemes.empty() ? o.schemes : "ecmp,mprdma-2,mprdma-4,mprdma-8,spray,reps,ethereal,ethereal-known");
  for (const auto& s : names)
    if (s != "reps" && s != "ethereal-known") {
      try {
        balance::parse_scheme(s, "--schemes");
      } catch (const lookahead::Error&) {
        fail("--schemes: unknown scheme '{}' (expected {}, reps or ethereal-known)", s, balance::kSchemeNames);
      }
    }
  return names;
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
  // The paper's network unless the spec sets one.
  const bool own_network = nlohmann::json::parse(lookahead::read_input_file(o.jobs, "--jobs")).contains("network");
  NetworkConfig cfg = own_network ? sc.network : analysis::paper_network_config();
  std::error_code ec;
  std::filesystem::create_directories(o.out, ec);
  if (ec || !std::filesystem::is_directory(o.out)) lookahead::fail("--out: cannot create directory '{}'", o.out);
  std::vector<std::string> schemes;
  for (const auto& s : scheme_list(o))
    if (s != "ethereal-known" || !failed.empty()) schemes.push_back(s);
  std::vector<analysis::ReproPoint> runs;
  for (const auto& scheme : schemes)
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
      runs.push_back(std::move(p));
    }
  int threads = o.threads > 0 ? o.threads : std::max(1u, std::thread::hardware_concurrency());
  auto results = analysis::run_grid(runs, threads, true);
  std::map<uint64_t, double> spray;  // seed -> spray makespan
  for (size_t i = 0; i < runs.size(); ++i)
    if (runs[i].scheme == "spray" && results[i].finished) spray[runs[i].seed] = results[i].cct_us;
  std::string csv = "spec,scheme,seed,finished,makespan_us,ratio_to_spray_same_seed,qps,max_qps_per_host,drops,retransmits,timeouts,events,wall_s,"
                    "queue_p50_bytes,queue_p99_bytes,queue_max_bytes";
  for (const auto& j : sc.jobs) csv += fmt::format(",cct_us_{}", j.name);
  csv += "\n";
  for (size_t i = 0; i < runs.size(); ++i) {
    const auto& r = results[i];
    auto it = spray.find(runs[i].seed);
    double ratio = it != spray.end() && r.finished ? r.cct_us / it->second : 0.0;
    csv += fmt::format("{},{},{},{},{:.3f},{:.4f},{},{},{},{},{},{},{:.2f}", runs[i].fabric, runs[i].scheme, runs[i].seed, r.finished ? 1 : 0,
                       r.cct_us, ratio, r.qps, r.max_qps_per_host, r.drops, r.retransmits, r.timeouts, r.events, r.wall_s);
    csv += fmt::format(",{:.0f},{:.0f},{}", r.queue_p50_bytes, r.queue_p99_bytes, r.queue_max_bytes);
    for (size_t k = 0; k < sc.jobs.size(); ++k) csv += fmt::format(",{:.3f}", k < r.job_cct_us.size() ? r.job_cct_us[k] : 0.0);
    csv += "\n";
  }
  auto summary = sc.topology.summary();
  std::string md = fmt::format("# lookahead net repro --jobs {}\n\n{} hosts, {} paths{}; {} job(s):\n\n", o.jobs, summary.hosts,
                               summary.max_paths, failed.empty() ? "" : ", failed links at time 0", sc.jobs.size());
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
                    o.seeds, o.seed, o.seed + static_cast<uint64_t>(o.seeds) - 1);
  for (const auto& j : sc.jobs) md += " " + j.name + " |";
  md += " QPs/host |\n|---|---|";
  for (size_t k = 0; k < sc.jobs.size(); ++k) md += "---|";
  md += "---|\n";
  double spray_mean = 0;
  for (size_t i = 0; i < runs.size(); i += static_cast<size_t>(o.seeds)) {
    std::vector<analysis::ReproResult> mine(results.begin() + static_cast<std::ptrdiff_t>(i),
                                            results.begin() + static_cast<std::ptrdiff_t>(i) + o.seeds);
    auto st = seed_stats(mine);
    if (runs[i].scheme == "spray" && st.all_finished) spray_mean = st.mean;
  }
  for (size_t i = 0; i < runs.size(); i += static_cast<size_t>(o.seeds)) {
    std::vector<analysis::ReproResult> mine(results.begin() + static_cast<std::ptrdiff_t>(i),
                                            results.begin() + static_cast<std::ptrdiff_t>(i) + o.seeds);
    auto st = seed_stats(mine);
    md += "| " + runs[i].scheme + " |";
    if (!st.all_finished) {
      md += st.finished > 0 ? fmt::format(" DNF in {} of {} seeds |", o.seeds - st.finished, o.seeds) : " DNF |";
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
      md += n == o.seeds ? fmt::format(" {:.0f} |", sum / n) : " DNF |";
    }
    for (const auto& r : mine) qps = std::max(qps, r.max_qps_per_host);
    md += fmt::format(" {} |\n", qps);
  }
  std::string base = o.out + "/net-repro-jobs";
  lookahead::write_file_atomic(base + ".csv", csv);
  lookahead::write_file_atomic(base + ".md", md);
  fmt::print("{}\nwrote {}.csv and {}.md\n", md, base, base);
}

// --- Sharding over processes (MPI or any launcher) --------------------------------------------------
// `mpirun -n N lookahead net repro --shard ...` (or --shard-index I --shard-count N per process, e.g. a
// Slurm job array): every process builds the same grid and runs the runs i (point x seed, in grid
// order) with i % N == I, writing their raw results to <out>/net-repro.shard-I-of-N.csv (atomically).
// Shard 0 then waits for the other N - 1 files, checks they belong to the same grid (a fingerprint of
// every run's fabric, algorithm, size, scheme and seed), puts the results back in grid order and
// writes the report exactly as one process would (--no-wall makes the CSVs byte-identical: wall_s is
// the only measured column). MPI itself is not linked: the launcher only starts the processes.

struct Shard {
  int index = 0, count = 1;
};

Shard resolve_shard(const ReproOptions& o) {
  Shard sh;
  const bool explicit_shard = o.shard_index >= 0 || o.shard_count > 0;
  if (o.shard && explicit_shard) fail("--shard: takes the shard from the launcher; do not combine it with --shard-index/--shard-count");
  if (explicit_shard) {
    if (o.shard_count < 1) fail("--shard-count: must be at least 1 (got {}); give it with --shard-index", o.shard_count);
    if (o.shard_index < 0 || o.shard_index >= o.shard_count)
      fail("--shard-index: must be in [0, {}) (got {})", o.shard_count, o.shard_index);
    return {o.shard_index, o.shard_count};
  }
  if (!o.shard) return sh;
  // Open MPI, MPICH / Intel MPI (PMI), Slurm's srun.
  static const std::pair<const char*, const char*> vars[] = {
      {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"}, {"PMI_RANK", "PMI_SIZE"}, {"SLURM_PROCID", "SLURM_NTASKS"}};
  for (const auto& [rank, size] : vars) {
    const char* r = std::getenv(rank);
    const char* n = std::getenv(size);
    if (!r || !n) continue;
    char* end = nullptr;
    long ri = std::strtol(r, &end, 10);
    bool ok = *r && !*end;
    long ni = std::strtol(n, &end, 10);
    ok = ok && *n && !*end && ni >= 1 && ri >= 0 && ri < ni && ni <= 1000000;
    if (!ok) fail("--shard: {}='{}' and {}='{}' are not a rank below a size", rank, r, size, n);
    return {static_cast<int>(ri), static_cast<int>(ni)};
  }
  fail("--shard: no launcher environment (OMPI_COMM_WORLD_RANK/SIZE, PMI_RANK/SIZE or SLURM_PROCID/NTASKS); run it "
       "under mpirun or srun, or give --shard-index and --shard-count");
}

std::string shard_path(const std::string& out, int index, int count) {
  return fmt::format("{}/net-repro.shard-{}-of-{}.csv", out, index, count);
}

// FNV-1a over every run's identity: shards of another grid (stale files, other flags) are refused.
std::string grid_fingerprint(const std::vector<analysis::ReproPoint>& runs) {
  uint64_t h = 1469598103934665603ull;
  auto add = [&](const std::string& text) {
    for (unsigned char c : text) h = (h ^ c) * 1099511628211ull;
  };
  for (const auto& r : runs)
    add(fmt::format("{}|{}|{}|{}|{}|{}|{}|{}|{}|{};", r.fabric, r.failed_label, collective::algorithm_name(r.collective.algorithm),
                    r.collective.message_bytes, r.collective.chunks, r.scheme, r.seed, r.topology.hosts(),
                    r.timing.batch_window_ps, r.timing.jitter_ps));
  return fmt::format("{:016x}", h);
}

constexpr const char* kShardColumns =
    "run,finished,cct_us,end_us,qps,max_qps_per_host,learned_paths,drops,retransmits,timeouts,events,failed_qps,wall_s,"
    "queue_p50_bytes,queue_p99_bytes,queue_max_bytes";

void write_shard(const std::string& path, const Shard& sh, const std::string& fingerprint, size_t runs,
                 const std::vector<size_t>& ids, const std::vector<analysis::ReproResult>& results) {
  // Doubles as fmt's shortest round-trip text: read back bit for bit.
  std::string text = fmt::format("# lookahead net repro shard {} of {}, grid {}, {} runs\n{}\n", sh.index, sh.count, fingerprint, runs,
                                 kShardColumns);
  for (size_t k = 0; k < ids.size(); ++k) {
    const auto& r = results[k];
    text += fmt::format("{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n", ids[k], r.finished ? 1 : 0, r.cct_us, r.end_us, r.qps,
                        r.max_qps_per_host, r.learned_paths, r.drops, r.retransmits, r.timeouts, r.events, r.failed_qps, r.wall_s,
                        r.queue_p50_bytes, r.queue_p99_bytes, r.queue_max_bytes);
  }
  lookahead::write_file_atomic(path, text);
}

// Reads shard `index` of `count` into `results` (by run index). Returns false if the file is absent
// or (when `stale_ok`) from another grid; throws on a malformed file.
bool read_shard(const std::string& path, int index, int count, const std::string& fingerprint, size_t runs, bool stale_ok,
                std::vector<analysis::ReproResult>& results, std::vector<char>& seen) {
  std::ifstream in(path);
  if (!in) return false;
  std::string header, columns, line;
  std::getline(in, header);
  const std::string want = fmt::format("# lookahead net repro shard {} of {}, grid {}, {} runs", index, count, fingerprint, runs);
  if (header != want) {
    if (stale_ok) return false;
    fail("--merge-shards: '{}' is from another grid or shard layout (its header: '{}'; expected '{}')", path, header, want);
  }
  std::getline(in, columns);
  if (columns != kShardColumns) fail("--merge-shards: '{}': unexpected columns '{}'", path, columns);
  while (std::getline(in, line)) {
    std::stringstream row(line);
    std::string cell;
    std::vector<std::string> c;
    while (std::getline(row, cell, ',')) c.push_back(cell);
    size_t id = 0;
    analysis::ReproResult r;
    try {
      if (c.size() != 16) throw std::invalid_argument("columns");
      id = std::stoull(c[0]);
      r.finished = c[1] == "1";
      r.cct_us = std::stod(c[2]);
      r.end_us = std::stod(c[3]);
      r.qps = std::stoi(c[4]);
      r.max_qps_per_host = std::stoi(c[5]);
      r.learned_paths = std::stoi(c[6]);
      r.drops = std::stoull(c[7]);
      r.retransmits = std::stoull(c[8]);
      r.timeouts = std::stoull(c[9]);
      r.events = std::stoull(c[10]);
      r.failed_qps = std::stoi(c[11]);
      r.wall_s = std::stod(c[12]);
      r.queue_p50_bytes = std::stod(c[13]);
      r.queue_p99_bytes = std::stod(c[14]);
      r.queue_max_bytes = std::stoull(c[15]);
    } catch (const std::exception&) {
      fail("--merge-shards: '{}': malformed row '{}'", path, line);
    }
    if (id >= runs || id % static_cast<size_t>(count) != static_cast<size_t>(index) || seen[id])
      fail("--merge-shards: '{}': run {} does not belong to shard {} of {} (or appears twice)", path, id, index, count);
    seen[id] = 1;
    results[id] = r;
  }
  return true;
}

// This process's share of the grid, and (shard 0, or --merge-shards) every result in grid order.
// Returns false when this process is done (a shard other than 0 wrote its file).
bool run_sharded(const ReproOptions& o, const std::vector<analysis::ReproPoint>& runs, int threads,
                 std::vector<analysis::ReproResult>& results, std::vector<std::string>& merged_files) {
  const std::string fingerprint = grid_fingerprint(runs);
  int count = o.merge_shards;
  if (count == 0) {
    const Shard sh = resolve_shard(o);
    count = sh.count;
    std::vector<analysis::ReproPoint> mine;
    std::vector<size_t> ids;
    for (size_t i = static_cast<size_t>(sh.index); i < runs.size(); i += static_cast<size_t>(sh.count)) {
      mine.push_back(runs[i]);
      ids.push_back(i);
    }
    auto part = analysis::run_grid(mine, threads, true);
    if (sh.count == 1) {
      results = std::move(part);
      return true;
    }
    const std::string path = shard_path(o.out, sh.index, sh.count);
    write_shard(path, sh, fingerprint, runs.size(), ids, part);
    if (sh.index != 0) {
      fmt::print("shard {} of {}: {} of {} runs; wrote {} (shard 0 merges)\n", sh.index, sh.count, ids.size(), runs.size(), path);
      return false;
    }
  }
  // Merge: wait for every shard's file of this grid (only shard 0 of a running job waits).
  const bool wait = o.merge_shards == 0;
  results.assign(runs.size(), {});
  std::vector<char> seen(runs.size(), 0);
  std::vector<char> have(static_cast<size_t>(count), 0);
  auto start = std::chrono::steady_clock::now();
  bool told = false;
  for (;;) {
    int missing = 0;
    for (int k = 0; k < count; ++k) {
      if (have[k]) continue;
      if (read_shard(shard_path(o.out, k, count), k, count, fingerprint, runs.size(), wait, results, seen)) {
        have[k] = 1;
        merged_files.push_back(shard_path(o.out, k, count));
      } else {
        ++missing;
      }
    }
    if (missing == 0) break;
    if (!wait) fail("--merge-shards: {} of {} shard files missing in '{}' (e.g. {})", missing, count, o.out,
                    shard_path(o.out, static_cast<int>(std::find(have.begin(), have.end(), 0) - have.begin()), count));
    double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (o.shard_timeout_s > 0 && waited > o.shard_timeout_s)
      fail("--shard: shard 0 waited {:g} s for {} of {} shard files in '{}'", waited, missing, count, o.out);
    if (!told) fmt::print(stderr, "shard 0 of {}: waiting for {} other shard file(s) in {}\n", count, missing, o.out), told = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  for (size_t i = 0; i < runs.size(); ++i)
    if (!seen[i]) fail("--merge-shards: run {} is in no shard file", i);
  return true;
}

void run_repro(ReproOptions& o) {
  if (o.plot_only) return plot_only(o);
  if (o.seeds < 1) lookahead::fail("--seeds: must be at least 1 (got {})", o.seeds);
  if (o.merge_shards < 0) lookahead::fail("--merge-shards: must be at least 1 (got {})", o.merge_shards);
  if (o.merge_shards > 0 && (o.shard || o.shard_index >= 0 || o.shard_count > 0))
    lookahead::fail("--merge-shards: merges finished shards; do not combine it with --shard/--shard-index/--shard-count");
  if (!o.jobs.empty() && (o.shard || o.shard_index >= 0 || o.shard_count > 0 || o.merge_shards > 0))
    lookahead::fail("--jobs: runs on one process; --shard, --shard-index/--shard-count and --merge-shards shard the grid");
  if (!o.jobs.empty()) return run_jobs(o);
  // Create the output directory before hours of simulation, not after.
  std::error_code ec;
  std::filesystem::create_directories(o.out, ec);
  if (ec || !std::filesystem::is_directory(o.out)) lookahead::fail("--out: cannot create directory '{}'", o.out);
  auto fabric_names = split(!o.fabrics.empty() ? o.fabrics : (o.quick ? "leaf_spine,leaf_spine_fail" : "leaf_spine,leaf_spine_fail,fat_tree"));
  auto size_names = split(!o.sizes.empty() ? o.sizes
                                           : (o.quick ? "1MiB,4MiB" : "1MiB,2MiB,4MiB,8MiB,16MiB,32MiB,64MiB,128MiB,256MiB"));
  auto algo_names = split(!o.algos.empty() ? o.algos : "direct,hd,ring,dbt");
  auto scheme_names = scheme_list(o);
  std::vector<Fabric> fabrics;
  for (const auto& n : fabric_names) fabrics.push_back(make_fabric(n, o.quick));
  std::vector<analysis::ReproPoint> points;
  for (const auto& fab : fabrics)
    for (const auto& a : algo_names)
      for (const auto& sz : size_names)
        for (const auto& sc : scheme_names) {
          // Without a failure ethereal-known plans and runs exactly as ethereal (unit test
          // EtherealLearnsAFailedPathFromQpTimeouts): no point simulating it twice.
          if (sc == "ethereal-known" && fab.fail.empty()) continue;
          analysis::ReproPoint p;
          p.fabric = fab.name;
          p.topology = fab.topo;
          p.fail = fab.fail;
          p.failed_label = fab.failed_label;
          p.collective.kind = collective::Kind::all_reduce;
          p.collective.algorithm = collective::parse_algorithm(a);
          p.collective.ranks = fab.topo.hosts();
          p.collective.message_bytes = collective::parse_bytes(sz, "--sizes");
          p.collective.chunks = o.chunks;
          p.scheme = sc;
          p.config = analysis::paper_network_config();
          p.timing = plan_timing(o);
          p.seed = o.seed;
          points.push_back(std::move(p));
        }
  int threads = o.threads > 0 ? o.threads : std::max(1u, std::thread::hardware_concurrency());
  // Every point once per seed (seed, seed+1, ...); a point's row aggregates its seeds.
  std::vector<analysis::ReproPoint> runs;
  for (const auto& p : points)
    for (int s = 0; s < o.seeds; ++s) {
      runs.push_back(p);
      runs.back().seed = o.seed + static_cast<uint64_t>(s);
    }
  std::vector<analysis::ReproResult> run_results;
  std::vector<std::string> merged_files;
  if (!run_sharded(o, runs, threads, run_results, merged_files)) return;
  if (o.no_wall)
    for (auto& r : run_results) r.wall_s = 0;
  std::vector<analysis::ReproResult> results(points.size());
  std::vector<SeedStats> stats(points.size());
  for (size_t i = 0; i < points.size(); ++i) {
    std::vector<analysis::ReproResult> mine(run_results.begin() + static_cast<std::ptrdiff_t>(i * o.seeds),
                                            run_results.begin() + static_cast<std::ptrdiff_t>((i + 1) * o.seeds));
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
    if (o.seeds > 1) {
      results[i].drops = results[i].retransmits = results[i].timeouts = results[i].events = 0;
      results[i].wall_s = 0;
      for (const auto& r : mine) {
        results[i].drops += r.drops;
        results[i].retransmits += r.retransmits;
        results[i].timeouts += r.timeouts;
        results[i].events += r.events;
        results[i].wall_s += r.wall_s;
      }
    }
  }

  // CSV: one row per point (with several seeds: the mean CCT, its min and max, and totals of the
  // counters over the seeds; ratio_to_spray is the ratio of the means over the same seeds).
  // Queue columns: the worst switch port's time-weighted p50 and p99 and the largest queue (bytes; the
  // worst seed's).
  std::string csv = "fabric,failed,algo,size_bytes,scheme,finished,cct_us,ratio_to_spray,qps,max_qps_per_host,drops,retransmits,timeouts,events,wall_s,"
                    "queue_p50_bytes,queue_p99_bytes,queue_max_bytes";
  csv += o.seeds > 1 ? ",seeds,cct_min_us,cct_max_us\n" : "\n";
  std::map<std::string, double> spray_cct;  // fabric|algo|size -> spray CCT
  auto key = [&](const analysis::ReproPoint& p) {
    return fmt::format("{}|{}|{}", p.fabric, collective::algorithm_name(p.collective.algorithm), p.collective.message_bytes);
  };
  for (size_t i = 0; i < points.size(); ++i)
    if (points[i].scheme == "spray" && results[i].finished) spray_cct[key(points[i])] = results[i].cct_us;
  auto ratio = [&](size_t i) {
    auto it = spray_cct.find(key(points[i]));
    return it != spray_cct.end() && results[i].finished ? results[i].cct_us / it->second : 0.0;
  };
  for (size_t i = 0; i < points.size(); ++i) {
    const auto& p = points[i];
    const auto& r = results[i];
    csv += fmt::format("{},{},{},{},{},{},{:.3f},{:.4f},{},{},{},{},{},{},{:.2f},{:.0f},{:.0f},{}", p.fabric, p.failed_label,
                       collective::algorithm_name(p.collective.algorithm), p.collective.message_bytes, p.scheme,
                       r.finished ? 1 : 0, r.cct_us, ratio(i), r.qps, r.max_qps_per_host, r.drops, r.retransmits, r.timeouts,
                       r.events, r.wall_s, r.queue_p50_bytes, r.queue_p99_bytes, r.queue_max_bytes);
    csv += o.seeds > 1 ? fmt::format(",{},{:.3f},{:.3f}\n", o.seeds, stats[i].min, stats[i].max) : "\n";
  }
  // Per seed: every run, its ratio against spray of the same seed.
  std::string seeds_csv;
  if (o.seeds > 1) {
    std::map<std::string, double> spray_seed;
    auto seed_key = [&](const analysis::ReproPoint& p) { return fmt::format("{}|{}", key(p), p.seed); };
    for (size_t i = 0; i < runs.size(); ++i)
      if (runs[i].scheme == "spray" && run_results[i].finished) spray_seed[seed_key(runs[i])] = run_results[i].cct_us;
    seeds_csv = "fabric,failed,algo,size_bytes,scheme,seed,finished,cct_us,ratio_to_spray_same_seed\n";
    for (size_t i = 0; i < runs.size(); ++i) {
      auto it = spray_seed.find(seed_key(runs[i]));
      double rr = it != spray_seed.end() && run_results[i].finished ? run_results[i].cct_us / it->second : 0.0;
      seeds_csv += fmt::format("{},{},{},{},{},{},{},{:.3f},{:.4f}\n", runs[i].fabric, runs[i].failed_label,
                               collective::algorithm_name(runs[i].collective.algorithm), runs[i].collective.message_bytes,
                               runs[i].scheme, runs[i].seed, run_results[i].finished ? 1 : 0, run_results[i].cct_us, rr);
    }
  }
  // Markdown: per fabric and algorithm, sizes x schemes, CCT in us and (ratio to spray).
  std::string md = fmt::format("# lookahead net repro{}\n\nAll-reduce collective completion time (us) per scheme; in brackets the ratio "
                               "to spray (oblivious packet spraying; (-) where spray did not finish). DNF: did not finish (a QP gave up after "
                               "the retry limit, 7 timeouts in a row, or the time limit passed). ethereal starts knowing no "
                               "failure and learns failed paths from QP timeouts (first iteration); ethereal-known is told the failed "
                               "link at the start (the steady state).\n",
                               o.quick ? " --quick" : "");
  md += fmt::format("\nEthereal's QPs (ethereal, ethereal-known, ethereal-min, ethereal-tiered) to other leaves start {:g} ns (batching "
                    "window) plus a seeded 0-{:g} ns jitter after their flow is ready (--batch-window-ns, --jitter-ns).\n",
                    o.batch_window_ns, o.jitter_ns);
  if (o.seeds > 1)
    md += fmt::format("\nEach cell: mean CCT over {} seeds ({}..{}) [min-max] (ratio of the mean to spray's mean over the same "
                      "seeds). Per-seed runs: net-repro-seeds.csv.\n",
                      o.seeds, o.seed, o.seed + static_cast<uint64_t>(o.seeds) - 1);
  for (const auto& fab : fabrics) {
    auto s = fab.topo.summary();
    md += fmt::format("\n## {}: {} hosts, {} paths{}\n", fab.name, s.hosts, s.max_paths,
                      fab.failed_label.empty() ? "" : ", failed cable " + fab.failed_label);
    for (const auto& a : algo_names) {
      md += fmt::format("\n### {}\n\n| size |", a);
      for (const auto& sc : scheme_names) md += " " + sc + " |";
      md += "\n|---|";
      for (size_t k = 0; k < scheme_names.size(); ++k) md += "---|";
      md += "\n";
      for (const auto& sz : size_names) {
        md += "| " + sz + " |";
        for (const auto& sc : scheme_names) {
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
          std::string rel = ratio(i) > 0 ? fmt::format(" ({:.2f})", ratio(i)) : " (-)";
          if (!r.finished)
            md += stats[i].finished > 0 ? fmt::format(" DNF in {} of {} seeds |", o.seeds - stats[i].finished, o.seeds) : " DNF |";
          else if (o.seeds > 1)
            md += fmt::format(" {:.0f} [{:.0f}-{:.0f}]{} |", r.cct_us, stats[i].min, stats[i].max, rel);
          else
            md += fmt::format(" {:.0f}{} |", r.cct_us, rel);
        }
        md += "\n";
      }
    }
    md += "\nQPs per host (max over steps and sizes):";
    for (const auto& sc : scheme_names) {
      int q = -1;
      for (size_t i = 0; i < points.size(); ++i)
        if (points[i].fabric == fab.name && points[i].scheme == sc) q = std::max(q, results[i].max_qps_per_host);
      if (q >= 0) md += fmt::format(" {} {};", sc, q);
    }
    md += "\n\nSwitch queues, worst port (time-weighted p99 / largest, KiB; the worst point over sizes, algorithms and seeds):";
    for (const auto& sc : scheme_names) {
      double p99 = -1;
      uint64_t most = 0;
      for (size_t i = 0; i < points.size(); ++i)
        if (points[i].fabric == fab.name && points[i].scheme == sc)
          p99 = std::max(p99, results[i].queue_p99_bytes), most = std::max(most, results[i].queue_max_bytes);
      if (p99 >= 0) md += fmt::format(" {} {:.0f} / {:.0f};", sc, p99 / 1024.0, static_cast<double>(most) / 1024.0);
    }
    md += "\n";
  }
  std::string base = o.out + "/net-repro";
  lookahead::write_file_atomic(base + ".csv", csv);
  lookahead::write_file_atomic(base + ".md", md);
  if (o.seeds > 1) lookahead::write_file_atomic(base + "-seeds.csv", seeds_csv);
  auto plots = analysis::write_repro_plots(csv, o.out);
  fmt::print("{}", md);
  double wall = 0;
  for (const auto& r : results) wall += r.wall_s;
  fmt::print("\n{} points x {} seed(s) on {} threads ({:.1f} s of simulation); wrote {}.csv, {}.md{} and {} plot(s): {}\n",
             points.size(), o.seeds, threads, wall, base, base, o.seeds > 1 ? ", " + base + "-seeds.csv" : "", plots.size(),
             fmt::join(plots, ", "));
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
       cmd.add_flag("--no-wall", o->no_wall, "write wall_s as 0, so reruns and sharded runs give byte-identical CSVs");
       cmd.callback([o] { run_repro(*o); });
     }});

}  // namespace
