// `lookahead moe perplexity`: perplexity of a text, computed as llama.cpp's llama-perplexity does
// (tools/perplexity/perplexity.cpp, perplexity()):
//   - tokenize the whole file with special handling on (BOS prepended if the vocabulary adds BOS);
//   - split into n_chunk = n_tokens / n_ctx non-overlapping windows of n_ctx tokens; each window
//     starts from an empty cache, and its first token is replaced by BOS when the vocabulary adds BOS;
//   - score only the second half: for i in [n_ctx/2, n_ctx - 1), nll -= log softmax(logits[i])[tok[i+1]];
//   - PPL = exp(mean nll), with the same +/- estimate (std of the per-token nll / sqrt(count-1)).
#include <fmt/format.h>

#include <cmath>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/command.h"
#include "common/error.h"
#include "common/progress.h"
#include "moe/format/model_source.h"
#include "moe/kernels/matmul.h"
#include "moe/model/llama.h"
#include "moe/model/loaded_model.h"

namespace {

using namespace lookahead::moe;

struct PerplexityOptions {
  std::string model;
  std::string route;
  std::string file;
  int64_t ctx = 512;
  int64_t chunks = -1;
  int threads = 0;
  bool json = false;
};

void run_perplexity(const PerplexityOptions& o) {
  if (o.threads > 0) set_kernel_threads(o.threads);
  if (o.ctx < 4) lookahead::fail("--ctx must be at least 4 (got {})", o.ctx);
  std::ifstream in(o.file, std::ios::binary);
  if (!in) lookahead::fail("{}: cannot open the text file", o.file);
  std::stringstream buf;
  buf << in.rdbuf();
  const std::string text = buf.str();

  LoadedModel loaded(o.model, o.route);
  const ModelSource* source = &loaded.source();
  const LlamaModel& model = loaded.llama();
  const Tokenizer& tok = source->tokenizer();
  std::vector<int32_t> tokens = tok.encode(text, true, false);
  // Whether the vocabulary adds BOS (llama_vocab_get_add_bos): encode() with add_special shows it.
  const std::vector<int32_t> probe = tok.encode("a", true, false);
  const bool add_bos = tok.bos() >= 0 && !probe.empty() && probe.front() == tok.bos();
  if (o.ctx > model.hparams().n_ctx_train)
    lookahead::fail("--ctx {} is larger than the model's training context {}", o.ctx, model.hparams().n_ctx_train);
  if (static_cast<int64_t>(tokens.size()) < 2 * o.ctx)
    lookahead::fail("{}: tokenizes to {} tokens; perplexity with --ctx {} needs at least {}", o.file, tokens.size(), o.ctx,
                    2 * o.ctx);
  int64_t n_chunk = static_cast<int64_t>(tokens.size()) / o.ctx;
  if (o.chunks > 0) n_chunk = std::min(n_chunk, o.chunks);
  const int64_t n_vocab = model.hparams().n_vocab, first = o.ctx / 2;

  ContextOptions copt;
  copt.n_ctx = o.ctx;
  copt.n_batch = o.ctx;
  LlamaContext ctx(model, copt);
  loaded.attach(ctx);
  double nll = 0, nll2 = 0;
  int64_t count = 0;
  std::vector<double> chunk_ppl;
  lookahead::ProgressBar progress("perplexity", static_cast<uint64_t>(n_chunk), !o.json);
  std::vector<int32_t> window(static_cast<size_t>(o.ctx));
  for (int64_t c = 0; c < n_chunk; ++c) {
    const int64_t start = c * o.ctx;
    std::copy(tokens.begin() + start, tokens.begin() + start + o.ctx, window.begin());
    if (add_bos) window[0] = tok.bos();
    ctx.truncate(0);
    const float* logits = ctx.forward(window.data(), o.ctx, first);  // rows for positions first..ctx-1
    for (int64_t i = 0; i < o.ctx - 1 - first; ++i) {
      const float* row = logits + i * n_vocab;
      const int32_t next = tokens[static_cast<size_t>(start + first + i + 1)];
      float max = row[0];
      for (int64_t v = 1; v < n_vocab; ++v) max = std::max(max, row[v]);
      double sum_exp = 0;
      for (int64_t v = 0; v < n_vocab; ++v) sum_exp += std::exp(row[v] - max);
      const double lp = row[next] - max - std::log(sum_exp);
      nll -= lp;
      nll2 += lp * lp;
    }
    count += o.ctx - 1 - first;
    chunk_ppl.push_back(std::exp(nll / static_cast<double>(count)));
    if (!o.json) fmt::print(stderr, "[{}]{:.4f},", c + 1, chunk_ppl.back());
    progress.advance();
  }
  progress.finish();
  const double mean_nll = nll / static_cast<double>(count);
  const double ppl = std::exp(mean_nll);
  double var = nll2 / static_cast<double>(count) - mean_nll * mean_nll;
  const double err = var > 0 && count > 1 ? std::sqrt(var / static_cast<double>(count - 1)) * ppl : 0.0;
  if (o.json) {
    nlohmann::json j{{"model", o.model},          {"file", o.file},       {"n_ctx", o.ctx},
                     {"n_tokens", tokens.size()}, {"n_chunks", n_chunk},  {"n_scored", count},
                     {"add_bos", add_bos},        {"ppl", ppl},           {"ppl_stderr", err},
                     {"mean_nll", mean_nll},      {"chunk_ppl", chunk_ppl}};
    fmt::print("{}\n", j.dump(2));
    return;
  }
  fmt::print(stderr, "\n");
  fmt::print("Final estimate: PPL = {:.4f} +/- {:.5f} ({} chunks of {} tokens, {} tokens scored)\n", ppl, err, n_chunk, o.ctx,
             count);
}

const bool registered = lookahead::cli::register_command(
    {"moe", "perplexity", "Perplexity of a text file (same method as llama-perplexity)", [](CLI::App& cmd) {
       auto o = std::make_shared<PerplexityOptions>();
       cmd.add_option("--model", o->model, "GGUF file, Hugging Face checkpoint directory or Read-ME model directory")->required();
       cmd.add_option("--route", o->route, "Read-ME routing: router (default), oracle:DOMAIN, random[:SEED], dense");
       cmd.add_option("--file,-f", o->file, "UTF-8 text file")->required();
       cmd.add_option("--ctx,-c", o->ctx, "window size in tokens")->capture_default_str();
       cmd.add_option("--chunks", o->chunks, "evaluate at most this many windows (-1 = all)")->capture_default_str();
       cmd.add_option("--threads,-t", o->threads, "CPU threads (0 = all cores)")->capture_default_str();
       cmd.add_flag("--json", o->json, "machine-readable output");
       cmd.callback([o] { run_perplexity(*o); });
     }});

}  // namespace
