// `lookahead net congestion`: the fluid max-congestion check of the paper (section 2) for every step
// of a collective and every load-balancing scheme, and the theorem check (the splitting planner's
// max link load equals ideal spraying's on 1:1 fabrics).
#include <fmt/format.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/command.h"
#include "cli/net_collective_flags.h"
#include "cli/net_topology_flags.h"
#include "net/analysis/congestion.h"
#include "net/balance/collective_splitter.h"

namespace {

using namespace lookahead::net;

struct CongestionOptions {
  lookahead::cli::TopologyFlags topo;
  lookahead::cli::CollectiveFlags coll;
  std::string schemes = "all";
  std::vector<std::string> fail;
  bool json = false;
  bool every_step = false;
};

std::vector<balance::Scheme> parse_schemes(const std::string& text) {
  if (text == "all") return balance::all_schemes();
  std::vector<balance::Scheme> out;
  std::stringstream in(text);
  std::string name;
  while (std::getline(in, name, ','))
    if (!name.empty()) out.push_back(balance::parse_scheme(name, "--scheme"));
  if (out.empty()) lookahead::fail("--scheme: expected a scheme name, a comma-separated list, or all");
  return out;
}

std::string row_key(const analysis::StepResult& r) {
  std::string key = fmt::format("{}|{}|{}", r.flows, r.bytes, r.cross_leaf_flows);
  for (const auto& s : r.schemes) key += fmt::format("|{}|{}|{}|{}", s.max_bytes, s.max_qps_per_host, s.blackholed_bytes, s.step_us);
  return key;
}

// Per scheme over the whole collective: fluid completion time (sum of per-step bottleneck drain
// times), worst per-step ratio to spraying, QPs per host, steps where the theorem holds.
struct Total {
  double time_us = 0, worst_ratio = 0, blackholed = 0;
  int max_qps_per_host = 0, steps_matching = 0;
};

// What run_congestion prints: the fabric, the collective, every step's check and the totals.
struct Report {
  TopologySummary summary;
  collective::Collective c;
  std::vector<std::string> failed_names;
  bool failures = false, oversubscribed = false;
  std::vector<balance::Scheme> schemes;
  std::vector<analysis::StepResult> results;
  std::vector<bool> unequal;
  std::vector<Total> totals;
  double spray_time_us = 0;
  int ethereal = -1;             // index of ethereal in schemes, -1 if absent
  std::vector<int> violations;  // steps where ethereal's max load is not spraying's

  std::string reason(int step) const {
    std::vector<std::string> why;
    if (failures) why.push_back("failed links");
    if (oversubscribed) why.push_back("oversubscribed");
    if (unequal[step]) why.push_back("unequal flow sizes in a batch");
    if (why.empty()) why.push_back("none of the known causes (a bug?)");
    return fmt::format("{}", fmt::join(why, ", "));
  }
};

void add_totals(Report& rep) {
  const auto& schemes = rep.schemes;
  auto& totals = rep.totals;
  totals.assign(schemes.size(), {});
  for (const auto& r : rep.results) {
    for (size_t i = 0; i < schemes.size(); ++i) {
      const auto& sr = r.schemes[i];
      totals[i].time_us += sr.step_us;
      totals[i].worst_ratio = std::max(totals[i].worst_ratio, sr.ratio_to_spray);
      totals[i].max_qps_per_host = std::max(totals[i].max_qps_per_host, sr.max_qps_per_host);
      totals[i].steps_matching += sr.matches_spray;
      totals[i].blackholed += sr.blackholed_bytes;
    }
    rep.spray_time_us += r.spray_step_us;  // computed even when spray is not listed
  }
  for (size_t i = 0; i < schemes.size(); ++i)
    if (schemes[i].kind == balance::SchemeKind::ETHEREAL) rep.ethereal = static_cast<int>(i);
  if (rep.ethereal >= 0)
    for (const auto& r : rep.results)
      if (!r.schemes[rep.ethereal].matches_spray) rep.violations.push_back(r.step);
}

Report check(CongestionOptions& o) {
  Report rep;
  Topology topo = o.topo.build();
  for (const auto& f : o.fail) {
    for (int l : analysis::parse_failed_cable(topo, f, "--fail")) topo.set_link_up(l, false);
    rep.failed_names.push_back(f);
  }
  rep.schemes = parse_schemes(o.schemes);
  rep.c = o.coll.build(topo.hosts());
  rep.summary = topo.summary();
  rep.failures = !o.fail.empty();
  rep.oversubscribed = rep.summary.oversubscription > 1.0 + 1e-9;
  for (int s = 0; s < static_cast<int>(rep.c.steps.size()); ++s) {
    auto flows = balance::step_flows(rep.c, s);
    rep.results.push_back(analysis::check_step(topo, flows, rep.schemes, o.coll.seed));
    rep.results.back().step = s;
    rep.unequal.push_back(analysis::find_unequal_batch(topo, flows).has_value());
  }
  add_totals(rep);
  return rep;
}

void print_json(const CongestionOptions& o, const Report& rep) {
  nlohmann::json j;
  j["topology"] = {{"kind", rep.summary.kind}, {"hosts", rep.summary.hosts}, {"oversubscription", rep.summary.oversubscription},
                   {"failed", rep.failed_names}, {"max_paths", rep.summary.max_paths}};
  j["collective"] = o.coll.describe(rep.c);
  j["steps"] = nlohmann::json::array();
  for (const auto& r : rep.results) {
    nlohmann::json js = {{"step", r.step}, {"flows", r.flows}, {"bytes", r.bytes}, {"cross_leaf_flows", r.cross_leaf_flows},
                         {"unequal_batches", static_cast<bool>(rep.unequal[r.step])}};
    for (const auto& sr : r.schemes)
      js["schemes"].push_back({{"scheme", sr.scheme}, {"max_link_bytes", sr.max_bytes}, {"max_link", sr.max_link},
                               {"ratio_to_spray", sr.ratio_to_spray}, {"step_us", sr.step_us}, {"qps", sr.qps},
                               {"max_qps_per_host", sr.max_qps_per_host}, {"blackholed_bytes", sr.blackholed_bytes},
                               {"matches_spray", sr.matches_spray}});
    j["steps"].push_back(js);
  }
  for (size_t i = 0; i < rep.schemes.size(); ++i)
    j["summary"].push_back({{"scheme", rep.schemes[i].name()}, {"fluid_time_us", rep.totals[i].time_us},
                            {"fluid_time_vs_spray", rep.spray_time_us > 0 ? rep.totals[i].time_us / rep.spray_time_us : 1.0},
                            {"worst_step_ratio", rep.totals[i].worst_ratio}, {"max_qps_per_host", rep.totals[i].max_qps_per_host},
                            {"steps_matching_spray", rep.totals[i].steps_matching}, {"blackholed_bytes", rep.totals[i].blackholed}});
  j["theorem"] = {{"checked", rep.ethereal >= 0}, {"steps", rep.results.size()}, {"violations", rep.violations},
                  {"holds", rep.ethereal >= 0 && rep.violations.empty()}};
  fmt::print("{}\n", j.dump(2));
}

void print_text(const CongestionOptions& o, const Report& rep) {
  const auto& summary = rep.summary;
  const auto& c = rep.c;
  const auto& schemes = rep.schemes;
  const auto& results = rep.results;
  const auto& totals = rep.totals;
  const auto& violations = rep.violations;
  const double spray_time_us = rep.spray_time_us;
  const int ethereal = rep.ethereal;
  const bool failures = rep.failures;
  fmt::print("{}: {} hosts, oversubscription {:g}:1, up to {} paths{}\n", summary.kind, summary.hosts, summary.oversubscription,
             summary.max_paths, failures ? fmt::format(", failed: {}", fmt::join(rep.failed_names, " ")) : "");
  fmt::print("{}: {} flows in {} steps\n\n", o.coll.describe(c), c.flows.size(), c.steps.size());
  fmt::print("{:>9} {:>7} {:>6}  {:<15} {:>12} {:>8} {:>9} {:>8}  {}\n", "step", "flows", "cross", "scheme", "max link MiB",
             "x spray", "QPs/host", "step us", "most loaded link");
  // Consecutive steps with identical numbers print as one row (ring has 2(p-1) alike steps).
  for (size_t a = 0; a < results.size();) {
    size_t b = a + 1;
    if (!o.every_step)
      while (b < results.size() && row_key(results[b]) == row_key(results[a])) ++b;
    std::string steps = b - a == 1 ? std::to_string(a) : fmt::format("{}-{}", a, b - 1);
    const auto& r = results[a];
    for (size_t i = 0; i < r.schemes.size(); ++i) {
      const auto& sr = r.schemes[i];
      fmt::print("{:>9} {:>7} {:>6}  {:<15} {:>12.3f} {:>8.3f} {:>9} {:>8.1f}  {}{}\n", i == 0 ? steps : "",
                 i == 0 ? std::to_string(r.flows) : "", i == 0 ? std::to_string(r.cross_leaf_flows) : "", sr.scheme,
                 sr.max_bytes / 1048576.0, sr.ratio_to_spray, sr.max_qps_per_host, sr.step_us, sr.max_link,
                 sr.blackholed_bytes > 0 ? fmt::format("  black-holed {:.1f} MiB", sr.blackholed_bytes / 1048576.0) : "");
    }
    a = b;
  }
  fmt::print("\nwhole collective (fluid time = sum over steps of the slowest link's drain time):\n");
  fmt::print("  {:<15} {:>14} {:>9} {:>15} {:>9} {:>14}\n", "scheme", "fluid time us", "x spray", "worst step ratio",
             "QPs/host", "= spray steps");
  for (size_t i = 0; i < schemes.size(); ++i)
    fmt::print("  {:<15} {:>14.1f} {:>9.3f} {:>15.3f} {:>9} {:>8}/{}{}\n", schemes[i].name(), totals[i].time_us,
               spray_time_us > 0 ? totals[i].time_us / spray_time_us : 1.0, totals[i].worst_ratio, totals[i].max_qps_per_host,
               totals[i].steps_matching, results.size(),
               totals[i].blackholed > 0 ? fmt::format("  black-holed {:.1f} MiB (never finishes)", totals[i].blackholed / 1048576.0)
                                        : "");
  if (ethereal < 0) {
    fmt::print("\ntheorem: not checked (add ethereal to --scheme)\n");
  } else if (violations.empty()) {
    fmt::print("\ntheorem: ethereal's max link load == spraying's on all {} steps{}\n", results.size(),
               failures || rep.oversubscribed ? " (also here, off the paper's 1:1 no-failure setting)" : "");
  } else {
    fmt::print("\ntheorem: does NOT hold on {} of {} steps:", violations.size(), results.size());
    for (size_t i = 0; i < violations.size() && i < 8; ++i) fmt::print(" {}", violations[i]);
    fmt::print("{}\n  causes present: {}\n", violations.size() > 8 ? " ..." : "", rep.reason(violations[0]));
  }
}

void run_congestion(CongestionOptions& o) {
  const Report rep = check(o);
  if (o.json)
    print_json(o, rep);
  else
    print_text(o, rep);
}

const bool registered = lookahead::cli::register_command(
    {"net", "congestion", "Fluid max-congestion per collective step and scheme; checks the splitting theorem",
     [](CLI::App& cmd) {
       auto o = std::make_shared<CongestionOptions>();
       o->topo.add(cmd);
       o->coll.add(cmd);
       cmd.add_option("--scheme", o->schemes,
                      std::string(balance::kSchemeNames) + ", a comma-separated list, or all");
       cmd.add_option("--fail", o->fail, "fail a cable at the start, e.g. leaf0-spine3 (repeatable)");
       cmd.add_flag("--every-step", o->every_step, "one row per step (default: alike consecutive steps merged)");
       cmd.add_flag("--json", o->json, "print JSON");
       cmd.callback([o] { run_congestion(*o); });
     }});

}  // namespace
