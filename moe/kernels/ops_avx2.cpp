// AVX2/FMA versions of the elementwise ops in ops.h whose scalar form costs real time in prefill
// (an exp per FFN neuron per token). Compiled with -mavx2 -mfma; ops.cpp calls them only when
// kernel_path() is Avx2.
#include <immintrin.h>

#include <cmath>

#include "moe/kernels/exp_avx2.h"
#include "moe/kernels/ops.h"

namespace lookahead::moe::kernels::avx2 {

void swiglu(const float* gate, const float* up, float* a, int64_t n) {
  int64_t i = 0;
  const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
  for (; i + 8 <= n; i += 8) {
    const __m256 g = _mm256_loadu_ps(gate + i);
    const __m256 e = exp256(_mm256_xor_ps(g, sign));  // exp(-g)
    const __m256 silu = _mm256_div_ps(g, _mm256_add_ps(one, e));
    _mm256_storeu_ps(a + i, _mm256_mul_ps(silu, _mm256_loadu_ps(up + i)));
  }
  for (; i < n; ++i) a[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

}  // namespace lookahead::moe::kernels::avx2
