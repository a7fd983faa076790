#include "moe/model/sampling.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"

namespace lookahead::moe {

int32_t argmax(const float* logits, int32_t n) {
  int32_t best = 0;
  for (int32_t i = 1; i < n; ++i)
    if (logits[i] > logits[best]) best = i;
  return best;
}

std::optional<SamplingProblem> check_sampling(const SamplingParams& p) {
  const double t = p.temperature, top_p = p.top_p;
  if (!(t >= 0.0 && t <= kMaxTemperature)) return SamplingProblem{"temperature", fmt::format("{} is not in [0, 2]", t)};
  if (!(top_p > 0.0 && top_p <= 1.0)) return SamplingProblem{"top_p", fmt::format("{} is not in (0, 1]", top_p)};
  if (p.top_k < 0) return SamplingProblem{"top_k", fmt::format("{} is below 0 (0 = all tokens)", p.top_k)};
  return std::nullopt;
}

void require_valid_sampling_flags(const SamplingParams& p) {
  if (auto problem = check_sampling(p)) {
    const std::string field = problem->field;
    const char* flag = field == "temperature" ? "--temp" : field == "top_p" ? "--top-p" : "--top-k";
    fail("{}: {}", flag, problem->reason);
  }
}

Sampler::Sampler(const SamplingParams& params, int32_t n_vocab)
    : params_(params), n_vocab_(n_vocab), rng_(params.seed) {
  if (n_vocab <= 0) fail("sampler: vocabulary is empty");
  if (auto problem = check_sampling(params)) fail("sampling: '{}' {}", problem->field, problem->reason);
  candidates_.resize(static_cast<size_t>(n_vocab));
  probs_.resize(static_cast<size_t>(n_vocab));
}

int32_t Sampler::sample(const float* logits) {
  if (params_.temperature <= 0.0f) return argmax(logits, n_vocab_);
  const float inv_t = 1.0f / params_.temperature;
  for (int32_t i = 0; i < n_vocab_; ++i) candidates_[static_cast<size_t>(i)] = {logits[i] * inv_t, i};
  auto by_logit = [](const Candidate& a, const Candidate& b) { return a.logit > b.logit || (a.logit == b.logit && a.id < b.id); };
  size_t n = candidates_.size();
  if (params_.top_k > 0 && static_cast<size_t>(params_.top_k) < n) n = static_cast<size_t>(params_.top_k);
  // Sorted descending prefix of length n (top-p needs the order).
  std::partial_sort(candidates_.begin(), candidates_.begin() + static_cast<std::ptrdiff_t>(n), candidates_.end(), by_logit);
  const double max = candidates_[0].logit;
  double sum = 0;
  for (size_t i = 0; i < n; ++i) sum += probs_[i] = std::exp(static_cast<double>(candidates_[i].logit) - max);
  if (params_.top_p < 1.0f) {
    double cumulative = 0;
    for (size_t i = 0; i < n; ++i) {
      cumulative += probs_[i] / sum;
      if (cumulative >= params_.top_p) {
        n = i + 1;
        break;
      }
    }
    sum = 0;
    for (size_t i = 0; i < n; ++i) sum += probs_[i];
  }
  const double u = static_cast<double>(rng_() >> 11) * 0x1.0p-53 * sum;
  double acc = 0;
  for (size_t i = 0; i < n; ++i) {
    acc += probs_[i];
    if (u < acc) return candidates_[i].id;
  }
  return candidates_[n - 1].id;
}

}  // namespace lookahead::moe
