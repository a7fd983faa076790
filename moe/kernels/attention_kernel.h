#pragma once
// Tiled causal grouped-query attention (AVX2/FMA/F16C), the fast path behind moe::attention()
// (moe/model/attention.h has the contract and the scalar reference it must match).
//
// Why tiled: the reference computes every (token, head, position) score with its own dot call and
// an exp per score, which made attention a third of prefill. Here each work item is one KV head and
// a tile of query tokens; its query rows (tile tokens x the heads sharing that KV head) form a
// small matrix Q, and S = Q K^T and O = softmax(S) V are register-blocked GEMMs (4 rows x 16
// columns per step) over a K cache transposed once per call, with a vectorised exp.
//
// Contract (beyond attention.h's):
//   - head_dim % 16 == 0 (callers fall back to the reference otherwise), cache_type F32 or F16.
//   - Scratch lives in a thread_local of the calling thread; it grows on first use and is reused,
//     so steady-state decode allocates nothing. Safe to call from several threads at once.
//   - Results equal the reference up to float rounding (different summation order, polynomial exp
//     with ~1e-7 relative error).
#include <cstdint>

#include "moe/kernels/tensor_type.h"

namespace lookahead::moe::kernels::avx2 {

bool attention_supported(int64_t head_dim, TensorType cache_type);

void attention(int64_t n_head, int64_t n_head_kv, int64_t head_dim, const float* q, int64_t n_tokens, int64_t pos0,
               TensorType cache_type, const void* k, const void* v, float* out, int n_threads);

}  // namespace lookahead::moe::kernels::avx2
