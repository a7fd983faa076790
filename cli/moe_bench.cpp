// `lookahead moe bench`: prompt processing (pp512) and text generation (tg128) speed, measured the
// way llama-bench does: random tokens, an empty context per repetition, one warm-up run, then the
// mean and standard deviation of tokens/s over the repetitions.
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>

#include "cli/command.h"
#include "cli/resource_flags.h"
#include "common/error.h"
#include "common/progress.h"
#include "common/stats.h"
#include "moe/format/model_source.h"
#include "moe/kernels/matmul.h"
#include "moe/model/llama.h"
#include "moe/model/loaded_model.h"

namespace {

using namespace lookahead::moe;

struct BenchOptions {
  std::string model;
  std::string route;
  int threads = 0;
  int64_t n_prompt = 512;
  int64_t n_gen = 128;
  int reps = 5;
  uint64_t seed = 0;
  bool json = false;
};

struct TestResult {
  std::string name;
  int64_t n_prompt = 0, n_gen = 0;
  std::vector<double> samples_ts;
  double router_share = 0;  // Read-ME: fraction of the measured time spent in the router
};

double stddev(const std::vector<double>& v) {
  if (v.size() < 2) return 0;
  const double m = lookahead::mean(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size() - 1));
}

void run_bench(const BenchOptions& o) {
  if (o.reps < 1) lookahead::fail("--reps must be >= 1 (got {})", o.reps);
  if (o.n_prompt < 0 || o.n_gen < 0) lookahead::fail("-p and -n must be >= 0");
  lookahead::cli::apply_threads(o.threads);
  LoadedModel loaded(o.model, o.route);
  const LlamaModel& model = loaded.llama();
  const LlamaHparams& hp = model.hparams();
  ContextOptions copt;
  copt.n_ctx = std::max<int64_t>({o.n_prompt, o.n_gen, 1});
  if (hp.n_ctx_train > 0 && copt.n_ctx > hp.n_ctx_train)
    lookahead::fail("{} {}: longer than the model's training context of {} tokens", o.n_prompt >= o.n_gen ? "-p" : "-n",
                    copt.n_ctx, hp.n_ctx_train);
  copt.n_batch = std::max<int64_t>(o.n_prompt, 1);
  LlamaContext ctx(model, copt);
  loaded.attach(ctx);
  std::mt19937_64 rng(o.seed);
  auto random_token = [&] { return static_cast<int32_t>(rng() % static_cast<uint64_t>(hp.n_vocab)); };

  std::vector<TestResult> results;
  if (o.n_prompt > 0) {
    TestResult r{fmt::format("pp{}", o.n_prompt), o.n_prompt, 0, {}};
    std::vector<int32_t> tokens(static_cast<size_t>(o.n_prompt));
    lookahead::ProgressBar bar("bench " + r.name + " (runs)", static_cast<uint64_t>(o.reps) + 1, !o.json);
    for (int rep = -1; rep < o.reps; ++rep) {  // rep -1 is the warm-up
      for (auto& t : tokens) t = random_token();
      ctx.truncate(0);
      const auto t0 = std::chrono::steady_clock::now();
      ctx.forward(tokens.data(), o.n_prompt);
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (rep >= 0) r.samples_ts.push_back(static_cast<double>(o.n_prompt) / s);
      bar.advance();
    }
    bar.finish();
    results.push_back(r);
  }
  if (o.n_gen > 0) {
    TestResult r{fmt::format("tg{}", o.n_gen), 0, o.n_gen, {}};
    double total = 0, router = 0;
    lookahead::ProgressBar bar("bench " + r.name + " (tokens)", (static_cast<uint64_t>(o.reps) + 1) * static_cast<uint64_t>(o.n_gen),
                               !o.json);
    for (int rep = -1; rep < o.reps; ++rep) {
      ctx.truncate(0);
      const double r0 = ctx.router_seconds();
      const auto t0 = std::chrono::steady_clock::now();
      for (int64_t i = 0; i < o.n_gen; ++i) {
        const int32_t token = random_token();
        ctx.forward(&token, 1);
        bar.advance();
      }
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (rep >= 0) {
        r.samples_ts.push_back(static_cast<double>(o.n_gen) / s);
        total += s, router += ctx.router_seconds() - r0;
      }
    }
    bar.finish();
    r.router_share = total > 0 ? router / total : 0;
    results.push_back(r);
  }

  uint64_t bytes = 0, params = 0;
  // Size and parameter count as llama-bench reports them: all tensors of the model.
  {
    auto add = [&](const WeightMatrix& m) {
      bytes += static_cast<uint64_t>(m.bytes());
      params += static_cast<uint64_t>(m.rows * m.cols);
    };
    const LlamaWeights& w = model.weights();
    add(w.token_embd);
    if (!hp.tied_embeddings) add(w.output);
    for (const auto& L : w.layers) {
      for (const WeightMatrix* m : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) add(*m);
      bytes += 2 * L.attn_norm.size() * 4;
      params += 2 * L.attn_norm.size();
    }
    bytes += w.output_norm.size() * 4;
    params += w.output_norm.size();
  }
  const std::string type = std::string(tensor_type_name(model.weights().layers.at(0).w_gate.type));
  if (o.json) {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& r : results)
      arr.push_back({{"model_filename", o.model}, {"model_type", type}, {"model_size", bytes}, {"model_n_params", params},
                     {"n_threads", kernel_threads()}, {"test", r.name}, {"n_prompt", r.n_prompt}, {"n_gen", r.n_gen},
                     {"avg_ts", lookahead::mean(r.samples_ts)}, {"stddev_ts", stddev(r.samples_ts)},
                     {"samples_ts", r.samples_ts},
                     {"weight_bytes_per_token", loaded.weight_bytes_per_token()}, {"route", loaded.route()},
                     {"router_share", r.router_share}});
    fmt::print("{}\n", arr.dump(2));
    return;
  }
  fmt::print("| model | size | params | threads | test | t/s |\n| --- | ---: | ---: | ---: | ---: | ---: |\n");
  for (const auto& r : results)
    fmt::print("| llama {} | {:.2f} MiB | {:.2f} M | {} | {} | {:.2f} ± {:.2f} |\n", type, bytes / 1048576.0, params / 1e6,
               kernel_threads(), r.name, lookahead::mean(r.samples_ts), stddev(r.samples_ts));
  if (loaded.route() == "router")
    for (const auto& r : results)
      if (r.n_gen > 0) fmt::print("router: {:.2f}% of {} decode time (route {})\n", 100 * r.router_share, r.name, loaded.route());
}

const bool registered = lookahead::cli::register_command(
    {"moe", "bench", "Measure prefill (pp512) and decode (tg128) speed like llama-bench", [](CLI::App& cmd) {
       auto o = std::make_shared<BenchOptions>();
       cmd.add_option("--model", o->model, "GGUF file, Hugging Face checkpoint directory or Read-ME model directory")->required();
       cmd.add_option("--route", o->route, "Read-ME routing: router (default), oracle:DOMAIN, random[:SEED], dense");
       cmd.add_option("--threads,-t", o->threads, "CPU threads (0 = all cores)")->capture_default_str();
       cmd.add_option("--n-prompt,-p", o->n_prompt, "prompt tokens for the pp test (0 = skip)")->capture_default_str();
       cmd.add_option("--n-gen,-n", o->n_gen, "generated tokens for the tg test (0 = skip)")->capture_default_str();
       cmd.add_option("--reps,-r", o->reps, "repetitions (after one warm-up)")->capture_default_str();
       cmd.add_option("--seed", o->seed, "seed of the random tokens")->capture_default_str();
       cmd.add_flag("--json", o->json, "machine-readable output (llama-bench-like fields)");
       cmd.callback([o] { run_bench(*o); });
     }});

}  // namespace
