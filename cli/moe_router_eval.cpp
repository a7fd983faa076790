// `lookahead moe router-eval`: how the pre-gating router of a Read-ME model routes held-out text —
// accuracy against domain labels, the confusion matrix, temporal locality (the fraction of tokens
// routed like the token before them; paper: 71%) and the router's own decode cost per token.
#include <fmt/format.h>

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/command.h"
#include "cli/resource_flags.h"
#include "common/error.h"
#include "moe/kernels/matmul.h"
#include "moe/model/readme_model.h"
#include "moe/refactor/corpus.h"

namespace {

using namespace lookahead::moe;

struct RouterEvalOptions {
  std::string model, corpus, split = "heldout", domains;
  int64_t tokens = 4096;
  int64_t ctx = 512;
  int threads = 0;
  bool json = false;
};

void run_router_eval(const RouterEvalOptions& o) {
  lookahead::cli::apply_threads(o.threads);
  if (o.tokens < 1) lookahead::fail("--tokens-per-domain must be >= 1 (got {})", o.tokens);
  if (o.ctx < 2) lookahead::fail("--ctx must be >= 2 (got {})", o.ctx);
  ReadMeModel model(o.model);
  std::vector<std::string> only;
  std::stringstream list(o.domains);
  for (std::string name; std::getline(list, name, ',');)
    if (!name.empty()) only.push_back(name);
  const auto domains = open_corpus(o.corpus, o.split, only);
  const Tokenizer& tok = model.source().tokenizer();
  const std::vector<int32_t> prefix = tok.encode("", true, false);
  RouterConfig rc = model.config().router;
  if (o.ctx > rc.max_positions) lookahead::fail("--ctx {} exceeds the router's {} positions", o.ctx, rc.max_positions);
  RouterContext router(rc, model.router());
  const int32_t N = model.n_expert();

  std::vector<std::vector<int64_t>> confusion(domains.size(), std::vector<int64_t>(static_cast<size_t>(N), 0));
  std::vector<int64_t> labelled_correct(domains.size(), 0), total(domains.size(), 0);
  int64_t same_as_previous = 0, pairs = 0;
  for (size_t d = 0; d < domains.size(); ++d) {
    const int32_t label = model.expert_index(domains[d].name);
    const std::vector<int32_t> ids = tokenize_prefix(tok, read_text_file(domains[d].path), o.tokens);
    for_each_window(ids, prefix, o.ctx, o.tokens, [&](const std::vector<int32_t>& window, int64_t) {
      router.truncate(0);
      const std::vector<int32_t> experts = router.route(window.data(), static_cast<int64_t>(window.size()));
      // Score the text tokens (not the BOS prefix).
      for (size_t i = prefix.size(); i < experts.size(); ++i) {
        ++confusion[d][static_cast<size_t>(experts[i])];
        ++total[d];
        if (experts[i] == label) ++labelled_correct[d];
        if (i > prefix.size()) {
          ++pairs;
          if (experts[i] == experts[i - 1]) ++same_as_previous;
        }
      }
    });
  }
  // Router decode cost: route 256 tokens one at a time with the KV cache.
  const int64_t n_decode = std::min<int64_t>(256, rc.max_positions);
  router.truncate(0);
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < n_decode; ++i) {
    const int32_t token = static_cast<int32_t>((i * 7919) % rc.n_vocab);
    router.route(&token, 1);
  }
  const double us_per_token =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / static_cast<double>(n_decode);

  int64_t correct = 0, all = 0;
  for (size_t d = 0; d < domains.size(); ++d) correct += labelled_correct[d], all += total[d];
  const double accuracy = all ? static_cast<double>(correct) / static_cast<double>(all) : 0;
  const double locality = pairs ? static_cast<double>(same_as_previous) / static_cast<double>(pairs) : 0;
  if (o.json) {
    nlohmann::json j;
    j["experts"] = model.config().experts;
    j["accuracy"] = accuracy;
    j["temporal_locality"] = locality;
    j["router_us_per_token"] = us_per_token;
    for (size_t d = 0; d < domains.size(); ++d)
      j["domains"].push_back({{"domain", domains[d].name}, {"tokens", total[d]},
                              {"accuracy", total[d] ? static_cast<double>(labelled_correct[d]) / static_cast<double>(total[d]) : 0},
                              {"routed", confusion[d]}});
    fmt::print("{}\n", j.dump(2));
    return;
  }
  fmt::print("router accuracy against domain labels: {:.1f}% of {} tokens\n", 100 * accuracy, all);
  fmt::print("temporal locality (expert == previous token's): {:.1f}%\n", 100 * locality);
  fmt::print("router decode cost: {:.1f} us per token (KV cache)\n\n", us_per_token);
  std::string header = "| domain \\ expert |", rule = "| --- |";
  for (const auto& e : model.config().experts) header += " " + e + " |", rule += " ---: |";
  fmt::print("{} accuracy |\n{} ---: |\n", header, rule);
  for (size_t d = 0; d < domains.size(); ++d) {
    std::string row = "| " + domains[d].name + " |";
    for (int32_t e = 0; e < N; ++e)
      row += fmt::format(" {:.1f}% |", total[d] ? 100.0 * static_cast<double>(confusion[d][static_cast<size_t>(e)]) /
                                                      static_cast<double>(total[d])
                                                : 0.0);
    fmt::print("{} {:.1f}% |\n", row,
               total[d] ? 100.0 * static_cast<double>(labelled_correct[d]) / static_cast<double>(total[d]) : 0.0);
  }
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
