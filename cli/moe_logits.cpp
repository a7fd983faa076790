// `lookahead moe logits`: the prompt's token ids and the full logits vector of its last position,
// for checking against other implementations (tools/ compares with transformers and llama.cpp).
#include <fmt/format.h>

#include <memory>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/resource_flags.h"
#include "common/error.h"
#include "moe/checkpoint/model_source.h"
#include "moe/kernels/matmul.h"
#include "moe/model/generate.h"
#include "moe/model/llama.h"
#include "moe/model/loaded_model.h"
#include "moe/model/sampling.h"

namespace {

using namespace lookahead::moe;

struct LogitsOptions {
  std::string model;
  std::string route;
  std::string prompt;
  std::string prompt_ids;
  bool no_special = false;
  bool all_positions = false;
  bool json = false;
  int threads = 0;
  std::string kv_type = "f32";
};

void run_logits(const LogitsOptions& o) {
  lookahead::cli::apply_threads(o.threads);
  if (o.prompt.empty() == o.prompt_ids.empty()) lookahead::fail("give exactly one of --prompt or --prompt-ids");
  LoadedModel loaded(o.model, o.route);
  const ModelSource* source = &loaded.source();
  const LlamaModel& model = loaded.llama();
  std::vector<int32_t> tokens = o.prompt_ids.empty() ? source->tokenizer().encode(o.prompt, !o.no_special, true)
                                                     : parse_token_ids(o.prompt_ids, "--prompt-ids");
  if (tokens.empty()) lookahead::fail("the prompt has no tokens");
  ContextOptions copt;
  copt.n_ctx = std::max<int64_t>(static_cast<int64_t>(tokens.size()), 1);
  if (o.kv_type == "f16") copt.kv_type = TensorType::F16;
  else if (o.kv_type != "f32") lookahead::fail("--kv-type must be f32 or f16 (got '{}')", o.kv_type);
  if (copt.n_ctx > model.hparams().n_ctx_train)
    lookahead::fail("prompt of {} tokens is longer than the model's context of {}", tokens.size(), model.hparams().n_ctx_train);
  LlamaContext ctx(model, copt);
  loaded.attach(ctx);
  const int64_t n = static_cast<int64_t>(tokens.size());
  const int32_t vocab = model.hparams().n_vocab;
  const float* logits = ctx.forward(tokens.data(), n, o.all_positions ? 0 : n - 1);
  const int64_t rows = o.all_positions ? n : 1;
  if (o.json) {
    nlohmann::json j;
    j["model"] = o.model;
    j["tokens"] = tokens;
    j["n_vocab"] = vocab;
    if (o.all_positions) {
      nlohmann::json all = nlohmann::json::array();
      for (int64_t r = 0; r < rows; ++r) all.push_back(std::vector<float>(logits + r * vocab, logits + (r + 1) * vocab));
      j["logits_all"] = all;
    }
    const float* last = logits + (rows - 1) * vocab;
    j["logits"] = std::vector<float>(last, last + vocab);
    j["argmax"] = argmax(last, vocab);
    fmt::print("{}\n", j.dump());
    return;
  }
  const float* last = logits + (rows - 1) * vocab;
  fmt::print("tokens ({}): {}\n", tokens.size(), fmt::join(tokens, " "));
  std::vector<int32_t> order(static_cast<size_t>(vocab));
  for (int32_t i = 0; i < vocab; ++i) order[static_cast<size_t>(i)] = i;
  std::partial_sort(order.begin(), order.begin() + 10, order.end(), [last](int32_t a, int32_t b) { return last[a] > last[b]; });
  fmt::print("top 10 next tokens (id logit):\n");
  for (int i = 0; i < 10; ++i) fmt::print("  {:6} {:10.4f}\n", order[static_cast<size_t>(i)], last[order[static_cast<size_t>(i)]]);
}

const bool registered = lookahead::cli::register_command(
    {"moe", "logits", "Print a prompt's token ids and its last-position logits", [](CLI::App& cmd) {
       auto o = std::make_shared<LogitsOptions>();
       cmd.add_option("--model", o->model, "GGUF file, Hugging Face checkpoint directory or Read-ME model directory")->required();
       cmd.add_option("--route", o->route, "Read-ME routing: router (default), oracle:DOMAIN, random[:SEED], dense");
       cmd.add_option("--prompt", o->prompt, "prompt text (BOS added when the vocabulary asks for it)");
       cmd.add_option("--prompt-ids", o->prompt_ids, "prompt as comma-separated token ids instead of text");
       cmd.add_flag("--no-special", o->no_special, "do not add BOS/special tokens when tokenizing");
       cmd.add_flag("--all", o->all_positions, "also output the logits of every position (logits_all)");
       cmd.add_option("--kv-type", o->kv_type, "KV cache type: f32 or f16")->capture_default_str();
       cmd.add_option("--threads,-t", o->threads, "CPU threads (0 = all cores)");
       cmd.add_flag("--json", o->json, "machine-readable output");
       cmd.callback([o] { run_logits(*o); });
     }});

}  // namespace
