#include "moe/kernels/ops.h"

#include <cmath>

#include "moe/kernels/matmul.h"

namespace lookahead::moe {

void rmsnorm(const float* x, const float* weight, float* out, int64_t n, float eps) {
  double sum = 0;  // as ggml: accumulate squares in double
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i]) * x[i];
  const float scale = 1.0f / std::sqrt(static_cast<float>(sum / static_cast<double>(n)) + eps);
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * scale * weight[i];
}

void rope_angles(int64_t pos, int64_t head_dim, float theta, float* cos_sin) {
  for (int64_t i = 0; i < head_dim / 2; ++i) {
    const double freq = std::pow(static_cast<double>(theta), -2.0 * static_cast<double>(i) / static_cast<double>(head_dim));
    const double angle = static_cast<double>(pos) * freq;
    cos_sin[2 * i] = static_cast<float>(std::cos(angle));
    cos_sin[2 * i + 1] = static_cast<float>(std::sin(angle));
  }
}

void rope(float* x, int64_t n_heads, int64_t head_dim, const float* cos_sin, bool neox) {
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    float* v = x + h * head_dim;
    for (int64_t i = 0; i < half; ++i) {
      const float c = cos_sin[2 * i], s = cos_sin[2 * i + 1];
      float& a = neox ? v[i] : v[2 * i];
      float& b = neox ? v[i + half] : v[2 * i + 1];
      const float a0 = a, b0 = b;
      a = a0 * c - b0 * s;
      b = a0 * s + b0 * c;
    }
  }
}

void softmax(float* x, int64_t n) {
  float max = -INFINITY;
  for (int64_t i = 0; i < n; ++i) max = std::fmax(max, x[i]);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - max);
    sum += x[i];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void kernels::scalar::swiglu(const float* gate, const float* up, float* a, int64_t n) {
  for (int64_t i = 0; i < n; ++i) a[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void swiglu(const float* gate, const float* up, float* a, int64_t n) {
  if (kernel_path() == KernelPath::AVX2)
    kernels::avx2::swiglu(gate, up, a, n);
  else
    kernels::scalar::swiglu(gate, up, a, n);
}

}  // namespace lookahead::moe
