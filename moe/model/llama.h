#pragma once
// The Llama decoder (llama2.c style): plain weight structs, a KV cache, and one forward() that runs
// a batch of tokens through every layer (prefill) or a single token (decode), same code path.
//
//   x = embed(tokens)                                           [n][d]
//   per layer l:
//     h = rmsnorm(x) ; q,k,v = Wq h, Wk h, Wv h ; rope(q, k)    [n][H*hd], [n][Hkv*hd]
//     x += Wo attention(q, K cache, V cache)                    grouped-query, causal
//     h = rmsnorm(x) ; a = silu(Wgate h) * (Wup h)              [n][D]
//     x += Wdown a
//   logits = Wout rmsnorm(x)                                    [n][vocab]; Wout = token_embd if tied
//
// Contract:
//   - The pass itself is BatchForward: a batch of segments from several sequences (each with its own
//     KvCache) runs through every layer together; LlamaContext is one sequence on top of it.
//   - LlamaModel borrows the ModelSource (must outlive it); weights stay memory-mapped, only norm
//     vectors are widened to f32.
//   - LlamaContext owns the KV cache and all scratch buffers, sized at construction for n_ctx and
//     n_batch, so decode allocates nothing. forward() appends tokens at position n_past(); a prompt
//     that would exceed n_ctx throws lookahead::Error ("context of N tokens exceeded").
//   - forward() returns logits for tokens [logits_from, n_tokens) (default: only the last), row-major
//     [n][n_vocab], valid until the next call.
//   - Read-ME (set_routing): each chunk's tokens are routed first (the router runs before the
//     backbone), then in every layer each token's FFN is its expert's. Tokens of one expert are
//     gathered so each expert's FFN is one matrix multiply over its tokens. Without routing, or for
//     tokens routed to kDenseFfn, the dense FFN runs (a model without dense FFN weights then fails).
#include <cstdint>
#include <memory>
#include <vector>

#include "moe/checkpoint/model_source.h"
#include "moe/kernels/matmul.h"
#include "moe/model/experts.h"
#include "moe/model/ffn_hook.h"

namespace lookahead::moe {

struct LlamaLayer {
  std::vector<float> attn_norm;              // [d]
  WeightMatrix wq, wk, wv, wo;               // [H*hd, d], [Hkv*hd, d], [Hkv*hd, d], [d, H*hd]
  std::vector<float> ffn_norm;               // [d]
  WeightMatrix w_gate, w_up, w_down;         // [D, d], [D, d], [d, D]
};

struct LlamaWeights {
  WeightMatrix token_embd;                   // [vocab, d]
  std::vector<LlamaLayer> layers;
  std::vector<float> output_norm;            // [d]
  WeightMatrix output;                       // [vocab, d] (token_embd when tied)
};

class LlamaModel {
 public:
  explicit LlamaModel(const ModelSource& source);
  const ModelSource& source() const { return source_; }
  const LlamaHparams& hparams() const { return hp_; }
  const LlamaWeights& weights() const { return w_; }
  // Bytes of weights one decode step reads (all matrices; the embedding contributes one row).
  uint64_t weight_bytes_per_token() const;
  // False for an exported Read-ME model that carries experts only.
  bool has_dense_ffn() const { return !w_.layers.empty() && w_.layers[0].w_gate.data != nullptr; }

 private:
  const ModelSource& source_;
  LlamaHparams hp_;
  LlamaWeights w_;
};

struct ContextOptions {
  int64_t n_ctx = 2048;                      // KV cache positions
  int64_t n_batch = 512;                     // most tokens per internal forward chunk
  TensorType kv_type = TensorType::F32;      // F32 or F16
};

// One sequence's KV cache: [layer][position][n_head_kv * head_dim] of kv_type for n_ctx positions.
// Sequences of a batched forward each bring their own; LlamaContext owns one.
class KvCache {
 public:
  KvCache(const LlamaHparams& hp, int64_t n_ctx, TensorType kv_type);
  int64_t n_past() const { return n_past_; }
  int64_t n_ctx() const { return n_ctx_; }
  TensorType type() const { return type_; }
  uint64_t bytes() const { return 2 * static_cast<uint64_t>(k_.size()); }
  // Forget positions from `pos` on.
  void truncate(int64_t pos);
  // Copies positions [0, n) of every layer from `from` (same model and KV type) and sets n_past to
  // n: a prompt prefix whose keys and values were computed for another sequence (the serving
  // engine's prefix cache). Throws lookahead::Error when the layouts differ or n does not fit.
  void copy_prefix(const KvCache& from, int64_t n);
  uint8_t* k_row(int layer, int64_t pos) { return k_.data() + offset(layer, pos); }
  uint8_t* v_row(int layer, int64_t pos) { return v_.data() + offset(layer, pos); }

 private:
  friend class BatchForward;
  size_t offset(int layer, int64_t pos) const {
    return static_cast<size_t>((int64_t{layer} * n_ctx_ + pos) * row_bytes_);
  }
  int64_t n_ctx_, n_past_ = 0, row_bytes_;
  TensorType type_;
  std::vector<uint8_t> k_, v_;
};

// A batch's share of one sequence: `n` consecutive tokens appended to `cache` at cache->n_past().
struct BatchSegment {
  KvCache* cache = nullptr;
  const int32_t* tokens = nullptr;
  int64_t n = 0;
  const int32_t* experts = nullptr;  // each token's routed expert (Read-ME); null = dense FFN
  int64_t logits_from = -1;          // logit rows for tokens [logits_from, n); -1 = the last only, n = none
};

// The forward pass over a batch of segments from different sequences (continuous batching): every
// weight matrix is one matrix multiply over all the batch's tokens; attention and RoPE are per
// segment (each sequence its own cache and positions); each Read-ME expert's FFN is one matrix
// multiply over the tokens routed to it, whichever sequence they belong to.
//
// Contract: at most n_batch tokens in all; every segment's cache has room for its tokens (else
// lookahead::Error naming the context size); token ids and expert ids are checked before any cache
// changes. Writes the wanted logit rows, segment by segment in order, [rows][n_vocab], to `logits`
// (null: an internal buffer, valid until the next call) and returns where they are.
class BatchForward {
 public:
  BatchForward(const LlamaModel& model, int64_t n_batch, int64_t max_ctx);
  int64_t n_batch() const { return n_batch_; }
  void set_ffn_hook(FfnHook* hook) { hook_ = hook; }
  // Expert weights for segments with routed tokens; borrowed (null = none).
  void set_experts(const ExpertWeights* experts) { expert_weights_ = experts; }
  const float* forward(const BatchSegment* segments, size_t n_segments, float* logits = nullptr);
  const LlamaModel& model() const { return model_; }

 private:
  // x[t] += FFN_{expert of t}(h[t]) for the batch's n tokens (grouped: one matmul per expert).
  void ffn_block(int layer, int64_t n, bool routed);
  // Fills expert_order_ / group_start_ for the batch's routing (once per batch, not per layer).
  void group_by_expert(const int32_t* experts, int64_t n);
  // out[m][d] = FFN(in[m][d]) of one expert, or of the dense FFN (with the hook's neuron subset).
  void ffn_rows(int layer, const float* in, int64_t m, float* out, int32_t expert);

  const LlamaModel& model_;
  int64_t n_batch_, max_ctx_;
  FfnHook* hook_ = nullptr;
  const ExpertWeights* expert_weights_ = nullptr;
  std::vector<int32_t> tokens_, experts_;  // the batch's tokens and experts, concatenated
  std::vector<int32_t> expert_order_;      // batch token indices grouped by expert
  std::vector<int64_t> group_start_, group_fill_;
  std::vector<float> gathered_;            // [n_batch][d] FFN inputs / outputs of one expert's tokens
  int n_threads_ = 1;
  // Scratch, [n_batch][...] each.
  std::vector<float> x_, h_, q_, k_, v_, att_, gate_, up_, scores_, cos_sin_;
  std::vector<float> logits_;
  MatmulWorkspace ws_;
};

// One sequence: its KV cache, its router (Read-ME) and a BatchForward of one segment per chunk.
class LlamaContext {
 public:
  LlamaContext(const LlamaModel& model, const ContextOptions& options);

  const float* forward(const int32_t* tokens, int64_t n_tokens, int64_t logits_from = -1);
  int64_t n_past() const { return cache_.n_past(); }
  int64_t n_ctx() const { return opt_.n_ctx; }
  // Forget the cache from position `pos` on (0 = start over).
  void truncate(int64_t pos);
  void set_ffn_hook(FfnHook* hook) { batch_.set_ffn_hook(hook); }
  // Read-ME routing; both borrowed, both null = dense. The router sees every token fed to forward().
  void set_routing(TokenRouter* router, const ExpertWeights* experts);
  // Experts of the tokens of the last forward() call (empty when dense).
  const std::vector<int32_t>& last_experts() const { return experts_; }
  // Wall time spent in the router since construction (the paper's router-cost measurement).
  double router_seconds() const { return router_seconds_; }
  const LlamaModel& model() const { return model_; }

 private:
  const LlamaModel& model_;
  ContextOptions opt_;
  KvCache cache_;
  BatchForward batch_;
  TokenRouter* router_ = nullptr;
  const ExpertWeights* expert_weights_ = nullptr;
  std::vector<int32_t> experts_;          // [n_tokens] of the current forward()
  double router_seconds_ = 0;
  std::vector<float> logits_;
};

}  // namespace lookahead::moe
