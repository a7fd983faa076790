// Grouped-query causal attention against a naive f64 reference, for f32 and f16 caches.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "moe/kernels/fp16.h"
#include "moe/kernels/matmul.h"
#include "moe/kernels/quantize.h"
#include "moe/model/attention.h"

using namespace lookahead::moe;

namespace {

// Both kernel paths (scalar reference, AVX2 tiles where the CPU has them) against an f64 reference.
void check_against_naive(const AttentionShape& s, int64_t pos0, int64_t n, KernelPath path) {
  const KernelPath saved = kernel_path();
  set_kernel_path(path);
  const int64_t n_pos = pos0 + n;
  const int64_t group = s.n_head / s.n_head_kv;
  std::mt19937_64 rng(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> q(static_cast<size_t>(n * s.q_dim())), k(static_cast<size_t>(n_pos * s.kv_dim())),
      v(k.size());
  for (auto* vec : {&q, &k, &v})
    for (auto& x : *vec) x = normal(rng);
  for (TensorType type : {TensorType::F32, TensorType::F16}) {
    std::vector<uint8_t> kc(static_cast<size_t>(row_bytes(type, n_pos * s.kv_dim()))), vc(kc.size());
    quantize_row(type, k.data(), kc.data(), n_pos * s.kv_dim());
    quantize_row(type, v.data(), vc.data(), n_pos * s.kv_dim());
    std::vector<float> kd(k.size()), vd(v.size());  // what the cache holds
    dequantize_row(type, kc.data(), kd.data(), n_pos * s.kv_dim());
    dequantize_row(type, vc.data(), vd.data(), n_pos * s.kv_dim());

    std::vector<float> out(q.size()), scores(static_cast<size_t>(2 * n_pos));
    attention(s, q.data(), n, pos0, type, kc.data(), vc.data(), out.data(), scores.data(), n_pos, 2);
    double worst = 0;

    for (int64_t t = 0; t < n; ++t)
      for (int64_t h = 0; h < s.n_head; ++h) {
        const int64_t g = h / group, len = pos0 + t + 1;
        std::vector<double> w(static_cast<size_t>(len));
        double max = -1e300, sum = 0;
        for (int64_t p = 0; p < len; ++p) {
          double dot = 0;
          for (int64_t i = 0; i < s.head_dim; ++i)
            dot += double{q[t * s.q_dim() + h * s.head_dim + i]} * kd[p * s.kv_dim() + g * s.head_dim + i];
          w[p] = dot / std::sqrt(double(s.head_dim));
          max = std::max(max, w[p]);
        }
        for (auto& x : w) sum += x = std::exp(x - max);
        for (int64_t i = 0; i < s.head_dim; ++i) {
          double ref = 0;
          for (int64_t p = 0; p < len; ++p) ref += w[p] / sum * vd[p * s.kv_dim() + g * s.head_dim + i];
          worst = std::max(worst, std::abs(out[t * s.q_dim() + h * s.head_dim + i] - ref));
        }
      }
    EXPECT_LT(worst, 1e-5) << "path " << (path == KernelPath::AVX2 ? "avx2" : "scalar") << " cache "
                           << (type == TensorType::F16 ? "f16" : "f32") << " pos0 " << pos0 << " n " << n;
  }
  set_kernel_path(saved);
}

std::vector<KernelPath> paths() {
  std::vector<KernelPath> p{KernelPath::SCALAR};
  if (detected_kernel_path() == KernelPath::AVX2) p.push_back(KernelPath::AVX2);
  return p;
}

}  // namespace

TEST(ModelAttention, MatchesNaiveReference) {
  for (KernelPath path : paths()) check_against_naive({6, 2, 8}, 5, 4, path);  // 3 query heads per kv head
}

// SmolLM2's shape (head_dim 64, 3 query heads per kv head): prefill across several 16-token tiles
// with and without earlier cache, a tile with a partial last block, and single-token decode.
TEST(ModelAttention, TiledPathMatchesReferenceOnModelShapes) {
  for (KernelPath path : paths()) {
    check_against_naive({9, 3, 64}, 0, 37, path);
    check_against_naive({9, 3, 64}, 11, 21, path);
    check_against_naive({9, 3, 64}, 70, 1, path);
    check_against_naive({9, 3, 64}, 5, 80, path);  // large enough to run on several threads
    check_against_naive({4, 4, 32}, 3, 5, path);  // plain multi-head attention
  }
}
