// `lookahead moe router-eval`: how the pre-gating router of a Read-ME model routes held-out text —
// accuracy against domain labels, the confusion matrix, temporal locality and the router's own
// decode cost per token (moe/refactor/router_eval.h).
#include <fmt/format.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/command.h"
#include "cli/resource_flags.h"
#include "common/error.h"
#include "moe/kernels/matmul.h"
#include "moe/model/readme_model.h"
#include "moe/refactor/corpus.h"
#include "moe/refactor/router_eval.h"

namespace {

using namespace lookahead::moe;

struct RouterEvalOptions {
  std::string model, corpus, split = "heldout", domains;
  int64_t tokens = 4096;
  int64_t ctx = 512;
  int threads = 0;
  bool json = false;
};

std::vector<std::string> domain_list(const std::string& text) {
  std::vector<std::string> only;
  std::stringstream list(text);
  for (std::string name; std::getline(list, name, ',');)
    if (!name.empty()) only.push_back(name);
  return only;
}

void print_json(const ReadMeModel& model, const std::vector<CorpusDomain>& domains, const RouterEval& r) {
  nlohmann::json j;
  j["experts"] = model.config().experts;
  j["accuracy"] = r.accuracy();
  j["temporal_locality"] = r.locality();
  j["router_us_per_token"] = r.us_per_token;
  for (size_t d = 0; d < domains.size(); ++d)
    j["domains"].push_back({{"domain", domains[d].name}, {"tokens", r.total[d]},
                            {"accuracy", r.domain_accuracy(d)}, {"routed", r.confusion[d]}});
  fmt::print("{}\n", j.dump(2));
}

void print_report(const ReadMeModel& model, const std::vector<CorpusDomain>& domains, const RouterEval& r) {
  int64_t all = 0;
  for (int64_t t : r.total) all += t;
  fmt::print("router accuracy against domain labels: {:.1f}% of {} tokens\n", 100 * r.accuracy(), all);
  fmt::print("temporal locality (expert == previous token's): {:.1f}%\n", 100 * r.locality());
  fmt::print("router decode cost: {:.1f} us per token (KV cache)\n\n", r.us_per_token);
  std::string header = "| domain \\ expert |", rule = "| --- |";
  for (const auto& e : model.config().experts) header += " " + e + " |", rule += " ---: |";
  fmt::print("{} accuracy |\n{} ---: |\n", header, rule);
  for (size_t d = 0; d < domains.size(); ++d) {
    std::string row = "| " + domains[d].name + " |";
    for (int64_t n : r.confusion[d])
      row += fmt::format(" {:.1f}% |", r.total[d] ? 100.0 * static_cast<double>(n) / static_cast<double>(r.total[d]) : 0.0);
    fmt::print("{} {:.1f}% |\n", row,
               r.total[d] ? 100.0 * static_cast<double>(r.correct[d]) / static_cast<double>(r.total[d]) : 0.0);
  }
}

void run_router_eval(const RouterEvalOptions& o) {
  lookahead::cli::apply_threads(o.threads);
  if (o.tokens < 1) lookahead::fail("--tokens-per-domain must be >= 1 (got {})", o.tokens);
  if (o.ctx < 2) lookahead::fail("--ctx must be >= 2 (got {})", o.ctx);
  ReadMeModel model(o.model);
  const auto domains = open_corpus(o.corpus, o.split, domain_list(o.domains));
  const RouterEval r = evaluate_router(model, domains, o.tokens, o.ctx);
  if (o.json)
    print_json(model, domains, r);
  else
    print_report(model, domains, r);
}

const bool registered = lookahead::cli::register_command(
    {"moe", "router-eval", "Evaluate a Read-ME model's router: accuracy, confusion, temporal locality, cost",
     [](CLI::App& cmd) {
       auto o = std::make_shared<RouterEvalOptions>();
       cmd.add_option("--model", o->model, "Read-ME model directory")->required();
       cmd.add_option("--corpus", o->corpus, "corpus directory DIR/<domain>/<split>.txt")->required();
       cmd.add_option("--split", o->split, "which split to route")->capture_default_str();
       cmd.add_option("--domains", o->domains, "comma-separated subset of domains (default: all)");
       cmd.add_option("--tokens-per-domain", o->tokens, "tokens routed per domain")->capture_default_str();
       cmd.add_option("--ctx,-c", o->ctx, "window length (router positions)")->capture_default_str();
       cmd.add_option("--threads,-t", o->threads, "CPU threads (0 = all cores)")->capture_default_str();
       cmd.add_flag("--json", o->json, "machine-readable output");
       cmd.callback([o] { run_router_eval(*o); });
     }});

}  // namespace
