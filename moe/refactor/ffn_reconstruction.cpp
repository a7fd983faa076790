#include "moe/refactor/ffn_reconstruction.h"

#include <cblas.h>

#include <cmath>

#include "common/error.h"
#include "common/progress.h"
#include "moe/format/model_source.h"
#include "moe/kernels/quantize.h"
#include "moe/model/ffn_hook.h"

// LAPACK's Cholesky solve, from OpenBLAS (Debian's libopenblas carries LAPACK; no lapacke.h).
extern "C" void dposv_(const char* uplo, const int* n, const int* nrhs, double* a, const int* lda, double* b,
                       const int* ldb, int* info);

namespace lookahead::moe {

FfnGram::FfnGram(int32_t layers, int32_t ff)
    : n_layer(layers), n_ff(ff), g(static_cast<size_t>(layers) * ff * ff, 0.0) {}

void FfnGram::add(const FfnGram& other) {
  LOOKAHEAD_CHECK(other.n_layer == n_layer && other.n_ff == n_ff);
  for (size_t i = 0; i < g.size(); ++i) g[i] += other.g[i];
  tokens += other.tokens;
}

namespace {

// G_l += A^T A for each forward chunk's activations A [n_tokens][n_ff]: a float SYRK per chunk
// (at most ctx tokens, so float loses nothing that matters), summed into the double Gram.
class GramRecorder : public FfnHook {
 public:
  explicit GramRecorder(FfnGram& gram)
      : gram_(gram), chunk_(static_cast<size_t>(gram.n_ff) * gram.n_ff) {}

  void on_ffn_activation(int layer, const float* a, int64_t n_tokens, int64_t n_ff) override {
    LOOKAHEAD_CHECK(layer >= 0 && layer < gram_.n_layer && n_ff == gram_.n_ff);
    const int n = static_cast<int>(n_ff);
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, n, static_cast<int>(n_tokens), 1.0f, a, n, 0.0f, chunk_.data(), n);
    double* g = gram_.layer(layer);
    for (int i = 0; i < n; ++i)
      for (int j = i; j < n; ++j) g[static_cast<size_t>(i) * n + j] += chunk_[static_cast<size_t>(i) * n + j];
  }

 private:
  FfnGram& gram_;
  std::vector<float> chunk_;
};

// Fills the lower triangle from the upper one.
void symmetrize(double* g, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < i; ++j) g[i * n + j] = g[j * n + i];
}

}  // namespace

FfnGram collect_ffn_gram(const LlamaModel& model, const CorpusDomain& domain, const GramOptions& o) {
  if (o.ctx < 2) fail("--ctx must be at least 2 (got {})", o.ctx);
  const LlamaHparams& hp = model.hparams();
  const Tokenizer& tokenizer = model.source().tokenizer();
  const std::vector<int32_t> prefix = tokenizer.encode("", /*add_special=*/true, /*parse_special=*/false);
  if (static_cast<int64_t>(prefix.size()) >= o.ctx) fail("--ctx {} leaves no room for text", o.ctx);
  const std::vector<int32_t> ids = tokenize_prefix(tokenizer, read_text_file(domain.path), o.tokens);
  if (static_cast<int64_t>(ids.size()) < o.min_tokens)
    fail("corpus domain '{}' ({}): {} tokens, expert reconstruction needs at least {} (or use --reconstruct none)",
         domain.name, domain.path, ids.size(), o.min_tokens);

  FfnGram gram(hp.n_layer, hp.n_ff);
  ContextOptions copt;
  copt.n_ctx = o.ctx;
  copt.n_batch = o.ctx;
  LlamaContext ctx(model, copt);
  GramRecorder recorder(gram);
  ctx.set_ffn_hook(&recorder);
  ProgressBar progress("gram " + domain.name, static_cast<uint64_t>(o.tokens), o.progress);
  int64_t used = 0;
  for_each_window(ids, prefix, o.ctx, o.tokens, [&](const std::vector<int32_t>& window, int64_t n) {
    ctx.truncate(0);
    ctx.forward(window.data(), static_cast<int64_t>(window.size()));
    gram.tokens += static_cast<int64_t>(window.size());
    used += n;
    progress.set(static_cast<uint64_t>(used));
  });
  progress.finish();
  for (int l = 0; l < hp.n_layer; ++l) symmetrize(gram.layer(l), hp.n_ff);
  return gram;
}

DownFit fit_down_proj(const float* w_down, int64_t d, int64_t n_ff, const double* gram,
                      const std::vector<int32_t>& neurons, double ridge, const std::string& what) {
  const auto s = static_cast<int64_t>(neurons.size());
  if (s == 0) fail("{}: no neurons to fit", what);
  if (!(ridge >= 0) || !std::isfinite(ridge)) fail("{}: ridge must be finite and >= 0 (got {})", what, ridge);
  for (int32_t j : neurons)
    if (j < 0 || j >= n_ff) fail("{}: neuron {} outside [0, {})", what, j, n_ff);

  std::vector<double> w(static_cast<size_t>(d * n_ff));
  for (size_t i = 0; i < w.size(); ++i) w[i] = w_down[i];
  // G[:, S] [n_ff][s] and G_SS [s][s].
  std::vector<double> g_colS(static_cast<size_t>(n_ff * s)), g_ss(static_cast<size_t>(s * s));
  for (int64_t j = 0; j < n_ff; ++j)
    for (int64_t i = 0; i < s; ++i) g_colS[static_cast<size_t>(j * s + i)] = gram[j * n_ff + neurons[static_cast<size_t>(i)]];
  for (int64_t a = 0; a < s; ++a)
    for (int64_t b = 0; b < s; ++b)
      g_ss[static_cast<size_t>(a * s + b)] = g_colS[static_cast<size_t>(neurons[static_cast<size_t>(a)] * s + b)];
  double trace = 0;
  for (int64_t a = 0; a < s; ++a) trace += g_ss[static_cast<size_t>(a * s + a)];
  if (!(trace > 0)) fail("{}: the kept neurons never activate on the calibration tokens (trace of G_SS is {})", what, trace);

  // R = W G[:, S]  [d][s]: row r is (G_S: W^T)[:, r], i.e. R read column-major is the s x d
  // right-hand side B of (G_SS + lambda I) X = B, and X read row-major is V [d][s].
  std::vector<double> r(static_cast<size_t>(d * s));
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(d), static_cast<int>(s), static_cast<int>(n_ff), 1.0,
              w.data(), static_cast<int>(n_ff), g_colS.data(), static_cast<int>(s), 0.0, r.data(), static_cast<int>(s));

  // ||Y||^2 = sum_r W[r] G W[r]^T, and the error of any V: ||Y||^2 - 2 <V, R> + <V G_SS, V>.
  std::vector<double> wg(static_cast<size_t>(d * n_ff));
  cblas_dsymm(CblasRowMajor, CblasRight, CblasUpper, static_cast<int>(d), static_cast<int>(n_ff), 1.0, gram,
              static_cast<int>(n_ff), w.data(), static_cast<int>(n_ff), 0.0, wg.data(), static_cast<int>(n_ff));
  double y2 = 0;
  for (size_t i = 0; i < w.size(); ++i) y2 += wg[i] * w[i];
  auto relative_error = [&](const std::vector<double>& v) {
    std::vector<double> vg(static_cast<size_t>(d * s));
    cblas_dsymm(CblasRowMajor, CblasRight, CblasUpper, static_cast<int>(d), static_cast<int>(s), 1.0, g_ss.data(),
                static_cast<int>(s), v.data(), static_cast<int>(s), 0.0, vg.data(), static_cast<int>(s));
    double cross = 0, quad = 0;
    for (size_t i = 0; i < v.size(); ++i) cross += v[i] * r[i], quad += vg[i] * v[i];
    return y2 > 0 ? std::max(0.0, (y2 - 2 * cross + quad) / y2) : 0.0;
  };

  std::vector<double> cut(static_cast<size_t>(d * s));
  for (int64_t row = 0; row < d; ++row)
    for (int64_t i = 0; i < s; ++i) cut[static_cast<size_t>(row * s + i)] = w[static_cast<size_t>(row * n_ff + neurons[static_cast<size_t>(i)])];

  std::vector<double> a = g_ss, x = r;
  const double lambda = ridge * trace / static_cast<double>(s);
  for (int64_t i = 0; i < s; ++i) a[static_cast<size_t>(i * s + i)] += lambda;
  const int n = static_cast<int>(s), nrhs = static_cast<int>(d);
  int info = 0;
  dposv_("U", &n, &nrhs, a.data(), &n, x.data(), &n, &info);
  if (info != 0)
    fail("{}: the normal equations are not positive definite (LAPACK dposv info {}); raise the ridge or the "
         "calibration tokens", what, info);
  for (double v : x)
    if (!std::isfinite(v)) fail("{}: the least-squares solution is not finite; raise the ridge", what);

  DownFit fit;
  fit.error_cut = relative_error(cut);
  fit.error_fit = relative_error(x);
  fit.down.assign(x.begin(), x.end());
  return fit;
}

std::vector<float> dense_down_proj(const ModelSource& source, int layer) {
  const TensorView& t = source.tensor("blk." + std::to_string(layer) + ".ffn_down.weight");
  const int64_t cols = t.shape.at(0), rows = t.rows();
  std::vector<float> w(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) dequantize_row(t.type, t.data + r * row_bytes(t.type, cols), w.data() + r * cols, cols);
  return w;
}

}  // namespace lookahead::moe
