// `lookahead net repro [--quick]`: the paper's packet-level grid (all-reduce CCT per algorithm, size,
// scheme, with and without a failed link, leaf-spine and fat-tree) on the packet simulator, points in
// parallel over the cores; writes <out>/net-repro.csv and <out>/net-repro.md and prints the table.
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <thread>

#include "cli/command.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "net/analysis/congestion.h"
#include "net/analysis/plot.h"
#include "net/analysis/repro.h"

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
};

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

NetworkConfig paper_config() {
  // v2's setup: 9000-byte payloads, DCTCP-style ECN, 64 MB shared switch buffers, no PFC.
  NetworkConfig cfg;
  cfg.mtu_bytes = 9000;
  cfg.shared_buffer_bytes = 64ull << 20;
  cfg.ecn_kmin_bytes = cfg.ecn_kmax_bytes = 200 * 1024;
  cfg.cc = CongestionControl::dctcp;
  return cfg;
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
    LeafSpineSpec spec;  // paper: 16 leaves x 16 spines x 16 hosts, 400 Gbps, 500 ns
    if (quick) spec.leaves = spec.spines = spec.hosts_per_leaf = 8;
    f.topo = build_leaf_spine(spec);
  } else if (name == "fat_tree") {
    // Paper: 512 GPUs, 32 ToR, 32 aggregation, 16 core, 1:1 -> 2 pods of 16 ToRs (16 hosts each) and 16
    // aggs; agg j of both pods links to core j over 16 parallel cables.
    FatTreeSpec spec;
    spec.host_gbps = 400;
    if (quick) {
      spec.pods = 2, spec.tors_per_pod = 4, spec.aggs_per_pod = 4, spec.cores = 4, spec.hosts_per_tor = 4;
      spec.core_parallel_links = 4;
    } else {
      spec.pods = 2, spec.tors_per_pod = 16, spec.aggs_per_pod = 16, spec.cores = 16, spec.hosts_per_tor = 16;
      spec.core_parallel_links = 16;
    }
    f.topo = build_fat_tree(spec);
  } else {
    fail("--fabrics: unknown fabric '{}' (expected leaf_spine, leaf_spine_fail, fat_tree)", name);
  }
  if (name == "leaf_spine_fail") {
    f.failed_label = "leaf0-spine0";
    f.fail = analysis::parse_failed_cable(f.topo, f.failed_label, "--fabrics");
  }
  return f;
}

// --plot-only: redraw the plots from <out>/net-repro.csv (e.g. after merging the CSVs of several runs).
void plot_only(const ReproOptions& o) {
  std::string path = o.out + "/net-repro.csv";
  std::ifstream in(path, std::ios::binary);
  if (!in) lookahead::fail("--plot-only: cannot open '{}'", path);
  std::stringstream text;
  text << in.rdbuf();
  for (const auto& p : analysis::write_repro_plots(text.str(), o.out)) fmt::print("wrote {}\n", p);
}

void run_repro(ReproOptions& o) {
  if (o.plot_only) return plot_only(o);
  // Create the output directory before hours of simulation, not after.
  std::error_code ec;
  std::filesystem::create_directories(o.out, ec);
  if (ec || !std::filesystem::is_directory(o.out)) lookahead::fail("--out: cannot create directory '{}'", o.out);
  auto fabric_names = split(!o.fabrics.empty() ? o.fabrics : (o.quick ? "leaf_spine,leaf_spine_fail" : "leaf_spine,leaf_spine_fail,fat_tree"));
  auto size_names = split(!o.sizes.empty() ? o.sizes
                                           : (o.quick ? "1MiB,4MiB" : "1MiB,2MiB,4MiB,8MiB,16MiB,32MiB,64MiB,128MiB,256MiB"));
  auto algo_names = split(!o.algos.empty() ? o.algos : "direct,hd,ring,dbt");
  auto scheme_names = split(!o.schemes.empty() ? o.schemes : "ecmp,mprdma-2,mprdma-4,mprdma-8,spray,reps,ethereal,ethereal-known");
  for (const auto& s : scheme_names)
    if (s != "reps" && s != "ethereal-known") {
      try {
        balance::parse_scheme(s, "--schemes");
      } catch (const lookahead::Error&) {
        fail("--schemes: unknown scheme '{}' (expected ecmp, mprdma-X, spray, reps, ethereal, ethereal-known or ethereal-min)", s);
      }
    }
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
          p.config = paper_config();
          p.seed = o.seed;
          points.push_back(std::move(p));
        }
  int threads = o.threads > 0 ? o.threads : std::max(1u, std::thread::hardware_concurrency());
  auto results = analysis::run_grid(points, threads, true);

  // CSV: one row per point.
  std::string csv = "fabric,failed,algo,size_bytes,scheme,finished,cct_us,ratio_to_spray,qps,max_qps_per_host,drops,retransmits,timeouts,events,wall_s\n";
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
    csv += fmt::format("{},{},{},{},{},{},{:.3f},{:.4f},{},{},{},{},{},{},{:.2f}\n", p.fabric, p.failed_label,
                       collective::algorithm_name(p.collective.algorithm), p.collective.message_bytes, p.scheme,
                       r.finished ? 1 : 0, r.cct_us, ratio(i), r.qps, r.max_qps_per_host, r.drops, r.retransmits, r.timeouts,
                       r.events, r.wall_s);
  }
  // Markdown: per fabric and algorithm, sizes x schemes, CCT in us and (ratio to spray).
  std::string md = fmt::format("# lookahead net repro{}\n\nAll-reduce collective completion time (us) per scheme; in brackets the ratio "
                               "to spray (oblivious packet spraying). DNF: did not finish within the time limit. ethereal starts knowing no "
                               "failure and learns failed paths from QP timeouts (first iteration); ethereal-known is told the failed "
                               "link at the start (the steady state).\n",
                               o.quick ? " --quick" : "");
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
          md += r.finished ? fmt::format(" {:.0f} ({:.2f}) |", r.cct_us, ratio(i)) : " DNF |";
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
    md += "\n";
  }
  std::string base = o.out + "/net-repro";
  lookahead::write_file_atomic(base + ".csv", csv);
  lookahead::write_file_atomic(base + ".md", md);
  auto plots = analysis::write_repro_plots(csv, o.out);
  fmt::print("{}", md);
  double wall = 0;
  for (const auto& r : results) wall += r.wall_s;
  fmt::print("\n{} points on {} threads ({:.1f} s of simulation); wrote {}.csv, {}.md and {} plot(s): {}\n", points.size(), threads,
             wall, base, base, plots.size(), fmt::join(plots, ", "));
}

const bool registered = lookahead::cli::register_command(
    {"net", "repro", "Reproduce the paper's packet-level grid (CCT per algorithm, size, scheme; failures; fat-tree)",
     [](CLI::App& cmd) {
       auto o = std::make_shared<ReproOptions>();
       cmd.add_flag("--quick", o->quick, "a small subset (8x8x8 leaf-spine, 1 and 4 MiB, with and without a failed link)");
       cmd.add_option("--fabrics", o->fabrics, "comma list of leaf_spine, leaf_spine_fail, fat_tree");
       cmd.add_option("--sizes", o->sizes, "comma list of all-reduce sizes (default 1MiB..256MiB; quick 1MiB,4MiB)");
       cmd.add_option("--algos", o->algos, "comma list of direct, hd, ring, dbt (default all)");
       cmd.add_option("--schemes", o->schemes,
                      "comma list (default ecmp,mprdma-2,mprdma-4,mprdma-8,spray,reps,ethereal,ethereal-known; ethereal learns "
                      "failed paths from QP timeouts, ethereal-known is told them at the start and runs only where a link failed)");
       cmd.add_option("--threads", o->threads, "parallel points (default: the machine's cores)");
       cmd.add_option("--chunks", o->chunks, "dbt pipeline chunks per tree (default 4)");
       cmd.add_option("--seed", o->seed, "seed (default 1)");
       cmd.add_option("--out", o->out, "directory for net-repro.csv, net-repro.md and net-repro-<fabric>.svg (default .)");
       cmd.add_flag("--plot-only", o->plot_only, "only redraw the SVG plots from <out>/net-repro.csv");
       cmd.callback([o] { run_repro(*o); });
     }});

}  // namespace
