// `lookahead net run`: simulate a scenario (spec file, or topology and workload flags) and report
// flow completion times, link statistics and dependency-group completion times.
#include <fmt/format.h>
#include <sys/resource.h>

#include <chrono>
#include <memory>

#include "cli/command.h"
#include "cli/resource_flags.h"
#include "cli/net_topology_flags.h"
#include "common/atomic_file.h"
#include "common/progress.h"
#include "net/sim/results.h"
#include "net/scenario/spec.h"

namespace {

using namespace lookahead::net;

struct RunOptions {
  lookahead::cli::TopologyFlags topo;
  std::string spec, matrix, workload, out, csv;
  std::string memory_limit = "auto";
  uint64_t bytes = 2'000'000;
  int receiver = 0, senders = 0;
  std::string lb, cc;
  uint64_t seed = 1;
  uint32_t mtu = 0;
  bool pfc = false, json = false, links = false, progress = false, perf = false;
  uint64_t shared_buffer = 0, port_buffer = 0;
  double until_us = -1, rto_us = -1;
  uint64_t init_cwnd = 0, max_cwnd = 0;
  uint32_t retry_limit = 7;
  std::string reps_state;
  std::vector<CLI::Option*> opts;  // lb, cc, seed, mtu, pfc, ... (override the spec when given)
  CLI::Option *lb_opt = nullptr, *cc_opt = nullptr, *seed_opt = nullptr, *mtu_opt = nullptr, *pfc_opt = nullptr,
              *shared_opt = nullptr, *port_opt = nullptr, *until_opt = nullptr, *rto_opt = nullptr, *workload_opt = nullptr,
              *init_cwnd_opt = nullptr, *max_cwnd_opt = nullptr, *retry_opt = nullptr, *reps_state_opt = nullptr;
};

// The scenario: a spec file or the topology flags, the network flags over the spec's, and the flows.
Scenario load(RunOptions& o) {
  Scenario sc;
  if (!o.spec.empty()) {
    if (o.topo.any_given()) lookahead::fail("--spec: topology flags cannot be combined with a spec file");
    sc = load_scenario(o.spec);
  } else {
    sc.topology = o.topo.build();
  }
  NetworkConfig& c = sc.network;
  if (o.lb_opt->count()) c.lb = parse_load_balancing(o.lb, "--lb");
  if (o.cc_opt->count()) c.cc = parse_congestion_control(o.cc, "--cc");
  if (o.seed_opt->count()) c.seed = o.seed;
  if (o.mtu_opt->count()) c.mtu_bytes = o.mtu;
  if (o.pfc_opt->count()) c.pfc = o.pfc;
  if (o.shared_opt->count()) c.shared_buffer_bytes = o.shared_buffer;
  if (o.port_opt->count()) c.port_buffer_bytes = o.port_buffer;
  if (o.rto_opt->count()) {
    if (!(o.rto_us > 0)) lookahead::fail("--rto-us: must be positive");
    c.rto_ps = static_cast<SimTime>(o.rto_us * 1e6);
  }
  if (o.init_cwnd_opt->count()) c.init_cwnd_bytes = o.init_cwnd;
  if (o.max_cwnd_opt->count()) c.max_cwnd_bytes = o.max_cwnd;
  if (o.retry_opt->count()) c.retry_limit = o.retry_limit;
  if (o.reps_state_opt->count()) c.reps_state = parse_reps_state(o.reps_state, "--reps-state");
  if (o.until_opt->count()) {
    if (!(o.until_us > 0)) lookahead::fail("--until-us: must be positive");
    sc.until_ps = static_cast<SimTime>(o.until_us * 1e6);
  }
  if (!o.workload.empty()) {
    int senders = o.senders > 0 ? o.senders : sc.topology.hosts() - 1;
    add_generated(sc.workload, sc.topology, o.workload, o.bytes, c.seed, o.receiver, senders, "--workload");
  }
  if (!o.matrix.empty()) load_connection_matrix(o.matrix, sc.topology, sc.workload);
  if (sc.workload.flows.empty()) lookahead::fail("no flows: give --workload, --matrix or a spec with 'flows' or 'workload'");
  return sc;
}

// --csv, --out and --json; returns true when the results went out as JSON (no summary then).
bool write_results(const RunOptions& o, const Scenario& sc, const SimResult& r) {
  const NetworkConfig& c = sc.network;
  if (!o.csv.empty()) {
    lookahead::write_file_atomic(o.csv + "_flows.csv", flows_csv(r));
    lookahead::write_file_atomic(o.csv + "_links.csv", links_csv(r, sc.topology));
  }
  if (o.json || !o.out.empty()) {
    nlohmann::json j = results_json(r, sc.topology, o.links);
    j["config"] = {{"topology", sc.topology.kind},
                   {"hosts", sc.topology.hosts()},
                   {"lb", load_balancing_name(c.lb)},
                   {"cc", congestion_control_name(c.cc)},
                   {"mtu", c.mtu_bytes},
                   {"pfc", c.pfc},
                   {"retry_limit", c.retry_limit},
                   {"reps_state", reps_state_name(c.reps_state)},
                   {"init_cwnd_bytes", c.init_cwnd_bytes},  // 0: the default (net/sim/config.h)
                   {"max_cwnd_bytes", c.max_cwnd_bytes},
                   {"seed", c.seed}};
    std::string text = j.dump(2) + "\n";
    if (!o.out.empty()) lookahead::write_file_atomic(o.out, text);
    if (o.json) fmt::print("{}", text);
    return true;
  }
  return false;
}

void print_summary(const Scenario& sc, const SimResult& r) {
  const NetworkConfig& c = sc.network;
  FlowSummary s = summarise(r);
  fmt::print("{} hosts, {} flows, lb {}, cc {}: {} of {} finished by {:.3f} us{}\n", sc.topology.hosts(), s.flows,
             load_balancing_name(c.lb), congestion_control_name(c.cc),
             s.finished, s.flows, static_cast<double>(r.end_ps) / 1e6,
             s.failed > 0 ? fmt::format(", {} FAILED (retry limit {} reached), {} never started", s.failed, c.retry_limit, s.not_started)
                          : std::string());
  fmt::print("  FCT us: mean {:.3f}  p50 {:.3f}  p99 {:.3f}  max {:.3f}\n", s.mean_fct_us, s.p50_fct_us, s.p99_fct_us, s.max_fct_us);
  fmt::print("  drops {}  ECN marks {}  pauses {}  retransmits {}  timeouts {}  max queue {} B  max link utilisation {:.3f}\n", r.drops,
             r.ecn_marks, r.pauses, r.retransmits, r.timeouts, s.max_queue_bytes, s.max_link_utilisation);
  for (const auto& g : r.groups)
    fmt::print("  group {}: {}/{} flows, completion {}\n", g.name, g.finished, g.flows,
               g.failed > 0                ? fmt::format("FAILED ({} flows failed)", g.failed)
               : g.finish_ps == kNever ? std::string("unfinished")
                                       : fmt::format("{:.3f} us", static_cast<double>(g.finish_ps - g.start_ps) / 1e6));
  if (!sc.jobs.empty()) {
    // One group per job, named after it (spec.h): the makespan is the last one's finish.
    SimTime last = 0;
    bool done = true;
    for (const Job& job : sc.jobs)
      for (const auto& g : r.groups)
        if (g.name == job.name) {
          done = done && g.finish_ps != kNever;
          if (g.finish_ps != kNever) last = std::max(last, g.finish_ps);
          break;
        }
    fmt::print("  jobs: {}, {}\n", sc.jobs.size(),
               done ? fmt::format("all finished, makespan {:.3f} us (last job's finish)", static_cast<double>(last) / 1e6)
                    : std::string("not all finished"));
  }
}

void run(RunOptions& o) {
  lookahead::cli::apply_memory_limit(o.memory_limit);
  Scenario sc = load(o);
  const NetworkConfig& c = sc.network;
  Simulator sim(sc.topology, sc.workload, c);
  for (const LinkFailure& f : sc.failures) sim.fail_link(f.link, f.down_ps, f.up_ps, f.both);
  lookahead::ProgressBar bar("simulating (flows done)", sc.workload.flows.size(), o.progress);
  if (o.progress) sim.on_progress([&bar](SimTime, int finished) { bar.set(static_cast<uint64_t>(finished)); });
  auto t0 = std::chrono::steady_clock::now();
  SimResult r = sim.run(sc.until_ps);
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  bar.finish();
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  double rss_mib = static_cast<double>(ru.ru_maxrss) / 1024.0;
  if (o.perf)
    fmt::print(stderr, "perf: wall {:.3f} s, {} events, {:.2f} M events/s, peak RSS {:.1f} MiB, simulated {:.3f} us\n", wall, r.events,
               static_cast<double>(r.events) / wall / 1e6, rss_mib, static_cast<double>(r.end_ps) / 1e6);

  if (write_results(o, sc, r)) return;
  print_summary(sc, r);
  if (!r.conserved()) fmt::print("  WARNING: packet conservation violated (a simulator bug)\n");
}

const bool registered = lookahead::cli::register_command(
    {"net", "run", "Simulate a fabric and workload at packet level (FCTs, queues, drops, group completion)", [](CLI::App& cmd) {
       auto o = std::make_shared<RunOptions>();
       o->topo.add(cmd);
       cmd.add_option("--spec", o->spec, "JSON scenario spec (topology, network, workload, flows, failures, jobs)");
       o->workload_opt = cmd.add_option("--workload", o->workload, "generated flows: permutation, all_to_all or incast");
       cmd.add_option("--bytes", o->bytes, "bytes per generated flow (default 2000000)");
       cmd.add_option("--receiver", o->receiver, "incast receiver host (default 0)");
       cmd.add_option("--senders", o->senders, "incast senders (default all other hosts)");
       cmd.add_option("--matrix", o->matrix, "connection-matrix file of flows");
       o->lb_opt = cmd.add_option("--lb", o->lb, "load balancing: ecmp, spray, source or reps (default ecmp)");
       o->cc_opt = cmd.add_option("--cc", o->cc, "congestion control: dctcp, dcqcn or none (default dctcp)");
       o->seed_opt = cmd.add_option("--seed", o->seed, "random seed (default 1)");
       o->mtu_opt = cmd.add_option("--mtu", o->mtu, "payload bytes per packet (default 4096)");
       o->pfc_opt = cmd.add_flag("--pfc", o->pfc, "lossless fabric with PFC pause/resume");
       o->shared_opt = cmd.add_option("--shared-buffer-bytes", o->shared_buffer, "one shared buffer per switch of this size (default: none, per-port buffers)");
       o->port_opt = cmd.add_option("--port-buffer-bytes", o->port_buffer, "per-port buffer (default 1 MiB)");
       o->rto_opt = cmd.add_option("--rto-us", o->rto_us, "retransmission timeout in us (default 200)");
       o->init_cwnd_opt = cmd.add_option("--init-cwnd-bytes", o->init_cwnd, "initial window in bytes (default: the window cap)");
       o->max_cwnd_opt = cmd.add_option("--max-cwnd-bytes", o->max_cwnd,
                                        "window cap in bytes (default: 2 bandwidth-delay products of the longest path under dctcp, 1 BDP + 2 MTU under dcqcn/none)");
       o->retry_opt = cmd.add_option("--retry-limit", o->retry_limit,
                                     "timeouts in a row without progress before a flow fails (RDMA retry_cnt; default 7)");
       o->reps_state_opt = cmd.add_option("--reps-state", o->reps_state,
                                          "REPS entropy state per connection (src, dst), kept across steps, or per qp (default connection)");
       o->until_opt = cmd.add_option("--until-us", o->until_us, "stop at this simulated time (default: when every flow has finished)");
       cmd.add_flag("--json", o->json, "print results as JSON");
       cmd.add_option("--out", o->out, "write JSON results to this file");
       lookahead::cli::add_memory_limit_flag(cmd, o->memory_limit);
       cmd.add_option("--csv", o->csv, "write PREFIX_flows.csv and PREFIX_links.csv");
       cmd.add_flag("--links", o->links, "include per-link statistics in JSON");
       cmd.add_flag("--progress", o->progress, "progress on stderr (a bar on a terminal, plain lines in a log)");
       cmd.add_flag("--perf", o->perf, "print wall time, events/s and peak RSS to stderr");
       cmd.callback([o] { run(*o); });
     }});

}  // namespace
