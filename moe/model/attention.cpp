#include "moe/model/attention.h"

#include <atomic>
#include <cmath>
#include <cstring>

#include "moe/kernels/attention_kernel.h"
#include "moe/kernels/matmul.h"
#include "moe/kernels/ops.h"
#include "moe/kernels/thread_pool.h"

namespace lookahead::moe {

void attention(const AttentionShape& s, const float* q, int64_t n_tokens, int64_t pos0, TensorType cache_type,
               const void* k, const void* v, float* out, float* scores, int64_t scores_stride, int n_threads) {
  if (kernel_path() == KernelPath::AVX2 && kernels::avx2::attention_supported(s.head_dim, cache_type)) {
    kernels::avx2::attention(s.n_head, s.n_head_kv, s.head_dim, q, n_tokens, pos0, cache_type, k, v, out, n_threads);
    return;
  }
  // Scalar reference: one dot per (token, head, position), then a softmax and V rows accumulated.
  const int64_t group = s.n_head / s.n_head_kv;
  const int64_t elem = cache_type == TensorType::F16 ? 2 : 4;
  const int64_t row_bytes_kv = s.kv_dim() * elem;
  const float scale = 1.0f / std::sqrt(static_cast<float>(s.head_dim));
  const auto* kb = static_cast<const uint8_t*>(k);
  const auto* vb = static_cast<const uint8_t*>(v);
  const int64_t work = n_tokens * s.n_head;
  const int nt = work * (pos0 + n_tokens) < 4096 ? 1 : n_threads;
  std::atomic<int64_t> next{0};
  KernelPool::instance().run(nt, [&](int thread, int) {
  for (int64_t i = next.fetch_add(1); i < work; i = next.fetch_add(1)) {  // (token, head) items, one at a time
    const int64_t t = i / s.n_head, h = i % s.n_head, g = h / group;
    const int64_t n_pos = pos0 + t + 1;  // causal: positions 0..pos0+t
    float* sc = scores + static_cast<int64_t>(thread) * scores_stride;
    const float* qh = q + t * s.q_dim() + h * s.head_dim;
    for (int64_t p = 0; p < n_pos; ++p)
      sc[p] = dot_row(cache_type, kb + p * row_bytes_kv + g * s.head_dim * elem, qh, s.head_dim) * scale;
    softmax(sc, n_pos);
    float* o = out + t * s.q_dim() + h * s.head_dim;
    std::memset(o, 0, static_cast<size_t>(s.head_dim) * sizeof(float));
    for (int64_t p = 0; p < n_pos; ++p) axpy(cache_type, sc[p], vb + p * row_bytes_kv + g * s.head_dim * elem, o, s.head_dim);
  }
  });
}

}  // namespace lookahead::moe
