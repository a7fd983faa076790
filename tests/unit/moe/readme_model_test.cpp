// Read-ME model: export, reload, convert to another weight type, routed forward pass, router forward
// pass, bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "common/error.h"
#include "format_test_files.h"
#include "moe/format/safetensors.h"
#include "moe/format/safetensors_writer.h"
#include "moe/model/loaded_model.h"
#include "moe/model/readme_model.h"
#include "moe/model/router.h"
#include "moe/refactor/readme_export.h"
#include "moe/refactor/router_targets.h"

namespace lookahead::moe {
namespace {

using format_test::TempDir;
using format_test::test_dir_name;
using format_test::TinyHf;

RouterConfig tiny_router_config() {
  RouterConfig c;
  c.n_expert = 2;
  c.n_vocab = 10;
  c.n_head = 2;
  c.d_model = 8;
  c.d_inter = 12;
  c.max_positions = 64;
  return c;
}

// Random cluster_predictor.* tensors (F32) written to `path`.
void write_random_router(const RouterConfig& c, const std::string& path, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.5f);
  SafetensorsWriter w;
  std::vector<std::vector<float>> keep;
  const int64_t d = c.d_model, mid = c.swiglu ? 2 * c.d_inter : c.d_inter;
  auto add = [&](const std::string& n, std::vector<int64_t> shape, bool ones = false) {
    int64_t count = 1;
    for (auto s : shape) count *= s;
    keep.emplace_back(static_cast<size_t>(count));
    for (auto& x : keep.back()) x = ones ? 1.0f + 0.1f * normal(rng) : normal(rng);
    w.add_tensor("cluster_predictor." + n, TensorType::F32, shape, keep.back().data());
  };
  add("embed.weight", {c.n_vocab, d});
  add("input_layernorm_0.weight", {d}, true);
  for (const char* p : {"q", "k", "v", "o"}) {
    add(std::string(p) + "_proj_0.weight", {d, d});
    add(std::string(p) + "_proj_0.bias", {d});
  }
  add("post_attention_layernorm_0.weight", {d}, true);
  add("proj_1_0.weight", {mid, d});
  add("proj_1_0.bias", {mid});
  add("proj_2_0.weight", {d, c.d_inter});
  add("proj_2_0.bias", {d});
  add("out_layernorm.weight", {d}, true);
  add("proj_out.weight", {c.n_expert, d});
  add("proj_out.bias", {c.n_expert});
  w.write(path);
}

ExpertSets sets_for(const std::vector<std::vector<int32_t>>& per_expert, int layers = 2, int ff = 16) {
  ExpertSets s;
  s.n_layer = layers;
  s.n_ff = ff;
  s.experts = {"alpha", "beta"};
  s.neurons.assign(static_cast<size_t>(layers), per_expert);
  for (int l = 0; l < layers; ++l) {
    std::vector<int32_t> inter;
    std::set_intersection(per_expert[0].begin(), per_expert[0].end(), per_expert[1].begin(), per_expert[1].end(),
                          std::back_inserter(inter));
    s.permanent.push_back(inter);
  }
  return s;
}

struct Fixture {
  TempDir tmp{test_dir_name()};
  std::string dense_dir, router_path, readme_dir;
  Fixture(const ExpertSets& sets, TensorType dtype = TensorType::F32, bool swiglu = false) {
    dense_dir = tmp.file("dense");
    std::filesystem::create_directories(dense_dir);
    TinyHf(11).write(dense_dir);
    RouterConfig rc = tiny_router_config();
    rc.swiglu = swiglu;
    router_path = tmp.file("router.safetensors");
    write_random_router(rc, router_path, 5);
    readme_dir = tmp.file("readme");
    auto dense = open_model(dense_dir);
    SafetensorsFile router(router_path);
    ReadMeConfig config;
    config.router = rc;
    config.experts = sets.experts;
    config.source_model = "tiny";
    ReadMeExportOptions eo;
    eo.dtype = dtype;
    eo.progress = false;
    write_readme_model(*dense, sets, config, [&](const std::string& n) { return router.find_tensor(n); }, readme_dir, eo);
  }
};

std::vector<float> logits_of(LoadedModel& m, const std::vector<int32_t>& tokens) {
  ContextOptions copt;
  copt.n_ctx = 32;
  LlamaContext ctx(m.llama(), copt);
  m.attach(ctx);
  const float* out = ctx.forward(tokens.data(), static_cast<int64_t>(tokens.size()), 0);
  return {out, out + tokens.size() * 10};
}

const std::vector<int32_t> kTokens = {1, 4, 7, 2, 9, 0, 3, 3, 8};

TEST(ReadMeModel, ExpertsEqualToTheFullFfnReproduceDenseLogitsExactly) {
  std::vector<int32_t> all(16);
  for (int i = 0; i < 16; ++i) all[static_cast<size_t>(i)] = i;
  Fixture f(sets_for({all, all}));
  LoadedModel dense(f.dense_dir);
  const std::vector<float> want = logits_of(dense, kTokens);
  for (const char* route : {"oracle:alpha", "oracle:beta", "dense"}) {
    LoadedModel readme(f.readme_dir, route);
    EXPECT_EQ(logits_of(readme, kTokens), want) << route;
  }
  // The router spreads tokens over both (identical) experts: equal up to summation order.
  LoadedModel routed(f.readme_dir, "router");
  const std::vector<float> got = logits_of(routed, kTokens);
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-5) << i;
}

TEST(ReadMeModel, RoutedForwardEqualsMaskedDenseOfEachTokensExpert) {
  const std::vector<int32_t> a = {0, 1, 2, 3, 5, 8, 9, 13}, b = {0, 2, 4, 6, 7, 10, 11, 12, 15};
  Fixture f(sets_for({a, b}));
  LoadedModel readme(f.readme_dir, "router");
  const std::vector<float> got = logits_of(readme, kTokens);
  // Reference: the router's choices, then the dense model one token at a time with the FFN hook
  // restricting every layer to that token's expert (the paper's masked dense form).
  RouterContext router(readme.readme()->config().router, readme.readme()->router());
  const std::vector<int32_t> experts = router.route(kTokens.data(), static_cast<int64_t>(kTokens.size()));
  ASSERT_NE(std::count(experts.begin(), experts.end(), 0), 0) << "the random router should use both experts";
  ASSERT_NE(std::count(experts.begin(), experts.end(), 1), 0);
  struct Mask : FfnHook {
    const std::vector<int32_t>* set = nullptr;
    const std::vector<int32_t>* active_neurons(int) override { return set; }
  } mask;
  LoadedModel dense(f.dense_dir);
  ContextOptions copt;
  copt.n_ctx = 32;
  LlamaContext ctx(dense.llama(), copt);
  ctx.set_ffn_hook(&mask);
  for (size_t t = 0; t < kTokens.size(); ++t) {
    mask.set = experts[t] == 0 ? &a : &b;
    const float* want = ctx.forward(&kTokens[t], 1);
    for (int v = 0; v < 10; ++v) EXPECT_NEAR(got[t * 10 + static_cast<size_t>(v)], want[v], 2e-4) << t << " " << v;
  }
}

TEST(ReadMeModel, ReloadAndRewriteIsBitIdentical) {
  const std::vector<int32_t> a = {1, 3, 5, 7, 9, 11}, b = {0, 1, 2, 3, 4, 5, 6};
  Fixture f(sets_for({a, b}), TensorType::F16);
  ReadMeModel m(f.readme_dir);
  EXPECT_EQ(m.neurons(1, 0), a);
  EXPECT_EQ(m.neurons(0, 1), b);
  // Re-export the loaded model (its dense FFN is in the directory) with its own experts and router.
  ExpertSets sets = sets_for({m.neurons(0, 0), m.neurons(0, 1)});
  const std::string again = f.tmp.file("again");
  ReadMeExportOptions eo;
  eo.dtype = TensorType::F16;
  eo.progress = false;
  write_readme_model(m.source(), sets, m.config(), [&](const std::string& n) { return m.source().raw_tensor(n); }, again, eo);
  EXPECT_EQ(format_test::read_all(again + "/model.safetensors"), format_test::read_all(f.readme_dir + "/model.safetensors"));
  EXPECT_EQ(format_test::read_all(again + "/config.json"), format_test::read_all(f.readme_dir + "/config.json"));
  // One (layer, expert) is one contiguous slab: gate, up, down back to back.
  const auto slab = m.slab(1, 0);
  const int64_t s = static_cast<int64_t>(a.size());
  EXPECT_EQ(slab.bytes, static_cast<uint64_t>(3 * s * 8 * 2));
}

// `moe convert` of a Read-ME directory keeps trained experts as stored (not re-cut from the dense
// FFN), the router, neuron lists and dense FFN: an F32 -> F32 conversion gives the same logits
// bit for bit, F16 within half precision; a block type the rows cannot hold is refused.
TEST(ReadMeModel, ConvertKeepsTrainedExpertsAndRefusesImpossibleBlockTypes) {
  const std::vector<int32_t> a = {1, 3, 5, 7, 9, 11}, b = {0, 1, 2, 3, 4, 5, 6};
  Fixture f(sets_for({a, b}));
  // A "trained" model: expert gate/up rows that are not rows of the dense FFN.
  ReadMeModel m0(f.readme_dir);
  ExpertRowProjs gate(2), up(2);
  std::mt19937 rng(9);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int l = 0; l < 2; ++l)
    for (int32_t e = 0; e < 2; ++e)
      for (ExpertRowProjs* p : {&gate, &up}) {
        (*p)[static_cast<size_t>(l)].emplace_back(m0.neurons(l, e).size() * 8);
        for (auto& x : (*p)[static_cast<size_t>(l)].back()) x = normal(rng);
      }
  ReadMeExportOptions eo;
  eo.progress = false;
  eo.dtype = TensorType::F32;
  eo.gate = &gate;
  eo.up = &up;
  const std::string trained = f.tmp.file("trained");
  write_readme_model(m0.source(), sets_for({a, b}), m0.config(), [&](const std::string& n) { return m0.source().raw_tensor(n); },
                     trained, eo);
  auto logits = [&](const std::string& dir) {
    LoadedModel lm(dir, "router");
    return logits_of(lm, kTokens);
  };
  const auto want = logits(trained);
  EXPECT_NE(want, logits(f.readme_dir)) << "the trained experts must differ from the cut ones";

  const std::string f32 = f.tmp.file("f32"), f16 = f.tmp.file("f16");
  EXPECT_EQ(convert_readme_model(trained, f32, TensorType::F32, false), 0);
  EXPECT_EQ(logits(f32), want);
  ReadMeModel c(f32);
  EXPECT_EQ(c.neurons(1, 0), a);
  EXPECT_EQ(c.neurons(0, 1), b);
  EXPECT_NE(c.source().raw_tensor("model.layers.0.mlp.gate_proj.weight"), nullptr) << "the dense FFN travels";
  EXPECT_EQ(convert_readme_model(trained, f16, TensorType::F16, false), 0);
  const auto got = logits(f16);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 2e-2 * (1 + std::fabs(want[i]))) << i;
  EXPECT_EQ(ReadMeModel(f16).config().dtype, "F16");

  // Hidden size 8 is not whole Q8_0 blocks; an existing output is refused; nothing is left behind.
  EXPECT_THROW(convert_readme_model(trained, f.tmp.file("q8"), TensorType::Q8_0, false), Error);
  EXPECT_FALSE(std::filesystem::exists(f.tmp.file("q8")));
  EXPECT_THROW(convert_readme_model(trained, f32, TensorType::F16, false), Error);
}

TEST(ReadMeModel, RouterKvCacheMatchesFullRecomputeAndNaiveReference) {
  for (bool swiglu : {false, true}) {
    Fixture f(sets_for({{0, 1, 2}, {3, 4, 5}}), TensorType::F32, swiglu);
    ReadMeModel m(f.readme_dir);
    const RouterConfig& c = m.config().router;
    RouterContext batch(c, m.router()), step(c, m.router());
    const auto n = static_cast<int64_t>(kTokens.size());
    batch.route(kTokens.data(), n);
    const std::vector<float> all = batch.logits();
    for (int64_t t = 0; t < n; ++t) {
      step.route(&kTokens[static_cast<size_t>(t)], 1);
      for (int e = 0; e < 2; ++e) EXPECT_NEAR(step.logits()[static_cast<size_t>(e)], all[static_cast<size_t>(t * 2 + e)], 1e-5);
    }
    // Naive double-precision reference written from docs/readme-model.md.
    SafetensorsFile file(f.router_path);
    auto T = [&](const std::string& n) {
      const TensorView* v = file.find_tensor("cluster_predictor." + n);
      const float* p = reinterpret_cast<const float*>(v->data);
      return std::vector<double>(p, p + v->elements());
    };
    const int d = 8, H = 2, hd = 4, inter = 12;
    auto linear = [](const std::vector<double>& W, const std::vector<double>& b, const std::vector<double>& x, int out) {
      const int in = static_cast<int>(x.size());
      std::vector<double> y(static_cast<size_t>(out));
      for (int o = 0; o < out; ++o) {
        double s = b[static_cast<size_t>(o)];
        for (int i = 0; i < in; ++i) s += W[static_cast<size_t>(o * in + i)] * x[static_cast<size_t>(i)];
        y[static_cast<size_t>(o)] = s;
      }
      return y;
    };
    auto norm = [&](const std::vector<double>& x, const std::vector<double>& w) {
      double ss = 0;
      for (double v : x) ss += v * v;
      const double r = 1.0 / std::sqrt(ss / static_cast<double>(x.size()) + 1e-6);
      std::vector<double> y(x.size());
      for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * r * w[i];
      return y;
    };
    auto rope = [&](std::vector<double>& x, int pos) {
      for (int h = 0; h < H; ++h)
        for (int i = 0; i < hd / 2; ++i) {
          const double ang = pos * std::pow(10000.0, -2.0 * i / hd);
          double& a0 = x[static_cast<size_t>(h * hd + i)];
          double& a1 = x[static_cast<size_t>(h * hd + i + hd / 2)];
          const double r0 = a0 * std::cos(ang) - a1 * std::sin(ang), r1 = a0 * std::sin(ang) + a1 * std::cos(ang);
          a0 = r0, a1 = r1;
        }
    };
    const auto embed = T("embed.weight");
    std::vector<std::vector<double>> hs, ks, vs;
    for (int64_t t = 0; t < n; ++t) {
      std::vector<double> h(embed.begin() + kTokens[static_cast<size_t>(t)] * d, embed.begin() + (kTokens[static_cast<size_t>(t)] + 1) * d);
      const auto u = norm(h, T("input_layernorm_0.weight"));
      auto q = linear(T("q_proj_0.weight"), T("q_proj_0.bias"), u, d);
      auto k = linear(T("k_proj_0.weight"), T("k_proj_0.bias"), u, d);
      ks.push_back(k), vs.push_back(linear(T("v_proj_0.weight"), T("v_proj_0.bias"), u, d));
      rope(q, static_cast<int>(t)), rope(ks.back(), static_cast<int>(t));
      std::vector<double> att(static_cast<size_t>(d), 0.0);
      for (int hh = 0; hh < H; ++hh) {
        std::vector<double> sc;
        double mx = -1e300;
        for (int64_t p = 0; p <= t; ++p) {
          double s = 0;
          for (int i = 0; i < hd; ++i) s += q[static_cast<size_t>(hh * hd + i)] * ks[static_cast<size_t>(p)][static_cast<size_t>(hh * hd + i)];
          sc.push_back(s / c.normalizer), mx = std::max(mx, sc.back());
        }
        double z = 0;
        for (double& s : sc) s = std::exp(s - mx), z += s;
        for (int64_t p = 0; p <= t; ++p)
          for (int i = 0; i < hd; ++i)
            att[static_cast<size_t>(hh * hd + i)] += sc[static_cast<size_t>(p)] / z * vs[static_cast<size_t>(p)][static_cast<size_t>(hh * hd + i)];
      }
      const auto o = linear(T("o_proj_0.weight"), T("o_proj_0.bias"), att, d);
      for (int i = 0; i < d; ++i) h[static_cast<size_t>(i)] += o[static_cast<size_t>(i)];
      const auto m1 = linear(T("proj_1_0.weight"), T("proj_1_0.bias"), norm(h, T("post_attention_layernorm_0.weight")),
                             swiglu ? 2 * inter : inter);
      std::vector<double> act(static_cast<size_t>(inter));
      for (int i = 0; i < inter; ++i) {
        const double g = m1[static_cast<size_t>(i)];
        act[static_cast<size_t>(i)] = g / (1 + std::exp(-g)) * (swiglu ? m1[static_cast<size_t>(i + inter)] : 1.0);
      }
      const auto m2 = linear(T("proj_2_0.weight"), T("proj_2_0.bias"), act, d);
      for (int i = 0; i < d; ++i) h[static_cast<size_t>(i)] += m2[static_cast<size_t>(i)];
      const auto logits = linear(T("proj_out.weight"), T("proj_out.bias"), norm(h, T("out_layernorm.weight")), 2);
      for (int e = 0; e < 2; ++e) EXPECT_NEAR(all[static_cast<size_t>(t * 2 + e)], logits[static_cast<size_t>(e)], 1e-4) << t;
    }
  }
}

TEST(ReadMeModel, BadInputIsAClearErrorAndLeavesNothingBehind) {
  Fixture f(sets_for({{0, 1, 2}, {3, 4, 5}}));
  // Route specs.
  EXPECT_THROW(LoadedModel(f.readme_dir, "oracle:gamma"), Error);
  EXPECT_THROW(LoadedModel(f.readme_dir, "random:x"), Error);
  EXPECT_THROW(LoadedModel(f.readme_dir, "sometimes"), Error);
  EXPECT_THROW(LoadedModel(f.dense_dir, "router"), Error);
  // The output exists already: refused, the existing directory untouched.
  auto dense = open_model(f.dense_dir);
  SafetensorsFile router(f.router_path);
  ReadMeConfig config;
  config.router = tiny_router_config();
  config.experts = {"alpha", "beta"};
  ReadMeExportOptions eo;
  eo.progress = false;
  auto lookup = [&](const std::string& n) { return router.find_tensor(n); };
  EXPECT_THROW(write_readme_model(*dense, sets_for({{0}, {1}}), config, lookup, f.readme_dir, eo), Error);
  EXPECT_TRUE(std::filesystem::exists(f.readme_dir + "/model.safetensors"));
  // A router lacking a tensor: no output directory, no temporary left.
  const std::string out = f.tmp.file("broken");
  auto missing = [&](const std::string& n) { return n == "cluster_predictor.proj_out.bias" ? nullptr : router.find_tensor(n); };
  try {
    write_readme_model(*dense, sets_for({{0}, {1}}), config, missing, out, eo);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("proj_out.bias"), std::string::npos) << e.what();
  }
  // A Q8_0 export of a model whose rows are not whole 32-value blocks: refused before writing.
  ReadMeExportOptions q8 = eo;
  q8.dtype = TensorType::Q8_0;
  try {
    write_readme_model(*dense, sets_for({{0}, {1}}), config, lookup, f.tmp.file("broken_q8"), q8);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("whole 32-value blocks"), std::string::npos) << e.what();
  }
  for (const auto& entry : std::filesystem::directory_iterator(f.tmp.path()))
    EXPECT_EQ(entry.path().filename().string().find("broken"), std::string::npos) << entry.path();
  // A Read-ME directory with an expert tensor missing: the error names it.
  TinyHf broken_model(11);
  const std::string dir = f.tmp.file("no_expert");
  std::filesystem::create_directories(dir);
  {
    SafetensorsFile full(f.readme_dir + "/model.safetensors");
    std::vector<format_test::StTensor> tensors;
    for (const TensorView& t : full.tensors()) {
      if (t.name == "model.layers.1.moe.up_proj_1.weight") continue;
      std::vector<int64_t> shape(t.shape.rbegin(), t.shape.rend());
      tensors.push_back({t.name, std::string(tensor_type_name(t.type)), shape,
                         std::string(reinterpret_cast<const char*>(t.data), t.bytes)});
    }
    format_test::write_all(dir + "/model.safetensors", format_test::safetensors_image(tensors));
    format_test::write_all(dir + "/config.json", format_test::read_all(f.readme_dir + "/config.json"));
  }
  try {
    ReadMeModel m(dir);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers.1.moe.up_proj_1.weight"), std::string::npos) << e.what();
  }
}

TEST(RouterTargets, ScoresTopActiveNeuronsAgainstEachExpert) {
  // 1 layer, 20 neurons; expert 0 = {0..9}, expert 1 = {5..14}; permanent {5..9}, exclusive part 5.
  ExpertSets s;
  s.n_layer = 1;
  s.n_ff = 20;
  s.experts = {"a", "b"};
  std::vector<int32_t> e0, e1, perm;
  for (int i = 0; i < 10; ++i) e0.push_back(i);
  for (int i = 5; i < 15; ++i) e1.push_back(i);
  for (int i = 5; i < 10; ++i) perm.push_back(i);
  s.neurons = {{e0, e1}};
  s.permanent = {perm};
  RouterTargetScorer scorer(s);
  EXPECT_EQ(scorer.exclusive_size(0), 5);
  // The 5 most active neurons (values 20..16) lie in expert 0's exclusive part.
  std::vector<float> a(20, 0.0f);
  for (int i = 0; i < 5; ++i) a[static_cast<size_t>(i)] = 20.0f - static_cast<float>(i);
  float d[2];
  scorer.score(0, a.data(), d);
  // n = 5, ranks {4, 4, 3, 2, 1}: neuron 0 is above 4 thresholds' values... count per neuron:
  // thresholds are the 4th, 4th, 3rd, 2nd, 1st largest = 17, 17, 18, 19, 20.
  // counts: a=20 -> 4 (not > 20), 19 -> 3, 18 -> 2, 17 -> 0, 16 -> 0; total 9; / (3 * 5).
  const float d0 = 9.0f / 15.0f, d1 = 0.0f, mean = (d0 + d1) / 2;
  EXPECT_NEAR(d[0], 10 * (d0 - mean), 1e-5);
  EXPECT_NEAR(d[1], 10 * (d1 - mean), 1e-5);
}

// The router_config JSON (router_targets.safetensors / router.safetensors metadata): what one side
// writes the other reads back field for field; wrong types and activations are errors naming the key.
TEST(RouterConfigJson, RoundTripsEveryField) {
  RouterConfig c;
  c.n_expert = 6;
  c.n_vocab = 49152;
  c.n_head = 8;
  c.d_model = 256;
  c.d_inter = 384;
  c.normalizer = 5.65685415f;
  c.swiglu = true;
  c.max_positions = 1024;
  c.rope_theta = 5000.0f;
  c.rms_eps = 1e-5f;
  const nlohmann::json j = nlohmann::json::parse(c.to_json().dump());
  EXPECT_EQ(j["hidden_act_predictor"], "swiglu");
  EXPECT_EQ(j["vocab_size"], 49152);
  RouterConfig back;
  back.update_from_json(j, "test");
  EXPECT_EQ(back.n_expert, c.n_expert);
  EXPECT_EQ(back.n_vocab, c.n_vocab);
  EXPECT_EQ(back.n_head, c.n_head);
  EXPECT_EQ(back.d_model, c.d_model);
  EXPECT_EQ(back.d_inter, c.d_inter);
  EXPECT_EQ(back.normalizer, c.normalizer);
  EXPECT_EQ(back.swiglu, c.swiglu);
  EXPECT_EQ(back.max_positions, c.max_positions);
  EXPECT_EQ(back.rope_theta, c.rope_theta);
  EXPECT_EQ(back.rms_eps, c.rms_eps);
  EXPECT_EQ(back.proj_1_rows(), 2 * 384);
}

TEST(RouterConfigJson, KeepsAbsentKeysAndRefusesWrongOnes) {
  RouterConfig c;
  c.update_from_json(nlohmann::json{{"n_head", 2}}, "test");
  EXPECT_EQ(c.n_head, 2);
  EXPECT_EQ(c.d_model, RouterConfig{}.d_model);
  auto message = [](const nlohmann::json& j) {
    try {
      RouterConfig r;
      r.update_from_json(j, "f.safetensors: router_config");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message({{"n_head", "four"}}).find("'n_head' must be an integer"), std::string::npos);
  EXPECT_NE(message({{"normalizer", "x"}}).find("'normalizer' must be a number"), std::string::npos);
  EXPECT_NE(message({{"hidden_act_predictor", "gelu"}}).find("'silu' or 'swiglu' (got 'gelu')"), std::string::npos);
  EXPECT_NE(message({{"inter_dim", 1ll << 40}}).find("out of range"), std::string::npos);
  EXPECT_NE(message(nlohmann::json::array()).find("must be a JSON object"), std::string::npos);
}

}  // namespace
}  // namespace lookahead::moe
