#pragma once
// The reports of `lookahead net repro`: per-point aggregation over seeds and the CSV and markdown
// texts (the SVG plots are plot.h's). Pure: they return text; the caller writes the files.
//
// Contract:
// - aggregate_seeds(grid, run_results, seeds): run_results in grid.runs order. Per point: finished
//   only if every seed finished, cct_us the mean over the seeds, QPs and queue columns the worst
//   seed's; with several seeds drops, retransmits, timeouts, events and wall_s are totals. ratio[i]
//   is the point's mean CCT over spray's at the same fabric, algorithm and size (0 where either did
//   not finish every seed).
// - grid_csv: net-repro.csv, one row per point (plus seeds, cct_min_us, cct_max_us with several
//   seeds); grid_seeds_csv: net-repro-seeds.csv, one row per run with its ratio to spray of the
//   same seed; grid_markdown: net-repro.md, per fabric and algorithm a sizes x schemes table of CCT
//   (ratio to spray), then QPs per host and the worst switch queues per scheme.
// - jobs_csv / jobs_markdown (--jobs): one row per scheme and seed (makespan, ratio to spray of the
//   same seed, each job's completion time), and per scheme the mean makespan over the seeds with its
//   min-max and each job's mean completion time; runs are scheme-major, seeds consecutive.
#include <cstdint>
#include <string>
#include <vector>

#include "net/analysis/repro.h"
#include "net/analysis/repro_grid.h"
#include "net/scenario/spec.h"

namespace lookahead::net::analysis {

struct GridReport {
  std::vector<ReproResult> results;  // per point
  std::vector<SeedStats> stats;      // per point
  std::vector<double> ratio;         // per point: mean CCT / spray's mean CCT (0: none)
};
GridReport aggregate_seeds(const ReproGrid& grid, const std::vector<ReproResult>& run_results, int seeds);

std::string grid_csv(const ReproGrid& grid, const GridReport& report, int seeds);
std::string grid_seeds_csv(const ReproGrid& grid, const std::vector<ReproResult>& run_results);
std::string grid_markdown(const ReproGrid& grid, const GridReport& report, const GridSpec& spec, double batch_window_ns,
                          double jitter_ns);

std::string jobs_csv(const Scenario& sc, const std::vector<ReproPoint>& runs, const std::vector<ReproResult>& results);
std::string jobs_markdown(const std::string& spec_path, const Scenario& sc, bool failed, const std::vector<ReproPoint>& runs,
                          const std::vector<ReproResult>& results, int seeds, uint64_t seed);

}  // namespace lookahead::net::analysis
