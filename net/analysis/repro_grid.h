#pragma once
// The configuration of `lookahead net repro`: the paper's fabrics, the grid of points (fabric x
// algorithm x size x scheme, each once per seed) and its sharding over processes.
//
// Contract:
// - split_list(text): the comma-separated items of text, empty items dropped.
// - run_scheme_list(schemes): the --schemes list ("" = ecmp,mprdma-2,mprdma-4,mprdma-8,spray,reps,
//   ethereal,ethereal-known); throws lookahead::Error naming --schemes on an unknown scheme.
// - make_repro_fabric(name, quick): leaf_spine, leaf_spine_fail (leaf0-spine0 failed at the start)
//   or fat_tree at the paper's size (paper_fabrics.h; quick: the small ones); throws naming --fabrics.
// - make_repro_grid(spec): points in fabric, algorithm, size, scheme order (all-reduce on every host,
//   the paper's network with spec's RTO and congestion control, spec's chunks, timing and seed), leaving out ethereal-known where nothing
//   failed (it would run exactly as ethereal); runs = every point once per seed (seed, seed+1, ...),
//   a point's seeds consecutive. Unset lists take the defaults (quick: 8x8x8 leaf-spine with and
//   without the failed cable, 1 and 4 MiB).
// - seed_stats(runs): the CCT over one point's seeds: mean (only when all finished), min and max of
//   the finished runs.
// - Sharding: `mpirun -n N lookahead net repro --shard ...` (or --shard-index I --shard-count N per
//   process, e.g. a Slurm job array): every process builds the same grid and runs the runs i with
//   i % N == I, writing their raw results to <out>/net-repro.shard-I-of-N.csv (atomically). Shard 0
//   then waits for the other N - 1 files, checks they belong to the same grid (a fingerprint of
//   every run's fabric, algorithm, size, chunks, scheme, seed, hosts, timing, RTO, congestion control and
//   rendezvous), and puts the
//   results back in grid order, so the report is exactly what one process writes (doubles are
//   written as shortest round-trip text). MPI itself is not linked: the launcher only starts them.
//   run_sharded() returns false when this process is done (a shard other than 0 wrote its file);
//   with merge_shards > 0 it runs nothing and merges finished shard files (missing ones are an
//   error). shard_from_environment() reads the rank and size of Open MPI, MPICH/Intel MPI (PMI) or
//   Slurm; throws naming --shard without one.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "net/analysis/repro.h"

namespace lookahead::net::analysis {

std::vector<std::string> split_list(const std::string& text);
std::vector<std::string> run_scheme_list(const std::string& schemes);

// A fabric of the grid: the built topology and the cable (if any) failed at the start.
struct ReproFabric {
  std::string name;
  Topology topo;
  std::vector<int> fail;
  std::string failed_label;
};
ReproFabric make_repro_fabric(const std::string& name, bool quick);

struct GridSpec {
  bool quick = false;
  std::string fabrics, sizes, algos, schemes;  // comma lists; "" = the defaults
  int chunks = 4;
  uint64_t seed = 1;
  int seeds = 1;
  balance::PlanTiming timing = balance::kPaperTiming;
  double rto_us = 0;  // the QPs' retransmission timeout; 0 = the network's default (NetworkConfig::rto_ps, 200 us)
  // Congestion control of every QP; unset = the paper's (DCTCP-style ECN windows). DCQCN is what RoCE
  // NICs run: a rate per QP, the window only a safety bound.
  std::optional<CongestionControl> cc;
  bool rendezvous = false;  // ring and hd step-synchronous (collective::CollectiveSpec::rendezvous)
};

struct ReproGrid {
  std::vector<ReproFabric> fabrics;
  std::vector<std::string> algos, sizes, schemes;  // as given (the report's rows and columns)
  std::vector<ReproPoint> points;
  std::vector<ReproPoint> runs;  // point-major, seeds consecutive
};
ReproGrid make_repro_grid(const GridSpec& spec);

// CCT over the seeds of one point: mean, min and max of the finished runs.
struct SeedStats {
  int finished = 0;
  bool all_finished = false;
  double mean = 0, min = 0, max = 0;
};
SeedStats seed_stats(const std::vector<ReproResult>& runs);

struct Shard {
  int index = 0, count = 1;
};
Shard shard_from_environment();
std::string shard_path(const std::string& out, int index, int count);
std::string grid_fingerprint(const std::vector<ReproPoint>& runs);

struct ShardOptions {
  std::string out;            // the directory every shard sees
  Shard shard;                // this process's (ignored when merging)
  int merge_shards = 0;       // > 0: only merge that many shard files
  double shard_timeout_s = 0;  // shard 0's wait for the others (0: no limit)
};
bool run_sharded(const ShardOptions& o, const std::vector<ReproPoint>& runs, int threads, std::vector<ReproResult>& results,
                 std::vector<std::string>& merged_files);

}  // namespace lookahead::net::analysis
