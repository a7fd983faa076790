// `lookahead moe bench`: prompt processing (pp512) and text generation (tg128) speed, measured the
// way llama-bench does (moe/model/speed_bench.h): random tokens, an empty context per repetition,
// one warm-up run, then the mean and standard deviation of tokens/s over the repetitions.
#include <fmt/format.h>

#include <cmath>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>

#include "cli/command.h"
#include "cli/resource_flags.h"
#include "common/error.h"
#include "common/stats.h"
#include "moe/checkpoint/model_source.h"
#include "moe/kernels/matmul.h"
#include "moe/model/llama.h"
#include "moe/model/loaded_model.h"
#include "moe/model/speed_bench.h"

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

double stddev(const std::vector<double>& v) {
  if (v.size() < 2) return 0;
  const double m = lookahead::mean(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size() - 1));
}

void print_json(const BenchOptions& o, const LoadedModel& loaded, const std::string& type, const ModelSize& size,
                const std::vector<SpeedTest>& results) {
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& r : results)
    arr.push_back({{"model_filename", o.model}, {"model_type", type}, {"model_size", size.bytes},
                   {"model_n_params", size.params}, {"n_threads", kernel_threads()}, {"test", r.name},
                   {"n_prompt", r.n_prompt}, {"n_gen", r.n_gen}, {"avg_ts", lookahead::mean(r.samples_ts)},
                   {"stddev_ts", stddev(r.samples_ts)}, {"samples_ts", r.samples_ts},
                   {"weight_bytes_per_token", loaded.weight_bytes_per_token()}, {"route", loaded.route()},
                   {"router_share", r.router_share}});
  fmt::print("{}\n", arr.dump(2));
}

void print_table(const LoadedModel& loaded, const std::string& type, const ModelSize& size,
                 const std::vector<SpeedTest>& results) {
  fmt::print("| model | size | params | threads | test | t/s |\n| --- | ---: | ---: | ---: | ---: | ---: |\n");
  for (const auto& r : results)
    fmt::print("| llama {} | {:.2f} MiB | {:.2f} M | {} | {} | {:.2f} ± {:.2f} |\n", type, size.bytes / 1048576.0,
               size.params / 1e6, kernel_threads(), r.name, lookahead::mean(r.samples_ts), stddev(r.samples_ts));
  if (loaded.route() == "router")
    for (const auto& r : results)
      if (r.n_gen > 0) fmt::print("router: {:.2f}% of {} decode time (route {})\n", 100 * r.router_share, r.name, loaded.route());
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
  std::vector<SpeedTest> results;
  if (o.n_prompt > 0) results.push_back(bench_prompt(ctx, hp.n_vocab, o.n_prompt, o.reps, rng, !o.json));
  if (o.n_gen > 0) results.push_back(bench_generation(ctx, hp.n_vocab, o.n_gen, o.reps, rng, !o.json));

  const ModelSize size = model_size(model);
  const std::string type = std::string(tensor_type_name(model.weights().layers.at(0).w_gate.type));
  if (o.json)
    print_json(o, loaded, type, size, results);
  else
    print_table(loaded, type, size, results);
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
