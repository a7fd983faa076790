#pragma once
// Prompt processing (ppN) and text generation (tgN) speed, measured the way llama-bench does
// (`lookahead moe bench`): random tokens, an empty context per repetition, one warm-up run, then
// tokens/s per repetition.
//
// Contract: bench_prompt runs reps + 1 forward passes of n_prompt random tokens, bench_generation
// reps + 1 decodes of n_gen random tokens one at a time; the first of each is the warm-up and is
// not reported. Both draw the tokens from `rng` (uniform over the vocabulary) and show a progress
// bar on stderr when `progress`. The context must hold n_prompt (and n_gen) tokens.
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "moe/model/llama.h"

namespace lookahead::moe {

struct SpeedTest {
  std::string name;                 // "pp512", "tg128"
  int64_t n_prompt = 0, n_gen = 0;
  std::vector<double> samples_ts;   // tokens/s of each measured repetition
  double router_share = 0;          // Read-ME decode: fraction of the measured time spent in the router
};

SpeedTest bench_prompt(LlamaContext& ctx, int32_t n_vocab, int64_t n_prompt, int reps, std::mt19937_64& rng,
                       bool progress);
SpeedTest bench_generation(LlamaContext& ctx, int32_t n_vocab, int64_t n_gen, int reps, std::mt19937_64& rng,
                           bool progress);

// Size and parameter count as llama-bench reports them: all tensors of the model.
struct ModelSize {
  uint64_t bytes = 0;
  uint64_t params = 0;
};
ModelSize model_size(const LlamaModel& model);

}  // namespace lookahead::moe
