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
//   - LlamaModel borrows the ModelSource (must outlive it); weights stay memory-mapped, only norm
//     vectors are widened to f32.
//   - LlamaContext owns the KV cache and all scratch buffers, sized at construction for n_ctx and
//     n_batch, so decode allocates nothing. forward() appends tokens at position n_past(); a prompt
//     that would exceed n_ctx throws lookahead::Error ("context of N tokens exceeded").
//   - forward() returns logits for tokens [logits_from, n_tokens) (default: only the last), row-major
//     [n][n_vocab], valid until the next call.
#include <cstdint>
#include <memory>
#include <vector>

#include "moe/format/model_source.h"
#include "moe/kernels/matmul.h"
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

class LlamaContext {
 public:
  LlamaContext(const LlamaModel& model, const ContextOptions& options);

  const float* forward(const int32_t* tokens, int64_t n_tokens, int64_t logits_from = -1);
  int64_t n_past() const { return n_past_; }
  int64_t n_ctx() const { return opt_.n_ctx; }
  // Forget the cache from position `pos` on (0 = start over).
  void truncate(int64_t pos);
  void set_ffn_hook(FfnHook* hook) { hook_ = hook; }
  const LlamaModel& model() const { return model_; }

 private:
  void forward_chunk(const int32_t* tokens, int64_t n, int64_t logits_from, float* logits);
  uint8_t* cache_row(std::vector<uint8_t>& cache, int layer, int64_t pos);

  const LlamaModel& model_;
  ContextOptions opt_;
  int64_t n_past_ = 0;
  FfnHook* hook_ = nullptr;
  int n_threads_ = 1;

  // KV cache: [layer][position][n_head_kv * head_dim] of opt_.kv_type.
  std::vector<uint8_t> k_cache_, v_cache_;
  // Scratch, [n_batch][...] each.
  std::vector<float> x_, h_, q_, k_, v_, att_, gate_, up_, scores_, cos_sin_;
  std::vector<float> logits_;
  MatmulWorkspace ws_;
};

}  // namespace lookahead::moe
