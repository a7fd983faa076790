#include "moe/refactor/ffn_reconstruction.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/error.h"
#include "common/progress.h"
#include "moe/checkpoint/model_source.h"
#include "moe/kernels/matmul.h"
#include "moe/kernels/quantize.h"
#include "moe/model/ffn_hook.h"

// LAPACK's Cholesky solve, from OpenBLAS (Debian's libopenblas carries LAPACK; no lapacke.h).
extern "C" void dposv_(const char* uplo, const int* n, const int* nrhs, double* a, const int* lda, double* b,
                       const int* ldb, int* info);
extern "C" void dpotrf_(const char* uplo, const int* n, double* a, const int* lda, int* info);
extern "C" void dpotri_(const char* uplo, const int* n, double* a, const int* lda, int* info);

namespace lookahead::moe {

FfnGram::FfnGram(int32_t layers, int32_t ff)
    : n_layer(layers), n_ff(ff), g(static_cast<size_t>(layers) * ff * ff, 0.0) {}

void FfnGram::add(const FfnGram& other) {
  LOOKAHEAD_CHECK(other.n_layer == n_layer && other.n_ff == n_ff);
  for (size_t i = 0; i < g.size(); ++i) g[i] += other.g[i];
  tokens += other.tokens;
}

void FfnGram::add_scaled(const FfnGram& other, double scale) {
  LOOKAHEAD_CHECK(other.n_layer == n_layer && other.n_ff == n_ff);
  for (size_t i = 0; i < g.size(); ++i) g[i] += scale * other.g[i];
  tokens += other.tokens;
}

GramRecorder::GramRecorder(FfnGram& gram) : gram_(gram), chunk_(static_cast<size_t>(gram.n_ff) * gram.n_ff) {}

// The engine's threading (moe/kernels/matmul.cpp, matmul_blas): our OpenMP threads take blocks of
// G's rows, each block [b0, b1) x [b0, n_ff) one single-threaded sgemm (float over at most ctx
// tokens loses nothing that matters), added into the double Gram; OpenBLAS's own threads would
// fight OpenMP's spinning workers. Only the upper triangle (and diagonal blocks) is accumulated.
void GramRecorder::on_ffn_activation(int layer, const float* a, int64_t n_tokens, int64_t n_ff) {
  LOOKAHEAD_CHECK(layer >= 0 && layer < gram_.n_layer && n_ff == gram_.n_ff);
  openblas_set_num_threads(1);
  const int n = static_cast<int>(n_ff);
  constexpr int64_t kBlock = 64;
  const int64_t n_blocks = (n_ff + kBlock - 1) / kBlock;
  double* g = gram_.layer(layer);
#pragma omp parallel for num_threads(kernel_threads()) schedule(dynamic, 1)
  for (int64_t blk = 0; blk < n_blocks; ++blk) {
    const int64_t b0 = blk * kBlock, b1 = std::min(n_ff, b0 + kBlock);
    // chunk[b0:b1, b0:n] = A[:, b0:b1]^T A[:, b0:n]
    float* c = chunk_.data() + b0 * n_ff + b0;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, static_cast<int>(b1 - b0), static_cast<int>(n_ff - b0),
                static_cast<int>(n_tokens), 1.0f, a + b0, n, a + b0, n, 0.0f, c, n);
    for (int64_t i = b0; i < b1; ++i) {
      double* gr = g + i * n_ff;
      const float* cr = chunk_.data() + i * n_ff;
      for (int64_t j = b0; j < n_ff; ++j) gr[j] += cr[j];
    }
  }
  if (layer == 0) gram_.tokens += n_tokens;  // every layer sees the same tokens
}

void GramRecorder::finish() {
  for (int l = 0; l < gram_.n_layer; ++l) {
    double* g = gram_.layer(l);
    const int64_t n = gram_.n_ff;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < i; ++j) g[i * n + j] = g[j * n + i];
  }
}

ReconstructionTokens reconstruction_tokens(const Tokenizer& tokenizer, const CorpusDomain& domain, int64_t fit_tokens,
                                           int64_t validation_tokens, int64_t min_tokens) {
  if (fit_tokens < 1 || validation_tokens < 0) fail("reconstruction token counts must be positive");
  std::vector<int32_t> ids = tokenize_prefix(tokenizer, read_text_file(domain.path), fit_tokens + validation_tokens);
  const auto have = static_cast<int64_t>(ids.size());
  const int64_t held = have >= fit_tokens + validation_tokens ? validation_tokens : std::min(validation_tokens, have / 4);
  ReconstructionTokens t;
  t.fit.assign(ids.begin(), ids.begin() + std::min(fit_tokens, have - held));
  t.validation.assign(ids.end() - held, ids.end());
  if (static_cast<int64_t>(t.fit.size()) < min_tokens)
    fail("corpus domain '{}' ({}): {} tokens to fit on, expert reconstruction needs at least {} (or use --reconstruct none)",
         domain.name, domain.path, t.fit.size(), min_tokens);
  return t;
}

FfnGram collect_ffn_gram(const LlamaModel& model, const std::vector<int32_t>& ids, const std::string& name,
                         const GramOptions& o) {
  if (o.ctx < 2) fail("--ctx must be at least 2 (got {})", o.ctx);
  const LlamaHparams& hp = model.hparams();
  const Tokenizer& tokenizer = model.source().tokenizer();
  const std::vector<int32_t> prefix = tokenizer.encode("", /*add_special=*/true, /*parse_special=*/false);
  if (static_cast<int64_t>(prefix.size()) >= o.ctx) fail("--ctx {} leaves no room for text", o.ctx);

  FfnGram gram(hp.n_layer, hp.n_ff);
  ContextOptions copt;
  copt.n_ctx = o.ctx;
  copt.n_batch = o.ctx;
  LlamaContext ctx(model, copt);
  GramRecorder recorder(gram);
  ctx.set_ffn_hook(&recorder);
  const auto total = static_cast<int64_t>(ids.size());
  ProgressBar progress("gram " + name, static_cast<uint64_t>(total), o.progress);
  int64_t used = 0;
  for_each_window(ids, prefix, o.ctx, total, [&](const std::vector<int32_t>& window, int64_t n) {
    ctx.truncate(0);
    ctx.forward(window.data(), static_cast<int64_t>(window.size()));
    used += n;
    progress.set(static_cast<uint64_t>(used));
  });
  progress.finish();
  recorder.finish();
  return gram;
}

namespace {

// The pieces of the relative output error ||Y - V A_S||^2 / ||Y||^2 on the tokens of one Gram G,
// with Y = W A: ||Y||^2 = sum_r W[r] G W[r]^T, and for any V: ||Y||^2 - 2 <V, R> + <V G_SS, V>,
// R = W G[:, S] [d][s]. R read column-major is also the s x d right-hand side B of the normal
// equations (G_SS + lambda I) X = B, and X read row-major is V [d][s].
struct OutputError {
  int64_t d = 0, s = 0;
  double y2 = 0, trace = 0;   // ||Y||^2 and trace(G_SS)
  std::vector<double> r, g_ss;

  OutputError(const std::vector<double>& w, int64_t d_, int64_t n_ff, const double* gram, const std::vector<int32_t>& neurons)
      : d(d_), s(static_cast<int64_t>(neurons.size())) {
    std::vector<double> g_colS(static_cast<size_t>(n_ff * s));  // G[:, S]
    for (int64_t j = 0; j < n_ff; ++j)
      for (int64_t i = 0; i < s; ++i) g_colS[static_cast<size_t>(j * s + i)] = gram[j * n_ff + neurons[static_cast<size_t>(i)]];
    g_ss.resize(static_cast<size_t>(s * s));
    for (int64_t a = 0; a < s; ++a)
      for (int64_t b = 0; b < s; ++b)
        g_ss[static_cast<size_t>(a * s + b)] = g_colS[static_cast<size_t>(neurons[static_cast<size_t>(a)] * s + b)];
    for (int64_t a = 0; a < s; ++a) trace += g_ss[static_cast<size_t>(a * s + a)];
    r.resize(static_cast<size_t>(d * s));
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(d), static_cast<int>(s), static_cast<int>(n_ff),
                1.0, w.data(), static_cast<int>(n_ff), g_colS.data(), static_cast<int>(s), 0.0, r.data(), static_cast<int>(s));
    std::vector<double> wg(static_cast<size_t>(d * n_ff));
    cblas_dsymm(CblasRowMajor, CblasRight, CblasUpper, static_cast<int>(d), static_cast<int>(n_ff), 1.0, gram,
                static_cast<int>(n_ff), w.data(), static_cast<int>(n_ff), 0.0, wg.data(), static_cast<int>(n_ff));
    for (size_t i = 0; i < w.size(); ++i) y2 += wg[i] * w[i];
  }

  double relative(const std::vector<double>& v) const {
    std::vector<double> vg(static_cast<size_t>(d * s));
    cblas_dsymm(CblasRowMajor, CblasRight, CblasUpper, static_cast<int>(d), static_cast<int>(s), 1.0, g_ss.data(),
                static_cast<int>(s), v.data(), static_cast<int>(s), 0.0, vg.data(), static_cast<int>(s));
    double cross = 0, quad = 0;
    for (size_t i = 0; i < v.size(); ++i) cross += v[i] * r[i], quad += vg[i] * v[i];
    return y2 > 0 ? std::max(0.0, (y2 - 2 * cross + quad) / y2) : 0.0;
  }
};

// V = ((G_SS + ridge * tr(G_SS) / s * I)^-1 R^T)^T by Cholesky.
std::vector<double> solve_ridge(const OutputError& fit, double ridge, const std::string& what) {
  const int64_t s = fit.s;
  std::vector<double> a = fit.g_ss, x = fit.r;
  const double lambda = ridge * fit.trace / static_cast<double>(s);
  for (int64_t i = 0; i < s; ++i) a[static_cast<size_t>(i * s + i)] += lambda;
  const int n = static_cast<int>(s), nrhs = static_cast<int>(fit.d);
  int info = 0;
  dposv_("U", &n, &nrhs, a.data(), &n, x.data(), &n, &info);
  if (info != 0)
    fail("{}: the normal equations are not positive definite (LAPACK dposv info {}); raise the ridge or the "
         "calibration tokens", what, info);
  for (double v : x)
    if (!std::isfinite(v)) fail("{}: the least-squares solution is not finite; raise the ridge", what);
  return x;
}

}  // namespace

DownFit fit_down_proj(const float* w_down, int64_t d, int64_t n_ff, const double* gram,
                      const std::vector<int32_t>& neurons, double ridge, const std::string& what) {
  return fit_down_proj(w_down, d, n_ff, gram, neurons, std::vector<double>{ridge}, nullptr, what);
}

DownFit fit_down_proj(const float* w_down, int64_t d, int64_t n_ff, const double* gram,
                      const std::vector<int32_t>& neurons, const std::vector<double>& ridges, const double* validation,
                      const std::string& what) {
  const auto s = static_cast<int64_t>(neurons.size());
  if (s == 0) fail("{}: no neurons to fit", what);
  if (ridges.empty()) fail("{}: no ridge to fit with", what);
  if (ridges.size() > 1 && !validation) fail("{}: choosing among {} ridges needs validation tokens", what, ridges.size());
  for (double ridge : ridges)
    if (!(ridge >= 0) || !std::isfinite(ridge)) fail("{}: ridge must be finite and >= 0 (got {})", what, ridge);
  for (int32_t j : neurons)
    if (j < 0 || j >= n_ff) fail("{}: neuron {} outside [0, {})", what, j, n_ff);

  // No OpenMP region runs here, so OpenBLAS may use every kernel thread (the forward pass sets it to 1).
  openblas_set_num_threads(kernel_threads());
  std::vector<double> w(static_cast<size_t>(d * n_ff));
  for (size_t i = 0; i < w.size(); ++i) w[i] = w_down[i];
  const OutputError calib(w, d, n_ff, gram, neurons);
  if (!(calib.trace > 0))
    fail("{}: the kept neurons never activate on the calibration tokens (trace of G_SS is {})", what, calib.trace);
  std::vector<double> cut(static_cast<size_t>(d * s));
  for (int64_t row = 0; row < d; ++row)
    for (int64_t i = 0; i < s; ++i) cut[static_cast<size_t>(row * s + i)] = w[static_cast<size_t>(row * n_ff + neurons[static_cast<size_t>(i)])];

  DownFit fit;
  fit.error_cut = calib.relative(cut);
  if (validation) {
    const OutputError held(w, d, n_ff, validation, neurons);
    fit.validation_error_cut = held.relative(cut);
    std::vector<double> best;
    for (double ridge : ridges) {
      std::vector<double> x = solve_ridge(calib, ridge, what);
      const double e = held.relative(x);
      if (best.empty() || e < fit.validation_error_fit) fit.validation_error_fit = e, fit.ridge = ridge, best = std::move(x);
    }
    fit.error_fit = calib.relative(best);
    fit.down.assign(best.begin(), best.end());
    return fit;
  }
  const std::vector<double> x = solve_ridge(calib, ridges[0], what);
  fit.ridge = ridges[0];
  fit.error_fit = calib.relative(x);
  fit.down.assign(x.begin(), x.end());
  return fit;
}

namespace {

// a (n x n, row-major, symmetric positive definite) := a^-1, both triangles. False if not PD.
bool invert_spd(std::vector<double>& a, int64_t n64) {
  const int n = static_cast<int>(n64);
  int info = 0;
  dpotrf_("U", &n, a.data(), &n, &info);
  if (info != 0) return false;
  dpotri_("U", &n, a.data(), &n, &info);
  if (info != 0) return false;
  // Row-major "U" is LAPACK's column-major "L": the inverse is in the row-major lower triangle.
  for (int64_t i = 0; i < n64; ++i)
    for (int64_t j = i + 1; j < n64; ++j) a[static_cast<size_t>(i * n64 + j)] = a[static_cast<size_t>(j * n64 + i)];
  return true;
}

}  // namespace

std::vector<int32_t> select_neurons_output(const float* w_down, int64_t d, int64_t n_ff, const double* gram, int64_t keep,
                                           double damp, int64_t block, const std::string& what) {
  if (keep < 1 || keep > n_ff) fail("{}: cannot keep {} of {} neurons", what, keep, n_ff);
  if (block < 1) fail("{}: selection block must be >= 1 (got {})", what, block);
  if (!(damp > 0) || !std::isfinite(damp)) fail("{}: selection damping must be finite and > 0 (got {})", what, damp);
  openblas_set_num_threads(kernel_threads());
  const auto n = static_cast<size_t>(n_ff);
  double trace = 0;
  for (size_t j = 0; j < n; ++j) trace += gram[j * n + j];
  if (!(trace > 0) || !std::isfinite(trace)) fail("{}: the neurons never activate on the calibration tokens", what);
  std::vector<double> hinv(gram, gram + n * n);
  const double lambda = damp * trace / static_cast<double>(n);
  for (size_t j = 0; j < n; ++j) hinv[j * n + j] += lambda;
  if (!invert_spd(hinv, n_ff)) fail("{}: the calibration Gram is not positive definite; raise the damping", what);
  std::vector<double> w(static_cast<size_t>(d) * n);
  for (size_t i = 0; i < w.size(); ++i) w[i] = w_down[i];

  std::vector<char> alive(n, 1);
  std::vector<std::pair<double, int32_t>> cost;
  std::vector<double> hbb, hb_rows, wb, t, wt;
  for (int64_t left = n_ff; left > keep;) {
    const auto b = static_cast<size_t>(std::min(block, left - keep));
    cost.clear();
    for (size_t j = 0; j < n; ++j) {
      if (!alive[j]) continue;
      double norm = 0;
      for (int64_t r = 0; r < d; ++r) norm += w[static_cast<size_t>(r) * n + j] * w[static_cast<size_t>(r) * n + j];
      const double hjj = hinv[j * n + j];
      if (!(hjj > 0) || !std::isfinite(norm)) fail("{}: neuron selection lost positive definiteness; raise the damping", what);
      cost.emplace_back(norm / hjj, static_cast<int32_t>(j));
    }
    std::partial_sort(cost.begin(), cost.begin() + static_cast<std::ptrdiff_t>(b), cost.end());
    // M = (Hinv_BB)^-1; T = M Hinv_B: [b][n]; then Hinv -= Hinv_:B T and W -= W_:B T.
    hbb.assign(b * b, 0.0);
    hb_rows.assign(b * n, 0.0);
    wb.assign(static_cast<size_t>(d) * b, 0.0);
    for (size_t i = 0; i < b; ++i) {
      const auto bi = static_cast<size_t>(cost[i].second);
      for (size_t k = 0; k < b; ++k) hbb[i * b + k] = hinv[bi * n + static_cast<size_t>(cost[k].second)];
      std::copy(hinv.begin() + static_cast<std::ptrdiff_t>(bi * n), hinv.begin() + static_cast<std::ptrdiff_t>((bi + 1) * n),
                hb_rows.begin() + static_cast<std::ptrdiff_t>(i * n));
      for (int64_t r = 0; r < d; ++r) wb[static_cast<size_t>(r) * b + i] = w[static_cast<size_t>(r) * n + bi];
    }
    if (!invert_spd(hbb, static_cast<int64_t>(b)))
      fail("{}: neuron selection lost positive definiteness; raise the damping", what);
    t.assign(b * n, 0.0);
    const int bn = static_cast<int>(b), nn = static_cast<int>(n), dn = static_cast<int>(d);
    cblas_dsymm(CblasRowMajor, CblasLeft, CblasUpper, bn, nn, 1.0, hbb.data(), bn, hb_rows.data(), nn, 0.0, t.data(), nn);
    // Hinv is symmetric, so Hinv_:B = hb_rows^T.
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nn, nn, bn, -1.0, hb_rows.data(), nn, t.data(), nn, 1.0, hinv.data(), nn);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, dn, nn, bn, -1.0, wb.data(), bn, t.data(), nn, 1.0, w.data(), nn);
    for (size_t i = 0; i < b; ++i) alive[static_cast<size_t>(cost[i].second)] = 0;
    left -= static_cast<int64_t>(b);
  }
  std::vector<int32_t> kept;
  for (size_t j = 0; j < n; ++j)
    if (alive[j]) kept.push_back(static_cast<int32_t>(j));
  return kept;
}

std::vector<float> dense_down_proj(const ModelSource& source, int layer) {
  const TensorView& t = source.tensor("blk." + std::to_string(layer) + ".ffn_down.weight");
  const int64_t cols = t.shape.at(0), rows = t.rows();
  std::vector<float> w(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) dequantize_row(t.type, t.data + r * row_bytes(t.type, cols), w.data() + r * cols, cols);
  return w;
}

}  // namespace lookahead::moe
