// `lookahead moe generate`: stream a continuation of a prompt to stdout.
#include <omp.h>

#include <cstdio>
#include <memory>

#include "cli/command.h"
#include "cli/resource_flags.h"
#include "cli/moe_model_flags.h"
#include "common/error.h"
#include "moe/checkpoint/model_source.h"
#include "moe/kernels/matmul.h"
#include "moe/model/generate.h"
#include "moe/model/llama.h"
#include "moe/model/loaded_model.h"

namespace {

using namespace lookahead::moe;

struct GenerateOptions {
  lookahead::cli::ModelFlags m;
  lookahead::cli::SamplingFlags s;
  std::string prompt;
  std::string prompt_ids;
  int64_t tokens = 128;
  bool stats = false;
};

void run_generate(const GenerateOptions& o) {
  if (o.tokens < 0) lookahead::fail("--tokens must be >= 0 (got {})", o.tokens);
  lookahead::cli::apply_threads(o.s.threads);
  if (o.prompt.empty() == o.prompt_ids.empty()) lookahead::fail("give exactly one of --prompt or --prompt-ids");
  require_valid_sampling_flags(o.s.params());
  lookahead::cli::resolve_ctx(o.s.ctx, o.s.ctx_given(), 0);
  LoadedModel loaded(o.m.model, o.m.route);
  const ModelSource* source = &loaded.source();
  const LlamaModel& model = loaded.llama();
  std::vector<int32_t> prompt;
  const Tokenizer* tok = nullptr;
  if (!o.prompt_ids.empty()) {
    prompt = parse_token_ids(o.prompt_ids, "--prompt-ids");
  } else {
    tok = &source->tokenizer();
    prompt = tok->encode(o.prompt, true, true);
  }
  if (!tok) {
    try {
      tok = &source->tokenizer();
    } catch (const lookahead::Error&) {
      tok = nullptr;  // token ids in, token ids out
    }
  }
  const int64_t n_ctx = lookahead::cli::resolve_ctx(o.s.ctx, o.s.ctx_given(), model.hparams().n_ctx_train);
  if (static_cast<int64_t>(prompt.size()) > n_ctx)
    lookahead::fail("prompt of {} tokens is longer than the context of {} tokens; raise --ctx", prompt.size(), n_ctx);
  ContextOptions copt;
  copt.n_ctx = n_ctx;
  LlamaContext ctx(model, copt);
  loaded.attach(ctx);
  Sampler sampler(o.s.params(), model.hparams().n_vocab);
  auto is_end = [tok](int32_t id) { return tok && tok->is_end_of_generation(id); };
  auto on_token = [tok](int32_t id) {
    if (tok) {
      const std::string bytes = tok->token_bytes(id);
      std::fwrite(bytes.data(), 1, bytes.size(), stdout);
    } else {
      std::fprintf(stdout, "%d ", id);
    }
    std::fflush(stdout);
    return true;
  };
  const GenerationStats s = generate(ctx, sampler, prompt, o.tokens, is_end, on_token);
  std::fputc('\n', stdout);
  if (s.hit_context_limit) std::fprintf(stderr, "lookahead: context of %lld tokens is full; stopped\n", static_cast<long long>(n_ctx));
  if (o.stats)
    std::fprintf(stderr, "prompt: %lld tokens in %.3f s (%.1f tok/s); generated: %lld tokens in %.3f s (%.1f tok/s)\n",
                 static_cast<long long>(s.n_prompt), s.prefill_seconds, s.n_prompt / s.prefill_seconds,
                 static_cast<long long>(s.n_generated), s.decode_seconds,
                 s.decode_seconds > 0 ? s.n_generated / s.decode_seconds : 0.0);
}

const bool registered = lookahead::cli::register_command(
    {"moe", "generate", "Generate text from a prompt (streams to stdout)", [](CLI::App& cmd) {
       auto o = std::make_shared<GenerateOptions>();
       lookahead::cli::add_model_flags(cmd, o->m);
       cmd.add_option("--prompt", o->prompt, "prompt text (special tokens like <|im_start|> are parsed)");
       cmd.add_option("--prompt-ids", o->prompt_ids, "prompt as comma-separated token ids instead of text");
       cmd.add_option("--tokens,-n", o->tokens, "most tokens to generate")->capture_default_str();
       lookahead::cli::add_sampling_flags(cmd, o->s);
       cmd.add_flag("--stats", o->stats, "print prompt and generation speed to stderr");
       cmd.callback([o] { run_generate(*o); });
     }});

}  // namespace
