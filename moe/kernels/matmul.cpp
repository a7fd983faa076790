#include "moe/kernels/matmul.h"

#include <cpuid.h>
#include <omp.h>  // omp_get_max_threads: the default thread count (honours OMP_NUM_THREADS)
#include <openblas-pthread/cblas.h>

#include <algorithm>

#include "common/error.h"
#include "moe/kernels/quantize.h"
#include "moe/kernels/thread_pool.h"

namespace lookahead::moe {

namespace {

KernelPath g_path = detected_kernel_path();
bool g_vnni = vnni_available();
int g_threads = 0;  // 0 = OpenMP default

kernels::DotFn dot_fn(TensorType type) {
  if (g_path != KernelPath::AVX2) return kernels::scalar::dot_for(type);
  if (g_vnni && kernels::wants_quantized_activation(type)) return kernels::avx2::dot_for_vnni(type);
  return kernels::avx2::dot_for(type);
}

kernels::DotMultiFn dot_multi_fn(TensorType type) {
  if (g_path != KernelPath::AVX2) return nullptr;
  if (g_vnni && kernels::wants_quantized_activation(type)) return kernels::avx2::dot_multi_for_vnni(type);
  return kernels::avx2::dot_multi_for(type);
}

void quantize_activation(const float* x, kernels::ActivationBlock* out, int64_t n) {
  if (g_path == KernelPath::AVX2)
    kernels::avx2::quantize_activation(x, out, n);
  else
    kernels::scalar::quantize_activation(x, out, n);
}

int threads() { return g_threads > 0 ? g_threads : omp_get_max_threads(); }

// Rows are split in blocks so that each thread streams its own part of W once; token tiles keep
// a block of weight rows and a tile of activations in L1/L2 for prefill.
constexpr int64_t kRowBlock = 16;
constexpr int64_t kTokenTile = 16;
constexpr int64_t kMinParallelMacs = 32 * 1024;

// One part of matmul_dots: its kernels and where its row blocks start in the shared block range.
struct DotPart {
  const WeightMatrix* w;
  float* y;
  const int32_t* row_ids;
  int64_t n_rows;
  kernels::DotFn dot;
  kernels::DotMultiFn multi;
  int64_t first_block;
};

// Rows [r0, r1) of one part, every token.
void dot_rows(const DotPart& p, int64_t r0, int64_t r1, const uint8_t* xb, int64_t x_stride_bytes, int64_t n_tokens) {
  const WeightMatrix& w = *p.w;
  for (int64_t t0 = 0; t0 < n_tokens; t0 += kTokenTile) {
    const int64_t t1 = std::min(n_tokens, t0 + kTokenTile);
    for (int64_t i = r0; i < r1; ++i) {
      const int64_t r = p.row_ids ? p.row_ids[i] : i;
      const uint8_t* wr = w.row(r);
      if (p.multi && t1 - t0 > 1)
        p.multi(wr, xb + t0 * x_stride_bytes, x_stride_bytes, t1 - t0, w.cols, p.y + t0 * w.rows + r, w.rows);
      else
        for (int64_t t = t0; t < t1; ++t) p.y[t * w.rows + r] = p.dot(wr, xb + t * x_stride_bytes, w.cols);
    }
  }
}

// The row blocks of every part in one parallel region (x is shared: same cols).
void matmul_dots(const MatmulPart* parts, int n_parts, const void* x, int64_t x_stride_bytes, int64_t n_tokens) {
  DotPart dp[kMaxMatmulParts];
  int64_t n_blocks = 0, macs = 0;
  for (int i = 0; i < n_parts; ++i) {
    const MatmulPart& p = parts[i];
    const int64_t n_rows = p.row_ids ? p.n_row_ids : p.w->rows;
    dp[i] = {p.w, p.y, p.row_ids, n_rows, dot_fn(p.w->type), dot_multi_fn(p.w->type), n_blocks};
    n_blocks += (n_rows + kRowBlock - 1) / kRowBlock;
    macs += n_rows * p.w->cols * n_tokens;
  }
  const auto* xb = static_cast<const uint8_t*>(x);
  // A fork/join costs ~1-2 us; a 576x576 Q4_1 decode product (200 KB of weights) takes ~20 us, so
  // every product of the model runs on all threads; only really small ones (tests) stay inline.
  const int nt = macs < kMinParallelMacs ? 1 : threads();
  parallel_for(n_blocks, nt, [&](int64_t begin, int64_t end, int) {
    for (int64_t b = begin; b < end; ++b) {
      int i = n_parts - 1;
      while (dp[i].first_block > b) --i;
      const int64_t r0 = (b - dp[i].first_block) * kRowBlock, r1 = std::min(dp[i].n_rows, r0 + kRowBlock);
      dot_rows(dp[i], r0, r1, xb, x_stride_bytes, n_tokens);
    }
  });
}

// x quantized to 8-bit blocks in ws.xq, one row per token.
const kernels::ActivationBlock* quantized_input(const float* x, int64_t n_tokens, int64_t cols, MatmulWorkspace& ws) {
  LOOKAHEAD_CHECK(cols % 32 == 0);
  const int64_t nb = cols / 32;
  if (ws.xq.size() < static_cast<size_t>(n_tokens * nb)) ws.xq.resize(static_cast<size_t>(n_tokens * nb));
  const int nt = n_tokens < 4 ? 1 : threads();
  parallel_for(n_tokens, nt, [&](int64_t begin, int64_t end, int) {
    for (int64_t t = begin; t < end; ++t) quantize_activation(x + t * cols, ws.xq.data() + t * nb, cols);
  });
  return ws.xq.data();
}

void matmul_blas(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y, MatmulWorkspace& ws) {
  // One threading runtime: the pool's threads split W's rows and each calls a single-threaded
  // sgemm on its share. Letting OpenBLAS start its own threads while our workers spin-wait after
  // the previous region made two runtimes fight for the 2 cores (F16 pp512: 283 tokens/s, 507 with
  // OpenMP's passive waiting; this split avoids the fight without an environment variable).
  openblas_set_num_threads(1);
  const int nt = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads(), w.rows / 16)));
  const int64_t max_share = (w.rows + nt - 1) / nt;
  // F16/BF16: widen a tile of rows to f32, then sgemm against it; each thread its own tile (~2 MiB).
  const int64_t tile_rows = std::max<int64_t>(16, std::min<int64_t>(max_share, (512 * 1024) / std::max<int64_t>(1, w.cols)));
  if (w.type != TensorType::F32 && ws.tile.size() < static_cast<size_t>(nt * tile_rows * w.cols))
    ws.tile.resize(static_cast<size_t>(nt * tile_rows * w.cols));
  KernelPool::instance().run(nt, [&](int t, int n) {
    const int64_t per_thread = (w.rows + n - 1) / n;
    const int64_t begin = std::min<int64_t>(w.rows, t * per_thread), end = std::min<int64_t>(w.rows, begin + per_thread);
    if (w.type == TensorType::F32) {
      // Y[T, begin:end] = X[T,C] * W[begin:end, C]^T
      if (end > begin)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n_tokens), static_cast<int>(end - begin),
                    static_cast<int>(w.cols), 1.0f, x, static_cast<int>(w.cols),
                    reinterpret_cast<const float*>(w.row(begin)), static_cast<int>(w.cols), 0.0f, y + begin,
                    static_cast<int>(w.rows));
    } else {
      float* tile = ws.tile.data() + static_cast<int64_t>(t) * tile_rows * w.cols;
      for (int64_t r0 = begin; r0 < end; r0 += tile_rows) {
        const int64_t nr = std::min(tile_rows, end - r0);
        for (int64_t r = 0; r < nr; ++r) dequantize_row(w.type, w.row(r0 + r), tile + r * w.cols, w.cols);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n_tokens), static_cast<int>(nr),
                    static_cast<int>(w.cols), 1.0f, x, static_cast<int>(w.cols), tile, static_cast<int>(w.cols), 0.0f,
                    y + r0, static_cast<int>(w.rows));
      }
    }
  });
}

}  // namespace

KernelPath detected_kernel_path() {
  __builtin_cpu_init();
  // F16C via cpuid: clang 14's __builtin_cpu_supports does not know "f16c" (the fuzz build uses clang).
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C) != 0;
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
  return avx2 ? KernelPath::AVX2 : KernelPath::SCALAR;
}
bool vnni_available() {
  if (detected_kernel_path() != KernelPath::AVX2) return false;
  // CPUID leaf 7: AVX512F (ebx 16), AVX512VL (ebx 31), AVX512_VNNI (ecx 11); and the OS must save
  // the opmask and upper ZMM state (XCR0 bits 5-7) besides SSE/AVX (bits 1-2).
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return false;
  const bool cpu = (ebx & (1u << 16)) && (ebx & (1u << 31)) && (ecx & (1u << 11));
  if (!cpu) return false;
  unsigned xcr0_lo = 0, xcr0_hi = 0;
  __asm__("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  return (xcr0_lo & 0xE6u) == 0xE6u;
}
bool use_vnni() { return g_path == KernelPath::AVX2 && g_vnni; }
void set_use_vnni(bool on) {
  LOOKAHEAD_CHECK(!on || vnni_available());
  g_vnni = on;
}
KernelPath kernel_path() { return g_path; }
void set_kernel_path(KernelPath path) {
  LOOKAHEAD_CHECK(path == KernelPath::SCALAR || detected_kernel_path() == KernelPath::AVX2);
  g_path = path;
}
void set_kernel_threads(int n) {
  g_threads = n;
  if (n > 0) KernelPool::instance().set_threads(n);
}
int kernel_threads() { return threads(); }

void matmul(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y, MatmulWorkspace& ws,
            const int32_t* row_ids, int64_t n_row_ids) {
  const MatmulPart part{&w, y, row_ids, n_row_ids};
  if (kernels::wants_quantized_activation(w.type)) {
    const auto* xq = quantized_input(x, n_tokens, w.cols, ws);
    matmul_dots(&part, 1, xq, w.cols / 32 * static_cast<int64_t>(sizeof(kernels::ActivationBlock)), n_tokens);
    return;
  }
  if (n_tokens >= kBlasMinTokens && !row_ids) {
    matmul_blas(w, x, n_tokens, y, ws);
    return;
  }
  matmul_dots(&part, 1, x, w.cols * static_cast<int64_t>(sizeof(float)), n_tokens);
}

void matmul_parts(std::initializer_list<MatmulPart> parts, const float* x, int64_t n_tokens, MatmulWorkspace& ws) {
  LOOKAHEAD_CHECK(parts.size() >= 1 && parts.size() <= static_cast<size_t>(kMaxMatmulParts));
  const MatmulPart* p = parts.begin();
  const int n = static_cast<int>(parts.size());
  const int64_t cols = p[0].w->cols;
  const bool quantized = kernels::wants_quantized_activation(p[0].w->type);
  bool shared = true;
  for (int i = 0; i < n; ++i) {
    shared = shared && p[i].w->cols == cols && kernels::wants_quantized_activation(p[i].w->type) == quantized;
    shared = shared && (quantized || n_tokens < kBlasMinTokens || p[i].row_ids);
  }
  if (!shared) {  // mixed kinds, or float weights for sgemm: one product at a time
    for (int i = 0; i < n; ++i) matmul(*p[i].w, x, n_tokens, p[i].y, ws, p[i].row_ids, p[i].n_row_ids);
    return;
  }
  if (quantized)
    matmul_dots(p, n, quantized_input(x, n_tokens, cols, ws), cols / 32 * static_cast<int64_t>(sizeof(kernels::ActivationBlock)),
                n_tokens);
  else
    matmul_dots(p, n, x, cols * static_cast<int64_t>(sizeof(float)), n_tokens);
}

float dot_f32(const float* a, const float* b, int64_t n) {
  return g_path == KernelPath::AVX2 ? kernels::avx2::dot_f32(a, b, n) : kernels::scalar::dot_f32(a, b, n);
}

float dot_row(TensorType type, const void* row, const float* x, int64_t n) { return dot_fn(type)(row, x, n); }

void axpy(TensorType type, float a, const void* row, float* out, int64_t n) {
  if (g_path == KernelPath::AVX2)
    kernels::avx2::axpy(type, a, row, out, n);
  else
    kernels::scalar::axpy(type, a, row, out, n);
}

}  // namespace lookahead::moe
