#pragma once
// Row dot products, one per weight type, in a scalar reference and an AVX2/FMA version.
// Internal to moe/kernels (matmul.h is the public entry); tests compare the two paths.
//
// Contract: dot(type, w_row, x, n) = sum_j w[j] * x[j] for one weight row of n values.
//   - Float weights (F32/F16/BF16): x is n f32 values.
//   - Quantized weights (Q8_0/Q4_0/Q4_1): x is the activation row quantized by
//     quantize_activation() into n/32 ActivationBlocks (as llama.cpp does: int8 values with a
//     scale, plus the scaled sum that Q4_0/Q4_1's offsets need), and the block sums are integer.
#include <cstdint>

#include "moe/kernels/tensor_type.h"

namespace lookahead::moe::kernels {

// Q8 activation block: x[j] ~= d * qs[j]; s = d * sum(qs) (used for weight offsets m and -8).
struct ActivationBlock {
  float d;
  float s;
  int8_t qs[32];
};

// True when the weight type wants the activation quantized to ActivationBlocks.
inline bool wants_quantized_activation(TensorType t) {
  return t == TensorType::Q8_0 || t == TensorType::Q4_0 || t == TensorType::Q4_1;
}

using DotFn = float (*)(const void* w_row, const void* x, int64_t n);
// y[t * y_stride] = dot(w_row, x + t * x_stride bytes) for t < n_tok: one weight row against several
// activation rows at once (prefill); only for quantized types (nullptr otherwise).
using DotMultiFn = void (*)(const void* w_row, const void* x, int64_t x_stride, int64_t n_tok, int64_t n, float* y,
                            int64_t y_stride);
using QuantizeActivationFn = void (*)(const float* x, ActivationBlock* out, int64_t n);

namespace scalar {
DotFn dot_for(TensorType type);
void quantize_activation(const float* x, ActivationBlock* out, int64_t n);
float dot_f32(const float* a, const float* b, int64_t n);
// out[j] += a * row[j], row of type F32 or F16 (the KV cache types).
void axpy(TensorType type, float a, const void* row, float* out, int64_t n);
}  // namespace scalar

namespace avx2 {
DotFn dot_for(TensorType type);
DotMultiFn dot_multi_for(TensorType type);
// The quantized kernels with AVX-512 VNNI (dot_vnni_avx2.cpp); nullptr for float types. Call only
// when the CPU has AVX-512 VNNI + VL (matmul.h: vnni_available()).
DotFn dot_for_vnni(TensorType type);
DotMultiFn dot_multi_for_vnni(TensorType type);
void quantize_activation(const float* x, ActivationBlock* out, int64_t n);
float dot_f32(const float* a, const float* b, int64_t n);
void axpy(TensorType type, float a, const void* row, float* out, int64_t n);
}  // namespace avx2

}  // namespace lookahead::moe::kernels
