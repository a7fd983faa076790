// The libtorch router trainer (train/router.h): the loss against the formula by hand, learning a
// separable synthetic task, determinism, the router file round trip, and bad input.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include <unistd.h>

#include "common/error.h"
#include "moe/format/safetensors_writer.h"
#include "train/router.h"

namespace lookahead::train {
namespace {

namespace fs = std::filesystem;

fs::path temp_dir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("lookahead_train_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The loss of docs/readme-model.md for one token, written out term by term.
double loss_by_hand(const std::vector<double>& z, const std::vector<std::vector<double>>& d_layers) {
  const size_t n = z.size();
  double lse = 0;
  for (double v : z) lse += std::exp(v);
  lse = std::log(lse);
  std::vector<double> logp(n);
  for (size_t e = 0; e < n; ++e) logp[e] = z[e] - lse;
  double total = 0;
  for (const auto& d : d_layers) {
    size_t y = 0;
    for (size_t e = 1; e < n; ++e) if (d[e] > d[y]) y = e;
    double mean_nll = 0;
    for (size_t e = 0; e < n; ++e) mean_nll += -logp[e] / static_cast<double>(n);
    const double ce = 0.5 * -logp[y] + 0.5 * mean_nll;  // label smoothing 0.5
    double dz = 0;
    for (double v : d) dz += std::exp(v);
    double soft = 0;
    for (size_t e = 0; e < n; ++e) soft += -(std::exp(d[e]) / dz) * logp[e];
    total += 0.75 * ce + 0.25 * soft;
  }
  return total;
}

TEST(RouterLoss, HandMadeTwoExpertExample) {
  // 2 tokens, 2 layers, 2 experts.
  const std::vector<float> logits = {1.0f, -0.5f, 0.2f, 0.3f};
  const std::vector<float> targets = {2.0f, -2.0f, -1.0f, 1.0f,  // token 0: layer 0, layer 1
                                      0.5f, -0.5f, 3.0f, -3.0f};  // token 1
  const double want = 0.5 * (loss_by_hand({1.0, -0.5}, {{2, -2}, {-1, 1}}) + loss_by_hand({0.2, 0.3}, {{0.5, -0.5}, {3, -3}}));
  EXPECT_NEAR(router_loss(logits, targets, 2, 2, 2), want, 1e-6);
  // Equal logits: every term is log 2 whatever the targets, per layer.
  EXPECT_NEAR(router_loss({0.0f, 0.0f}, {5.0f, -5.0f, -1.0f, 1.0f}, 1, 2, 2), 2 * std::log(2.0), 1e-9);
  EXPECT_THROW(router_loss({0.0f}, {1.0f, 2.0f}, 1, 1, 2), Error);
}

// A separable task: tokens 0..9 belong to domain/expert 0, 10..19 to expert 1, mixed at random
// inside each sequence, so the router must learn it from the token itself.
struct Synthetic {
  int64_t vocab = 20, layers = 2, experts = 2, width = 16, seq = 16, n_seq = 64;
};

void write_synthetic(const fs::path& path, const Synthetic& s, const std::string& drop = "", size_t domain_drop = 0) {
  std::mt19937 rng(7);
  std::vector<int32_t> tokens, starts{0}, domain;
  std::vector<float> targets, embed;
  std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(s.vocab) - 1);
  for (int64_t q = 0; q < s.n_seq; ++q) {
    for (int64_t t = 0; t < s.seq; ++t) {
      const int32_t x = tok(rng);
      const int32_t e = x < s.vocab / 2 ? 0 : 1;
      tokens.push_back(x);
      domain.push_back(e);
      for (int64_t l = 0; l < s.layers; ++l)
        for (int64_t k = 0; k < s.experts; ++k) targets.push_back(k == e ? 5.0f : -5.0f);
    }
    starts.push_back(static_cast<int32_t>(tokens.size()));
  }
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int64_t i = 0; i < s.vocab * s.width; ++i) embed.push_back(normal(rng));
  domain.erase(domain.end() - static_cast<std::ptrdiff_t>(domain_drop), domain.end());

  moe::SafetensorsWriter w;
  const auto n = static_cast<int64_t>(tokens.size());
  if (drop != "tokens") w.add_tensor("tokens", moe::TensorType::I32, {n}, tokens.data());
  if (drop != "seq_start") w.add_tensor("seq_start", moe::TensorType::I32, {static_cast<int64_t>(starts.size())}, starts.data());
  if (drop != "domain") w.add_tensor("domain", moe::TensorType::I32, {static_cast<int64_t>(domain.size())}, domain.data());
  if (drop != "targets") w.add_tensor("targets", moe::TensorType::F32, {n, s.layers, s.experts}, targets.data());
  if (drop != "router_init.embed") w.add_tensor("router_init.embed", moe::TensorType::F32, {s.vocab, s.width}, embed.data());
  w.set_metadata("n_expert", "2");
  w.set_metadata("n_layer", std::to_string(s.layers));
  w.set_metadata("experts", "low,high");
  w.set_metadata("router_config", R"({"n_head": 2, "inter_dim": 32})");
  w.write(path.string());
}

RouterTrainOptions tiny_options(const fs::path& data, const fs::path& out, int64_t steps) {
  RouterTrainOptions o;
  o.data = data.string();
  o.out = out.string();
  o.steps = steps;
  o.lr = 1e-2;
  o.batch = 8;
  o.seq_len = 16;
  o.seed = 1;
  o.progress = false;
  return o;
}

TEST(RouterTrain, LearnsSeparableSyntheticTask) {
  auto dir = temp_dir("separable");
  write_synthetic(dir / "targets.safetensors", Synthetic{});
  const auto t0 = std::chrono::steady_clock::now();
  auto r = train_router(tiny_options(dir / "targets.safetensors", dir / "router.safetensors", 300));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(seconds, 10.0);
  std::printf("separable task: 300 steps in %.2f s (%.2f ms/step), accuracy %.2f%% vs targets, %.2f%% vs domain, loss %.3f -> %.3f\n",
              seconds, r.ms_per_step, 100 * r.accuracy_targets, 100 * r.accuracy_domain, r.loss_first, r.loss_last);
  EXPECT_EQ(r.config.n_head, 2);     // from the data's router_config
  EXPECT_EQ(r.config.d_inter, 32);
  EXPECT_EQ(r.config.d_model, 16);
  EXPECT_EQ(r.eval_tokens, 64 * 16);
  EXPECT_GE(r.accuracy_targets, 0.99);
  EXPECT_GE(r.accuracy_domain, 0.99);
  EXPECT_LT(r.loss_last, r.loss_first);
  ASSERT_EQ(r.loss.size(), 300u);

  // The written router reproduces the routing token by token.
  std::vector<int32_t> all(20);
  for (int32_t i = 0; i < 20; ++i) all[i] = i;
  auto logits = router_logits((dir / "router.safetensors").string(), all);
  ASSERT_EQ(logits.logits.size(), 40u);
  for (int32_t i = 0; i < 20; ++i) EXPECT_EQ(logits.experts[i], i < 10 ? 0 : 1) << "token " << i;
  fs::remove_all(dir);
}

TEST(RouterTrain, SameSeedGivesByteIdenticalFile) {
  auto dir = temp_dir("determinism");
  write_synthetic(dir / "targets.safetensors", Synthetic{});
  train_router(tiny_options(dir / "targets.safetensors", dir / "a.safetensors", 20));
  train_router(tiny_options(dir / "targets.safetensors", dir / "b.safetensors", 20));
  auto other = tiny_options(dir / "targets.safetensors", dir / "c.safetensors", 20);
  other.seed = 2;
  train_router(other);
  const auto a = read_bytes(dir / "a.safetensors");
  EXPECT_FALSE(a.empty());
  EXPECT_EQ(a, read_bytes(dir / "b.safetensors"));
  EXPECT_NE(a, read_bytes(dir / "c.safetensors"));
  fs::remove_all(dir);
}

TEST(RouterTrain, PaperVariantsTrain) {
  auto dir = temp_dir("variants");
  write_synthetic(dir / "targets.safetensors", Synthetic{});
  auto o = tiny_options(dir / "targets.safetensors", dir / "router.safetensors", 5);
  o.mlp = "swiglu";
  o.normalizer = "paper";
  o.warmup = 2;
  auto r = train_router(o);
  EXPECT_TRUE(r.config.swiglu);
  EXPECT_FLOAT_EQ(r.config.normalizer, std::sqrt(8.0f));  // sqrt(16 / 2), kept as a float like every router field
  auto logits = router_logits(o.out, {1, 2, 3});
  EXPECT_TRUE(logits.config.swiglu);
  EXPECT_EQ(logits.logits.size(), 6u);
  fs::remove_all(dir);
}

TEST(RouterTrain, BadInputIsAnErrorAndWritesNothing) {
  auto dir = temp_dir("bad");
  write_synthetic(dir / "ok.safetensors", Synthetic{});
  const auto out = dir / "router.safetensors";
  auto expect_error = [&](RouterTrainOptions o, const std::string& needle) {
    try {
      train_router(o);
      ADD_FAILURE() << "no error, expected one mentioning " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(out));
  };
  expect_error(tiny_options(dir / "ok.safetensors", out, 0), "--steps");
  auto heads = tiny_options(dir / "ok.safetensors", out, 5);
  heads.heads = 3;
  expect_error(heads, "n_head");
  auto norm = tiny_options(dir / "ok.safetensors", out, 5);
  norm.normalizer = "-1";
  expect_error(norm, "--normalizer");
  for (const std::string name : {"tokens", "targets", "router_init.embed", "seq_start", "domain"}) {
    write_synthetic(dir / "missing.safetensors", Synthetic{}, name);
    expect_error(tiny_options(dir / "missing.safetensors", out, 5), "'" + name + "'");
  }
  write_synthetic(dir / "short.safetensors", Synthetic{}, "", 3);
  expect_error(tiny_options(dir / "short.safetensors", out, 5), "domain");
  expect_error(tiny_options(dir / "nonexistent.safetensors", out, 5), "nonexistent");
  fs::remove_all(dir);
}

TEST(RouterTrainCli, BadInputIsOneLineAndNonZero) {
  auto dir = temp_dir("cli");
  write_synthetic(dir / "ok.safetensors", Synthetic{});
  const std::string bin = LOOKAHEAD_TRAIN_BINARY;
  auto run = [&](const std::string& args) {
    const std::string cmd = bin + " " + args + " > " + (dir / "stdout").string() + " 2> " + (dir / "stderr").string();
    return std::system(cmd.c_str());
  };
  const std::string data = (dir / "ok.safetensors").string(), out = (dir / "r.safetensors").string();
  EXPECT_NE(run("router --data " + data + " --out " + out + " --steps 0"), 0);
  EXPECT_NE(read_bytes(dir / "stderr").find("--steps"), std::string::npos);
  EXPECT_NE(run("router --data " + data + " --out " + out + " --no-such-option"), 0);
  EXPECT_NE(run("router-logits --router " + data + " --tokens 1,2"), 0);  // not a router file
  EXPECT_NE(read_bytes(dir / "stderr").find("router_config"), std::string::npos);
  EXPECT_FALSE(fs::exists(out));
  ASSERT_EQ(run("router --data " + data + " --out " + out + " --steps 3 --json"), 0);
  EXPECT_NE(read_bytes(dir / "stdout").find("\"accuracy_domain\""), std::string::npos);
  ASSERT_EQ(run("router-logits --router " + out + " --tokens 1,15 --json"), 0);
  EXPECT_NE(read_bytes(dir / "stdout").find("\"experts\""), std::string::npos);
  EXPECT_NE(run("router-logits --router " + out + " --tokens 99"), 0);  // outside the vocabulary
  fs::remove_all(dir);
}

}  // namespace
}  // namespace lookahead::train
