// AVX2/FMA/F16C dot products (compiled with -mavx2 -mfma -mf16c; only called when the CPU has
// them). Integer block dots follow llama.cpp: unpack nibbles to bytes, multiply unsigned by signed
// bytes with maddubs, widen pairs with madd, scale by the two block scales in float.
#include <immintrin.h>

#include <cmath>

#include "common/error.h"
#include "moe/kernels/dot.h"
#include "moe/kernels/quantize.h"

namespace lookahead::moe::kernels::avx2 {

namespace {

inline float hsum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v);
  __m128 hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
  return _mm_cvtss_f32(lo);
}

inline int32_t hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(s);
}

inline float half(uint16_t h) { return _cvtsh_ss(h); }

// 16 bytes of nibbles -> 32 bytes 0..15: low nibbles (elements 0..15) then high (16..31).
inline __m256i bytes_from_nibbles(const uint8_t* qs) {
  const __m128i tmp = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m256i both = _mm256_insertf128_si256(_mm256_castsi128_si256(tmp), _mm_srli_epi16(tmp, 4), 1);
  return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
}

// Sum of unsigned(a) * signed(b) over 32 bytes, as 8 float lanes.
inline __m256 mul_sum_us8(__m256i a, __m256i b) {
  const __m256i p16 = _mm256_maddubs_epi16(a, b);
  return _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
}

inline __m256 load_f16x8(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
inline __m256 load_bf16x8(const uint16_t* p) {
  const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}


float dot_f32_row(const void* w, const void* x, int64_t n) {
  return dot_f32(static_cast<const float*>(w), static_cast<const float*>(x), n);
}

template <bool kBf16>
float dot_half_row(const void* w, const void* x, int64_t n) {
  const auto* a = static_cast<const uint16_t*>(w);
  const auto* b = static_cast<const float*>(x);
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    const __m256 a0 = kBf16 ? load_bf16x8(a + j) : load_f16x8(a + j);
    const __m256 a1 = kBf16 ? load_bf16x8(a + j + 8) : load_f16x8(a + j + 8);
    acc0 = _mm256_fmadd_ps(a0, _mm256_loadu_ps(b + j), acc0);
    acc1 = _mm256_fmadd_ps(a1, _mm256_loadu_ps(b + j + 8), acc1);
  }
  float sum = hsum(_mm256_add_ps(acc0, acc1));
  for (; j < n; ++j) {
    const float wj = kBf16 ? _mm_cvtss_f32(_mm_castsi128_ps(_mm_cvtsi32_si128(int32_t{a[j]} << 16))) : half(a[j]);
    sum += wj * b[j];
  }
  return sum;
}

// One weight row against NT activation rows (tokens): each weight block is unpacked once and
// reused for all NT tokens, and the NT accumulators are independent chains (prefill's GEMM core).
// Kind 0 = Q8_0, 1 = Q4_0, 2 = Q4_1.
template <int Kind, int NT>
inline void dot_rows(const void* w, const uint8_t* x, int64_t x_stride, int64_t n, float* y, int64_t y_stride) {
  __m256 acc[NT];
  float offsets[NT];
  for (int t = 0; t < NT; ++t) {
    acc[t] = _mm256_setzero_ps();
    offsets[t] = 0;
  }
  for (int64_t i = 0; i < n / 32; ++i) {
    __m256i qw;
    float d, m = 0;
    if constexpr (Kind == 0) {
      const auto* b = static_cast<const BlockQ8_0*>(w) + i;
      qw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b->qs));
      d = half(b->d);
    } else if constexpr (Kind == 1) {
      const auto* b = static_cast<const BlockQ4_0*>(w) + i;
      qw = bytes_from_nibbles(b->qs);
      d = half(b->d);
      m = -8.0f * d;  // Q4_0 as Q4_1 with m = -8d
    } else {
      const auto* b = static_cast<const BlockQ4_1*>(w) + i;
      qw = bytes_from_nibbles(b->qs);
      d = half(b->d);
      m = half(b->m);
    }
    // signed x signed (Q8_0) via |w| * (x with w's sign): maddubs needs one unsigned operand.
    const __m256i qw_abs = Kind == 0 ? _mm256_sign_epi8(qw, qw) : qw;
    for (int t = 0; t < NT; ++t) {
      const auto* xb = reinterpret_cast<const ActivationBlock*>(x + t * x_stride) + i;
      __m256i qx = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb->qs));
      if constexpr (Kind == 0) qx = _mm256_sign_epi8(qx, qw);
      acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * xb->d), mul_sum_us8(qw_abs, qx), acc[t]);
      if constexpr (Kind != 0) offsets[t] += m * xb->s;
    }
  }
  for (int t = 0; t < NT; ++t) y[t * y_stride] = hsum(acc[t]) + offsets[t];
}

// Single token (decode): two blocks per step in two accumulators for instruction-level parallelism.
template <int Kind>
float dot_quant(const void* w, const void* x, int64_t n) {
  const int64_t nb = n / 32;
  if (nb % 2 != 0) {
    float y;
    dot_rows<Kind, 1>(w, static_cast<const uint8_t*>(x), 0, n, &y, 0);
    return y;
  }
  float y[2];
  // Split the row in two interleaved halves: even blocks and odd blocks, each its own chain.
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  float off0 = 0, off1 = 0;
  const auto* xb = static_cast<const ActivationBlock*>(x);
  for (int64_t i = 0; i < nb; i += 2) {
    __m256i qw0, qw1;
    float d0, d1, m0 = 0, m1 = 0;
    if constexpr (Kind == 0) {
      const auto* b = static_cast<const BlockQ8_0*>(w) + i;
      qw0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[0].qs));
      qw1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[1].qs));
      d0 = half(b[0].d);
      d1 = half(b[1].d);
    } else if constexpr (Kind == 1) {
      const auto* b = static_cast<const BlockQ4_0*>(w) + i;
      qw0 = bytes_from_nibbles(b[0].qs);
      qw1 = bytes_from_nibbles(b[1].qs);
      d0 = half(b[0].d);
      d1 = half(b[1].d);
      m0 = -8.0f * d0;
      m1 = -8.0f * d1;
    } else {
      const auto* b = static_cast<const BlockQ4_1*>(w) + i;
      qw0 = bytes_from_nibbles(b[0].qs);
      qw1 = bytes_from_nibbles(b[1].qs);
      d0 = half(b[0].d);
      d1 = half(b[1].d);
      m0 = half(b[0].m);
      m1 = half(b[1].m);
    }
    __m256i qx0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb[i].qs));
    __m256i qx1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb[i + 1].qs));
    if constexpr (Kind == 0) {
      qx0 = _mm256_sign_epi8(qx0, qw0);
      qx1 = _mm256_sign_epi8(qx1, qw1);
      qw0 = _mm256_sign_epi8(qw0, qw0);
      qw1 = _mm256_sign_epi8(qw1, qw1);
    }
    acc0 = _mm256_fmadd_ps(_mm256_set1_ps(d0 * xb[i].d), mul_sum_us8(qw0, qx0), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_set1_ps(d1 * xb[i + 1].d), mul_sum_us8(qw1, qx1), acc1);
    off0 += m0 * xb[i].s;
    off1 += m1 * xb[i + 1].s;
  }
  y[0] = hsum(_mm256_add_ps(acc0, acc1));
  y[1] = off0 + off1;
  return y[0] + y[1];
}

template <int Kind>
void dot_multi_quant(const void* w, const void* x, int64_t x_stride, int64_t n_tok, int64_t n, float* y, int64_t y_stride) {
  const auto* xb = static_cast<const uint8_t*>(x);
  int64_t t = 0;
  for (; t + 4 <= n_tok; t += 4) dot_rows<Kind, 4>(w, xb + t * x_stride, x_stride, n, y + t * y_stride, y_stride);
  for (; t < n_tok; ++t) dot_rows<Kind, 1>(w, xb + t * x_stride, x_stride, n, y + t * y_stride, y_stride);
}

}  // namespace

float dot_f32(const float* a, const float* b, int64_t n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps(), acc2 = _mm256_setzero_ps(),
         acc3 = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 32 <= n; j += 32) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j), _mm256_loadu_ps(b + j), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j + 8), _mm256_loadu_ps(b + j + 8), acc1);
    acc2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j + 16), _mm256_loadu_ps(b + j + 16), acc2);
    acc3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j + 24), _mm256_loadu_ps(b + j + 24), acc3);
  }
  for (; j + 8 <= n; j += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j), _mm256_loadu_ps(b + j), acc0);
  float sum = hsum(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
  for (; j < n; ++j) sum += a[j] * b[j];
  return sum;
}

DotFn dot_for(TensorType type) {
  switch (type) {
    case TensorType::F32: return dot_f32_row;
    case TensorType::F16: return dot_half_row<false>;
    case TensorType::BF16: return dot_half_row<true>;
    case TensorType::Q8_0: return dot_quant<0>;
    case TensorType::Q4_0: return dot_quant<1>;
    case TensorType::Q4_1: return dot_quant<2>;
    case TensorType::I32: break;  // not a weight type
  }
  LOOKAHEAD_CHECK(false);
}

DotMultiFn dot_multi_for(TensorType type) {
  switch (type) {
    case TensorType::Q8_0: return dot_multi_quant<0>;
    case TensorType::Q4_0: return dot_multi_quant<1>;
    case TensorType::Q4_1: return dot_multi_quant<2>;
    default: return nullptr;
  }
}

void quantize_activation(const float* x, ActivationBlock* out, int64_t n) {
  const __m256 sign_bit = _mm256_set1_ps(-0.0f);
  for (int64_t i = 0; i < n / 32; ++i, x += 32) {
    __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8), v2 = _mm256_loadu_ps(x + 16),
           v3 = _mm256_loadu_ps(x + 24);
    __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign_bit, v0), _mm256_andnot_ps(sign_bit, v1)),
                             _mm256_max_ps(_mm256_andnot_ps(sign_bit, v2), _mm256_andnot_ps(sign_bit, v3)));
    __m128 m4 = _mm_max_ps(_mm256_extractf128_ps(m, 1), _mm256_castps256_ps128(m));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float amax = _mm_cvtss_f32(m4);
    const float d = amax / 127.0f;
    const __m256 id = _mm256_set1_ps(amax != 0.0f ? 127.0f / amax : 0.0f);
    constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
    __m256i i0 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v0, id), kRound));
    __m256i i1 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v1, id), kRound));
    __m256i i2 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v2, id), kRound));
    __m256i i3 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v3, id), kRound));
    const int32_t sum = hsum_i32(_mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3)));
    i0 = _mm256_packs_epi32(i0, i1);
    i2 = _mm256_packs_epi32(i2, i3);
    i0 = _mm256_packs_epi16(i0, i2);
    i0 = _mm256_permutevar8x32_epi32(i0, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));  // undo lane interleave
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out[i].qs), i0);
    out[i].d = d;
    out[i].s = d * static_cast<float>(sum);
  }
}

void axpy(TensorType type, float a, const void* row, float* out, int64_t n) {
  const __m256 va = _mm256_set1_ps(a);
  int64_t j = 0;
  if (type == TensorType::F32) {
    const auto* r = static_cast<const float*>(row);
    for (; j + 8 <= n; j += 8)
      _mm256_storeu_ps(out + j, _mm256_fmadd_ps(va, _mm256_loadu_ps(r + j), _mm256_loadu_ps(out + j)));
    for (; j < n; ++j) out[j] += a * r[j];
  } else {
    LOOKAHEAD_CHECK(type == TensorType::F16);
    const auto* r = static_cast<const uint16_t*>(row);
    for (; j + 8 <= n; j += 8)
      _mm256_storeu_ps(out + j, _mm256_fmadd_ps(va, load_f16x8(r + j), _mm256_loadu_ps(out + j)));
    for (; j < n; ++j) out[j] += a * half(r[j]);
  }
}

}  // namespace lookahead::moe::kernels::avx2
