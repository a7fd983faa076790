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
// reused for all NT tokens (prefill's GEMM core). Kind 0 = Q8_0, 1 = Q4_0, 2 = Q4_1.
// Every token has two accumulator chains, even and odd blocks (instruction-level parallelism for
// decode), summed in the same order whatever NT is: a token's result does not depend on how many
// tokens share the call, so a sequence decodes the same alone or batched with others (the serving
// engine's continuous batching relies on it; tested in kernels_matmul_test).
template <int Kind, bool kVnni>
inline void load_block(const void* w, int64_t i, __m256i& qw_abs, __m256i& qw, float& d, float& m) {
  m = 0;
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
  qw_abs = Kind == 0 ? _mm256_sign_epi8(qw, qw) : qw;
}

template <int Kind, bool kVnni>
inline void accumulate_block(const __m256i& qw_abs, const __m256i& qw, float d, float m, const ActivationBlock* xb,
                             __m256& acc, float& offset) {
  __m256i qx = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb->qs));
  if constexpr (Kind == 0) qx = _mm256_sign_epi8(qx, qw);
  acc = _mm256_fmadd_ps(_mm256_set1_ps(d * xb->d), mul_sum_us8<kVnni>(qw_abs, qx), acc);
  if constexpr (Kind != 0) offset += m * xb->s;
}

template <int Kind, int NT, bool kVnni>
inline void dot_rows(const void* w, const uint8_t* x, int64_t x_stride, int64_t n, float* y, int64_t y_stride) {
  __m256 acc0[NT], acc1[NT];
  float off0[NT], off1[NT];
  for (int t = 0; t < NT; ++t) {
    acc0[t] = acc1[t] = _mm256_setzero_ps();
    off0[t] = off1[t] = 0;
  }
  const int64_t nb = n / 32;
  int64_t i = 0;
  for (; i + 2 <= nb; i += 2) {
    __m256i qa_abs, qa, qb_abs, qb;
    float da, ma, db, mb;
    load_block<Kind, kVnni>(w, i, qa_abs, qa, da, ma);
    load_block<Kind, kVnni>(w, i + 1, qb_abs, qb, db, mb);
    for (int t = 0; t < NT; ++t) {
      const auto* xb = reinterpret_cast<const ActivationBlock*>(x + t * x_stride) + i;
      accumulate_block<Kind, kVnni>(qa_abs, qa, da, ma, xb, acc0[t], off0[t]);
      accumulate_block<Kind, kVnni>(qb_abs, qb, db, mb, xb + 1, acc1[t], off1[t]);
    }
  }
  if (i < nb) {  // an odd block count: the last block joins the even chain
    __m256i qa_abs, qa;
    float da, ma;
    load_block<Kind, kVnni>(w, i, qa_abs, qa, da, ma);
    for (int t = 0; t < NT; ++t)
      accumulate_block<Kind, kVnni>(qa_abs, qa, da, ma, reinterpret_cast<const ActivationBlock*>(x + t * x_stride) + i,
                                    acc0[t], off0[t]);
  }
  for (int t = 0; t < NT; ++t) y[t * y_stride] = hsum(_mm256_add_ps(acc0[t], acc1[t])) + (off0[t] + off1[t]);
}

// Single token (decode): the same arithmetic as dot_rows, so decode alone == decode in a batch.
template <int Kind, bool kVnni>
float dot_quant(const void* w, const void* x, int64_t n) {
  float y;
  dot_rows<Kind, 1, kVnni>(w, static_cast<const uint8_t*>(x), 0, n, &y, 0);
  return y;
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
