#pragma once
// Expert extraction from activation sparsity (Read-ME §3; brief §1 steps 2-3).
//
// Per layer and domain, the domain's top set keeps the neurons whose mean |a_j| is strictly
// greater than the k-th largest value, k = floor(keep * n_ff) (the paper's rule: 5503 of 11008
// neurons for keep = 0.5; ties at the threshold are left out). Expert e is domain e's whole top set;
// the permanent (residual) expert is the intersection of all domains' sets. Experts overlap.
//
// Quantized exports (GGML blocks of 32 values) need every expert to be whole blocks, because an
// expert's down_proj rows are its neurons: with block > 1 each top set is then filled up to the next
// multiple of `block` with the domain's next most active neurons (ties: lower index first), e.g.
// 767 -> 768 of SmolLM2's 1536. block = 1 is the paper's rule unchanged.
//
// Contract: keep must lie in (0, 1] and block >= 1; throws lookahead::Error otherwise. Neuron lists
// are sorted and distinct, ready for FfnHook::active_neurons.
#include <cstdint>
#include <string>
#include <vector>

#include "moe/refactor/activation_stats.h"

namespace lookahead::moe {

struct ExpertSets {
  int32_t n_layer = 0;
  int32_t n_ff = 0;
  double keep = 0.5;
  std::vector<std::string> experts;                     // expert e = domain e
  std::vector<std::vector<std::vector<int32_t>>> neurons;  // [layer][expert] sorted neuron ids
  std::vector<std::vector<int32_t>> permanent;          // [layer] intersection of all experts
};

// Indices j with values[j] strictly greater than the k-th largest value (k >= 1), sorted.
std::vector<int32_t> top_neurons(const float* values, int32_t n, int32_t k);

ExpertSets extract_experts(const ActivationStats& stats, double keep, int32_t block = 1);

// Recomputes sets.permanent (the intersection of every layer's experts) after sets.neurons changed.
void update_permanent(ExpertSets& sets);

// `top` (sorted, from top_neurons) filled up to a multiple of `block` (at most n) with the next
// largest of values[] not in it, ties to the lower index; sorted.
std::vector<int32_t> round_up_to_blocks(std::vector<int32_t> top, const float* values, int32_t n, int32_t block);

// The overlap structure reported by `lookahead moe experts`.
struct OverlapReport {
  std::vector<double> permanent_share;      // [layer] |permanent| / n_ff
  std::vector<double> expert_share;         // [layer] mean |expert| / n_ff (the active FFN fraction)
  std::vector<std::vector<double>> jaccard; // [expert][expert] averaged over layers
  std::vector<int64_t> multiplicity;        // [c] neurons (all layers) lying in exactly c experts, c = 0..N
};
OverlapReport overlap_report(const ExpertSets& sets);

}  // namespace lookahead::moe
