// Matmul kernels: scalar reference vs AVX2 agreement for every weight type and odd sizes, both
// against an f64 product of the dequantized weights; batched == per-token; row subsets; BLAS path.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <random>
#include <vector>

#include "moe/kernels/matmul.h"
#include "moe/kernels/ops.h"
#include "moe/kernels/quantize.h"

using namespace lookahead::moe;

namespace {

const TensorType kTypes[] = {TensorType::F32, TensorType::F16, TensorType::BF16,
                             TensorType::Q8_0, TensorType::Q4_0, TensorType::Q4_1};

struct Matrix {
  std::vector<uint8_t> bytes;
  std::vector<float> dequant;  // what the kernel should be multiplying by
  WeightMatrix w;
};

Matrix random_matrix(TensorType type, int64_t rows, int64_t cols, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> f(static_cast<size_t>(rows * cols));
  for (auto& v : f) v = normal(rng);
  Matrix m;
  m.bytes.resize(static_cast<size_t>(rows * row_bytes(type, cols)));
  m.dequant.resize(f.size());
  for (int64_t r = 0; r < rows; ++r) {
    quantize_row(type, f.data() + r * cols, m.bytes.data() + r * row_bytes(type, cols), cols);
    dequantize_row(type, m.bytes.data() + r * row_bytes(type, cols), m.dequant.data() + r * cols, cols);
  }
  m.w = {type, m.bytes.data(), rows, cols};
  return m;
}

std::vector<float> random_vector(int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = normal(rng);
  return v;
}

// Tolerance: float weights ~ f32 rounding; quantized ones also carry the 8-bit activation rounding
// (relative ~ 1/254 per element, averaging out over the row).
double tolerance(TensorType type, int64_t cols) {
  return kernels::wants_quantized_activation(type) ? 0.02 * std::sqrt(static_cast<double>(cols)) : 1e-4 * std::sqrt(static_cast<double>(cols));
}

class PathGuard {
 public:
  explicit PathGuard(KernelPath p) : saved_(kernel_path()) { set_kernel_path(p); }
  ~PathGuard() { set_kernel_path(saved_); }
 private:
  KernelPath saved_;
};

}  // namespace

TEST(KernelsMatmul, ScalarAndAvx2AgreeWithReference) {
  if (detected_kernel_path() != KernelPath::AVX2) GTEST_SKIP() << "CPU without AVX2";
  for (TensorType type : kTypes) {
    const bool quant = kernels::wants_quantized_activation(type);
    for (int64_t cols : quant ? std::vector<int64_t>{32, 64, 96, 608} : std::vector<int64_t>{1, 7, 37, 130}) {
      const int64_t rows = 13, n_tokens = 3;
      Matrix m = random_matrix(type, rows, cols, 11 + static_cast<uint64_t>(cols));
      std::vector<float> x = random_vector(n_tokens * cols, 5);
      std::vector<float> ys(static_cast<size_t>(n_tokens * rows)), ya(ys.size());
      MatmulWorkspace ws;
      {
        PathGuard g(KernelPath::SCALAR);
        matmul(m.w, x.data(), n_tokens, ys.data(), ws);
      }
      {
        PathGuard g(KernelPath::AVX2);
        matmul(m.w, x.data(), n_tokens, ya.data(), ws);
      }
      for (int64_t t = 0; t < n_tokens; ++t)
        for (int64_t r = 0; r < rows; ++r) {
          double ref = 0;
          for (int64_t c = 0; c < cols; ++c) ref += double{m.dequant[r * cols + c]} * x[t * cols + c];
          const size_t i = static_cast<size_t>(t * rows + r);
          EXPECT_NEAR(ys[i], ref, tolerance(type, cols)) << tensor_type_name(type) << " cols " << cols;
          // The two paths quantize activations identically, so they agree far more tightly.
          EXPECT_NEAR(ya[i], ys[i], 1e-4 * (1 + std::fabs(ys[i]))) << tensor_type_name(type) << " cols " << cols;
        }
    }
  }
}

// AVX-512 VNNI computes the same integer block sums as maddubs + madd, so both AVX2 variants must
// agree bit for bit, for decode (1 token) and prefill (4-token tiles plus a remainder), on products
// large enough to run on several threads.
TEST(KernelsMatmul, VnniAndPlainAvx2AreIdentical) {
  if (!vnni_available()) GTEST_SKIP() << "CPU without AVX-512 VNNI";
  PathGuard path(KernelPath::AVX2);
  for (TensorType type : {TensorType::Q8_0, TensorType::Q4_0, TensorType::Q4_1}) {
    for (int64_t n_tokens : {1, 7}) {
      const int64_t rows = 100, cols = 608;
      Matrix m = random_matrix(type, rows, cols, 21);
      std::vector<float> x = random_vector(n_tokens * cols, 9);
      std::vector<float> yp(static_cast<size_t>(n_tokens * rows)), yv(yp.size()), ys(yp.size());
      MatmulWorkspace ws;
      set_use_vnni(false);
      matmul(m.w, x.data(), n_tokens, yp.data(), ws);
      set_use_vnni(true);
      matmul(m.w, x.data(), n_tokens, yv.data(), ws);
      {
        PathGuard g(KernelPath::SCALAR);
        matmul(m.w, x.data(), n_tokens, ys.data(), ws);
      }
      for (size_t i = 0; i < yp.size(); ++i) {
        EXPECT_EQ(yp[i], yv[i]) << tensor_type_name(type) << " tokens " << n_tokens << " i " << i;
        EXPECT_NEAR(yv[i], ys[i], 1e-4 * (1 + std::fabs(ys[i]))) << tensor_type_name(type) << " i " << i;
      }
    }
  }
  set_use_vnni(true);
}

TEST(KernelsMatmul, ActivationQuantizationPathsMatch) {
  if (detected_kernel_path() != KernelPath::AVX2) GTEST_SKIP();
  std::vector<float> x = random_vector(32 * 5, 3);
  x[3] = 0.5f * 127.0f / 4.0f;  // exact ties are rounded the same way by both
  std::vector<kernels::ActivationBlock> a(5), b(5);
  kernels::scalar::quantize_activation(x.data(), a.data(), 160);
  kernels::avx2::quantize_activation(x.data(), b.data(), 160);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(a[i].d, b[i].d);
    EXPECT_FLOAT_EQ(a[i].s, b[i].s);
    for (int j = 0; j < 32; ++j) EXPECT_EQ(a[i].qs[j], b[i].qs[j]);
  }
}

TEST(KernelsMatmul, BatchedEqualsPerTokenAndBlasPath) {
  for (TensorType type : kTypes) {
    const int64_t rows = 40, cols = 64, n_tokens = kBlasMinTokens + 3;  // float types take sgemm
    Matrix m = random_matrix(type, rows, cols, 99);
    std::vector<float> x = random_vector(n_tokens * cols, 8);
    std::vector<float> yb(static_cast<size_t>(n_tokens * rows)), y1(static_cast<size_t>(rows));
    MatmulWorkspace ws;
    matmul(m.w, x.data(), n_tokens, yb.data(), ws);
    for (int64_t t = 0; t < n_tokens; ++t) {
      matmul(m.w, x.data() + t * cols, 1, y1.data(), ws);
      for (int64_t r = 0; r < rows; ++r)
        ASSERT_NEAR(yb[static_cast<size_t>(t * rows + r)], y1[static_cast<size_t>(r)], 1e-4 * (1 + std::fabs(y1[r])))
            << tensor_type_name(type);
    }
  }
}

// Quantized weights: a token's row of the product is bit-identical whatever else is in the batch
// (1..9 tokens, odd and even block counts, every kernel path), so continuous batching does not
// change a sequence's greedy output. Float weights are identical below kBlasMinTokens.
TEST(KernelsMatmul, QuantizedRowsDoNotDependOnTheBatch) {
  std::vector<KernelPath> paths = {KernelPath::SCALAR};
  if (detected_kernel_path() == KernelPath::AVX2) paths.push_back(KernelPath::AVX2);
  const KernelPath saved = kernel_path();
  for (KernelPath path : paths) {
    set_kernel_path(path);
    for (TensorType type : {TensorType::Q8_0, TensorType::Q4_0, TensorType::Q4_1, TensorType::F16}) {
      for (int64_t cols : {96, 128}) {  // 3 and 4 blocks of 32
        const int64_t rows = 24;
        Matrix m = random_matrix(type, rows, cols, 5);
        std::vector<float> x = random_vector(9 * cols, 6);
        MatmulWorkspace ws;
        std::vector<float> alone(static_cast<size_t>(9 * rows)), batch(static_cast<size_t>(9 * rows));
        for (int64_t t = 0; t < 9; ++t) matmul(m.w, x.data() + t * cols, 1, alone.data() + t * rows, ws);
        for (int64_t n = 2; n <= 9; ++n) {
          matmul(m.w, x.data(), n, batch.data(), ws);
          for (int64_t i = 0; i < n * rows; ++i)
            ASSERT_EQ(batch[static_cast<size_t>(i)], alone[static_cast<size_t>(i)])
                << tensor_type_name(type) << " cols " << cols << " batch " << n << " index " << i;
        }
      }
    }
  }
  set_kernel_path(saved);
}

TEST(KernelsMatmul, RowSubsetTouchesOnlyThoseRows) {
  Matrix m = random_matrix(TensorType::Q4_1, 20, 64, 1);
  std::vector<float> x = random_vector(64 * 2, 2);
  std::vector<float> full(40), part(40, -7.0f);
  MatmulWorkspace ws;
  matmul(m.w, x.data(), 2, full.data(), ws);
  const int32_t ids[] = {0, 3, 19};
  matmul(m.w, x.data(), 2, part.data(), ws, ids, 3);
  for (int t = 0; t < 2; ++t)
    for (int r = 0; r < 20; ++r) {
      const bool selected = r == 0 || r == 3 || r == 19;
      EXPECT_EQ(part[t * 20 + r], selected ? full[t * 20 + r] : -7.0f);
    }
}

// matmul_parts (q/k/v, gate/up in one region) gives exactly what matmul gives on each part: mixed
// weight types and row counts large enough to run on several threads, row subsets, decode and
// batch sizes, the sgemm batch for float weights, and a mix of quantized and float parts.
TEST(KernelsMatmul, PartsEqualOneMatmulEach) {
  const int64_t cols = 256;
  for (int64_t n_tokens : {int64_t{1}, int64_t{5}, kBlasMinTokens + 1}) {
    for (auto types : {std::array{TensorType::Q4_1, TensorType::Q8_0, TensorType::Q4_1},
                       std::array{TensorType::F16, TensorType::F32, TensorType::BF16},
                       std::array{TensorType::Q8_0, TensorType::F16, TensorType::Q4_0}}) {
      Matrix a = random_matrix(types[0], 300, cols, 11), b = random_matrix(types[1], 70, cols, 12),
             c = random_matrix(types[2], 129, cols, 13);
      std::vector<float> x = random_vector(n_tokens * cols, 14);
      const int32_t ids[] = {1, 2, 40, 128};
      MatmulWorkspace ws;
      std::vector<float> ya(300 * n_tokens, -1), yb(70 * n_tokens, -1), yc(129 * n_tokens, -1);
      std::vector<float> ea = ya, eb = yb, ec = yc;
      matmul(a.w, x.data(), n_tokens, ea.data(), ws);
      matmul(b.w, x.data(), n_tokens, eb.data(), ws);
      matmul(c.w, x.data(), n_tokens, ec.data(), ws, ids, 4);
      matmul_parts({{&a.w, ya.data()}, {&b.w, yb.data()}, {&c.w, yc.data(), ids, 4}}, x.data(), n_tokens, ws);
      EXPECT_EQ(ya, ea) << tensor_type_name(types[0]) << " tokens " << n_tokens;
      EXPECT_EQ(yb, eb) << tensor_type_name(types[1]) << " tokens " << n_tokens;
      EXPECT_EQ(yc, ec) << tensor_type_name(types[2]) << " tokens " << n_tokens;
    }
  }
}

TEST(KernelsOps, RopeRotatesPairsAndKeepsNorms) {
  const int64_t hd = 8;
  std::vector<float> cs(hd);
  rope_angles(0, hd, 10000.0f, cs.data());
  std::vector<float> x = random_vector(2 * hd, 4), y = x;
  rope(y.data(), 2, hd, cs.data(), false);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_FLOAT_EQ(x[i], y[i]);  // position 0 is the identity

  rope_angles(3, hd, 10000.0f, cs.data());
  // Pair 0 has frequency 1: angle 3 rad. Pair 1: 3 * 10000^(-1/4) = 0.3 rad.
  EXPECT_NEAR(cs[0], std::cos(3.0), 1e-6);
  EXPECT_NEAR(cs[3], std::sin(0.3), 1e-6);
  std::vector<float> adj = x;
  rope(adj.data(), 2, hd, cs.data(), false);
  EXPECT_NEAR(adj[0], x[0] * std::cos(3.0) - x[1] * std::sin(3.0), 1e-5);
  EXPECT_NEAR(adj[1], x[0] * std::sin(3.0) + x[1] * std::cos(3.0), 1e-5);
  // NEOX on the de-interleaved vector equals adjacent-pair RoPE, re-interleaved.
  std::vector<float> perm(x.size()), neox;
  for (int h = 0; h < 2; ++h)
    for (int i = 0; i < hd / 2; ++i) {
      perm[h * hd + i] = x[h * hd + 2 * i];
      perm[h * hd + i + hd / 2] = x[h * hd + 2 * i + 1];
    }
  neox = perm;
  rope(neox.data(), 2, hd, cs.data(), true);
  for (int h = 0; h < 2; ++h)
    for (int i = 0; i < hd / 2; ++i) {
      EXPECT_NEAR(neox[h * hd + i], adj[h * hd + 2 * i], 1e-6);
      EXPECT_NEAR(neox[h * hd + i + hd / 2], adj[h * hd + 2 * i + 1], 1e-6);
    }
}

TEST(KernelsOps, RmsnormSoftmaxSwiglu) {
  std::vector<float> x = {1, 2, 3, 4}, w = {1, 1, 2, 0.5f}, out(4);
  rmsnorm(x.data(), w.data(), out.data(), 4, 0.0f);
  const float rms = std::sqrt(30.0f / 4);
  EXPECT_NEAR(out[2], 3 / rms * 2, 1e-6);
  EXPECT_NEAR(out[3], 4 / rms * 0.5f, 1e-6);
  std::vector<float> s = {1000, 1001, 999};
  softmax(s.data(), 3);
  EXPECT_NEAR(s[0] + s[1] + s[2], 1.0, 1e-6);
  EXPECT_NEAR(s[1] / s[0], std::exp(1.0), 1e-4);
  float g[] = {0.0f, 2.0f}, u[] = {3.0f, 0.5f}, a[2];
  swiglu(g, u, a, 2);
  EXPECT_EQ(a[0], 0.0f);
  EXPECT_NEAR(a[1], 2.0 / (1 + std::exp(-2.0)) * 0.5, 1e-6);
}
