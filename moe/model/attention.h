#pragma once
// Causal grouped-query attention over a KV cache.
//
// Contract: for each token t (at position pos0 + t) and query head h, with kv head g = h / (n_head
// / n_head_kv):  out[t][h] = sum_{p <= pos0+t} softmax_p(q[t][h] . K[p][g] / sqrt(head_dim)) V[p][g].
// The cache rows for positions 0..pos0+n_tokens-1 must already hold K (after RoPE) and V.
#include <cstdint>

#include "moe/kernels/tensor_type.h"

namespace lookahead::moe {

struct AttentionShape {
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t head_dim = 0;
  int64_t q_dim() const { return n_head * head_dim; }
  int64_t kv_dim() const { return n_head_kv * head_dim; }
};

// q:   [n_tokens][n_head * head_dim] f32
// k,v: [positions][n_head_kv * head_dim] in cache_type (F32 or F16)
// out: [n_tokens][n_head * head_dim] f32
// scores: scratch of n_threads rows of `scores_stride` >= pos0 + n_tokens floats (used by the
//         scalar reference path; the AVX2 path, moe/kernels/attention_kernel.h, tiles the work
//         into GEMMs with its own reusable scratch). The path follows kernel_path() (matmul.h).
void attention(const AttentionShape& shape, const float* q, int64_t n_tokens, int64_t pos0, TensorType cache_type,
               const void* k, const void* v, float* out, float* scores, int64_t scores_stride, int n_threads);

}  // namespace lookahead::moe
