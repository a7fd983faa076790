#pragma once
// Elementwise and per-row operations of the Llama block. All work in place or into `out`, on f32.
#include <cstdint>

namespace lookahead::moe {

// out[i] = x[i] / sqrt(mean(x^2) + eps) * weight[i], i < n. out may alias x.
void rmsnorm(const float* x, const float* weight, float* out, int64_t n, float eps);

// Rotary position embedding of one token's heads, in place: x is [n_heads][head_dim].
//   neox == false (GGUF llama convention): pairs (x[2i], x[2i+1]) rotate by pos * theta^(-2i/d).
//   neox == true  (Hugging Face rotate_half): pairs (x[i], x[i + d/2]) with the same angles.
// `cos_sin` holds head_dim/2 (cos, sin) pairs for this position, from rope_angles().
void rope_angles(int64_t pos, int64_t head_dim, float theta, float* cos_sin);
void rope(float* x, int64_t n_heads, int64_t head_dim, const float* cos_sin, bool neox);

// In-place softmax over n values (max-subtracted, so it does not overflow).
void softmax(float* x, int64_t n);

// a[i] = silu(gate[i]) * up[i]: SwiGLU, the FFN's down_proj input. a may alias gate or up.
// Follows kernel_path() (matmul.h): the AVX2 form uses a polynomial exp (~1e-7 relative error).
void swiglu(const float* gate, const float* up, float* a, int64_t n);

namespace kernels::scalar {
void swiglu(const float* gate, const float* up, float* a, int64_t n);
}
namespace kernels::avx2 {
void swiglu(const float* gate, const float* up, float* a, int64_t n);
}

}  // namespace lookahead::moe
