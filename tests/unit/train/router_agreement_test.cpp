// The libtorch router (train/router_torch.cpp) and the engine's router (moe/model/router.h, with its
// KV cache, no libtorch) agree on the logits of a trained router file to 1e-5, for the released
// (silu MLP, normalizer 1) and the paper (SwiGLU, sqrt(d_r / heads)) variants, whether the engine
// routes the prompt at once or token by token.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>

#include <unistd.h>

#include "moe/format/safetensors.h"
#include "moe/format/safetensors_writer.h"
#include "moe/model/router.h"
#include "train/router.h"

namespace lookahead::train {
namespace {

namespace fs = std::filesystem;

// Random router training data (V 50, d_r 32, N 3, L 2): training a few steps moves every weight
// off its init, so biases and norms are non-trivial in the comparison.
void write_data(const fs::path& path) {
  const int64_t v = 50, d = 32, n = 3, l = 2, t = 256;
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<int32_t> tokens(t), starts{0, 64, 128, 192, 256}, domain(t);
  std::vector<float> targets(t * l * n), embed(v * d);
  for (int64_t i = 0; i < t; ++i) {
    tokens[i] = static_cast<int32_t>(rng() % v);
    domain[i] = static_cast<int32_t>(rng() % n);
  }
  for (auto& x : targets) x = 3 * normal(rng);
  for (auto& x : embed) x = normal(rng);
  moe::SafetensorsWriter w;
  w.add_tensor("tokens", moe::TensorType::I32, {t}, tokens.data());
  w.add_tensor("seq_start", moe::TensorType::I32, {5}, starts.data());
  w.add_tensor("domain", moe::TensorType::I32, {t}, domain.data());
  w.add_tensor("targets", moe::TensorType::F32, {t, l, n}, targets.data());
  w.add_tensor("router_init.embed", moe::TensorType::F32, {v, d}, embed.data());
  w.write(path.string());
}

void expect_agreement(const std::string& mlp, const std::string& normalizer) {
  fs::path dir = fs::temp_directory_path() / ("lookahead_router_agree_" + mlp + "_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  write_data(dir / "data.safetensors");
  RouterTrainOptions o;
  o.data = (dir / "data.safetensors").string();
  o.out = (dir / "router.safetensors").string();
  o.steps = 10;
  o.lr = 1e-2;
  o.batch = 4;
  o.seq_len = 32;
  o.heads = 4;
  o.inter = 24;
  o.mlp = mlp;
  o.normalizer = normalizer;
  o.progress = false;
  const auto trained = train_router(o);

  std::vector<int32_t> tokens;
  for (int i = 0; i < 40; ++i) tokens.push_back((i * 7 + 3) % 50);
  const auto torch_side = router_logits(o.out, tokens);

  moe::SafetensorsFile file(o.out);
  moe::RouterConfig c = trained.config;  // the engine reads the trainer's configuration as is
  c.max_positions = 64;
  const auto weights = moe::RouterWeights::load(c, [&](const std::string& name) { return file.find_tensor(name); }, o.out);
  const int64_t n = c.n_expert;

  for (bool one_by_one : {false, true}) {
    moe::RouterContext ctx(c, weights);
    std::vector<float> engine;
    if (one_by_one) {
      for (int32_t tok : tokens) {
        ctx.route(&tok, 1);
        engine.insert(engine.end(), ctx.logits().begin(), ctx.logits().end());
      }
    } else {
      ctx.route(tokens.data(), static_cast<int64_t>(tokens.size()));
      engine = ctx.logits();
    }
    ASSERT_EQ(engine.size(), tokens.size() * n);
    double max_diff = 0;
    for (size_t i = 0; i < engine.size(); ++i) max_diff = std::max(max_diff, std::fabs(double(engine[i]) - torch_side.logits[i]));
    std::printf("router agreement (%s, normalizer %s, %s): max |engine - libtorch| = %.3g\n", mlp.c_str(),
                normalizer.c_str(), one_by_one ? "token by token" : "prompt", max_diff);
    EXPECT_LT(max_diff, 1e-5) << mlp << " normalizer " << normalizer << (one_by_one ? " token by token" : " prompt");
  }
  fs::remove_all(dir);
}

TEST(RouterAgreement, ReleasedVariant) { expect_agreement("silu", "released"); }
TEST(RouterAgreement, PaperVariant) { expect_agreement("swiglu", "paper"); }

}  // namespace
}  // namespace lookahead::train
