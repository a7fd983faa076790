// `lookahead moe perplexity`: perplexity of a text, computed as llama.cpp's llama-perplexity does
// (tools/perplexity/perplexity.cpp, perplexity()):
//   - tokenize the whole file with special handling on (BOS prepended if the vocabulary adds BOS);
//   - split into n_chunk = n_tokens / n_ctx non-overlapping windows of n_ctx tokens; each window
//     starts from an empty cache, and its first token is replaced by BOS when the vocabulary adds BOS;
//   - score only the second half: for i in [n_ctx/2, n_ctx - 1), nll -= log softmax(logits[i])[tok[i+1]];
//   - PPL = exp(mean nll), with the same +/- estimate (std of the per-token nll / sqrt(count-1)).
// On the same scored positions it also reports next-token top-1 accuracy (argmax of the logits is
// the next token) and, with --kl-base, llama-perplexity --kl-divergence's statistics against a
// base model run on the same windows: mean KL(base || model) per token in nats, and how often the
// two argmaxes agree.
#include <unistd.h>

#include <fmt/format.h>

#include <cmath>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/command.h"
#include "common/input_file.h"
#include "cli/resource_flags.h"
#include "cli/moe_model_flags.h"
#include "common/error.h"
#include "common/progress.h"
#include "moe/checkpoint/model_source.h"
#include "moe/kernels/matmul.h"
#include "moe/model/llama.h"
#include "moe/model/loaded_model.h"

namespace {

using namespace lookahead::moe;

struct PerplexityOptions {
  std::string model;
  std::string route;
  std::string file;
  std::string kl_base;
  std::string kl_base_route = "dense";
  int64_t ctx = 512;
  CLI::Option* ctx_option = nullptr;
  int64_t chunks = -1;
  int threads = 0;
  bool json = false;
};

// Mean of a per-token quantity and the standard error of that mean (std / sqrt(n - 1)).
struct MeanAccumulator {
  double sum = 0, sum2 = 0;
  int64_t n = 0;
  void add(double x) {
    sum += x;
    sum2 += x * x;
    ++n;
  }
  double mean() const { return n > 0 ? sum / static_cast<double>(n) : 0.0; }
  double stderr_of_mean() const {
    const double m = mean(), var = n > 0 ? sum2 / static_cast<double>(n) - m * m : 0.0;
    return var > 0 && n > 1 ? std::sqrt(var / static_cast<double>(n - 1)) : 0.0;
  }
};

// One logits row's softmax normaliser: log p(v) = row[v] - max - log_sum_exp; argmax is the first
// maximum.
struct RowSoftmax {
  float max = 0;
  double log_sum_exp = 0;
  int32_t argmax = 0;
};

RowSoftmax row_softmax(const float* row, int64_t n_vocab) {
  RowSoftmax s;
  s.max = row[0];
  for (int64_t v = 1; v < n_vocab; ++v)
    if (row[v] > s.max) {
      s.max = row[v];
      s.argmax = static_cast<int32_t>(v);
    }
  double sum_exp = 0;
  for (int64_t v = 0; v < n_vocab; ++v) sum_exp += std::exp(row[v] - s.max);
  s.log_sum_exp = std::log(sum_exp);
  return s;
}

double log_prob(const float* row, const RowSoftmax& s, int32_t token) {
  return static_cast<double>(row[token] - s.max) - s.log_sum_exp;
}

// KL(base || model) = sum_v p_base(v) (log p_base(v) - log p_model(v)), in nats.
double kl_divergence(const float* base, const RowSoftmax& bs, const float* model, const RowSoftmax& ms,
                     int64_t n_vocab) {
  double kl = 0;
  for (int64_t v = 0; v < n_vocab; ++v) {
    const double lb = static_cast<double>(base[v] - bs.max) - bs.log_sum_exp;
    const double lm = static_cast<double>(model[v] - ms.max) - ms.log_sum_exp;
    kl += std::exp(lb) * (lb - lm);
  }
  return std::max(kl, 0.0);  // rounding can leave a tiny negative for identical rows
}

// Everything scored over the run.
struct Scores {
  MeanAccumulator log_prob;  // log p(next token) per scored token
  MeanAccumulator top1;      // 1 when argmax == next token
  MeanAccumulator kl;        // KL(base || model), with a base only
  MeanAccumulator agree;     // 1 when argmax == the base's argmax, with a base only
};

// Scores one window's rows: `logits` (and `base`, or nullptr) hold rows for positions first..,
// `next` the token each row predicts.
void score_window(const float* logits, const float* base, const int32_t* next, int64_t n_rows, int64_t n_vocab,
                  Scores& s) {
  for (int64_t i = 0; i < n_rows; ++i) {
    const float* row = logits + i * n_vocab;
    const RowSoftmax ms = row_softmax(row, n_vocab);
    s.log_prob.add(log_prob(row, ms, next[i]));
    s.top1.add(ms.argmax == next[i] ? 1.0 : 0.0);
    if (!base) continue;
    const float* base_row = base + i * n_vocab;
    const RowSoftmax bs = row_softmax(base_row, n_vocab);
    s.kl.add(kl_divergence(base_row, bs, row, ms, n_vocab));
    s.agree.add(bs.argmax == ms.argmax ? 1.0 : 0.0);
  }
}

// The --kl-base model with its own context, checked against the evaluated one: same vocabulary
// size, same tokens for the text (when it has a tokenizer), and a long enough training context.
struct BaseModel {
  std::unique_ptr<LoadedModel> loaded;
  std::unique_ptr<LlamaContext> ctx;
};

BaseModel open_base(const PerplexityOptions& o, const LlamaModel& model, const std::string& text,
                    const std::vector<int32_t>& tokens) {
  BaseModel b;
  try {
    b.loaded = std::make_unique<LoadedModel>(o.kl_base, o.kl_base_route);
  } catch (const lookahead::Error& e) {
    lookahead::fail("--kl-base {} (--kl-base-route {}): {}", o.kl_base, o.kl_base_route, e.what());
  }
  const LlamaModel& base = b.loaded->llama();
  if (base.hparams().n_vocab != model.hparams().n_vocab)
    lookahead::fail("--kl-base {}: vocabulary of {} tokens, but {} has {}; KL needs the same tokenizer", o.kl_base,
                    base.hparams().n_vocab, o.model, model.hparams().n_vocab);
  if (o.ctx > base.hparams().n_ctx_train)
    lookahead::fail("--kl-base {}: --ctx {} is larger than its training context {}", o.kl_base, o.ctx,
                    base.hparams().n_ctx_train);
  const Tokenizer* base_tok = nullptr;
  try {
    base_tok = &b.loaded->source().tokenizer();
  } catch (const lookahead::Error&) {
    base_tok = nullptr;  // no tokenizer of its own: the vocabulary size check is all there is
  }
  if (base_tok && base_tok->encode(text, true, false) != tokens)
    lookahead::fail("--kl-base {}: its tokenizer splits {} differently from {}'s; KL needs the same tokenizer",
                    o.kl_base, o.file, o.model);
  ContextOptions copt;
  copt.n_ctx = o.ctx;
  copt.n_batch = o.ctx;
  b.ctx = std::make_unique<LlamaContext>(base, copt);
  b.loaded->attach(*b.ctx);
  return b;
}

void print_json(const PerplexityOptions& o, size_t n_tokens, int64_t n_chunk, bool add_bos, const Scores& s,
                const std::vector<double>& chunk_ppl) {
  const double mean_nll = -s.log_prob.mean(), ppl = std::exp(mean_nll);
  nlohmann::json j{{"model", o.model},
                   {"file", o.file},
                   {"n_ctx", o.ctx},
                   {"n_tokens", n_tokens},
                   {"n_chunks", n_chunk},
                   {"n_scored", s.log_prob.n},
                   {"add_bos", add_bos},
                   {"ppl", ppl},
                   {"ppl_stderr", s.log_prob.stderr_of_mean() * ppl},
                   {"mean_nll", mean_nll},
                   {"top1", s.top1.mean()},
                   {"top1_stderr", s.top1.stderr_of_mean()},
                   {"chunk_ppl", chunk_ppl}};
  if (!o.route.empty()) j["route"] = o.route;
  if (!o.kl_base.empty()) {
    j["kl_base"] = o.kl_base;
    j["kl_base_route"] = o.kl_base_route;
    j["kl"] = s.kl.mean();
    j["kl_stderr"] = s.kl.stderr_of_mean();
    j["top1_agree"] = s.agree.mean();
  }
  fmt::print("{}\n", j.dump(2));
}

void print_text(const PerplexityOptions& o, int64_t n_chunk, const Scores& s) {
  const double ppl = std::exp(-s.log_prob.mean());
  fmt::print("Final estimate: PPL = {:.4f} +/- {:.5f} ({} chunks of {} tokens, {} tokens scored)\n", ppl,
             s.log_prob.stderr_of_mean() * ppl, n_chunk, o.ctx, s.log_prob.n);
  fmt::print("Top-1 accuracy: {:.3f}% +/- {:.3f}%\n", 100 * s.top1.mean(), 100 * s.top1.stderr_of_mean());
  if (o.kl_base.empty()) return;
  fmt::print("KL(base || model): {:.6f} +/- {:.6f} nats per token; same top-1 as base: {:.3f}% (base: {} --route {})\n",
             s.kl.mean(), s.kl.stderr_of_mean(), 100 * s.agree.mean(), o.kl_base, o.kl_base_route);
}

void run_perplexity(const PerplexityOptions& o) {
  lookahead::cli::apply_threads(o.threads);
  const bool ctx_given = o.ctx_option && o.ctx_option->count() > 0;
  lookahead::cli::resolve_ctx(o.ctx, ctx_given, 0, 4);
  if (o.chunks == 0 || o.chunks < -1) lookahead::fail("--chunks must be -1 (all windows) or at least 1, got {}", o.chunks);
  const std::string text = lookahead::read_input_file(o.file, "--file");

  LoadedModel loaded(o.model, o.route);
  const ModelSource* source = &loaded.source();
  const LlamaModel& model = loaded.llama();
  lookahead::cli::resolve_ctx(o.ctx, /*given=*/true, model.hparams().n_ctx_train, 4);  // windows of exactly --ctx
  const Tokenizer& tok = source->tokenizer();
  std::vector<int32_t> tokens = tok.encode(text, true, false);
  // Whether the vocabulary adds BOS (llama_vocab_get_add_bos): encode() with add_special shows it.
  const std::vector<int32_t> probe = tok.encode("a", true, false);
  const bool add_bos = tok.bos() >= 0 && !probe.empty() && probe.front() == tok.bos();
  if (static_cast<int64_t>(tokens.size()) < 2 * o.ctx)
    lookahead::fail("{}: tokenizes to {} tokens; perplexity with --ctx {} needs at least {}", o.file, tokens.size(), o.ctx,
                    2 * o.ctx);
  BaseModel base;
  if (!o.kl_base.empty()) base = open_base(o, model, text, tokens);
  int64_t n_chunk = static_cast<int64_t>(tokens.size()) / o.ctx;
  if (o.chunks > 0) n_chunk = std::min(n_chunk, o.chunks);
  const int64_t n_vocab = model.hparams().n_vocab, first = o.ctx / 2, n_rows = o.ctx - 1 - first;

  ContextOptions copt;
  copt.n_ctx = o.ctx;
  copt.n_batch = o.ctx;
  LlamaContext ctx(model, copt);
  loaded.attach(ctx);
  Scores scores;
  std::vector<double> chunk_ppl;
  // On a terminal each chunk's perplexity appears as it is scored (llama-perplexity's "[1]5.1,[2]...")
  // under the bar; in a log the progress lines are the live part and the list comes at the end, whole.
  const bool terminal = isatty(STDERR_FILENO) == 1;
  std::string chunk_list;
  lookahead::ProgressBar progress("perplexity", static_cast<uint64_t>(n_chunk), !o.json);
  std::vector<int32_t> window(static_cast<size_t>(o.ctx));
  for (int64_t c = 0; c < n_chunk; ++c) {
    const int64_t start = c * o.ctx;
    std::copy(tokens.begin() + start, tokens.begin() + start + o.ctx, window.begin());
    if (add_bos) window[0] = tok.bos();
    const float* base_logits = nullptr;
    if (base.ctx) {
      base.ctx->truncate(0);
      base_logits = base.ctx->forward(window.data(), o.ctx, first);
    }
    ctx.truncate(0);
    const float* logits = ctx.forward(window.data(), o.ctx, first);  // rows for positions first..ctx-1
    score_window(logits, base_logits, tokens.data() + start + first + 1, n_rows, n_vocab, scores);
    chunk_ppl.push_back(std::exp(-scores.log_prob.mean()));
    if (!o.json && terminal) fmt::print(stderr, "[{}]{:.4f},", c + 1, chunk_ppl.back());
    if (!o.json && !terminal) chunk_list += fmt::format("[{}]{:.4f},", c + 1, chunk_ppl.back());
    progress.advance();
  }
  progress.finish();
  if (o.json) return print_json(o, tokens.size(), n_chunk, add_bos, scores, chunk_ppl);
  fmt::print(stderr, "{}\n", chunk_list);
  print_text(o, n_chunk, scores);
}

const bool registered = lookahead::cli::register_command(
    {"moe", "perplexity", "Perplexity of a text file (same method as llama-perplexity)", [](CLI::App& cmd) {
       auto o = std::make_shared<PerplexityOptions>();
       cmd.add_option("--model", o->model, "GGUF file, Hugging Face checkpoint directory or Read-ME model directory")->required();
       cmd.add_option("--route", o->route, "Read-ME routing: router (default), oracle:DOMAIN, random[:SEED], dense");
       cmd.add_option("--file,-f", o->file, "UTF-8 text file")->required();
       o->ctx_option = cmd.add_option("--ctx,-c", o->ctx, "window size in tokens, 4 to the model's training context")
                           ->capture_default_str();
       cmd.add_option("--chunks", o->chunks, "evaluate at most this many windows (-1 = all)")->capture_default_str();
       cmd.add_option("--threads,-t", o->threads, "CPU threads (0 = all cores)")->capture_default_str();
       cmd.add_option("--kl-base", o->kl_base,
                      "also run this model (same tokenizer) on the same windows and report mean KL(base || model) "
                      "and top-1 agreement");
       cmd.add_option("--kl-base-route", o->kl_base_route,
                      "routing of --kl-base when it is a Read-ME directory: dense (its dense FFN), router, "
                      "oracle:DOMAIN, random[:SEED]")
           ->capture_default_str();
       cmd.add_flag("--json", o->json, "machine-readable output");
       cmd.callback([o] { run_perplexity(*o); });
     }});

}  // namespace
