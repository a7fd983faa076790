// Read-ME expert fine-tuning (train/experts.h) on a tiny hand-built Read-ME directory: the libtorch
// backbone agrees with the engine's Read-ME forward pass, training lowers the loss and re-exports
// experts that still share the dense weights, frozen tensors stay byte-identical, same seed gives
// the same file, bad input is an error that leaves nothing behind.
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
void write_readme_dir(const fs::path& dir, bool dense, const std::string& drop = "") {
  fs::create_directories(dir);
  std::mt19937 rng(11);
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
void write_tokens(const fs::path& path, int64_t n_seq, int64_t len) {
  std::mt19937 rng(5);
  std::vector<int32_t> tokens, starts{0};
  for (int64_t s = 0; s < n_seq; ++s) {
    int32_t t = static_cast<int32_t>(rng() % V);
    for (int64_t i = 0; i < len; ++i) tokens.push_back((t + static_cast<int32_t>(i)) % static_cast<int32_t>(V));
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
std::vector<float> engine_logits(const fs::path& dir, const std::vector<int32_t>& tokens, std::vector<int32_t>* experts) {
  moe::ReadMeModel model(dir.string());
  moe::ContextOptions opts;
  opts.n_ctx = 64;
  moe::LlamaContext ctx(model.backbone(), opts);
  auto router = moe::make_token_router(model, "router");
  ctx.set_routing(router.get(), &model);
  const float* z = ctx.forward(tokens.data(), static_cast<int64_t>(tokens.size()), 0);
  *experts = ctx.last_experts();
  return std::vector<float>(z, z + tokens.size() * V);
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
  double max_diff = 0;
  for (size_t i = 0; i < a.size(); ++i) max_diff = std::max(max_diff, std::fabs(double(a[i]) - b[i]));
  std::printf("Read-ME forward agreement (%s): max |engine - libtorch| = %.3g\n", what, max_diff);
  EXPECT_LT(max_diff, 1e-4) << what;
}

TEST(ExpertFinetune, LibtorchForwardAgreesWithEngine) {
  auto dir = temp_dir("agree");
  write_readme_dir(dir / "dense", true);
  write_readme_dir(dir / "experts_only", false);
  expect_agreement(dir / "dense", "with dense FFN");
  expect_agreement(dir / "experts_only", "experts only");
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
  EXPECT_EQ(r.trainable_parameters, L * 3 * FF * D);
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
  // Shared neurons 8..15 stay shared: expert 0's rows 8..15 equal expert 1's rows 0..7.
  for (int l = 0; l < L; ++l) {
    const auto* g0 = out.find_tensor(moe::expert_tensor_name(l, "gate", 0));
    const auto* g1 = out.find_tensor(moe::expert_tensor_name(l, "gate", 1));
    EXPECT_EQ(std::memcmp(g0->data + 8 * D * 4, g1->data, 8 * D * 4), 0) << "layer " << l;
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
  EXPECT_EQ(r.trainable_parameters, L * (3 * FF * D + (H + 2 * HKV) * HD * D + D * H * HD + 2 * D));
  moe::SafetensorsFile a((dir / "a" / "model.safetensors").string()), c((dir / "c" / "model.safetensors").string());
  const std::string q = "model.layers.0.self_attn.q_proj.weight";
  EXPECT_NE(std::memcmp(a.find_tensor(q)->data, c.find_tensor(q)->data, a.find_tensor(q)->bytes), 0);
  fs::remove_all(dir);
}

TEST(ExpertFinetune, BadInputIsAnErrorAndLeavesNothing) {
  auto dir = temp_dir("bad");
  write_readme_dir(dir / "in", false);
  write_readme_dir(dir / "broken", false, "model.layers.1.moe.gate_proj_1.weight");
  write_tokens(dir / "tokens.safetensors", 4, 20);
  auto expect_error = [&](const ExpertTrainOptions& o, const std::string& needle) {
    try {
      finetune_experts(o);
      ADD_FAILURE() << "no error, expected one mentioning " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  auto o = tiny(dir / "in", dir / "tokens.safetensors", dir / "out");
  o.steps = 0;
  expect_error(o, "--steps");
  expect_error(tiny(dir / "broken", dir / "tokens.safetensors", dir / "out"), "gate_proj_1");
  expect_error(tiny(dir / "in", dir / "missing.safetensors", dir / "out"), "missing.safetensors");
  expect_error(tiny(dir / "in", dir / "tokens.safetensors", dir / "in"), "already exists");
  EXPECT_FALSE(fs::exists(dir / "out"));
  for (const auto& entry : fs::directory_iterator(dir))
    EXPECT_EQ(entry.path().filename().string().find(".tmp."), std::string::npos) << entry.path();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace lookahead::train
