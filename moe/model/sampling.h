#pragma once
// Choosing the next token from logits: greedy, or temperature + top-k + top-p, seeded.
//
// Contract:
//   - temperature <= 0: argmax (ties to the lowest id); no randomness used.
//   - otherwise, in this order (as Hugging Face generate): logits / temperature; keep the top_k
//     largest (top_k <= 0: all); softmax; keep the smallest prefix (by probability, descending)
//     whose mass reaches top_p (top_p >= 1: all); draw from the renormalised distribution.
//   - The draw uses std::mt19937_64 seeded with `seed` (its output sequence is fixed by the C++
//     standard) mapped to [0,1) as (r >> 11) * 2^-53, so the same seed, logits and parameters give
//     the same tokens on every platform.
//   - Buffers are sized once for n_vocab: sampling allocates nothing.
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace lookahead::moe {

struct SamplingParams {
  float temperature = 0.0f;
  int32_t top_k = 40;
  float top_p = 0.95f;
  uint64_t seed = 0;
};

// The accepted ranges, one definition for the CLI flags (--temp, --top-k, --top-p) and the HTTP API
// (temperature, top_k, top_p): temperature in [0, 2] (0 = greedy), top_p in (0, 1], top_k >= 0
// (0 = all). Returns the first offending field ("temperature", "top_p" or "top_k") and what is
// wrong with it ("-1 is not in [0, 2]"), or nothing when all are valid. NaN and infinities fail.
struct SamplingProblem {
  const char* field;
  std::string reason;
};
inline constexpr double kMaxTemperature = 2.0;
std::optional<SamplingProblem> check_sampling(const SamplingParams& p);

// Throws lookahead::Error naming the CLI flag: "--temp: -1 is not in [0, 2]".
void require_valid_sampling_flags(const SamplingParams& p);

class Sampler {
 public:
  Sampler(const SamplingParams& params, int32_t n_vocab);
  int32_t sample(const float* logits);
  const SamplingParams& params() const { return params_; }

 private:
  struct Candidate {
    float logit;
    int32_t id;
  };
  SamplingParams params_;
  int32_t n_vocab_;
  std::mt19937_64 rng_;
  std::vector<Candidate> candidates_;
  std::vector<double> probs_;
};

int32_t argmax(const float* logits, int32_t n);

}  // namespace lookahead::moe
