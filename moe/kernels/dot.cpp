// Scalar reference dot products. Written for clarity; the AVX2 versions (dot_avx2.cpp) must agree.
#include "moe/kernels/dot.h"

#include <cmath>

#include "common/error.h"
#include "moe/kernels/fp16.h"
#include "moe/kernels/quantize.h"

namespace lookahead::moe::kernels::scalar {

namespace {

float dot_f32_row(const void* w, const void* x, int64_t n) {
  return dot_f32(static_cast<const float*>(w), static_cast<const float*>(x), n);
}

float dot_f16_row(const void* w, const void* x, int64_t n) {
  const auto* a = static_cast<const uint16_t*>(w);
  const auto* b = static_cast<const float*>(x);
  float sum = 0;
  for (int64_t j = 0; j < n; ++j) sum += fp16_to_fp32(a[j]) * b[j];
  return sum;
}

float dot_bf16_row(const void* w, const void* x, int64_t n) {
  const auto* a = static_cast<const uint16_t*>(w);
  const auto* b = static_cast<const float*>(x);
  float sum = 0;
  for (int64_t j = 0; j < n; ++j) sum += bf16_to_fp32(a[j]) * b[j];
  return sum;
}

float dot_q8_0(const void* w, const void* x, int64_t n) {
  const auto* wb = static_cast<const BlockQ8_0*>(w);
  const auto* xb = static_cast<const ActivationBlock*>(x);
  float sum = 0;
  for (int64_t i = 0; i < n / 32; ++i) {
    int32_t sumi = 0;
    for (int j = 0; j < 32; ++j) sumi += int32_t{wb[i].qs[j]} * int32_t{xb[i].qs[j]};
    sum += fp16_to_fp32(wb[i].d) * xb[i].d * static_cast<float>(sumi);
  }
  return sum;
}

float dot_q4_0(const void* w, const void* x, int64_t n) {
  const auto* wb = static_cast<const BlockQ4_0*>(w);
  const auto* xb = static_cast<const ActivationBlock*>(x);
  float sum = 0;
  for (int64_t i = 0; i < n / 32; ++i) {
    int32_t sumi = 0;
    for (int j = 0; j < 16; ++j) {
      sumi += ((wb[i].qs[j] & 0x0F) - 8) * int32_t{xb[i].qs[j]};
      sumi += ((wb[i].qs[j] >> 4) - 8) * int32_t{xb[i].qs[j + 16]};
    }
    sum += fp16_to_fp32(wb[i].d) * xb[i].d * static_cast<float>(sumi);
  }
  return sum;
}

// sum_j (d*q_j + m) * (dx*qx_j) = d*dx*sum(q*qx) + m*s, with s = dx*sum(qx).
float dot_q4_1(const void* w, const void* x, int64_t n) {
  const auto* wb = static_cast<const BlockQ4_1*>(w);
  const auto* xb = static_cast<const ActivationBlock*>(x);
  float sum = 0;
  for (int64_t i = 0; i < n / 32; ++i) {
    int32_t sumi = 0;
    for (int j = 0; j < 16; ++j) {
      sumi += (wb[i].qs[j] & 0x0F) * int32_t{xb[i].qs[j]};
      sumi += (wb[i].qs[j] >> 4) * int32_t{xb[i].qs[j + 16]};
    }
    sum += fp16_to_fp32(wb[i].d) * xb[i].d * static_cast<float>(sumi) + fp16_to_fp32(wb[i].m) * xb[i].s;
  }
  return sum;
}

}  // namespace

float dot_f32(const float* a, const float* b, int64_t n) {
  float sum = 0;
  for (int64_t j = 0; j < n; ++j) sum += a[j] * b[j];
  return sum;
}

DotFn dot_for(TensorType type) {
  switch (type) {
    case TensorType::F32: return dot_f32_row;
    case TensorType::F16: return dot_f16_row;
    case TensorType::BF16: return dot_bf16_row;
    case TensorType::Q8_0: return dot_q8_0;
    case TensorType::Q4_0: return dot_q4_0;
    case TensorType::Q4_1: return dot_q4_1;
    case TensorType::I32: break;  // not a weight type
  }
  LOOKAHEAD_CHECK(false);
}

// Like ggml's quantize_row_q8_1: d = amax/127, q = round-to-nearest-even(x/d). Ties round to even
// here as in the AVX2 path (_mm256_round_ps), so both paths produce the same blocks.
void quantize_activation(const float* x, ActivationBlock* out, int64_t n) {
  for (int64_t i = 0; i < n / 32; ++i, x += 32) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    int32_t sum = 0;
    for (int j = 0; j < 32; ++j) {
      const int q = static_cast<int>(std::nearbyintf(x[j] * id));
      out[i].qs[j] = static_cast<int8_t>(q);
      sum += q;
    }
    out[i].d = d;
    out[i].s = d * static_cast<float>(sum);
  }
}

void axpy(TensorType type, float a, const void* row, float* out, int64_t n) {
  if (type == TensorType::F32) {
    const auto* r = static_cast<const float*>(row);
    for (int64_t j = 0; j < n; ++j) out[j] += a * r[j];
  } else {
    LOOKAHEAD_CHECK(type == TensorType::F16);
    const auto* r = static_cast<const uint16_t*>(row);
    for (int64_t j = 0; j < n; ++j) out[j] += a * fp16_to_fp32(r[j]);
  }
}

}  // namespace lookahead::moe::kernels::scalar
