#pragma once
// Training-free expert reconstruction: an expert keeps the neurons S of the dense FFN and so loses
// W_down[:, not S] a[not S] from every token's FFN output. Much of that loss is linearly predictable
// from the activations the expert keeps, so instead of the dense columns W_down[:, S] the expert gets
// the down projection that best reproduces the dense FFN's output on calibration tokens:
//
//     V = argmin_V  sum_t || W_down a_t - V a_t[S] ||^2  +  lambda ||V||^2
//       = (G_SS + lambda I)^-1 G_S: W_down^T          (transposed),    G = sum_t a_t a_t^T
//
// where a_t = SiLU(W_gate h_t) * (W_up h_t) is the dense FFN's activation on the dense model's own
// residual stream. Only the Gram matrix G (n_ff x n_ff per layer) is accumulated, so one dense pass
// over a domain serves every neuron subset of that domain; the normal equations are solved by
// Cholesky (LAPACK dposv from OpenBLAS). lambda = ridge * trace(G_SS) / |S| keeps the system
// positive definite when tokens are few (fewer tokens than kept neurons makes G_SS singular).
//
// Contract:
//   - FfnGram holds G for every layer (double, both triangles) and the token count.
//   - collect_ffn_gram() runs the dense model over token ids in the same windows as the activation
//     statistics (activation_stats.h); reconstruction_tokens() splits a domain's calibration text
//     into fit and validation tokens and throws lookahead::Error when too few are left to fit on.
//   - fit_down_proj() returns V [d][|S|] (row-major, d = rows of W_down) and the relative output
//     error ||Y - Y_hat||^2 / ||Y||^2 on the Gram's tokens both for the cut (V = W_down[:, S]) and
//     for the fit. Throws lookahead::Error (naming `what`) if G_SS + lambda I is not positive
//     definite or the solution is not finite; never returns NaN weights.
#include <cstdint>
#include <string>
#include <vector>

#include "moe/model/ffn_hook.h"
#include "moe/model/llama.h"
#include "moe/refactor/corpus.h"

namespace lookahead::moe {

struct FfnGram {
  int32_t n_layer = 0;
  int32_t n_ff = 0;
  int64_t tokens = 0;
  std::vector<double> g;  // [layer][n_ff][n_ff], symmetric

  FfnGram() = default;
  FfnGram(int32_t layers, int32_t ff);
  double* layer(int l) { return g.data() + static_cast<size_t>(l) * n_ff * n_ff; }
  const double* layer(int l) const { return g.data() + static_cast<size_t>(l) * n_ff * n_ff; }
  // this += other (same shape).
  void add(const FfnGram& other);
  // this += scale * other (same shape); tokens += other.tokens.
  void add_scaled(const FfnGram& other, double scale);
};

// An FfnHook accumulating G += A^T A of every layer's activations A [n_tokens][n_ff] (and the token
// count); call finish() once after the last forward to complete G's lower triangle.
class GramRecorder : public FfnHook {
 public:
  explicit GramRecorder(FfnGram& gram);
  void on_ffn_activation(int layer, const float* a, int64_t n_tokens, int64_t n_ff) override;
  void finish();

 private:
  FfnGram& gram_;
  std::vector<float> chunk_;  // one chunk's A^T A (upper part)
};

// A domain's calibration text for reconstruction: the first `fit_tokens` tokens to fit on and the
// next `validation_tokens` to choose the ridge on. A domain with fewer tokens keeps a quarter of
// them (at most validation_tokens) for validation; fewer than `min_tokens` to fit on is an error.
struct ReconstructionTokens {
  std::vector<int32_t> fit, validation;
};
ReconstructionTokens reconstruction_tokens(const Tokenizer& tokenizer, const CorpusDomain& domain, int64_t fit_tokens,
                                           int64_t validation_tokens, int64_t min_tokens = 64);

struct GramOptions {
  int64_t ctx = 512;
  bool progress = true;
};

// G over `ids` (text tokens, no specials), run in windows of ctx tokens like the activation
// statistics; `name` labels the progress bar.
FfnGram collect_ffn_gram(const LlamaModel& model, const std::vector<int32_t>& ids, const std::string& name,
                         const GramOptions& options);

struct DownFit {
  std::vector<float> down;     // [d][|S|]
  double ridge = 0;            // the ridge `down` was solved with
  double error_cut = 0;        // relative output error of W_down[:, S] on the calibration tokens
  double error_fit = 0;        // relative output error of `down` on the calibration tokens
  double validation_error_cut = 0, validation_error_fit = 0;  // the same on validation tokens (when given)
};

// w_down: the dense down projection, row-major [d][n_ff]; gram: G of one layer [n_ff][n_ff].
DownFit fit_down_proj(const float* w_down, int64_t d, int64_t n_ff, const double* gram,
                      const std::vector<int32_t>& neurons, double ridge, const std::string& what);
// Ridge chosen by validation: solves with every ridge in `ridges` on `gram` and keeps the solution
// with the least output error on the tokens of `validation` (a Gram of other tokens, same layer).
// With a single ridge, validation may be nullptr.
DownFit fit_down_proj(const float* w_down, int64_t d, int64_t n_ff, const double* gram,
                      const std::vector<int32_t>& neurons, const std::vector<double>& ridges, const double* validation,
                      const std::string& what);

// Output-aware neuron selection (`--select output`): instead of the neurons with the largest mean
// |a_j| (the paper's statistic, blind to what each neuron writes), keep the `keep` neurons whose
// removal least increases the FFN output error after the least-squares refit above. Exact subset
// selection is combinatorial; this is greedy backward elimination by the structured Optimal Brain
// Surgeon rule (Hassibi & Stork; ZipLM, Kurtic et al. 2023, for whole neurons): with
// H = G + lambda I and W the current optimal down projection of the alive set A (at the start the
// dense W_down, zero error), removing a set B of neurons costs
//     dE(B) = tr( W[:, B] (Hinv_BB)^-1 W[:, B]^T ),   Hinv = (H_AA)^-1,
// and the survivors' optimal weights and inverse follow in closed form:
//     W_A -= W_B (Hinv_BB)^-1 Hinv_BA,   Hinv_AA -= Hinv_AB (Hinv_BB)^-1 Hinv_BA.
// Each step removes the `block` alive neurons of least single-neuron cost ||W[:, j]||^2 / Hinv_jj
// together (block = 1 is the pure greedy rule; larger blocks trade exactness for speed: n_ff^2 x block
// flops per step). lambda = damp * trace(G) / n_ff, as the ridge of fit_down_proj.
//
// Contract: 1 <= keep <= n_ff, block >= 1, damp > 0; returns `keep` sorted distinct neuron ids.
// Throws lookahead::Error (naming `what`) when G is not positive semidefinite enough to invert.
std::vector<int32_t> select_neurons_output(const float* w_down, int64_t d, int64_t n_ff, const double* gram, int64_t keep,
                                           double damp, int64_t block, const std::string& what);

// The ridges `--ridge auto` tries (relative to the mean diagonal of G_SS).
inline const std::vector<double>& auto_ridges() {
  static const std::vector<double> r = {1e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0};
  return r;
}

// The dense FFN's down projection of `layer` widened to f32, row-major [n_embd][n_ff].
std::vector<float> dense_down_proj(const class ModelSource& source, int layer);

}  // namespace lookahead::moe
