// `lookahead moe chat`: an interactive conversation on stdin/stdout with the model's chat template.
// Each line of stdin is one user message; the reply streams to stdout. The KV cache keeps the
// conversation: each turn re-renders the template and only feeds tokens past the common prefix.
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <memory>

#include "cli/command.h"
#include "cli/resource_flags.h"
#include "cli/moe_model_flags.h"
#include "common/error.h"
#include "moe/format/model_source.h"
#include "moe/kernels/matmul.h"
#include "moe/model/generate.h"
#include "moe/model/llama.h"
#include "moe/model/loaded_model.h"

namespace {

using namespace lookahead::moe;

struct ChatOptions {
  lookahead::cli::ModelFlags m;
  lookahead::cli::SamplingFlags s{.temp = 0.7f, .ctx = 4096};  // cooler and longer than generate
  std::string system;
  int64_t tokens = 512;
};

void run_chat(const ChatOptions& o) {
  lookahead::cli::apply_threads(o.s.threads);
  require_valid_sampling_flags(o.s.params());
  lookahead::cli::resolve_ctx(o.s.ctx, o.s.ctx_given(), 0);
  LoadedModel loaded(o.m.model, o.m.route);
  const ModelSource* source = &loaded.source();
  const LlamaModel& model = loaded.llama();
  const Tokenizer& tok = source->tokenizer();
  ContextOptions copt;
  copt.n_ctx = lookahead::cli::resolve_ctx(o.s.ctx, o.s.ctx_given(), model.hparams().n_ctx_train);
  LlamaContext ctx(model, copt);
  loaded.attach(ctx);
  Sampler sampler(o.s.params(), model.hparams().n_vocab);
  std::vector<ChatMessage> messages;
  if (!o.system.empty()) messages.push_back({"system", o.system});
  std::vector<int32_t> cached;  // tokens whose K/V are in the cache, in order
  const bool interactive = isatty(STDIN_FILENO) != 0;
  std::string line;
  while (true) {
    if (interactive) std::fprintf(stderr, "> ");
    if (!std::getline(std::cin, line)) break;
    if (line.empty()) continue;
    messages.push_back({"user", line});
    const std::string rendered = tok.apply_chat_template(messages, true);
    std::vector<int32_t> all = tok.encode(rendered, true, true);
    size_t common = 0;
    while (common < cached.size() && common < all.size() && cached[common] == all[common]) ++common;
    if (common == all.size()) --common;  // always feed at least one token to get logits
    ctx.truncate(static_cast<int64_t>(common));
    cached.resize(common);
    std::vector<int32_t> fresh(all.begin() + static_cast<std::ptrdiff_t>(common), all.end());
    if (ctx.n_past() + static_cast<int64_t>(fresh.size()) >= ctx.n_ctx())
      lookahead::fail("the conversation ({} tokens) no longer fits the context of {} tokens; raise --ctx", all.size(),
                      ctx.n_ctx());
    cached.insert(cached.end(), fresh.begin(), fresh.end());
    std::string reply;
    auto on_token = [&](int32_t id) {
      const std::string bytes = tok.token_bytes(id);
      reply += bytes;
      cached.push_back(id);
      std::fwrite(bytes.data(), 1, bytes.size(), stdout);
      std::fflush(stdout);
      return true;
    };
    const GenerationStats s =
        generate(ctx, sampler, fresh, o.tokens, [&tok](int32_t id) { return tok.is_end_of_generation(id); }, on_token);
    // The last sampled token was not fed back; keep `cached` equal to what the cache holds.
    if (static_cast<int64_t>(cached.size()) > ctx.n_past()) cached.resize(static_cast<size_t>(ctx.n_past()));
    std::fputc('\n', stdout);
    std::fflush(stdout);
    messages.push_back({"assistant", reply});
    if (s.hit_context_limit) {
      std::fprintf(stderr, "lookahead: context of %lld tokens is full\n", static_cast<long long>(ctx.n_ctx()));
      break;
    }
  }
}

const bool registered = lookahead::cli::register_command(
    {"moe", "chat", "Chat with a model on stdin/stdout (chat template, streaming)", [](CLI::App& cmd) {
       auto o = std::make_shared<ChatOptions>();
       lookahead::cli::add_model_flags(cmd, o->m);
       cmd.add_option("--system", o->system, "system message");
       cmd.add_option("--tokens,-n", o->tokens, "most tokens per reply")->capture_default_str();
       lookahead::cli::add_sampling_flags(cmd, o->s);
       cmd.callback([o] { run_chat(*o); });
     }});

}  // namespace
