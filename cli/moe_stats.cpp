// `lookahead moe stats`: per-domain activation statistics of a dense model (Read-ME step 1).
#include <fmt/format.h>

#include <memory>
#include <sstream>

#include "cli/command.h"
#include "common/error.h"
#include "moe/checkpoint/model_source.h"
#include "moe/model/llama.h"
#include "moe/refactor/activation_stats.h"

namespace {

struct StatsCommandOptions {
  std::string model, corpus, out, split = "calibration", domains;
  lookahead::moe::StatsOptions stats;
};

void run_stats(const StatsCommandOptions& o) {
  using namespace lookahead::moe;
  std::vector<std::string> only;
  std::stringstream list(o.domains);
  for (std::string name; std::getline(list, name, ',');)
    if (!name.empty()) only.push_back(name);
  auto domains = open_corpus(o.corpus, o.split, only);
  auto source = open_model(o.model);
  LlamaModel model(*source);
  ActivationStats stats = collect_activation_stats(model, domains, o.stats);
  stats.save(o.out);
  fmt::print("{}: {} domains x {} layers x {} neurons\n", o.out, stats.domains.size(), stats.n_layer, stats.n_ff);
  for (size_t d = 0; d < stats.domains.size(); ++d) fmt::print("  {:12} {:8} tokens\n", stats.domains[d], stats.tokens[d]);
}

const bool registered = lookahead::cli::register_command(
    {"moe", "stats", "Record per-domain FFN activation statistics (mean |down_proj input|) of a dense model",
     [](CLI::App& cmd) {
       auto o = std::make_shared<StatsCommandOptions>();
       cmd.add_option("--model", o->model, "dense model: .gguf file or Hugging Face directory")->required();
       cmd.add_option("--corpus", o->corpus, "corpus directory DIR/<domain>/<split>.txt (data/build_corpus.py)")->required();
       cmd.add_option("--out", o->out, "output statistics file (GGUF)")->required();
       cmd.add_option("--split", o->split, "which split to read")->capture_default_str();
       cmd.add_option("--domains", o->domains, "comma-separated subset of domains (default: all)");
       cmd.add_option("--ctx", o->stats.ctx, "tokens per forward window")->capture_default_str();
       cmd.add_option("--tokens-per-domain", o->stats.tokens_per_domain, "tokens to read per domain")->capture_default_str();
       cmd.callback([o] { run_stats(*o); });
     }});

}  // namespace
