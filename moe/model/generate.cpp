#include "moe/model/generate.h"

#include <chrono>
#include <cstdlib>

#include "common/error.h"

namespace lookahead::moe {

namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

GenerationStats generate(LlamaContext& ctx, Sampler& sampler, const std::vector<int32_t>& prompt, int64_t max_tokens,
                         const std::function<bool(int32_t)>& is_end, const std::function<bool(int32_t)>& on_token) {
  GenerationStats stats;
  stats.n_prompt = static_cast<int64_t>(prompt.size());
  if (prompt.empty()) fail("the prompt is empty (no tokens to start from)");
  if (ctx.n_past() + stats.n_prompt > ctx.n_ctx())
    fail("prompt of {} tokens is longer than the context of {} tokens ({} already used); raise --ctx", stats.n_prompt,
         ctx.n_ctx(), ctx.n_past());
  auto t0 = std::chrono::steady_clock::now();
  const float* logits = ctx.forward(prompt.data(), stats.n_prompt);
  stats.prefill_seconds = seconds_since(t0);
  t0 = std::chrono::steady_clock::now();
  while (stats.n_generated < max_tokens) {
    const int32_t token = sampler.sample(logits);
    if (is_end && is_end(token)) break;
    ++stats.n_generated;
    if (!on_token(token)) break;
    if (stats.n_generated == max_tokens) break;
    if (ctx.n_past() >= ctx.n_ctx()) {
      stats.hit_context_limit = true;
      break;
    }
    logits = ctx.forward(&token, 1);
  }
  stats.decode_seconds = seconds_since(t0);
  return stats;
}

std::vector<int32_t> parse_token_ids(const std::string& text, const char* what) {
  std::vector<int32_t> ids;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == ',')) ++i;
    if (i == text.size()) break;
    char* end = nullptr;
    const long v = std::strtol(text.c_str() + i, &end, 10);
    if (end == text.c_str() + i || v < 0 || v > INT32_MAX)
      fail("{}: expected comma-separated non-negative token ids, got '{}'", what, text);
    ids.push_back(static_cast<int32_t>(v));
    i = static_cast<size_t>(end - text.c_str());
    if (i < text.size() && text[i] != ' ' && text[i] != ',')
      fail("{}: expected comma-separated non-negative token ids, got '{}'", what, text);
  }
  return ids;
}

}  // namespace lookahead::moe
