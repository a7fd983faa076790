#pragma once
// Quantized (Q8_0/Q4_0/Q4_1 x Q8 activation) AVX2 dot kernels, shared by two translation units:
// dot_avx2.cpp (plain AVX2: maddubs + madd) and dot_vnni_avx2.cpp (the same code with AVX-512
// VNNI's vpdpbusd on 256-bit vectors, for CPUs that have it, as llama.cpp's native build uses).
// Everything here has internal linkage (anonymous namespace), so each file keeps its own copy
// compiled for its own ISA: a VNNI-compiled function can never be linked into the AVX2 path.
// Include only from files compiled with -mavx2 -mfma -mf16c; kVnni=true needs AVX-512 VNNI + VL.
//
// Integer block dots follow llama.cpp: unpack nibbles to bytes, multiply unsigned by signed bytes,
// widen pairs, scale by the two block scales in float.
#include <immintrin.h>

#include <cstdint>

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

// Sum of unsigned(a) * signed(b) over 32 bytes, as 8 float lanes. With AVX-512 VNNI one vpdpbusd
// replaces maddubs + madd (same integer result: the int16 pair sums here never saturate, at most
// 2 * 127 * 127 for Q8_0's |w| * sign-adjusted x and 2 * 15 * 127 for 4-bit weights).
template <bool kVnni>
inline __m256 mul_sum_us8(__m256i a, __m256i b) {
  if constexpr (kVnni) {
    return _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(_mm256_setzero_si256(), a, b));
  } else {
    const __m256i p16 = _mm256_maddubs_epi16(a, b);
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
  }
}

// One weight row against NT activation rows (tokens): each weight block is unpacked once and
// reused for all NT tokens, and the NT accumulators are independent chains (prefill's GEMM core).
// Kind 0 = Q8_0, 1 = Q4_0, 2 = Q4_1.
template <int Kind, int NT, bool kVnni>
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
      acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * xb->d), mul_sum_us8<kVnni>(qw_abs, qx), acc[t]);
      if constexpr (Kind != 0) offsets[t] += m * xb->s;
    }
  }
  for (int t = 0; t < NT; ++t) y[t * y_stride] = hsum(acc[t]) + offsets[t];
}

// Single token (decode): two blocks per step in two accumulators for instruction-level parallelism.
template <int Kind, bool kVnni>
float dot_quant(const void* w, const void* x, int64_t n) {
  const int64_t nb = n / 32;
  if (nb % 2 != 0) {
    float y;
    dot_rows<Kind, 1, kVnni>(w, static_cast<const uint8_t*>(x), 0, n, &y, 0);
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
    acc0 = _mm256_fmadd_ps(_mm256_set1_ps(d0 * xb[i].d), mul_sum_us8<kVnni>(qw0, qx0), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_set1_ps(d1 * xb[i + 1].d), mul_sum_us8<kVnni>(qw1, qx1), acc1);
    off0 += m0 * xb[i].s;
    off1 += m1 * xb[i + 1].s;
  }
  y[0] = hsum(_mm256_add_ps(acc0, acc1));
  y[1] = off0 + off1;
  return y[0] + y[1];
}

template <int Kind, bool kVnni>
void dot_multi_quant(const void* w, const void* x, int64_t x_stride, int64_t n_tok, int64_t n, float* y, int64_t y_stride) {
  const auto* xb = static_cast<const uint8_t*>(x);
  int64_t t = 0;
  for (; t + 4 <= n_tok; t += 4) dot_rows<Kind, 4, kVnni>(w, xb + t * x_stride, x_stride, n, y + t * y_stride, y_stride);
  for (; t < n_tok; ++t) dot_rows<Kind, 1, kVnni>(w, xb + t * x_stride, x_stride, n, y + t * y_stride, y_stride);
}

}  // namespace
}  // namespace lookahead::moe::kernels::avx2
