// `lookahead moe experts`: extract Read-ME experts from activation statistics and report how they
// overlap (permanent share per layer, pairwise overlaps, how many experts each neuron serves).
#include <fmt/format.h>

#include <memory>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "moe/refactor/expert_extraction.h"

namespace {

struct ExpertsOptions {
  std::string stats;
  double keep = 0.5;
  bool json = false;
};

void run_experts(const ExpertsOptions& o) {
  using namespace lookahead::moe;
  ActivationStats stats = ActivationStats::load(o.stats);
  ExpertSets sets = extract_experts(stats, o.keep);
  OverlapReport report = overlap_report(sets);
  if (o.json) {
    nlohmann::json j;
    j["stats"] = o.stats;
    j["keep"] = o.keep;
    j["experts"] = sets.experts;
    j["n_layer"] = sets.n_layer;
    j["n_ff"] = sets.n_ff;
    j["permanent_share"] = report.permanent_share;
    j["expert_share"] = report.expert_share;
    j["jaccard"] = report.jaccard;
    j["multiplicity"] = report.multiplicity;
    fmt::print("{}\n", j.dump(2));
    return;
  }
  fmt::print("{} experts from {} ({} layers x {} neurons, keep {})\n", sets.experts.size(), o.stats, sets.n_layer,
             sets.n_ff, o.keep);
  fmt::print("\nper layer: permanent expert share, mean expert share\n");
  for (int l = 0; l < sets.n_layer; ++l)
    fmt::print("  layer {:2}  permanent {:5.1f}%  expert {:5.1f}%\n", l, 100 * report.permanent_share[l],
               100 * report.expert_share[l]);
  fmt::print("\npairwise overlap (Jaccard, mean over layers)\n  {:12}", "");
  for (const auto& e : sets.experts) fmt::print(" {:>10.10}", e);
  fmt::print("\n");
  for (size_t a = 0; a < sets.experts.size(); ++a) {
    fmt::print("  {:12}", sets.experts[a]);
    for (size_t b = 0; b < sets.experts.size(); ++b) fmt::print(" {:10.3f}", report.jaccard[a][b]);
    fmt::print("\n");
  }
  fmt::print("\nneurons by number of experts containing them (all layers)\n");
  for (size_t c = 0; c < report.multiplicity.size(); ++c) fmt::print("  in {} experts: {}\n", c, report.multiplicity[c]);
}

const bool registered = lookahead::cli::register_command(
    {"moe", "experts", "Extract Read-ME experts from activation statistics and report their overlap",
     [](CLI::App& cmd) {
       auto o = std::make_shared<ExpertsOptions>();
       cmd.add_option("--stats", o->stats, "statistics file from `lookahead moe stats`")->required();
       cmd.add_option("--keep", o->keep, "fraction of neurons each domain keeps, in (0, 1]")->capture_default_str();
       cmd.add_flag("--json", o->json, "machine-readable output");
       cmd.callback([o] { run_experts(*o); });
     }});

}  // namespace
