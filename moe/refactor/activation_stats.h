#pragma once
// Activation statistics for expert extraction (Read-ME §3, brief §1 step 1): for each domain,
// layer l and FFN neuron j, s_j = mean over tokens of |a_j| where a = SiLU(W_gate h) * (W_up h) is
// the input of down_proj.
//
// Contract:
//   - ActivationStats holds mean_abs[domain][layer][neuron] and the token count per domain.
//   - save() writes a GGUF file (tensors "stats.<domain>", F32, GGML shape [n_ff, n_layer]; keys
//     readme.stats.*), atomically; load() validates it and throws lookahead::Error naming the file
//     and key on any inconsistency. The file is inspectable with `lookahead moe info`.
//   - collect_activation_stats() runs the dense model over each domain's text in non-overlapping
//     windows of `ctx` tokens (BOS first when the vocabulary asks for it), up to
//     tokens_per_domain tokens, accumulating in double precision.
#include <cstdint>
#include <string>
#include <vector>

#include "moe/model/ffn_hook.h"
#include "moe/model/llama.h"
#include "moe/refactor/corpus.h"

namespace lookahead::moe {

struct ActivationStats {
  int32_t n_layer = 0;
  int32_t n_ff = 0;
  std::string model;                 // path of the model the statistics come from
  std::vector<std::string> domains;
  std::vector<int64_t> tokens;       // per domain
  std::vector<float> mean_abs;       // [domain][layer][n_ff]

  const float* row(size_t domain, int layer) const {
    return mean_abs.data() + (domain * static_cast<size_t>(n_layer) + static_cast<size_t>(layer)) * static_cast<size_t>(n_ff);
  }
  void save(const std::string& path) const;
  static ActivationStats load(const std::string& path);
};

// Accumulates sum |a_j| per layer and neuron over every token it observes.
class ActivationRecorder : public FfnHook {
 public:
  ActivationRecorder(int32_t n_layer, int32_t n_ff);
  void on_ffn_activation(int layer, const float* a, int64_t n_tokens, int64_t n_ff) override;
  void reset();
  // Mean |a_j| over `tokens` tokens, [n_layer][n_ff].
  std::vector<float> means(int64_t tokens) const;

 private:
  int32_t n_layer_, n_ff_;
  std::vector<double> sum_abs_;  // [n_layer][n_ff]
};

struct StatsOptions {
  int64_t ctx = 512;
  int64_t tokens_per_domain = 8192;
  bool progress = true;
};

ActivationStats collect_activation_stats(const LlamaModel& model, const std::vector<CorpusDomain>& domains,
                                         const StatsOptions& options);

}  // namespace lookahead::moe
