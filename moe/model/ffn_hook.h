#pragma once
// The seam between the dense forward pass and Read-ME (paper §3-4): a hook may observe each
// layer's FFN activations (to collect the statistics experts are extracted from) and may restrict
// a layer's FFN to a subset of its neurons (to run one expert).
//
// Contract:
//   - active_neurons(layer): nullptr = all n_ff neurons; otherwise the sorted, distinct neuron
//     indices (rows of ffn_gate/ffn_up, columns of ffn_down) to compute. Other neurons contribute
//     exactly zero: a[i] = 0 for i outside the set. The vector must stay valid during the call
//     to forward().
//   - on_ffn_activation(layer, a, n_tokens, n_ff) is called once per layer per forward() chunk with
//     a = SiLU(gate h) * (up h), shape [n_tokens][n_ff], the input of ffn_down (after masking).
//   - Both run on the calling thread, between kernels.
#include <cstdint>
#include <vector>

namespace lookahead::moe {

class FfnHook {
 public:
  virtual ~FfnHook() = default;
  virtual const std::vector<int32_t>* active_neurons(int /*layer*/) { return nullptr; }
  virtual void on_ffn_activation(int /*layer*/, const float* /*a*/, int64_t /*n_tokens*/, int64_t /*n_ff*/) {}
};

}  // namespace lookahead::moe
