// Least-squares expert reconstruction (moe/refactor/ffn_reconstruction.h) against cases solved by
// hand and against the error computed from the activations themselves.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "common/error.h"
#include "moe/refactor/ffn_reconstruction.h"

namespace lookahead::moe {
namespace {

// G = A^T A of activations A [tokens][n_ff].
std::vector<double> gram_of(const std::vector<double>& a, int64_t tokens, int64_t n_ff) {
  std::vector<double> g(static_cast<size_t>(n_ff * n_ff), 0.0);
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t i = 0; i < n_ff; ++i)
      for (int64_t j = 0; j < n_ff; ++j) g[static_cast<size_t>(i * n_ff + j)] += a[static_cast<size_t>(t * n_ff + i)] * a[static_cast<size_t>(t * n_ff + j)];
  return g;
}

// sum_t ||W a_t - V a_t[S]||^2 / sum_t ||W a_t||^2, straight from the activations.
double explicit_error(const std::vector<float>& w, const std::vector<float>& v, const std::vector<double>& a, int64_t tokens,
                      int64_t d, int64_t n_ff, const std::vector<int32_t>& s) {
  double num = 0, den = 0;
  for (int64_t t = 0; t < tokens; ++t) {
    const double* at = a.data() + t * n_ff;
    for (int64_t r = 0; r < d; ++r) {
      double y = 0, yh = 0;
      for (int64_t j = 0; j < n_ff; ++j) y += w[static_cast<size_t>(r * n_ff + j)] * at[j];
      for (size_t i = 0; i < s.size(); ++i) yh += v[r * s.size() + i] * at[s[i]];
      num += (y - yh) * (y - yh);
      den += y * y;
    }
  }
  return num / den;
}

struct RandomLayer {
  int64_t tokens, d, n_ff;
  std::vector<double> a;
  std::vector<float> w;
  std::vector<double> g;
};

// Correlated activations (a = B z, z Gaussian), so dropped neurons are partly predictable.
RandomLayer random_layer(int64_t tokens, int64_t d, int64_t n_ff, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> n01;
  RandomLayer L{tokens, d, n_ff, {}, {}, {}};
  std::vector<double> mix(static_cast<size_t>(n_ff * n_ff));
  for (auto& x : mix) x = n01(rng);
  L.a.assign(static_cast<size_t>(tokens * n_ff), 0.0);
  for (int64_t t = 0; t < tokens; ++t) {
    std::vector<double> z(static_cast<size_t>(n_ff));
    for (auto& x : z) x = n01(rng);
    for (int64_t i = 0; i < n_ff; ++i)
      for (int64_t j = 0; j < n_ff; ++j) L.a[static_cast<size_t>(t * n_ff + i)] += mix[static_cast<size_t>(i * n_ff + j)] * z[static_cast<size_t>(j)];
  }
  L.w.resize(static_cast<size_t>(d * n_ff));
  for (auto& x : L.w) x = static_cast<float>(n01(rng));
  L.g = gram_of(L.a, tokens, n_ff);
  return L;
}

TEST(FfnReconstruction, GramRecorderSumsEveryChunksActivations) {
  // Two layers, n_ff = 150 (three 64-row blocks, the last partial), chunks of 7 and 5 tokens.
  const int64_t n_ff = 150;
  std::mt19937 rng(9);
  std::normal_distribution<float> n01;
  FfnGram gram(2, static_cast<int32_t>(n_ff));
  GramRecorder recorder(gram);
  std::vector<double> all[2];
  for (int64_t tokens : {7, 5})
    for (int l = 0; l < 2; ++l) {
      std::vector<float> a(static_cast<size_t>(tokens * n_ff));
      for (auto& x : a) x = n01(rng);
      recorder.on_ffn_activation(l, a.data(), tokens, n_ff);
      all[l].insert(all[l].end(), a.begin(), a.end());
    }
  recorder.finish();
  EXPECT_EQ(gram.tokens, 7 + 5);
  for (int l = 0; l < 2; ++l) {
    const std::vector<double> want = gram_of(all[l], 12, n_ff);
    for (int64_t i = 0; i < n_ff * n_ff; ++i) ASSERT_NEAR(gram.layer(l)[i], want[static_cast<size_t>(i)], 1e-4) << l << " " << i;
  }
}

TEST(FfnReconstruction, TinyClosedFormCase) {
  // n_ff = 2, d = 1, keep neuron 0. G = [[4, 2], [2, 3]], W = [1, 2]:
  //   V = (g00 w0 + g01 w1) / (g00 + lambda) = (4 + 4) / 4 = 2 with no ridge,
  //   ||Y||^2 = W G W^T = 4 + 8 + 12 = 24,
  //   cut error = w1^2 g11 / 24 = 12 / 24, fit error = w1^2 (g11 - g01^2 / g00) / 24 = 8 / 24.
  const float w[] = {1, 2};
  const double g[] = {4, 2, 2, 3};
  DownFit fit = fit_down_proj(w, 1, 2, g, {0}, 0.0, "test");
  ASSERT_EQ(fit.down.size(), 1u);
  EXPECT_NEAR(fit.down[0], 2.0, 1e-6);
  EXPECT_NEAR(fit.error_cut, 0.5, 1e-12);
  EXPECT_NEAR(fit.error_fit, 1.0 / 3.0, 1e-12);
  // Ridge 0.5 -> lambda = 0.5 * trace(G_SS) / |S| = 2 -> V = 8 / 6.
  fit = fit_down_proj(w, 1, 2, g, {0}, 0.5, "test");
  EXPECT_NEAR(fit.down[0], 8.0 / 6.0, 1e-6);  // V is stored as float
  // Keeping neuron 1 instead: V = (g10 w0 + g11 w1) / g11 = (2 + 6) / 3.
  fit = fit_down_proj(w, 1, 2, g, {1}, 0.0, "test");
  EXPECT_NEAR(fit.down[0], 8.0 / 3.0, 1e-6);
}

TEST(FfnReconstruction, WholeFfnExpertReconstructsExactly) {
  const RandomLayer L = random_layer(64, 5, 12, 1);
  std::vector<int32_t> all(12);
  for (int32_t j = 0; j < 12; ++j) all[static_cast<size_t>(j)] = j;
  const DownFit fit = fit_down_proj(L.w.data(), L.d, L.n_ff, L.g.data(), all, 0.0, "test");
  EXPECT_NEAR(fit.error_cut, 0.0, 1e-12);
  EXPECT_LT(fit.error_fit, 1e-10);
  for (size_t i = 0; i < L.w.size(); ++i) EXPECT_NEAR(fit.down[i], L.w[i], 1e-4) << i;
}

TEST(FfnReconstruction, ErrorsMatchTheActivationsAndTheFitBeatsTheCut) {
  const RandomLayer L = random_layer(200, 6, 16, 2);
  const std::vector<int32_t> kept = {0, 2, 3, 7, 8, 11, 15};
  const DownFit fit = fit_down_proj(L.w.data(), L.d, L.n_ff, L.g.data(), kept, 0.0, "test");
  std::vector<float> cut;
  for (int64_t r = 0; r < L.d; ++r)
    for (int32_t j : kept) cut.push_back(L.w[static_cast<size_t>(r * L.n_ff + j)]);
  EXPECT_NEAR(fit.error_cut, explicit_error(L.w, cut, L.a, L.tokens, L.d, L.n_ff, kept), 1e-9);
  EXPECT_NEAR(fit.error_fit, explicit_error(L.w, fit.down, L.a, L.tokens, L.d, L.n_ff, kept), 1e-6);
  EXPECT_LT(fit.error_fit, fit.error_cut * 0.9);  // correlated activations: much is predictable
  // The least-squares optimum: any perturbation of the fit is worse.
  std::vector<float> nudged = fit.down;
  nudged[3] += 0.05f;
  EXPECT_GT(explicit_error(L.w, nudged, L.a, L.tokens, L.d, L.n_ff, kept), fit.error_fit);
}

TEST(FfnReconstruction, FewerTokensThanNeuronsNeedsTheRidgeAndNeverGivesNaN) {
  const RandomLayer L = random_layer(3, 4, 10, 3);  // rank 3 Gram for 8 kept neurons
  const std::vector<int32_t> kept = {0, 1, 2, 3, 4, 5, 6, 7};
  try {
    const DownFit fit = fit_down_proj(L.w.data(), L.d, L.n_ff, L.g.data(), kept, 0.0, "layer 7");
    for (float v : fit.down) EXPECT_TRUE(std::isfinite(v));  // LAPACK may still factor it; then finite
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("layer 7"), std::string::npos) << e.what();
  }
  const DownFit fit = fit_down_proj(L.w.data(), L.d, L.n_ff, L.g.data(), kept, 1e-3, "layer 7");
  for (float v : fit.down) ASSERT_TRUE(std::isfinite(v));
  EXPECT_LE(fit.error_fit, fit.error_cut + 1e-9);
}

TEST(FfnReconstruction, ValidationPicksTheRidgeWithTheLeastHeldOutError) {
  // Few fit tokens for many neurons: the unregularised fit overfits, so validation prefers a ridge.
  // The first 20 tokens of one layer to fit on, the other 400 to validate on.
  const RandomLayer all = random_layer(420, 4, 16, 4);
  RandomLayer fit_tokens{20, 4, 16, {all.a.begin(), all.a.begin() + 20 * 16}, all.w, {}};
  RandomLayer held{400, 4, 16, {all.a.begin() + 20 * 16, all.a.end()}, all.w, {}};
  fit_tokens.g = gram_of(fit_tokens.a, 20, 16);
  held.g = gram_of(held.a, 400, 16);
  const std::vector<int32_t> kept = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
  const std::vector<double> ridges = {1e-6, 1e-2, 1.0};
  const DownFit best = fit_down_proj(fit_tokens.w.data(), 4, 16, fit_tokens.g.data(), kept, ridges, held.g.data(), "t");
  double least = 1e300;
  for (double r : ridges) {
    const DownFit one = fit_down_proj(fit_tokens.w.data(), 4, 16, fit_tokens.g.data(), kept, r, "t");
    const double e = explicit_error(held.w, one.down, held.a, held.tokens, 4, 16, kept);
    least = std::min(least, e);
    EXPECT_LE(best.validation_error_fit, e + 1e-6) << r;
  }
  EXPECT_NEAR(best.validation_error_fit, least, 1e-6);
  EXPECT_NEAR(best.validation_error_fit, explicit_error(held.w, best.down, held.a, held.tokens, 4, 16, kept), 1e-6);
  EXPECT_GT(best.validation_error_cut, 0);
  // Several ridges without validation tokens is an error.
  EXPECT_THROW(fit_down_proj(fit_tokens.w.data(), 4, 16, fit_tokens.g.data(), kept, ridges, nullptr, "t"), Error);
}

TEST(FfnReconstruction, BadInputIsAnErrorNamingTheFit) {
  const float w[] = {1, 2};
  const double zero[] = {0, 0, 0, 0};
  const double g[] = {4, 2, 2, 3};
  auto message = [&](auto&& f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message([&] { fit_down_proj(w, 1, 2, zero, {0}, 1e-3, "expert 'code' layer 3"); }).find("expert 'code' layer 3"),
            std::string::npos);
  EXPECT_NE(message([&] { fit_down_proj(w, 1, 2, g, {}, 1e-3, "x"); }).find("no neurons"), std::string::npos);
  EXPECT_NE(message([&] { fit_down_proj(w, 1, 2, g, {2}, 1e-3, "x"); }).find("neuron 2"), std::string::npos);
  EXPECT_NE(message([&] { fit_down_proj(w, 1, 2, g, {0}, -1, "x"); }).find("ridge"), std::string::npos);
  const double nan_g[] = {NAN, 0, 0, 1};
  EXPECT_NE(message([&] { fit_down_proj(w, 1, 2, nan_g, {0}, 1e-3, "x"); }), "no error");
}

// The refit error of keeping `s` (a vanishing ridge: the least-squares error, defined for duplicates).
double refit_error(const RandomLayer& L, const std::vector<int32_t>& s) {
  return fit_down_proj(L.w.data(), L.d, L.n_ff, L.g.data(), s, 1e-9, "t").error_fit;
}

TEST(FfnReconstruction, OutputSelectionDropsTheNeuronWhoseLossTheRefitRecoversBest) {
  // Removing one neuron (block 1) is exactly optimal: compare with every choice, for several layers.
  for (uint32_t seed : {1u, 2u, 3u, 4u}) {
    const RandomLayer L = random_layer(200, 3, 7, seed);
    const std::vector<int32_t> got = select_neurons_output(L.w.data(), L.d, L.n_ff, L.g.data(), 6, 1e-9, 1, "t");
    ASSERT_EQ(got.size(), 6u);
    double best = 1e300;
    for (int32_t drop = 0; drop < 7; ++drop) {
      std::vector<int32_t> s;
      for (int32_t j = 0; j < 7; ++j)
        if (j != drop) s.push_back(j);
      best = std::min(best, refit_error(L, s));
    }
    EXPECT_NEAR(refit_error(L, got), best, 1e-9 + 1e-6 * best) << "seed " << seed;
  }
}

TEST(FfnReconstruction, OutputSelectionKeepsOneOfTwoDuplicatesWhereTheStatisticKeepsBoth) {
  // Neurons 0 and 1 fire identically and most strongly; 2 and 3 are weaker but independent. Keeping
  // two, the mean-|a| statistic keeps the duplicates (0, 1) and loses 2 and 3 for good; the output
  // selection keeps one duplicate (the refit moves the other's column onto it) and one of 2, 3.
  const int64_t tokens = 64, n_ff = 4, d = 2;
  std::mt19937 rng(5);
  std::normal_distribution<double> n01;
  RandomLayer L{tokens, d, n_ff, std::vector<double>(static_cast<size_t>(tokens * n_ff)), {1, 1, 1, 0, 1, 1, 0, 1}, {}};
  for (int64_t t = 0; t < tokens; ++t) {
    const double big = 3 * n01(rng);
    L.a[static_cast<size_t>(t * n_ff + 0)] = big;
    L.a[static_cast<size_t>(t * n_ff + 1)] = big;
    L.a[static_cast<size_t>(t * n_ff + 2)] = n01(rng);
    L.a[static_cast<size_t>(t * n_ff + 3)] = n01(rng);
  }
  L.g = gram_of(L.a, tokens, n_ff);
  const std::vector<int32_t> got = select_neurons_output(L.w.data(), d, n_ff, L.g.data(), 2, 1e-6, 1, "t");
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0] == 0 || got[0] == 1, true);
  EXPECT_TRUE(got[1] == 2 || got[1] == 3);
  EXPECT_LT(refit_error(L, got), 0.5 * refit_error(L, {0, 1}));
}

TEST(FfnReconstruction, OutputSelectionInBlocksStaysCloseToGreedyAndNeverWorseThanRandom) {
  const RandomLayer L = random_layer(300, 5, 24, 11);
  const auto greedy = select_neurons_output(L.w.data(), L.d, L.n_ff, L.g.data(), 12, 1e-6, 1, "t");
  const auto blocks = select_neurons_output(L.w.data(), L.d, L.n_ff, L.g.data(), 12, 1e-6, 4, "t");
  ASSERT_EQ(blocks.size(), 12u);
  EXPECT_TRUE(std::is_sorted(blocks.begin(), blocks.end()));
  EXPECT_LT(refit_error(L, blocks), 1.25 * refit_error(L, greedy));
  // Against 50 random subsets of the same size, the greedy choice is at least as good as all of them.
  std::mt19937 rng(3);
  std::vector<int32_t> all(24);
  for (int32_t j = 0; j < 24; ++j) all[static_cast<size_t>(j)] = j;
  for (int trial = 0; trial < 50; ++trial) {
    std::shuffle(all.begin(), all.end(), rng);
    std::vector<int32_t> s(all.begin(), all.begin() + 12);
    std::sort(s.begin(), s.end());
    EXPECT_LE(refit_error(L, greedy), refit_error(L, s) + 1e-12);
  }
  // keep = n_ff keeps everything; bad arguments are errors naming the selection.
  EXPECT_EQ(select_neurons_output(L.w.data(), L.d, L.n_ff, L.g.data(), 24, 1e-3, 8, "t").size(), 24u);
  EXPECT_THROW(select_neurons_output(L.w.data(), L.d, L.n_ff, L.g.data(), 0, 1e-3, 8, "t"), Error);
  EXPECT_THROW(select_neurons_output(L.w.data(), L.d, L.n_ff, L.g.data(), 4, 0.0, 8, "t"), Error);
  const std::vector<double> zero(24 * 24, 0.0);
  EXPECT_THROW(select_neurons_output(L.w.data(), L.d, L.n_ff, zero.data(), 4, 1e-3, 8, "expert 'x'"), Error);
}

}  // namespace
}  // namespace lookahead::moe
