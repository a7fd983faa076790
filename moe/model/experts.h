#pragma once
// Read-ME's seams in the forward pass (paper section 3): a router that picks every token's expert
// before the backbone runs, and per-(layer, expert) FFN weights.
//
//   F_e(x) = W_down_e (SiLU(W_gate_e x) * W_up_e x),  W_gate_e = W_gate[S_e], W_down_e = W_down[:, S_e]
//
// Contract:
//   - TokenRouter::route() writes experts[0..n) for tokens at positions pos0..pos0+n-1 of the
//     sequence, in order; a stateful router (the pre-gating router's KV cache) may require pos0 to
//     follow the previous call and is told about rewinds through truncate(). Expert ids lie in
//     [0, n_expert); kDenseFfn (-1) asks for the full dense FFN for that token.
//   - ExpertWeights::expert(l, e) returns the matrices of one (layer, expert); they stay valid until
//     the next expert() call (a tiered store may evict them then). Implementations may block until
//     the weights are resident (the serving system's expert cache), which is why the forward pass
//     asks just before it needs them, in order: layer by layer, experts ascending within a layer.
#include <cstdint>
#include <string>

#include "moe/kernels/matmul.h"

namespace lookahead::moe {

constexpr int32_t kDenseFfn = -1;

struct ExpertFfn {
  WeightMatrix gate, up;  // [S_e][d]
  WeightMatrix down;      // [d][S_e]
  int64_t size() const { return gate.rows; }
  int64_t bytes() const { return gate.bytes() + up.bytes() + down.bytes(); }
};

class ExpertWeights {
 public:
  virtual ~ExpertWeights() = default;
  virtual int32_t n_expert() const = 0;
  virtual const ExpertFfn& expert(int layer, int32_t e) const = 0;
};

class TokenRouter {
 public:
  virtual ~TokenRouter() = default;
  virtual void route(const int32_t* tokens, int64_t n, int64_t pos0, int32_t* experts) = 0;
  virtual void truncate(int64_t /*pos*/) {}
  virtual std::string name() const = 0;
};

}  // namespace lookahead::moe
