// Tiled causal GQA attention, AVX2/FMA/F16C (compiled with those flags; called only when the CPU
// has them). See attention_kernel.h for the contract and why it is tiled.
//
// Per call (one layer):
//   phase 1: K of every KV head, positions [0, P), is transposed (and widened from F16) into
//            kt[g][d][p] with p padded to a multiple of 16, so score columns load contiguously.
//   phase 2: work items (KV head g, tile of kTile query tokens), heaviest (latest) tiles first.
//            Rows r = (token, head of g): Q rows scaled by 1/sqrt(hd);
//            S[r][p] = Q[r] . K[p]           4 rows x 16 positions per register block, causal
//                                            columns skipped per block of 4 rows;
//            S[r][p] = exp(S[r][p] - max_r)  for p <= pos0 + t(r), 0 beyond;
//            O[r]    = (sum_p S[r][p] V[p]) / sum_p S[r][p]   4 rows x 16 dims per block.
#include <immintrin.h>
#include <atomic>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "moe/kernels/attention_kernel.h"
#include "moe/kernels/thread_pool.h"
#include "moe/kernels/exp_avx2.h"

namespace lookahead::moe::kernels::avx2 {

namespace {

constexpr int64_t kTile = 16;  // query tokens per work item

struct Scratch {
  std::vector<float> kt;    // [n_head_kv][head_dim][pp]
  std::vector<float> rows;  // per thread: S [rmax][pp], then Q [rmax][hd], then 1/sum [rmax]
};

inline float hsum(__m256 v) {
  __m128 lo = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
  return _mm_cvtss_f32(lo);
}
inline float hmax(__m256 v) {
  __m128 lo = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  lo = _mm_max_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_max_ss(lo, _mm_movehdup_ps(lo));
  return _mm_cvtss_f32(lo);
}

// S[i][p0..p0+16*nb) for NR rows: S = Q Kt, Kt row stride pp.
template <int NR>
inline void scores_block(const float* qs, int64_t hd, const float* kt, int64_t pp, int64_t p_end, float* s,
                         int64_t s_stride) {
  for (int64_t p = 0; p < p_end; p += 16) {
    __m256 acc[NR][2];
    for (int i = 0; i < NR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    const float* kp = kt + p;
    for (int64_t d = 0; d < hd; ++d) {
      const __m256 k0 = _mm256_loadu_ps(kp + d * pp), k1 = _mm256_loadu_ps(kp + d * pp + 8);
      for (int i = 0; i < NR; ++i) {
        const __m256 qb = _mm256_broadcast_ss(qs + i * hd + d);
        acc[i][0] = _mm256_fmadd_ps(qb, k0, acc[i][0]);
        acc[i][1] = _mm256_fmadd_ps(qb, k1, acc[i][1]);
      }
    }
    for (int i = 0; i < NR; ++i) {
      _mm256_storeu_ps(s + i * s_stride + p, acc[i][0]);
      _mm256_storeu_ps(s + i * s_stride + p + 8, acc[i][1]);
    }
  }
}

template <bool kF16>
inline __m256 load_v(const void* v, int64_t idx) {
  if constexpr (kF16)
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(v) + idx)));
  else
    return _mm256_loadu_ps(static_cast<const float*>(v) + idx);
}

// O[i][0..hd) = inv[i] * sum_{p < p_end} S[i][p] V[p]; V row stride vs elements, offset voff.
template <int NR, bool kF16>
inline void pv_block(const float* s, int64_t s_stride, const void* v, int64_t vs, int64_t voff, int64_t hd,
                     int64_t p_end, const float* inv, float* const* o) {
  for (int64_t d = 0; d < hd; d += 16) {
    __m256 acc[NR][2];
    for (int i = 0; i < NR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    for (int64_t p = 0; p < p_end; ++p) {
      const __m256 v0 = load_v<kF16>(v, p * vs + voff + d), v1 = load_v<kF16>(v, p * vs + voff + d + 8);
      for (int i = 0; i < NR; ++i) {
        const __m256 sb = _mm256_broadcast_ss(s + i * s_stride + p);
        acc[i][0] = _mm256_fmadd_ps(sb, v0, acc[i][0]);
        acc[i][1] = _mm256_fmadd_ps(sb, v1, acc[i][1]);
      }
    }
    for (int i = 0; i < NR; ++i) {
      const __m256 sc = _mm256_set1_ps(inv[i]);
      _mm256_storeu_ps(o[i] + d, _mm256_mul_ps(acc[i][0], sc));
      _mm256_storeu_ps(o[i] + d + 8, _mm256_mul_ps(acc[i][1], sc));
    }
  }
}

// Softmax numerator in place over s[0, len), zeros on [len, zero_to); returns 1 / sum.
inline float softmax_row(float* s, int64_t len, int64_t zero_to) {
  __m256 mx = _mm256_set1_ps(-INFINITY);
  int64_t p = 0;
  for (; p + 8 <= len; p += 8) mx = _mm256_max_ps(mx, _mm256_loadu_ps(s + p));
  float m = hmax(mx);
  for (; p < len; ++p) m = std::max(m, s[p]);
  const __m256 vm = _mm256_set1_ps(m);
  __m256 sum = _mm256_setzero_ps();
  p = 0;
  for (; p + 8 <= len; p += 8) {
    const __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(s + p), vm));
    _mm256_storeu_ps(s + p, e);
    sum = _mm256_add_ps(sum, e);
  }
  if (p < len) {  // tail: exp of a padded vector, keep only the first len - p lanes
    alignas(32) float tmp[8] = {};
    std::memcpy(tmp, s + p, static_cast<size_t>(len - p) * sizeof(float));
    alignas(32) float e[8];
    _mm256_store_ps(e, exp256(_mm256_sub_ps(_mm256_load_ps(tmp), vm)));
    for (int64_t j = 0; j < 8; ++j) e[j] = j < len - p ? e[j] : 0.0f;
    std::memcpy(s + p, e, static_cast<size_t>(len - p) * sizeof(float));
    sum = _mm256_add_ps(sum, _mm256_load_ps(e));
  }
  for (int64_t j = len; j < zero_to; ++j) s[j] = 0.0f;
  return 1.0f / hsum(sum);
}

template <bool kF16>
void transpose_k(const void* k, int64_t kv_dim, int64_t hd, int64_t g, int64_t p0, int64_t p1, float* kt,
                 int64_t pp) {
  for (int64_t p = p0; p < p1; ++p) {
    for (int64_t d = 0; d < hd; d += 8) {
      alignas(32) float tmp[8];
      _mm256_store_ps(tmp, load_v<kF16>(k, p * kv_dim + g * hd + d));
      for (int j = 0; j < 8; ++j) kt[(d + j) * pp + p] = tmp[j];
    }
  }
}

template <bool kF16>
void run(int64_t n_head, int64_t n_head_kv, int64_t hd, const float* q, int64_t n_tokens, int64_t pos0, const void* k,
         const void* v, float* out, int n_threads) {
  const int64_t group = n_head / n_head_kv, kv_dim = n_head_kv * hd, q_dim = n_head * hd;
  const int64_t n_pos = pos0 + n_tokens;
  const int64_t pp = (n_pos + 15) / 16 * 16;
  const int64_t rmax = kTile * group;
  const int64_t per_thread = rmax * pp + rmax * hd + rmax;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));

  // Thread count: a fork costs microseconds; tiny attentions (short decode contexts) run inline.
  const double flops = 4.0 * static_cast<double>(n_tokens) * static_cast<double>(n_head) * static_cast<double>(hd) *
                       static_cast<double>(pos0 + (n_tokens + 1) / 2);
  const int nt = flops < 2e6 ? 1 : std::max(1, n_threads);

  thread_local Scratch scratch;
  if (scratch.kt.size() < static_cast<size_t>(n_head_kv * hd * pp)) scratch.kt.resize(static_cast<size_t>(n_head_kv * hd * pp));
  if (scratch.rows.size() < static_cast<size_t>(nt * per_thread)) scratch.rows.resize(static_cast<size_t>(nt * per_thread));
  float* kt_all = scratch.kt.data();
  float* rows_all = scratch.rows.data();

  const int64_t n_tiles = (n_tokens + kTile - 1) / kTile;
  const int64_t p_blocks = (n_pos + 63) / 64;
  // K transposed per KV head, in blocks of 64 positions (static split).
  parallel_for(n_head_kv * p_blocks, nt, [&](int64_t begin, int64_t end, int) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t g = i / p_blocks, b = i % p_blocks;
      float* kt = kt_all + g * hd * pp;
      const int64_t p0 = b * 64, p1 = std::min(n_pos, p0 + 64);
      transpose_k<kF16>(k, kv_dim, hd, g, p0, p1, kt, pp);
      if (p1 == n_pos)  // zero the padding columns so no garbage (NaN) is ever multiplied
        for (int64_t d = 0; d < hd; ++d) std::fill(kt + d * pp + n_pos, kt + d * pp + pp, 0.0f);
    }
  });
  // (tile, KV head) items, latest tiles (the longest rows) first, taken one at a time.
  std::atomic<int64_t> next_item{0};
  KernelPool::instance().run(nt, [&](int thread, int) {
    float* s = rows_all + static_cast<int64_t>(thread) * per_thread;
    float* qs = s + rmax * pp;
    float* inv = qs + rmax * hd;
    for (int64_t item = next_item.fetch_add(1); item < n_tiles * n_head_kv; item = next_item.fetch_add(1)) {
      const int64_t tile = n_tiles - 1 - item / n_head_kv, g = item % n_head_kv;
      const int64_t t0 = tile * kTile, t1 = std::min(n_tokens, t0 + kTile);
      const int64_t nr = (t1 - t0) * group;
      const float* kt = kt_all + g * hd * pp;
      for (int64_t r = 0; r < nr; ++r) {
        const int64_t t = t0 + r / group, h = g * group + r % group;
        const float* src = q + t * q_dim + h * hd;
        for (int64_t d = 0; d < hd; ++d) qs[r * hd + d] = src[d] * scale;
      }
      // Row r's token is t0 + r / group; it sees positions [0, pos0 + t + 1).
      auto len_of = [&](int64_t r) { return pos0 + t0 + r / group + 1; };
      for (int64_t r = 0; r < nr; r += 4) {
        const int64_t nb = std::min<int64_t>(4, nr - r);
        const int64_t p_end = (len_of(r + nb - 1) + 15) / 16 * 16;
        float* sr = s + r * pp;
        switch (nb) {
          case 4: scores_block<4>(qs + r * hd, hd, kt, pp, p_end, sr, pp); break;
          case 3: scores_block<3>(qs + r * hd, hd, kt, pp, p_end, sr, pp); break;
          case 2: scores_block<2>(qs + r * hd, hd, kt, pp, p_end, sr, pp); break;
          default: scores_block<1>(qs + r * hd, hd, kt, pp, p_end, sr, pp); break;
        }
        const int64_t len_hi = len_of(r + nb - 1);
        for (int64_t i = 0; i < nb; ++i) inv[r + i] = softmax_row(sr + i * pp, len_of(r + i), len_hi);
        float* o[4];
        for (int64_t i = 0; i < nb; ++i) {
          const int64_t t = t0 + (r + i) / group, h = g * group + (r + i) % group;
          o[i] = out + t * q_dim + h * hd;
        }
        switch (nb) {
          case 4: pv_block<4, kF16>(sr, pp, v, kv_dim, g * hd, hd, len_hi, inv + r, o); break;
          case 3: pv_block<3, kF16>(sr, pp, v, kv_dim, g * hd, hd, len_hi, inv + r, o); break;
          case 2: pv_block<2, kF16>(sr, pp, v, kv_dim, g * hd, hd, len_hi, inv + r, o); break;
          default: pv_block<1, kF16>(sr, pp, v, kv_dim, g * hd, hd, len_hi, inv + r, o); break;
        }
      }
    }
  });
}

}  // namespace

bool attention_supported(int64_t head_dim, TensorType cache_type) {
  return head_dim > 0 && head_dim % 16 == 0 && (cache_type == TensorType::F32 || cache_type == TensorType::F16);
}

void attention(int64_t n_head, int64_t n_head_kv, int64_t head_dim, const float* q, int64_t n_tokens, int64_t pos0,
               TensorType cache_type, const void* k, const void* v, float* out, int n_threads) {
  if (cache_type == TensorType::F16)
    run<true>(n_head, n_head_kv, head_dim, q, n_tokens, pos0, k, v, out, n_threads);
  else
    run<false>(n_head, n_head_kv, head_dim, q, n_tokens, pos0, k, v, out, n_threads);
}

}  // namespace lookahead::moe::kernels::avx2
