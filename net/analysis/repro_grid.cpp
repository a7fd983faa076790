#include "net/analysis/repro_grid.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/atomic_file.h"
#include "common/error.h"
#include "net/analysis/congestion.h"
#include "net/analysis/paper_fabrics.h"

namespace lookahead::net::analysis {

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

ReproFabric make_repro_fabric(const std::string& name, bool quick) {
  ReproFabric f;
  f.name = name;
  if (name == "leaf_spine" || name == "leaf_spine_fail") {
    f.topo = build_leaf_spine(paper_leaf_spine_spec(quick));
  } else if (name == "fat_tree") {
    f.topo = build_fat_tree(paper_fat_tree_spec(quick));
  } else {
    fail("--fabrics: unknown fabric '{}' (expected leaf_spine, leaf_spine_fail, fat_tree)", name);
  }
  if (name == "leaf_spine_fail") {
    f.failed_label = "leaf0-spine0";
    f.fail = parse_failed_cable(f.topo, f.failed_label, "--fabrics");
  }
  return f;
}

SeedStats seed_stats(const std::vector<ReproResult>& runs) {
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

std::vector<std::string> run_scheme_list(const std::string& schemes) {
  auto names = split_list(!schemes.empty() ? schemes : "ecmp,mprdma-2,mprdma-4,mprdma-8,spray,reps,ethereal,ethereal-known");
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

Shard shard_from_environment() {
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
std::string grid_fingerprint(const std::vector<ReproPoint>& runs) {
  uint64_t h = 1469598103934665603ull;
  auto add = [&](const std::string& text) {
    for (unsigned char c : text) h = (h ^ c) * 1099511628211ull;
  };
  for (const auto& r : runs)
    add(fmt::format("{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{};", r.fabric, r.failed_label, collective::algorithm_name(r.collective.algorithm),
                    r.collective.message_bytes, r.collective.chunks, r.scheme, r.seed, r.topology.hosts(),
                    r.timing.batch_window_ps, r.timing.jitter_ps, r.config.rto_ps,
                    congestion_control_name(r.config.cc), r.collective.rendezvous));
  return fmt::format("{:016x}", h);
}

namespace {

const char* const kShardColumns =
    "run,finished,cct_us,end_us,qps,max_qps_per_host,learned_paths,drops,retransmits,timeouts,events,failed_qps,wall_s,"
    "queue_p50_bytes,queue_p99_bytes,queue_max_bytes";

void write_shard(const std::string& path, const Shard& sh, const std::string& fingerprint, size_t runs,
                 const std::vector<size_t>& ids, const std::vector<ReproResult>& results) {
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
                std::vector<ReproResult>& results, std::vector<char>& seen) {
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
    ReproResult r;
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

}  // namespace

// This process's share of the grid, and (shard 0, or --merge-shards) every result in grid order.
// Returns false when this process is done (a shard other than 0 wrote its file).
bool run_sharded(const ShardOptions& o, const std::vector<ReproPoint>& runs, int threads,
                 std::vector<ReproResult>& results, std::vector<std::string>& merged_files) {
  const std::string fingerprint = grid_fingerprint(runs);
  int count = o.merge_shards;
  if (count == 0) {
    const Shard sh = o.shard;
    count = sh.count;
    std::vector<ReproPoint> mine;
    std::vector<size_t> ids;
    for (size_t i = static_cast<size_t>(sh.index); i < runs.size(); i += static_cast<size_t>(sh.count)) {
      mine.push_back(runs[i]);
      ids.push_back(i);
    }
    auto part = run_grid(mine, threads, true);
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

ReproGrid make_repro_grid(const GridSpec& g) {
  ReproGrid grid;
  auto fabric_names = split_list(!g.fabrics.empty() ? g.fabrics : (g.quick ? "leaf_spine,leaf_spine_fail" : "leaf_spine,leaf_spine_fail,fat_tree"));
  grid.sizes = split_list(!g.sizes.empty() ? g.sizes : (g.quick ? "1MiB,4MiB" : "1MiB,2MiB,4MiB,8MiB,16MiB,32MiB,64MiB,128MiB,256MiB"));
  grid.algos = split_list(!g.algos.empty() ? g.algos : "direct,hd,ring,dbt");
  grid.schemes = run_scheme_list(g.schemes);
  for (const auto& n : fabric_names) grid.fabrics.push_back(make_repro_fabric(n, g.quick));
  for (const auto& fab : grid.fabrics)
    for (const auto& a : grid.algos)
      for (const auto& sz : grid.sizes)
        for (const auto& sc : grid.schemes) {
          // Without a failure ethereal-known plans and runs exactly as ethereal (unit test
          // EtherealLearnsAFailedPathFromQpTimeouts): no point simulating it twice.
          if (sc == "ethereal-known" && fab.fail.empty()) continue;
          ReproPoint p;
          p.fabric = fab.name;
          p.topology = fab.topo;
          p.fail = fab.fail;
          p.failed_label = fab.failed_label;
          p.collective.kind = collective::Kind::ALL_REDUCE;
          p.collective.algorithm = collective::parse_algorithm(a);
          p.collective.ranks = fab.topo.hosts();
          p.collective.message_bytes = collective::parse_bytes(sz, "--sizes");
          p.collective.chunks = g.chunks;
          p.collective.rendezvous = g.rendezvous;
          p.scheme = sc;
          p.config = paper_network_config();
          if (g.rto_us > 0) p.config.rto_ps = static_cast<SimTime>(g.rto_us * 1e6);
          if (g.cc) p.config.cc = *g.cc;
          p.timing = g.timing;
          p.seed = g.seed;
          grid.points.push_back(std::move(p));
        }
  // Every point once per seed (seed, seed+1, ...); a point's row aggregates its seeds.
  for (const auto& p : grid.points)
    for (int s = 0; s < g.seeds; ++s) {
      grid.runs.push_back(p);
      grid.runs.back().seed = g.seed + static_cast<uint64_t>(s);
    }
  return grid;
}

}  // namespace lookahead::net::analysis
