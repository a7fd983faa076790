#pragma once
// Training data for the pre-gating router (brief section 1, "Router stage"; file format in
// docs/readme-model.md): the frozen dense backbone runs over each domain's training split and,
// for every token and layer, scores how much of each expert its most active neurons fall into.
//
// Per token and layer, with a the signed down_proj input and n the mean size of an expert's
// exclusive part (neurons outside the permanent expert) in that layer:
//   s^_j = (1 / 3n) * sum_{c in {n-1, 4n/5, 3n/5, 2n/5, n/5}} [a_j > c-th largest a]
//   d_e  = sum_j s^_j mask_e[j],   then   d <- 10 (d - mean_e d)
// The router loss later pulls the router's logits towards argmax d and softmax(d) in every layer.
//
// Contract: collect_router_targets() writes router_targets.safetensors atomically (tokens,
// seq_start, domain, targets [T, L, N] F32, router_init.embed [V, d_r] F32 = the backbone
// embedding's first d_r columns, zero-padded). Sequences are windows of `ctx` tokens (BOS first
// when the vocabulary asks for it); each starts at router position 0.
#include <cstdint>
#include <string>
#include <vector>

#include "moe/model/llama.h"
#include "moe/model/router.h"
#include "moe/refactor/corpus.h"
#include "moe/refactor/expert_extraction.h"

namespace lookahead::moe {

struct RouterTargetOptions {
  int64_t tokens_per_domain = 16384;
  int64_t ctx = 256;
  bool progress = true;
};

// Targets of one token in one layer (exposed for tests): a[n_ff] -> d[N].
class RouterTargetScorer {
 public:
  explicit RouterTargetScorer(const ExpertSets& sets);
  void score(int layer, const float* a, float* d);
  int64_t exclusive_size(int layer) const { return exclusive_[static_cast<size_t>(layer)]; }

 private:
  const ExpertSets& sets_;
  std::vector<int64_t> exclusive_;                     // [layer] n
  std::vector<std::vector<uint8_t>> member_;           // [layer][neuron * N + e] 0/1
  std::vector<float> sorted_;
  std::vector<int32_t> count_;
};

struct RouterTargetSummary {
  int64_t tokens = 0;
  int64_t sequences = 0;
  std::vector<double> argmax_share;  // [expert] fraction of (token, layer) targets whose argmax is e
};

RouterTargetSummary collect_router_targets(const LlamaModel& model, const std::vector<CorpusDomain>& domains,
                                           const ExpertSets& sets, const RouterConfig& router,
                                           const RouterTargetOptions& options, const std::string& out_path);

}  // namespace lookahead::moe
