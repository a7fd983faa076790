#pragma once
// y = W x for a weight matrix in any supported type, for one token (decode) or a batch of tokens
// (prefill), multithreaded with OpenMP.
//
// Contract:
//   - W is `rows` x `cols` (GGML order: each row is one output's `cols` input weights, stored as
//     row_bytes(type, cols) bytes). x is [n_tokens][cols] f32, y is [n_tokens][rows] f32.
//   - Quantized W: each x row is quantized to 8-bit blocks first and the dot products are integer
//     (llama.cpp's method), so results differ from the f32 product by that rounding.
//   - Float W with n_tokens >= kBlasMinTokens: OpenBLAS sgemm (F16/BF16 are widened tile by tile).
//   - `row_ids` (optional) restricts the product to those output rows; other y entries are left
//     untouched. This is the seam for running only a subset of FFN neurons.
//   - MatmulWorkspace holds the quantized activations and conversion tiles; it grows on first use
//     and then is reused, so steady-state decode allocates nothing.
//   - The kernel path (scalar reference or AVX2, the latter with AVX-512 VNNI integer dots where
//     available) is picked at run time from the CPU; tests can force one with set_kernel_path()
//     and set_use_vnni().
#include <cstdint>
#include <initializer_list>
#include <vector>

#include "moe/kernels/tensor_type.h"
#include "moe/kernels/dot.h"

namespace lookahead::moe {

struct WeightMatrix {
  TensorType type = TensorType::F32;
  const uint8_t* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t row_stride() const { return row_bytes(type, cols); }
  const uint8_t* row(int64_t r) const { return data + r * row_stride(); }
  int64_t bytes() const { return rows * row_stride(); }
};

enum class KernelPath { SCALAR, AVX2 };

// Best path this CPU supports (AVX2+FMA+F16C, else scalar).
KernelPath detected_kernel_path();
KernelPath kernel_path();
void set_kernel_path(KernelPath path);  // forcing Avx2 on a CPU without it is a programming error
// Within the Avx2 path, the quantized dots use AVX-512 VNNI (vpdpbusd on 256-bit vectors) when the
// CPU and OS support it (default on there); the integer results are identical, so this only
// changes speed. Tests switch it to cover both kernels.
bool vnni_available();
bool use_vnni();
void set_use_vnni(bool on);  // on without vnni_available() is a programming error
// Threads used by kernels (OpenMP and OpenBLAS). Default: OpenMP's default (all cores).
void set_kernel_threads(int n);
int kernel_threads();

constexpr int64_t kBlasMinTokens = 32;

struct MatmulWorkspace {
  std::vector<kernels::ActivationBlock> xq;  // [n_tokens][cols/32]
  std::vector<float> tile;                   // widened F16/BF16 rows for sgemm
};

void matmul(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y, MatmulWorkspace& ws,
            const int32_t* row_ids = nullptr, int64_t n_row_ids = 0);

// One product of several: y = W x with its own optional row subset (as in matmul()).
struct MatmulPart {
  const WeightMatrix* w = nullptr;
  float* y = nullptr;
  const int32_t* row_ids = nullptr;
  int64_t n_row_ids = 0;
};
constexpr int kMaxMatmulParts = 4;
// Several products of the same x (q, k and v; gate and up): x is quantized once and all their rows
// share one parallel region, instead of a quantization and a fork/join per matrix (on few cores a
// decode step's fork/joins are a measurable share of its time). Results are identical to matmul()
// on each part. Parts must have the same cols; at most kMaxMatmulParts. Float weights in a batch
// of kBlasMinTokens or more go to sgemm one part at a time, as in matmul().
void matmul_parts(std::initializer_list<MatmulPart> parts, const float* x, int64_t n_tokens, MatmulWorkspace& ws);

// Dispatched vector helpers used by attention.
float dot_f32(const float* a, const float* b, int64_t n);
// Dot of one row of `type` (F32/F16) with f32 x.
float dot_row(TensorType type, const void* row, const float* x, int64_t n);
void axpy(TensorType type, float a, const void* row, float* out, int64_t n);

}  // namespace lookahead::moe
