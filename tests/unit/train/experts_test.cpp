// Read-ME expert training (train/experts.h) on a tiny hand-built Read-ME directory: the libtorch
// backbone agrees with the engine's Read-ME forward pass (also when an expert's down_proj is not a
// column subset of the dense one, and for the dense teacher), training lowers the loss and
// re-exports each expert's own weights, distillation from the dense FFN lowers the held-out KL,
// frozen tensors stay byte-identical, same seed gives the same file, a run stopped and resumed from
// its checkpoint gives the same file as an uninterrupted one, bad input is an error that leaves
// nothing behind; the same-active-size pruned dense model trains against its parent teacher.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "moe/checkpoint/hf_checkpoint.h"
#include "moe/format/safetensors.h"
#include "moe/format/safetensors_writer.h"
#include "moe/model/llama.h"
#include "moe/model/readme_model.h"
#include "train/experts.h"

namespace lookahead::train {
namespace {

namespace fs = std::filesystem;

constexpr int64_t V = 32, D = 16, L = 2, H = 4, HKV = 2, HD = 4, FF = 24, N = 2, DR = 8, RI = 8;

fs::path temp_dir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("lookahead_experts_test_" + name + "_" + std::to_string(::getpid()));
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

// A tiny Llama (GQA 4/2 heads) refactored into 2 experts over 24 FFN neurons (expert 0: neurons
// 0..15, expert 1: 8..23, so 8..15 are shared), with a random router. F32 throughout so the engine
// and libtorch see the same numbers. `dense`: keep mlp.* too. `drop`: leave one tensor out.
// `refit`: each expert's down_proj is the dense columns plus noise (as after `moe refactor`'s
// least-squares reconstruction: no longer a column subset of mlp.down_proj).
void write_readme_dir(const fs::path& dir, bool dense, const std::string& drop = "", bool refit = false) {
  fs::create_directories(dir);
  std::mt19937 rng(11);
  std::mt19937 refit_rng(23);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::deque<std::vector<float>> store;  // keeps tensor data alive until write(); stable references
  std::deque<std::vector<int32_t>> istore;
  moe::SafetensorsWriter w;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, float scale, float offset = 0.0f) {
    int64_t n = 1;
    for (auto s : shape) n *= s;
    store.emplace_back(static_cast<size_t>(n));
    for (auto& x : store.back()) x = offset + scale * normal(rng);
    if (name != drop) w.add_tensor(name, moe::TensorType::F32, shape, store.back().data());
    return &store.back();
  };
  add("model.embed_tokens.weight", {V, D}, 1.0f);
  std::vector<int32_t> neurons[N];
  for (int32_t j = 0; j < 16; ++j) neurons[0].push_back(j);
  for (int32_t j = 8; j < 24; ++j) neurons[1].push_back(j);
  for (int64_t l = 0; l < L; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {D}, 0.1f, 1.0f);
    add(p + "self_attn.q_proj.weight", {H * HD, D}, 0.3f);
    add(p + "self_attn.k_proj.weight", {HKV * HD, D}, 0.3f);
    add(p + "self_attn.v_proj.weight", {HKV * HD, D}, 0.3f);
    add(p + "self_attn.o_proj.weight", {D, H * HD}, 0.3f);
    add(p + "post_attention_layernorm.weight", {D}, 0.1f, 1.0f);
    // Dense FFN generated always (experts are cut from it), written only when `dense`.
    store.emplace_back(FF * D);
    auto& gate = store.back();
    for (auto& x : gate) x = 0.3f * normal(rng);
    store.emplace_back(FF * D);
    auto& up = store.back();
    for (auto& x : up) x = 0.3f * normal(rng);
    store.emplace_back(D * FF);
    auto& down = store.back();
    for (auto& x : down) x = 0.3f * normal(rng);
    if (dense) {
      w.add_tensor(p + "mlp.gate_proj.weight", moe::TensorType::F32, {FF, D}, gate.data());
      w.add_tensor(p + "mlp.up_proj.weight", moe::TensorType::F32, {FF, D}, up.data());
      w.add_tensor(p + "mlp.down_proj.weight", moe::TensorType::F32, {D, FF}, down.data());
    }
    for (int32_t e = 0; e < N; ++e) {
      const auto& ids = neurons[e];
      const auto s = static_cast<int64_t>(ids.size());
      std::vector<float> ge, ue, de(static_cast<size_t>(D * s));
      for (int32_t j : ids) {
        ge.insert(ge.end(), gate.begin() + j * D, gate.begin() + (j + 1) * D);
        ue.insert(ue.end(), up.begin() + j * D, up.begin() + (j + 1) * D);
      }
      for (int64_t r = 0; r < D; ++r)
        for (int64_t i = 0; i < s; ++i) de[static_cast<size_t>(r * s + i)] = down[static_cast<size_t>(r * FF + ids[static_cast<size_t>(i)])];
      if (refit)  // its own generator: every other tensor stays as without `refit`
        for (auto& x : de) x += 0.2f * normal(refit_rng);
      store.push_back(std::move(ge));
      const auto* gp = store.back().data();
      store.push_back(std::move(ue));
      const auto* upp = store.back().data();
      store.push_back(std::move(de));
      const auto* dp = store.back().data();
      const std::string ep = p + "moe.";
      const std::string es = std::to_string(e);
      if (ep + "gate_proj_" + es + ".weight" != drop) w.add_tensor(ep + "gate_proj_" + es + ".weight", moe::TensorType::F32, {s, D}, gp);
      w.add_tensor(ep + "up_proj_" + es + ".weight", moe::TensorType::F32, {s, D}, upp);
      w.add_tensor(ep + "down_proj_" + es + ".weight", moe::TensorType::F32, {D, s}, dp);
      istore.push_back(ids);
      w.add_tensor(ep + "neurons_" + es, moe::TensorType::I32, {s}, istore.back().data());
    }
  }
  add("model.norm.weight", {D}, 0.1f, 1.0f);
  const std::string r = "cluster_predictor.";
  add(r + "embed.weight", {V, DR}, 1.0f);
  for (const char* m : {"q_proj_0", "k_proj_0", "v_proj_0", "o_proj_0"}) {
    add(r + m + ".weight", {DR, DR}, 0.4f);
    add(r + m + ".bias", {DR}, 0.1f);
  }
  add(r + "input_layernorm_0.weight", {DR}, 0.1f, 1.0f);
  add(r + "post_attention_layernorm_0.weight", {DR}, 0.1f, 1.0f);
  add(r + "proj_1_0.weight", {RI, DR}, 0.4f);
  add(r + "proj_1_0.bias", {RI}, 0.1f);
  add(r + "proj_2_0.weight", {DR, RI}, 0.4f);
  add(r + "proj_2_0.bias", {DR}, 0.1f);
  add(r + "out_layernorm.weight", {DR}, 0.1f, 1.0f);
  add(r + "proj_out.weight", {N, DR}, 2.0f);
  add(r + "proj_out.bias", {N}, 0.1f);
  w.write((dir / "model.safetensors").string());

  nlohmann::json c = {{"architectures", {"LlamaForCausalLM"}},
                      {"model_type", "llama"},
                      {"hidden_size", D},
                      {"intermediate_size", FF},
                      {"num_hidden_layers", L},
                      {"num_attention_heads", H},
                      {"num_key_value_heads", HKV},
                      {"head_dim", HD},
                      {"vocab_size", V},
                      {"max_position_embeddings", 128},
                      {"rms_norm_eps", 1e-5},
                      {"rope_theta", 10000.0},
                      {"tie_word_embeddings", true},
                      {"hidden_act", "silu"},
                      {"N_cluster", N},
                      {"n_layer", 1},
                      {"n_head", 2},
                      {"embedding_dim", DR},
                      {"inter_dim", RI},
                      {"normalizer", 1.0},
                      {"hidden_act_predictor", "silu"},
                      {"max_position_embeddings_predictor", 128},
                      {"readme", {{"experts", {"low", "high"}}, {"keep", 0.5}, {"router_rope_theta", 10000.0}, {"router_rms_eps", 1e-6}}}};
  std::ofstream(dir / "config.json") << c.dump(2);
  std::ofstream(dir / "tokenizer.json") << "{}";  // travels with the model; never parsed here
}

// Sequences of a learnable pattern: t, t+1, t+2, ... (mod V), from random starts.
std::vector<std::vector<int32_t>> token_sequences(int64_t n_seq, int64_t len) {
  std::mt19937 rng(5);
  std::vector<std::vector<int32_t>> out;
  for (int64_t s = 0; s < n_seq; ++s) {
    int32_t t = static_cast<int32_t>(rng() % V);
    out.emplace_back();
    for (int64_t i = 0; i < len; ++i) out.back().push_back((t + static_cast<int32_t>(i)) % static_cast<int32_t>(V));
  }
  return out;
}

void write_tokens(const fs::path& path, int64_t n_seq, int64_t len) {
  std::vector<int32_t> tokens, starts{0};
  for (const auto& seq : token_sequences(n_seq, len)) {
    tokens.insert(tokens.end(), seq.begin(), seq.end());
    starts.push_back(static_cast<int32_t>(tokens.size()));
  }
  moe::SafetensorsWriter w;
  w.add_tensor("tokens", moe::TensorType::I32, {static_cast<int64_t>(tokens.size())}, tokens.data());
  w.add_tensor("seq_start", moe::TensorType::I32, {static_cast<int64_t>(starts.size())}, starts.data());
  w.write(path.string());
}

std::vector<int32_t> prompt() {
  std::vector<int32_t> t;
  for (int i = 0; i < 20; ++i) t.push_back((i * 5 + 1) % static_cast<int32_t>(V));
  return t;
}

// The engine's Read-ME forward pass (router before the backbone, each token's expert FFN).
// With `dense`: the dense FFN (the teacher) instead of the routed experts.
std::vector<float> engine_logits(const fs::path& dir, const std::vector<int32_t>& tokens, std::vector<int32_t>* experts,
                                 bool dense = false) {
  moe::ReadMeModel model(dir.string());
  moe::ContextOptions opts;
  opts.n_ctx = 64;
  moe::LlamaContext ctx(model.backbone(), opts);
  auto router = moe::make_token_router(model, "router");
  if (!dense) ctx.set_routing(router.get(), &model);
  const float* z = ctx.forward(tokens.data(), static_cast<int64_t>(tokens.size()), 0);
  *experts = ctx.last_experts();
  return std::vector<float>(z, z + tokens.size() * V);
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(double(a[i]) - b[i]));
  return m;
}

void expect_agreement(const fs::path& dir, const char* what) {
  std::vector<int32_t> e_torch, e_engine;
  const auto tokens = prompt();
  const auto a = readme_logits(dir.string(), tokens, &e_torch);
  const auto b = engine_logits(dir, tokens, &e_engine);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(e_torch, e_engine) << what;
  int used[N] = {0, 0};
  for (int32_t e : e_torch) used[e] += 1;
  EXPECT_GT(used[0], 0) << what << ": the test router should use both experts";
  EXPECT_GT(used[1], 0) << what;
  const double max_diff = max_abs_diff(a, b);
  std::printf("Read-ME forward agreement (%s): max |engine - libtorch| = %.3g\n", what, max_diff);
  EXPECT_LT(max_diff, 1e-4) << what;
}

// The teacher: libtorch's dense-FFN forward against the engine's dense route.
void expect_dense_agreement(const fs::path& dir, const char* what) {
  std::vector<int32_t> unused;
  const auto tokens = prompt();
  const auto a = readme_logits(dir.string(), tokens, nullptr, 1, /*dense=*/true);
  const auto b = engine_logits(dir, tokens, &unused, /*dense=*/true);
  ASSERT_EQ(a.size(), b.size());
  const double max_diff = max_abs_diff(a, b);
  std::printf("dense teacher agreement (%s): max |engine - libtorch| = %.3g\n", what, max_diff);
  EXPECT_LT(max_diff, 1e-4) << what;
}

TEST(ExpertFinetune, LibtorchForwardAgreesWithEngine) {
  auto dir = temp_dir("agree");
  write_readme_dir(dir / "dense", true);
  write_readme_dir(dir / "experts_only", false);
  write_readme_dir(dir / "refit", true, "", /*refit=*/true);
  expect_agreement(dir / "dense", "with dense FFN");
  expect_agreement(dir / "experts_only", "experts only");
  expect_agreement(dir / "refit", "down_proj refitted, not the dense columns");
  expect_dense_agreement(dir / "dense", "dense");
  expect_dense_agreement(dir / "refit", "refit");
  // The refitted experts really differ from the masked dense FFN: the routed logits move, the
  // dense ones do not.
  const auto tokens = prompt();
  EXPECT_GT(max_abs_diff(readme_logits((dir / "dense").string(), tokens), readme_logits((dir / "refit").string(), tokens)), 1e-2);
  EXPECT_EQ(readme_logits((dir / "dense").string(), tokens, nullptr, 1, true),
            readme_logits((dir / "refit").string(), tokens, nullptr, 1, true));
  try {
    readme_logits((dir / "experts_only").string(), tokens, nullptr, 1, true);
    ADD_FAILURE() << "dense logits of a directory without a dense FFN";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("dense FFN"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

ExpertTrainOptions tiny(const fs::path& model, const fs::path& data, const fs::path& out) {
  ExpertTrainOptions o;
  o.model = model.string();
  o.data = data.string();
  o.out = out.string();
  o.steps = 40;
  o.lr = 1e-2;
  o.batch = 4;
  o.seq_len = 16;
  o.seed = 3;
  o.holdout = 0.25;
  o.progress = false;
  return o;
}

TEST(ExpertFinetune, TrainsReexportsAndKeepsFrozenTensors) {
  auto dir = temp_dir("train");
  write_readme_dir(dir / "in", false);
  write_tokens(dir / "tokens.safetensors", 16, 24);
  auto r = finetune_experts(tiny(dir / "in", dir / "tokens.safetensors", dir / "out"));
  std::printf("expert fine-tuning: loss %.3f -> %.3f, held-out %.3f -> %.3f (%lld tokens), %.1f ms/step\n", r.loss_first,
              r.loss_last, r.eval_loss_before, r.eval_loss_after, static_cast<long long>(r.eval_tokens), r.ms_per_step);
  EXPECT_EQ(r.loss.size(), 40u);
  EXPECT_LT(r.loss_last, r.loss_first);
  EXPECT_GT(r.eval_tokens, 0);
  EXPECT_LT(r.eval_loss_after, r.eval_loss_before);
  EXPECT_EQ(r.trainable_parameters, L * 3 * (16 + 16) * D);  // each expert's own gate/up/down
  EXPECT_TRUE(fs::exists(dir / "out" / "config.json"));
  EXPECT_TRUE(fs::exists(dir / "out" / "tokenizer.json"));

  moe::SafetensorsFile in((dir / "in" / "model.safetensors").string());
  moe::SafetensorsFile out((dir / "out" / "model.safetensors").string());
  ASSERT_EQ(in.tensors().size(), out.tensors().size());
  auto data_start = [](const moe::SafetensorsFile& f) {
    uint64_t m = UINT64_MAX;
    for (const auto& t : f.tensors()) m = std::min(m, t.file_offset);
    return m;
  };
  const uint64_t in0 = data_start(in), out0 = data_start(out);
  for (size_t i = 0; i < in.tensors().size(); ++i) {
    const auto& a = in.tensors()[i];
    const auto* b = out.find_tensor(a.name);
    ASSERT_NE(b, nullptr) << a.name;
    EXPECT_EQ(a.file_offset - in0, b->file_offset - out0) << a.name << ": same order and sizes";
    const bool same = a.bytes == b->bytes && std::memcmp(a.data, b->data, a.bytes) == 0;
    const bool expert_weight = a.name.find(".moe.") != std::string::npos && a.name.find("neurons") == std::string::npos;
    EXPECT_EQ(same, !expert_weight) << a.name << (expert_weight ? " should be trained" : " should be unchanged");
  }
  // Experts are trained as separate weights: neurons 8..15, copies of the same dense rows in both
  // experts before training, differ after it.
  for (int l = 0; l < L; ++l) {
    const auto* g0 = out.find_tensor(moe::expert_tensor_name(l, "gate", 0));
    const auto* g1 = out.find_tensor(moe::expert_tensor_name(l, "gate", 1));
    EXPECT_NE(std::memcmp(g0->data + 8 * D * 4, g1->data, 8 * D * 4), 0) << "layer " << l;
  }
  // The fine-tuned directory runs in the engine and both forward passes still agree.
  expect_agreement(dir / "out", "fine-tuned");
  fs::remove_all(dir);
}

TEST(ExpertFinetune, SameSeedSameFileAndAttentionOption) {
  auto dir = temp_dir("seed");
  write_readme_dir(dir / "in", true);
  write_tokens(dir / "tokens.safetensors", 8, 20);
  auto o = tiny(dir / "in", dir / "tokens.safetensors", dir / "a");
  o.steps = 5;
  finetune_experts(o);
  o.out = (dir / "b").string();
  finetune_experts(o);
  EXPECT_EQ(read_bytes(dir / "a" / "model.safetensors"), read_bytes(dir / "b" / "model.safetensors"));
  o.out = (dir / "c").string();
  o.train_attention = true;
  auto r = finetune_experts(o);
  EXPECT_EQ(r.trainable_parameters, L * (3 * 32 * D + (H + 2 * HKV) * HD * D + D * H * HD + 2 * D));
  moe::SafetensorsFile a((dir / "a" / "model.safetensors").string()), c((dir / "c" / "model.safetensors").string());
  const std::string q = "model.layers.0.self_attn.q_proj.weight";
  EXPECT_NE(std::memcmp(a.find_tensor(q)->data, c.find_tensor(q)->data, a.find_tensor(q)->bytes), 0);
  fs::remove_all(dir);
}

// Distillation from the dense FFN on a model whose experts were refitted: the held-out KL to the
// dense model falls, further than LM-only training takes it; the result still runs in the engine
// with the same logits; the dense FFN (the teacher) is left as it was.
TEST(ExpertFinetune, DistillationLowersHeldOutKl) {
  auto dir = temp_dir("distil");
  write_readme_dir(dir / "in", true, "", /*refit=*/true);
  write_tokens(dir / "tokens.safetensors", 16, 24);
  auto o = tiny(dir / "in", dir / "tokens.safetensors", dir / "kl");
  o.teacher = "dense";
  o.eval_every = 10;
  o.curve = (dir / "curve.csv").string();
  auto r = finetune_experts(o);
  std::printf("distillation: held-out KL %.4f -> %.4f, CE %.3f -> %.3f, %.0f tokens/s\n", r.eval_kl_before, r.eval_kl_after,
              r.eval_loss_before, r.eval_loss_after, r.tokens_per_second);
  EXPECT_TRUE(r.distilled);
  EXPECT_GT(r.eval_kl_before, 0.0);
  EXPECT_LT(r.eval_kl_after, 0.5 * r.eval_kl_before);
  EXPECT_LT(r.loss_last, r.loss_first);
  EXPECT_GT(r.tokens_per_second, 0.0);
  // The curve: step 0 and every 10 steps, KL falling overall.
  ASSERT_EQ(r.curve.size(), 5u);
  EXPECT_EQ(r.curve.front().step, 0);
  EXPECT_EQ(r.curve.back().step, 40);
  EXPECT_EQ(r.curve.back().train_tokens, 40 * 4 * 16);
  EXPECT_DOUBLE_EQ(r.curve.back().heldout_kl, r.eval_kl_after);
  EXPECT_TRUE(std::isnan(r.curve.front().train_loss));
  std::istringstream csv(read_bytes(dir / "curve.csv"));
  std::string line;
  std::vector<std::string> lines;
  while (std::getline(csv, line)) lines.push_back(line);
  ASSERT_EQ(lines.size(), 6u);
  EXPECT_EQ(lines[0], "step,train_tokens,train_loss,heldout_ce,heldout_kl,seconds");
  EXPECT_EQ(lines[1].rfind("0,0,,", 0), 0u) << lines[1];
  EXPECT_EQ(lines[5].rfind("40,2560,", 0), 0u) << lines[5];

  // LM-only training from the same start: the held-out KL is reported too, and distillation ends
  // closer to the teacher.
  o.teacher = "none";
  o.out = (dir / "lm").string();
  o.curve.clear();
  auto lm = finetune_experts(o);
  std::printf("LM only: held-out KL %.4f -> %.4f, CE %.3f -> %.3f\n", lm.eval_kl_before, lm.eval_kl_after, lm.eval_loss_before,
              lm.eval_loss_after);
  EXPECT_FALSE(lm.distilled);
  EXPECT_DOUBLE_EQ(lm.eval_kl_before, r.eval_kl_before);
  EXPECT_LT(r.eval_kl_after, lm.eval_kl_after);

  expect_agreement(dir / "kl", "distilled from refitted experts");

  // With attention trained too, the teacher keeps the original attention: the reported held-out
  // KL is KL(input's dense forward || output's routed forward), recomputed here window by window
  // (the last 4 of 16 sequences, windows of 16 tokens from each sequence's start).
  o.teacher = "dense";
  o.train_attention = true;
  o.out = (dir / "kl_attn").string();
  auto ra = finetune_experts(o);
  double kl = 0;
  int64_t count = 0;
  const auto seqs = token_sequences(16, 24);
  for (size_t q = 12; q < 16; ++q)
    for (size_t p = 0; p + 1 < seqs[q].size(); p += 16) {
      std::vector<int32_t> window(seqs[q].begin() + static_cast<std::ptrdiff_t>(p),
                                  seqs[q].begin() + static_cast<std::ptrdiff_t>(std::min(seqs[q].size(), p + 16)));
      const auto zt = readme_logits((dir / "in").string(), window, nullptr, 1, /*dense=*/true);
      const auto zs = readme_logits((dir / "kl_attn").string(), window);
      for (size_t t = 0; t + 1 < window.size(); ++t, ++count) {
        auto log_softmax = [&](const std::vector<float>& z) {
          std::vector<double> out(z.begin() + static_cast<std::ptrdiff_t>(t * V), z.begin() + static_cast<std::ptrdiff_t>((t + 1) * V));
          const double m = *std::max_element(out.begin(), out.end());
          double sum = 0;
          for (double x : out) sum += std::exp(x - m);
          for (double& x : out) x -= m + std::log(sum);
          return out;
        };
        const auto lt = log_softmax(zt), ls = log_softmax(zs);
        for (int64_t v = 0; v < V; ++v) kl += std::exp(lt[v]) * (lt[v] - ls[v]);
      }
    }
  EXPECT_EQ(count, ra.eval_tokens);
  EXPECT_NEAR(kl / static_cast<double>(count), ra.eval_kl_after, 1e-4 * std::max(1.0, ra.eval_kl_after));
  moe::SafetensorsFile in((dir / "in" / "model.safetensors").string()), out((dir / "kl" / "model.safetensors").string());
  for (const auto& t : in.tensors()) {
    if (t.name.find(".mlp.") == std::string::npos) continue;
    EXPECT_EQ(std::memcmp(t.data, out.find_tensor(t.name)->data, t.bytes), 0) << t.name << ": the teacher stays frozen";
  }
  fs::remove_all(dir);
}

// A run stopped after 2 steps and resumed from its checkpoint writes the same file as 4 steps in a
// row (distillation with attention trained: the optimizer state of both parameter groups, the
// sampler and the teacher's frozen attention all have to come back).
TEST(ExpertFinetune, ResumeGivesTheSameFileAsAnUninterruptedRun) {
  auto dir = temp_dir("resume");
  write_readme_dir(dir / "in", true, "", /*refit=*/true);
  write_tokens(dir / "tokens.safetensors", 8, 20);
  auto o = tiny(dir / "in", dir / "tokens.safetensors", dir / "straight");
  o.steps = 4;
  o.teacher = "dense";
  o.kl_weight = 0.7;
  o.train_attention = true;
  o.eval_every = 1;
  o.curve = (dir / "straight.csv").string();
  auto straight = finetune_experts(o);
  EXPECT_FALSE(fs::exists(dir / "straight.ckpt")) << "the checkpoint goes once the output is written";

  o.out = (dir / "resumed").string();
  o.curve = (dir / "resumed.csv").string();
  o.checkpoint_every = 1;
  o.stop_after = 2;
  auto first = finetune_experts(o);
  EXPECT_TRUE(first.stopped);
  EXPECT_FALSE(fs::exists(dir / "resumed"));
  ASSERT_TRUE(fs::exists(dir / "resumed.ckpt"));
  // Starting over on top of a checkpoint is refused; so is resuming with other options.
  o.stop_after = 0;
  try {
    finetune_experts(o);
    ADD_FAILURE() << "a fresh run over an existing checkpoint";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--resume"), std::string::npos) << e.what();
  }
  o.resume = true;
  auto other = o;
  other.lr = 2e-2;
  try {
    finetune_experts(other);
    ADD_FAILURE() << "resumed with another --lr";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--lr"), std::string::npos) << e.what();
  }
  // A row past the checkpoint (as if the first run had died after an eval) is dropped on resume.
  std::ofstream(o.curve, std::ios::app) << "3,999,1,1,1,1\n";
  auto second = finetune_experts(o);
  EXPECT_EQ(second.resumed_from, 2);
  EXPECT_FALSE(second.stopped);
  EXPECT_EQ(read_bytes(dir / "straight" / "model.safetensors"), read_bytes(dir / "resumed" / "model.safetensors"));
  EXPECT_EQ(second.loss, straight.loss);
  EXPECT_EQ(second.train_tokens, straight.train_tokens);
  EXPECT_EQ(second.eval_kl_after, straight.eval_kl_after);
  EXPECT_EQ(second.eval_loss_before, straight.eval_loss_before);
  EXPECT_FALSE(fs::exists(dir / "resumed.ckpt"));
  // The curves agree but for the seconds column.
  auto strip_seconds = [](const std::string& text) {
    std::istringstream in(text);
    std::string line, out;
    while (std::getline(in, line)) out += line.substr(0, line.rfind(',')) + "\n";
    return out;
  };
  EXPECT_EQ(strip_seconds(read_bytes(dir / "straight.csv")), strip_seconds(read_bytes(dir / "resumed.csv")));
  fs::remove_all(dir);
}

template <typename F>
void expect_error_containing(F f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no error, expected one mentioning " << needle;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}
// The same-active-size baseline (`moe prune`'s dense model, FFN cut to expert 0's 16 neurons)
// distilled from its unpruned parent with --teacher-model: the libtorch forward of the pruned
// model agrees with the engine's, distillation lowers the held-out KL, the output is a dense
// directory with only mlp.* changed, and the teacher must be the student's parent.
void write_pruned_dir(const fs::path& readme_dir, const fs::path& dir, bool perturb_embeddings = false) {
  fs::create_directories(dir);
  moe::SafetensorsFile in((readme_dir / "model.safetensors").string());
  std::deque<std::vector<float>> store;
  moe::SafetensorsWriter w;
  for (const auto& t : in.tensors()) {
    if (t.name.find(".moe.") != std::string::npos || t.name.rfind("cluster_predictor.", 0) == 0) continue;
    const float* x = reinterpret_cast<const float*>(t.data);
    std::vector<int64_t> shape(t.shape.rbegin(), t.shape.rend());
    if (t.name.find(".mlp.") != std::string::npos) {  // keep neurons 0..15 (expert 0's)
      const bool down = t.name.find("down_proj") != std::string::npos;
      store.emplace_back();
      if (down) {
        for (int64_t r = 0; r < D; ++r) store.back().insert(store.back().end(), x + r * FF, x + r * FF + 16);
        shape = {D, 16};
      } else {
        store.back().assign(x, x + 16 * D);
        shape = {16, D};
      }
    } else {
      store.emplace_back(x, x + t.bytes / sizeof(float));
      if (perturb_embeddings && t.name == "model.embed_tokens.weight") store.back()[0] += 1.0f;
    }
    w.add_tensor(t.name, moe::TensorType::F32, shape, store.back().data());
  }
  w.write((dir / "model.safetensors").string());
  nlohmann::json c = nlohmann::json::parse(read_bytes(readme_dir / "config.json"));
  for (const char* k : {"N_cluster", "n_layer", "n_head", "embedding_dim", "inter_dim", "normalizer", "hidden_act_predictor",
                        "max_position_embeddings_predictor", "readme"})
    c.erase(k);
  c["intermediate_size"] = 16;
  std::ofstream(dir / "config.json") << c.dump(2);
}

TEST(ExpertFinetune, PrunedDenseStudentDistilsFromItsParent) {
  auto dir = temp_dir("pruned");
  write_readme_dir(dir / "parent", true);
  write_pruned_dir(dir / "parent", dir / "pruned");
  write_tokens(dir / "tokens.safetensors", 16, 24);

  // libtorch's forward of the pruned model (its one FFN, no router) against the engine's.
  {
    const auto tokens = prompt();
    std::vector<int32_t> experts;
    const auto a = readme_logits((dir / "pruned").string(), tokens, &experts);
    moe::HfCheckpoint ck((dir / "pruned").string());
    moe::LlamaModel model(ck);
    moe::ContextOptions opts;
    opts.n_ctx = 64;
    moe::LlamaContext ctx(model, opts);
    const float* z = ctx.forward(tokens.data(), static_cast<int64_t>(tokens.size()), 0);
    const std::vector<float> b(z, z + tokens.size() * V);
    EXPECT_EQ(experts, std::vector<int32_t>(tokens.size(), 0));
    std::printf("pruned dense forward agreement: max |engine - libtorch| = %.3g\n", max_abs_diff(a, b));
    EXPECT_LT(max_abs_diff(a, b), 1e-4);
  }

  auto o = tiny(dir / "pruned", dir / "tokens.safetensors", dir / "out");
  o.teacher = "dense";
  expect_error_containing([&] { finetune_experts(o); }, "--teacher-model");  // no teacher of its own
  o.teacher_model = (dir / "parent").string();
  auto r = finetune_experts(o);
  std::printf("pruned baseline distillation: held-out KL %.4f -> %.4f, CE %.3f -> %.3f\n", r.eval_kl_before, r.eval_kl_after,
              r.eval_loss_before, r.eval_loss_after);
  EXPECT_TRUE(r.distilled);
  EXPECT_EQ(r.experts, std::vector<std::string>{"dense"});
  EXPECT_GT(r.eval_kl_before, 0.0);
  EXPECT_LT(r.eval_kl_after, 0.5 * r.eval_kl_before);
  // Only the pruned FFN is trained; the output stays a dense directory the engine opens.
  moe::SafetensorsFile in((dir / "pruned" / "model.safetensors").string()), out((dir / "out" / "model.safetensors").string());
  int changed = 0;
  for (const auto& t : in.tensors()) {
    const bool same = std::memcmp(t.data, out.find_tensor(t.name)->data, t.bytes) == 0;
    if (t.name.find(".mlp.") == std::string::npos) {
      EXPECT_TRUE(same) << t.name << " stays frozen";
    }
    changed += !same;
  }
  EXPECT_EQ(changed, 3 * L);
  EXPECT_NO_THROW(moe::HfCheckpoint((dir / "out").string()));

  // The teacher must be the parent: another embedding table is an error naming the tensor.
  write_pruned_dir(dir / "parent", dir / "other", /*perturb_embeddings=*/true);
  o.out = (dir / "out2").string();
  o.teacher_model = (dir / "other").string();
  expect_error_containing([&] { finetune_experts(o); }, "embed_tokens");
  o.teacher_model = (dir / "parent").string();
  o.teacher = "none";
  expect_error_containing([&] { finetune_experts(o); }, "--teacher-model needs --teacher dense");
  EXPECT_FALSE(fs::exists(dir / "out2"));
  fs::remove_all(dir);
}

TEST(ExpertFinetune, BadInputIsAnErrorAndLeavesNothing) {
  auto dir = temp_dir("bad");
  write_readme_dir(dir / "in", false);
  write_readme_dir(dir / "broken", false, "model.layers.1.moe.gate_proj_1.weight");
  write_tokens(dir / "tokens.safetensors", 4, 20);
  auto expect_error = [&](const ExpertTrainOptions& o, const std::string& needle) {
    expect_error_containing([&] { finetune_experts(o); }, needle);
  };
  auto o = tiny(dir / "in", dir / "tokens.safetensors", dir / "out");
  o.steps = 0;
  expect_error(o, "--steps");
  expect_error(tiny(dir / "broken", dir / "tokens.safetensors", dir / "out"), "gate_proj_1");
  expect_error(tiny(dir / "in", dir / "missing.safetensors", dir / "out"), "missing.safetensors");
  expect_error(tiny(dir / "in", dir / "tokens.safetensors", dir / "in"), "already exists");
  auto distil = tiny(dir / "in", dir / "tokens.safetensors", dir / "out");
  distil.teacher = "dense";  // "in" has no dense FFN
  expect_error(distil, "no dense FFN");
  distil.teacher = "big";
  expect_error(distil, "--teacher");
  distil.teacher = "none";
  distil.kl_weight = 1.5;
  expect_error(distil, "--kl-weight");
  auto resume = tiny(dir / "in", dir / "tokens.safetensors", dir / "out");
  resume.resume = true;
  expect_error(resume, "no checkpoint");
  resume.resume = false;
  resume.stop_after = 40;
  expect_error(resume, "--stop-after");
  EXPECT_FALSE(fs::exists(dir / "out"));
  for (const auto& entry : fs::directory_iterator(dir))
    EXPECT_EQ(entry.path().filename().string().find(".tmp."), std::string::npos) << entry.path();
  fs::remove_all(dir);
}

TEST(ExpertTrainCli, DistillationJsonCurveAndErrors) {
  auto dir = temp_dir("cli");
  write_readme_dir(dir / "dense", true, "", /*refit=*/true);
  write_readme_dir(dir / "experts_only", false);
  write_tokens(dir / "tokens.safetensors", 8, 20);
  const std::string bin = LOOKAHEAD_TRAIN_BINARY;
  auto run = [&](const std::string& args) {
    const std::string cmd = bin + " experts --data " + (dir / "tokens.safetensors").string() + " --seq-len 16 --batch 2 " + args +
                            " > " + (dir / "stdout").string() + " 2> " + (dir / "stderr").string();
    return std::system(cmd.c_str());
  };
  const std::string out = (dir / "out").string(), curve = (dir / "curve.csv").string();
  EXPECT_NE(run("--model " + (dir / "experts_only").string() + " --out " + out + " --teacher dense"), 0);
  EXPECT_NE(read_bytes(dir / "stderr").find("no dense FFN"), std::string::npos) << read_bytes(dir / "stderr");
  EXPECT_NE(run("--model " + (dir / "dense").string() + " --out " + out + " --resume"), 0);
  EXPECT_NE(read_bytes(dir / "stderr").find("out.ckpt"), std::string::npos) << read_bytes(dir / "stderr");
  ASSERT_EQ(run("--model " + (dir / "dense").string() + " --out " + out +
                " --steps 3 --stop-after 2 --teacher dense --kl-weight 0.5 --curve " + curve + " --eval-every 1"),
            0);
  EXPECT_NE(read_bytes(dir / "stdout").find("--resume"), std::string::npos) << read_bytes(dir / "stdout");
  ASSERT_EQ(run("--model " + (dir / "dense").string() + " --out " + out +
                " --steps 3 --teacher dense --kl-weight 0.5 --curve " + curve + " --eval-every 1 --resume --json"),
            0);
  const auto j = nlohmann::json::parse(read_bytes(dir / "stdout"));
  EXPECT_EQ(j.at("resumed_from"), 2);
  EXPECT_EQ(j.at("teacher"), "dense");
  EXPECT_EQ(j.at("loss").size(), 3u);
  EXPECT_EQ(j.at("curve").size(), 1u);  // this run's rows
  EXPECT_TRUE(j.at("eval_kl_after").is_number());
  EXPECT_TRUE(fs::exists(dir / "out" / "model.safetensors"));
  const std::string rows = read_bytes(curve);
  EXPECT_EQ(std::count(rows.begin(), rows.end(), '\n'), 5);  // header + steps 0..3
  fs::remove_all(dir);
}

}  // namespace
}  // namespace lookahead::train
