// `lookahead moe corpus-tokens`: a corpus split tokenized into windows, the training data of
// `lookahead-train experts --data` (stage 2) when more is wanted than the router targets carry.
#include <fmt/format.h>

#include <memory>
#include <sstream>

#include "cli/command.h"
#include "common/error.h"
#include "moe/checkpoint/model_source.h"
#include "moe/refactor/corpus.h"

namespace {

using namespace lookahead::moe;

struct CorpusTokensOptions {
  std::string model, corpus, split = "train", domains, out;
  int64_t tokens_per_domain = 65536;
  int64_t ctx = 256;
};

void run_corpus_tokens(const CorpusTokensOptions& o) {
  std::vector<std::string> only;
  std::stringstream list(o.domains);
  for (std::string name; std::getline(list, name, ',');)
    if (!name.empty()) only.push_back(name);
  const std::vector<CorpusDomain> domains = open_corpus(o.corpus, o.split, only);
  const auto source = open_model(o.model);
  const int64_t n = write_corpus_tokens(source->tokenizer(), domains, o.tokens_per_domain, o.ctx, o.out);
  fmt::print("{}: {} tokens of {} domains ({} split) in windows of {}\n", o.out, n, domains.size(), o.split, o.ctx);
}

const bool registered = lookahead::cli::register_command(
    {"moe", "corpus-tokens", "Tokenize a corpus split into training windows (lookahead-train experts --data)",
     [](CLI::App& cmd) {
       auto o = std::make_shared<CorpusTokensOptions>();
       cmd.add_option("--model", o->model, "model whose tokenizer to use (GGUF, HF or Read-ME directory)")->required();
       cmd.add_option("--corpus", o->corpus, "corpus directory DIR/<domain>/<split>.txt")->required();
       cmd.add_option("--split", o->split, "corpus split")->capture_default_str();
       cmd.add_option("--domains", o->domains, "comma-separated subset of domains (default: all)");
       cmd.add_option("--tokens-per-domain", o->tokens_per_domain, "text tokens per domain")->capture_default_str();
       cmd.add_option("--ctx", o->ctx, "window length in tokens")->capture_default_str();
       cmd.add_option("--out", o->out, "output safetensors file (tokens, seq_start, domain)")->required();
       cmd.callback([o] { run_corpus_tokens(*o); });
     }});

}  // namespace
