// AVX2/FMA/F16C dot products (compiled with -mavx2 -mfma -mf16c; only called when the CPU has
// them). The quantized kernels live in dot_quant_avx2.h (shared with the VNNI variant,
// dot_vnni_avx2.cpp); this file instantiates them with maddubs + madd.
#include <immintrin.h>

#include <cmath>

#include "common/error.h"
#include "moe/kernels/dot.h"
#include "moe/kernels/dot_quant_avx2.h"
#include "moe/kernels/quantize.h"

namespace lookahead::moe::kernels::avx2 {

namespace {

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
    case TensorType::Q8_0: return dot_quant<0, false>;
    case TensorType::Q4_0: return dot_quant<1, false>;
    case TensorType::Q4_1: return dot_quant<2, false>;
    case TensorType::I32: break;  // not a weight type
  }
  LOOKAHEAD_CHECK(false);
}

DotMultiFn dot_multi_for(TensorType type) {
  switch (type) {
    case TensorType::Q8_0: return dot_multi_quant<0, false>;
    case TensorType::Q4_0: return dot_multi_quant<1, false>;
    case TensorType::Q4_1: return dot_multi_quant<2, false>;
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
