#pragma once
// The prompt-then-decode loop shared by `moe generate`, `moe chat` and benchmarks.
//
// Contract: generate() feeds `prompt` at the context's current position (one batched forward),
// then repeatedly samples a token, hands it to on_token, and feeds it back, until max_tokens new
// tokens, an end-of-generation token (is_end; it is not passed to on_token, nor fed back), or
// on_token returns false. Context overflow throws lookahead::Error before any work when the prompt
// alone does not fit; generation stops early (stats.hit_context_limit) when the cache fills.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "moe/model/llama.h"
#include "moe/model/sampling.h"

namespace lookahead::moe {

struct GenerationStats {
  int64_t n_prompt = 0;
  int64_t n_generated = 0;
  double prefill_seconds = 0;
  double decode_seconds = 0;
  bool hit_context_limit = false;
};

GenerationStats generate(LlamaContext& ctx, Sampler& sampler, const std::vector<int32_t>& prompt, int64_t max_tokens,
                         const std::function<bool(int32_t)>& is_end, const std::function<bool(int32_t)>& on_token);

// "1,2, 3" -> {1, 2, 3}; throws lookahead::Error naming `what` on anything else.
std::vector<int32_t> parse_token_ids(const std::string& text, const char* what);

}  // namespace lookahead::moe
