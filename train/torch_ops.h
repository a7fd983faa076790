#pragma once
// Small libtorch building blocks shared by the router and the Llama backbone (included only by
// train/*_torch.cpp, after train/torch_headers.h). Shapes in comments; all F32.
#include <cmath>
#include <cstdint>
#include <string>

#include "common/error.h"
#include "train/torch_headers.h"

namespace lookahead::train {

// x * rsqrt(mean(x^2) + eps) * w over the last dimension.
inline torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& w, double eps) {
  return x * torch::rsqrt(x.pow(2).mean(-1, /*keepdim=*/true) + eps) * w;
}

// cos, sin [T][head_dim] for positions 0..T-1, Hugging Face rotate_half layout (angle i and
// i + head_dim/2 equal). Angles in double, as the engine's rope_angles() computes them.
inline std::pair<torch::Tensor, torch::Tensor> rope_tables(int64_t n_pos, int64_t head_dim, double theta) {
  auto opts = torch::TensorOptions().dtype(torch::kFloat64);
  auto inv_freq = torch::pow(torch::tensor(theta, opts), -torch::arange(0, head_dim / 2, opts) * (2.0 / static_cast<double>(head_dim)));
  auto angles = torch::outer(torch::arange(0, n_pos, opts), inv_freq);  // [T][hd/2]
  angles = torch::cat({angles, angles}, -1);                            // [T][hd]
  return {torch::cos(angles).to(torch::kFloat32), torch::sin(angles).to(torch::kFloat32)};
}

// x [B][H][T][hd]: x * cos + rotate_half(x) * sin, rotate_half(x) = (-x2, x1).
inline torch::Tensor apply_rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  auto x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);
  return x * cos + torch::cat({-x2, x1}, -1) * sin;
}

// Causal softmax attention: q [B][H][T][hd], k/v [B][H][T][hd] -> [B][H][T][hd]; scores / scale.
inline torch::Tensor causal_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, double scale) {
  const int64_t t = q.size(2);
  auto scores = torch::matmul(q, k.transpose(-2, -1)) / scale;
  auto future = torch::ones({t, t}, torch::TensorOptions().dtype(torch::kBool)).triu(1);
  scores = scores.masked_fill(future, -std::numeric_limits<float>::infinity());
  return torch::matmul(torch::softmax(scores, -1), v);
}

// Converts libtorch's exceptions (multi-line, with a backtrace) into one-line lookahead errors.
template <typename F>
auto torch_boundary(const std::string& what, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const c10::Error& e) {
    std::string msg = e.what_without_backtrace();
    if (auto nl = msg.find('\n'); nl != std::string::npos) msg.resize(nl);
    fail("{}: libtorch: {}", what, msg);
  }
}

}  // namespace lookahead::train
