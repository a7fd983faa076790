// `lookahead net plan`: what a load-balancing scheme makes of a batch of flows, without simulating:
// the QPs (pieces, their bytes and pinned paths), QPs per host, and bytes per leaf uplink. Flows come
// from --flow SRC:DST:BYTES (repeatable), a JSON file (--flows FILE: [{"src":0,"dst":17,"bytes":...}]),
// or one step of a collective (--collective ... --step N); --qp-table prints QPs per host for every
// scheme and every step of the collective instead.
#include <fmt/format.h>

#include <algorithm>

#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "common/input_file.h"
#include "cli/net_collective_flags.h"
#include "cli/net_topology_flags.h"
#include "net/analysis/congestion.h"
#include "net/balance/collective_splitter.h"

namespace {

using namespace lookahead::net;
using lookahead::fail;

struct PlanOptions {
  lookahead::cli::TopologyFlags topo;
  lookahead::cli::CollectiveFlags coll;
  std::vector<std::string> flow;
  std::string flows_file;
  int step = -1;
  CLI::Option* step_opt = nullptr;
  double batch_window_ns = 100, jitter_ns = 50;  // Ethereal's timing (balance::PlanTiming), the paper's values
  std::string scheme = "ethereal";
  std::vector<std::string> fail;
  bool qp_table = false;
  bool list_qps = false;
  bool json = false;
};

std::vector<balance::FlowDemand> read_flows(const PlanOptions& o) {
  std::vector<balance::FlowDemand> flows;
  for (const auto& text : o.flow) {
    auto a = text.find(':'), b = text.rfind(':');
    if (a == std::string::npos || a == b) fail("--flow: expected SRC:DST:BYTES (e.g. 0:17:1MiB), got '{}'", text);
    try {
      flows.push_back({std::stoi(text.substr(0, a)), std::stoi(text.substr(a + 1, b - a - 1)),
                       collective::parse_bytes(text.substr(b + 1), "--flow")});
    } catch (const std::logic_error&) {
      fail("--flow: expected SRC:DST:BYTES with integer hosts, got '{}'", text);
    }
  }
  if (!o.flows_file.empty()) {
    const std::string text = lookahead::read_input_file(o.flows_file, "--flows");
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      fail("--flows: '{}' is not valid JSON: {}", o.flows_file, e.what());
    }
    if (j.is_object() && j.contains("flows")) j = j["flows"];
    if (!j.is_array()) fail("--flows: '{}' must hold an array of {{\"src\", \"dst\", \"bytes\"}} objects", o.flows_file);
    for (size_t i = 0; i < j.size(); ++i) {
      const auto& f = j[i];
      if (!f.is_object() || !f.contains("src") || !f.contains("dst") || !f.contains("bytes") || !f["src"].is_number_integer() ||
          !f["dst"].is_number_integer() || !(f["bytes"].is_number_unsigned() || f["bytes"].is_string()))
        fail("--flows: '{}' flow {}: expected {{\"src\": int, \"dst\": int, \"bytes\": int or \"64MiB\"}}", o.flows_file, i);
      uint64_t bytes = f["bytes"].is_string()
                           ? collective::parse_bytes(f["bytes"].get<std::string>(), fmt::format("--flows flow {}", i))
                           : f["bytes"].get<uint64_t>();
      if (bytes == 0) fail("--flows: '{}' flow {}: 0 bytes is not allowed; sizes must be at least 1 byte", o.flows_file, i);
      flows.push_back({f["src"].get<int>(), f["dst"].get<int>(), bytes});
    }
  }
  return flows;
}

// What print_plan shows: the plan, its link loads, QPs per host and the sending leaves' uplinks.
struct PlanView {
  balance::Plan plan;
  analysis::LinkLoads loads;
  std::vector<int> per_host;
  std::map<int, std::vector<std::pair<int, double>>> uplinks;  // tor node -> (link, bytes)
};

void print_plan_json(const Topology& topo, const std::vector<balance::FlowDemand>& flows, const balance::Scheme& scheme,
                     const PlanView& v, bool unequal) {
  const auto& per_host = v.per_host;
  nlohmann::json j;
  j["scheme"] = scheme.name();
  j["flows"] = flows.size();
  for (const auto& qp : v.plan.qps)
    j["qps"].push_back({{"flow", qp.flow}, {"src", qp.src_host}, {"dst", qp.dst_host}, {"offset", qp.offset},
                        {"bytes", qp.bytes}, {"path", qp.path}, {"start_ns", static_cast<double>(qp.start_ps) / 1e3},
                        {"routing", qp.routing == balance::Routing::PINNED   ? "source"
                                    : qp.routing == balance::Routing::HASHED ? "ecmp"
                                                                             : "spray"}});
  for (int h = 0; h < topo.hosts(); ++h)
    if (per_host[h] > 0) j["qps_per_host"][std::to_string(h)] = per_host[h];
  for (const auto& [tor, list] : v.uplinks)
    for (const auto& [l, bytes] : list) j["uplink_bytes"][analysis::link_name(topo, l)] = bytes;
  j["blackholed_bytes"] = v.loads.blackholed_bytes;
  j["unequal_batches"] = unequal;
  fmt::print("{}\n", j.dump(2));
}

void print_qps(const Topology& topo, const balance::Plan& plan, const PlanOptions& o) {
  const bool timed = std::any_of(plan.qps.begin(), plan.qps.end(), [](const balance::Qp& q) { return q.start_ps > 0; });
  if (timed)
    fmt::print("  cross-leaf QPs start {:g} ns (batching window) + 0-{:g} ns seeded jitter after the batch arrives (start ns)\n",
               o.batch_window_ns, o.jitter_ns);
  if (o.list_qps || plan.qps.size() <= 64) {
    fmt::print("  {:>5} {:>5} {:>5} {:>12} {:>12} {:>7} {:>8}  {}\n", "flow", "src", "dst", "offset", "bytes", "path", "start ns",
               "route");
    for (const auto& qp : plan.qps) {
      std::string route = "-";
      if (topo.tor_of(qp.src_host) == topo.tor_of(qp.dst_host)) {
        route = fmt::format("stays under {} (no uplink)", node_name(topo, topo.tor_of(qp.src_host)));
      } else if (qp.path >= 0) {
        auto r = topo.source_route(qp.src_host, qp.dst_host, qp.path);
        route = fmt::format("up-ports ({}, {}){}", r.port[0], r.port[1],
                            qp.routing == balance::Routing::HASHED ? " by ECMP hash" : "");
      } else {
        route = "sprayed per packet";
      }
      fmt::print("  {:>5} {:>5} {:>5} {:>12} {:>12} {:>7} {:>8.3f}  {}\n", qp.flow, qp.src_host, qp.dst_host, qp.offset, qp.bytes,
                 qp.path, static_cast<double>(qp.start_ps) / 1e3, route);
    }
  } else {
    fmt::print("  ({} QPs; --list-qps prints them all)\n", plan.qps.size());
  }
}

void print_plan_text(const Topology& topo, const std::vector<balance::FlowDemand>& flows, const balance::Scheme& scheme,
                     const PlanView& v, const PlanOptions& o) {
  const auto& per_host = v.per_host;
  fmt::print("{}: {} flows -> {} QPs\n", scheme.name(), flows.size(), v.plan.qps.size());
  print_qps(topo, v.plan, o);
  int max_qps = 0;
  for (int q : per_host) max_qps = std::max(max_qps, q);
  fmt::print("QPs per sending host: max {}\n", max_qps);
  for (int h = 0, shown = 0; h < topo.hosts() && shown < 16; ++h)
    if (per_host[h] > 0) fmt::print("  host {:>4}: {}\n", h, per_host[h]), ++shown;
  fmt::print("bytes per uplink of each sending leaf/ToR:\n");
  for (const auto& [tor, list] : v.uplinks) {
    double lo = 1e300, hi = 0;
    for (const auto& [l, bytes] : list) lo = std::min(lo, bytes), hi = std::max(hi, bytes);
    fmt::print("  {}: min {:.0f} max {:.0f} bytes over {} uplinks\n", analysis::link_name(topo, topo.up_ports[tor][0]).substr(0, analysis::link_name(topo, topo.up_ports[tor][0]).find("->")), lo, hi, list.size());
    if (list.size() <= 32)
      for (const auto& [l, bytes] : list) fmt::print("    {:<22} {:>14.0f}\n", analysis::link_name(topo, l), bytes);
  }
  if (v.loads.blackholed_bytes > 0) fmt::print("black-holed (path crosses a failed link): {:.0f} bytes\n", v.loads.blackholed_bytes);
}

void print_plan(const Topology& topo, const std::vector<balance::FlowDemand>& flows, const balance::Scheme& scheme,
                const PlanOptions& o) {
  const balance::PlanTiming timing = balance::plan_timing_ns(o.batch_window_ns, o.jitter_ns);
  PlanView v;
  v.plan = balance::make_plan(topo, flows, scheme, o.coll.seed, {}, timing);
  // The same caveat `net congestion` names when the theorem fails: one size per batch is assumed.
  auto unequal = analysis::find_unequal_batch(topo, flows);
  if (unequal)
    fmt::print(stderr,
               "lookahead: warning: unequal flow sizes in a batch (host {} -> {}: {} and {} bytes); the splitting theorem "
               "assumes one size per (source host, destination {}) batch{}\n",
               unequal->src_host, node_name(topo, unequal->dst_tor), unequal->bytes_a, unequal->bytes_b,
               topo.three_tier() ? "ToR" : "leaf",
               scheme.kind == balance::SchemeKind::ETHEREAL
                   ? ": ethereal's equal split can load an uplink above spraying's share (ethereal-min balances any sizes)"
                   : "");
  v.loads = analysis::link_loads(topo, v.plan);
  v.per_host = v.plan.qps_per_host(topo.hosts());
  // Uplinks of the leaves/ToRs that send something.
  for (const auto& f : flows) v.uplinks[topo.tor_of(f.src_host)];
  for (auto& [tor, list] : v.uplinks)
    for (int l : topo.up_ports[tor]) list.push_back({l, v.loads.bytes[l]});
  if (o.json)
    print_plan_json(topo, flows, scheme, v, unequal.has_value());
  else
    print_plan_text(topo, flows, scheme, v, o);
}

void print_qp_table(const Topology& topo, const collective::Collective& c, const PlanOptions& o) {
  auto schemes = balance::all_schemes();
  std::vector<int> max_per_host(schemes.size(), 0);
  std::vector<double> mean_per_host(schemes.size(), 0);
  for (int s = 0; s < static_cast<int>(c.steps.size()); ++s) {
    auto flows = balance::step_flows(c, s);
    for (size_t i = 0; i < schemes.size(); ++i) {
      auto per_host = balance::make_plan(topo, flows, schemes[i], o.coll.seed).qps_per_host(topo.hosts());
      int senders = 0, total = 0;
      for (int q : per_host) max_per_host[i] = std::max(max_per_host[i], q), senders += q > 0, total += q;
      mean_per_host[i] = std::max(mean_per_host[i], senders ? static_cast<double>(total) / senders : 0.0);
    }
  }
  if (o.json) {
    nlohmann::json j;
    j["collective"] = o.coll.describe(c);
    for (size_t i = 0; i < schemes.size(); ++i)
      j["schemes"].push_back({{"scheme", schemes[i].name()}, {"max_qps_per_host", max_per_host[i]},
                              {"mean_qps_per_host", mean_per_host[i]}});
    fmt::print("{}\n", j.dump(2));
    return;
  }
  fmt::print("{}: QPs a host opens in one step (worst step)\n", o.coll.describe(c));
  fmt::print("  {:<13} {:>9} {:>16}\n", "scheme", "max/host", "mean/sender");
  for (size_t i = 0; i < schemes.size(); ++i)
    fmt::print("  {:<13} {:>9} {:>16.1f}\n", schemes[i].name(), max_per_host[i], mean_per_host[i]);
}

void run_plan(PlanOptions& o) {
  Topology topo = o.topo.build();
  for (const auto& f : o.fail)
    for (int l : analysis::parse_failed_cable(topo, f, "--fail")) topo.set_link_up(l, false);
  const bool explicit_flows = !o.flow.empty() || !o.flows_file.empty();
  if (explicit_flows && o.qp_table) fail("--qp-table: works on a collective (--collective ...), not on --flow/--flows");
  if (explicit_flows) {
    for (auto* opt : o.coll.options)
      if (opt->count() > 0) fail("{}: a collective flag; it does nothing with --flow/--flows", opt->get_name());
    if (o.step_opt->count() > 0) fail("--step: a collective flag; it does nothing with --flow/--flows");
  } else if (!o.coll.any_given() && o.step_opt->count() == 0 && !o.qp_table) {
    // No silent default workload: say what can be planned.
    fail("nothing to plan: give --flow SRC:DST:BYTES (repeatable), --flows FILE, or a collective, e.g. --collective "
         "allreduce --algo direct --size 64MiB (--step N picks its step; unset collective flags take their defaults, "
         "printed in the plan's first line)");
  }
  if (explicit_flows) {
    auto flows = read_flows(o);
    if (flows.empty()) fail("--flows: no flows given");
    print_plan(topo, flows, balance::parse_scheme(o.scheme), o);
    return;
  }
  auto c = o.coll.build(topo.hosts());
  if (o.qp_table) {
    if (o.step_opt->count() > 0) fail("--step: --qp-table covers every step of the collective");
    print_qp_table(topo, c, o);
    return;
  }
  if (o.step_opt->count() > 0 && o.step < 0) fail("--step: must be at least 0 (got {})", o.step);
  int step = o.step < 0 ? 0 : o.step;
  if (step >= static_cast<int>(c.steps.size()))
    fail("--step: {} out of range (the collective has {} steps)", step, c.steps.size());
  if (!o.json) fmt::print("{}, step {} of {}\n", o.coll.describe(c), step, c.steps.size());
  print_plan(topo, balance::step_flows(c, step), balance::parse_scheme(o.scheme), o);
}

const bool registered = lookahead::cli::register_command(
    {"net", "plan", "Print a load-balancing plan (QPs, pinned paths, bytes per uplink) without simulating",
     [](CLI::App& cmd) {
       auto o = std::make_shared<PlanOptions>();
       o->topo.add(cmd);
       o->coll.add(cmd);
       cmd.add_option("--flow", o->flow,
                      "a flow SRC:DST:BYTES, e.g. 0:17:1MiB (repeatable); without --flow/--flows give a collective "
                      "(--collective, --algo, --size, ...): nothing is planned by default");
       cmd.add_option("--flows", o->flows_file, "JSON file: [{\"src\": 0, \"dst\": 17, \"bytes\": 1048576}, ...]");
       o->step_opt = cmd.add_option("--step", o->step, "collective step to plan (default 0)");
       cmd.add_option("--scheme", o->scheme, std::string("one of ") + balance::kSchemeNames + " (default ethereal)");
       cmd.add_option("--fail", o->fail, "fail a cable first, e.g. leaf0-spine3 (repeatable)");
       cmd.add_option("--batch-window-ns", o->batch_window_ns,
                      "Ethereal's batching window before a batch's cross-leaf QPs start (default 100, the paper's); "
                      "loads and paths do not depend on it");
       cmd.add_option("--jitter-ns", o->jitter_ns, "seeded start jitter per ethereal piece, 0..this ns (default 50, the paper's)");
       cmd.add_flag("--qp-table", o->qp_table, "QPs per host for every scheme over every step of the collective");
       cmd.add_flag("--list-qps", o->list_qps, "list every QP even when there are many");
       cmd.add_flag("--json", o->json, "print JSON");
       cmd.callback([o] { run_plan(*o); });
     }});

}  // namespace
