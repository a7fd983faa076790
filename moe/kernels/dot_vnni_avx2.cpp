// The quantized dot kernels of dot_quant_avx2.h compiled for AVX-512 VNNI + VL: one vpdpbusd on a
// 256-bit vector replaces maddubs + madd (llama.cpp's native build does the same on such CPUs, e.g.
// AMD Zen 4 and Intel Ice Lake and later). Called only when vnni_available() (matmul.h).
//
// The whole file is compiled for that ISA by the pragma below, so it must not instantiate any
// inline function with external linkage (std:: templates, LOOKAHEAD_CHECK): the linker could pick
// this copy for callers on CPUs without AVX-512. Everything here is intrinsics and the
// internal-linkage templates of dot_quant_avx2.h.
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512vl,avx512vnni"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512vnni")
#endif

#include "moe/kernels/dot_quant_avx2.h"

namespace lookahead::moe::kernels::avx2 {

DotFn dot_for_vnni(TensorType type) {
  switch (type) {
    case TensorType::Q8_0: return dot_quant<0, true>;
    case TensorType::Q4_0: return dot_quant<1, true>;
    case TensorType::Q4_1: return dot_quant<2, true>;
    default: return nullptr;
  }
}

DotMultiFn dot_multi_for_vnni(TensorType type) {
  switch (type) {
    case TensorType::Q8_0: return dot_multi_quant<0, true>;
    case TensorType::Q4_0: return dot_multi_quant<1, true>;
    case TensorType::Q4_1: return dot_multi_quant<2, true>;
    default: return nullptr;
  }
}

}  // namespace lookahead::moe::kernels::avx2

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
