// Hugging Face checkpoint directories: names map onto GGUF names, shapes come back in GGML order
// with the bytes untouched, and every inconsistency names the file, tensor and config.json field.
#include <gtest/gtest.h>

#include <cstring>

#include "common/error.h"
#include "moe/checkpoint/hf_checkpoint.h"
#include "tests/unit/moe/format_test_files.h"

namespace lookahead::moe {
namespace {

using namespace format_test;

std::string error_of(const std::string& dir) {
  try {
    HfCheckpoint c(dir);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

void expect_contains(const std::string& msg, const std::vector<std::string>& parts) {
  for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
}

TEST(FormatHfCheckpoint, MapsNamesShapesAndHparams) {
  TempDir dir(test_dir_name());
  TinyHf hf;
  hf.write(dir.path().string());
  auto source = open_model(dir.path().string());
  const auto& hp = source->hparams();
  EXPECT_EQ(hp.n_embd, 8);
  EXPECT_EQ(hp.n_ff, 16);
  EXPECT_EQ(hp.n_layer, 2);
  EXPECT_EQ(hp.n_head, 2);
  EXPECT_EQ(hp.n_head_kv, 1);
  EXPECT_EQ(hp.head_dim, 4);
  EXPECT_EQ(hp.n_vocab, 10);
  EXPECT_EQ(hp.n_ctx_train, 64);
  EXPECT_FLOAT_EQ(hp.rms_eps, 1e-5f);
  EXPECT_FLOAT_EQ(hp.rope_theta, 100000.0f);
  EXPECT_TRUE(hp.rope_neox);
  EXPECT_FALSE(hp.tied_embeddings);

  const auto& k = source->tensor("blk.1.attn_k.weight");
  EXPECT_EQ(k.shape, (std::vector<int64_t>{8, 4}));  // HF [4, 8]
  EXPECT_EQ(k.type, TensorType::F32);
  const auto* src = hf.find("model.layers.1.self_attn.k_proj.weight");
  ASSERT_EQ(k.bytes, src->bytes.size());
  EXPECT_EQ(std::memcmp(k.data, src->bytes.data(), k.bytes), 0);
  EXPECT_EQ(source->tensor("blk.0.ffn_down.weight").shape, (std::vector<int64_t>{16, 8}));
  EXPECT_EQ(source->tensor("output.weight").shape, (std::vector<int64_t>{8, 10}));
  EXPECT_NE(source->find_tensor("blk.0.ffn_norm.weight"), nullptr);
  EXPECT_EQ(source->find_tensor("blk.2.ffn_norm.weight"), nullptr);

  auto& ckpt = dynamic_cast<HfCheckpoint&>(*source);
  EXPECT_EQ(ckpt.tensors().size(), 1u + 2 * 9 + 2);
  EXPECT_EQ(ckpt.tensors().front().name, "token_embd.weight");
  EXPECT_EQ(ckpt.hf_name("blk.0.attn_output.weight"), "model.layers.0.self_attn.o_proj.weight");
}

TEST(FormatHfCheckpoint, TiedEmbeddingsAndDefaults) {
  TempDir dir(test_dir_name());
  TinyHf hf(3, 1, true);
  hf.config.erase("num_key_value_heads");  // defaults to num_attention_heads
  hf.config.erase("rope_theta");
  hf.find("model.layers.0.self_attn.k_proj.weight")->shape = {8, 8};
  hf.find("model.layers.0.self_attn.k_proj.weight")->bytes = std::string(256, '\0');
  hf.find("model.layers.0.self_attn.v_proj.weight")->shape = {8, 8};
  hf.find("model.layers.0.self_attn.v_proj.weight")->bytes = std::string(256, '\0');
  hf.write(dir.path().string());
  HfCheckpoint c(dir.path().string());
  EXPECT_TRUE(c.hparams().tied_embeddings);
  EXPECT_EQ(c.hparams().n_head_kv, 2);
  EXPECT_FLOAT_EQ(c.hparams().rope_theta, 10000.0f);
  EXPECT_EQ(c.find_tensor("output.weight"), nullptr);
}

TEST(FormatHfCheckpoint, ShapeDisagreeingWithConfigNamesFieldAndTensor) {
  TempDir dir(test_dir_name());
  TinyHf hf;
  hf.find("model.layers.1.mlp.gate_proj.weight")->shape = {8, 16};  // transposed
  hf.write(dir.path().string());
  expect_contains(error_of(dir.path().string()),
                  {"model.safetensors", "model.layers.1.mlp.gate_proj.weight", "[8, 16]", "intermediate_size=16",
                   "hidden_size=8", "config.json"});
}

TEST(FormatHfCheckpoint, ConfigDisagreeingWithTensors) {
  TempDir dir(test_dir_name());
  TinyHf hf;
  hf.config["num_key_value_heads"] = 2;
  hf.write(dir.path().string());
  expect_contains(error_of(dir.path().string()),
                  {"model.layers.0.self_attn.k_proj.weight", "num_key_value_heads*head_dim=8"});
}

TEST(FormatHfCheckpoint, MissingTensor) {
  TempDir dir(test_dir_name());
  TinyHf hf;
  hf.erase("model.layers.1.mlp.up_proj.weight");
  hf.write(dir.path().string());
  expect_contains(error_of(dir.path().string()), {dir.path().string(), "missing tensor", "model.layers.1.mlp.up_proj.weight"});
  TinyHf untied;
  untied.erase("lm_head.weight");
  untied.write(dir.path().string());
  expect_contains(error_of(dir.path().string()), {"lm_head.weight", "tie_word_embeddings"});
}

TEST(FormatHfCheckpoint, ExtraOrUnknownTensors) {
  TempDir dir(test_dir_name());
  TinyHf hf;
  hf.tensors.push_back({"model.layers.0.self_attn.q_proj.bias", "F32", {8}, std::string(32, '\0')});
  hf.write(dir.path().string());
  expect_contains(error_of(dir.path().string()), {"model.layers.0.self_attn.q_proj.bias", "no GGUF counterpart"});
  TinyHf more(7, 3);
  more.config["num_hidden_layers"] = 2;
  more.write(dir.path().string());
  expect_contains(error_of(dir.path().string()), {"model.layers.2.", "num_hidden_layers"});
  TinyHf inv;
  inv.tensors.push_back({"model.layers.0.self_attn.rotary_emb.inv_freq", "F32", {2}, std::string(8, '\0')});
  inv.write(dir.path().string());
  EXPECT_NO_THROW(HfCheckpoint(dir.path().string()));
}

TEST(FormatHfCheckpoint, BadConfig) {
  TempDir dir(test_dir_name());
  std::string d = dir.path().string();
  expect_contains(error_of(d), {"missing config.json"});
  TinyHf hf;
  hf.config.erase("hidden_size");
  hf.write(d);
  expect_contains(error_of(d), {"config.json", "'hidden_size'"});
  hf.config["hidden_size"] = -8;
  hf.write(d);
  expect_contains(error_of(d), {"config.json", "'hidden_size'", "positive integer"});
  hf.config["hidden_size"] = 8;
  hf.config["architectures"] = {"GPT2LMHeadModel"};
  hf.write(d);
  expect_contains(error_of(d), {"config.json", "'architectures'", "GPT2LMHeadModel"});
  hf.config["architectures"] = {"MistralForCausalLM"};
  hf.config["rope_scaling"] = {{"type", "llama3"}};
  hf.write(d);
  expect_contains(error_of(d), {"config.json", "'rope_scaling'"});
  hf.config.erase("rope_scaling");
  hf.config["num_attention_heads"] = 3;
  hf.write(d);
  expect_contains(error_of(d), {"config.json", "num_attention_heads"});
  write_all(d + "/config.json", "{not json");
  expect_contains(error_of(d), {"config.json", "not valid JSON"});
}

TEST(FormatHfCheckpoint, MissingWeightsAndTokenizer) {
  TempDir dir(test_dir_name());
  std::string d = dir.path().string();
  TinyHf hf;
  hf.write(d, /*with_tokenizer=*/false);
  HfCheckpoint c(d);
  try {
    c.tokenizer();
    FAIL();
  } catch (const Error& e) {
    expect_contains(e.what(), {d, "missing tokenizer", "tokenizer.json", "tokenizer.model"});
  }
  std::filesystem::remove(d + "/model.safetensors");
  expect_contains(error_of(d), {d, "model.safetensors"});
}

TEST(FormatHfCheckpoint, NameMapping) {
  EXPECT_EQ(gguf_name_of_hf("model.layers.12.mlp.down_proj.weight"), "blk.12.ffn_down.weight");
  EXPECT_EQ(gguf_name_of_hf("model.layers.0.input_layernorm.weight"), "blk.0.attn_norm.weight");
  EXPECT_EQ(gguf_name_of_hf("model.layers.0.post_attention_layernorm.weight"), "blk.0.ffn_norm.weight");
  EXPECT_EQ(gguf_name_of_hf("model.embed_tokens.weight"), "token_embd.weight");
  EXPECT_EQ(gguf_name_of_hf("model.norm.weight"), "output_norm.weight");
  EXPECT_EQ(gguf_name_of_hf("lm_head.weight"), "output.weight");
  EXPECT_EQ(gguf_name_of_hf("model.layers.x.mlp.down_proj.weight"), "");
  EXPECT_EQ(gguf_name_of_hf("model.layers.01.mlp.down_proj.weight"), "");
  EXPECT_EQ(gguf_name_of_hf("model.layers.1.mlp.down_proj.bias"), "");
}

}  // namespace
}  // namespace lookahead::moe
