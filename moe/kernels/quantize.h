#pragma once
// Row conversion between f32 and every weight type (tensor_type.h), the scalar reference.
//
// Contract:
//   - n must be a multiple of the type's block size (32 for Q8_0/Q4_0/Q4_1, 1 for float types);
//     src/dst hold row_bytes(type, n) bytes on the quantized side and n floats on the f32 side.
//   - quantize_row is bit-exact with ggml's quantize_row_*_ref (and F16/BF16 conversion), so a
//     file we write holds the same bytes llama.cpp's quantizer would produce from the same f32s.
//   - dequantize_row is exact: x = d*q (Q8_0), d*(q-8) (Q4_0), d*q + m (Q4_1), with d, m widened
//     from f16 as ggml does.
#include <cstdint>

#include "moe/kernels/tensor_type.h"

namespace lookahead::moe {

void dequantize_row(TensorType type, const void* src, float* dst, int64_t n);
void quantize_row(TensorType type, const float* src, void* dst, int64_t n);

// GGML block layouts (tensor_type.h describes them); packed so sizeof matches type_size.
#pragma pack(push, 1)
struct BlockQ8_0 {
  uint16_t d;  // f16 scale
  int8_t qs[32];
};
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[16];  // qs[j] low nibble = element j, high nibble = element j + 16
};
struct BlockQ4_1 {
  uint16_t d;
  uint16_t m;  // f16 minimum
  uint8_t qs[16];
};
#pragma pack(pop)
static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20);

}  // namespace lookahead::moe
