#pragma once
// Small synthetic model files for the format tests: safetensors images and temp directories.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "common/temp_dir.h"

namespace lookahead::moe::format_test {

namespace fs = std::filesystem;

using lookahead::TempDir;

// The name of a fresh directory per test (TempDir removes it afterwards).
inline std::string test_dir_name() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return "lookahead_format_" + std::to_string(::getpid()) + "_" + info->test_suite_name() + "_" + info->name();
}

inline std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
inline void write_all(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

struct StTensor {
  std::string name;
  std::string dtype;           // "F32", "F16", "BF16", ...
  std::vector<int64_t> shape;  // row-major (PyTorch order)
  std::string bytes;
};

// A safetensors image laid out as the reference writer does (tensors back to back, header padded
// with spaces to 8 bytes).
inline std::string safetensors_image(const std::vector<StTensor>& tensors, const nlohmann::json& metadata = nullptr) {
  nlohmann::json header = nlohmann::json::object();
  std::string data;
  for (const auto& t : tensors) {
    header[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {data.size(), data.size() + t.bytes.size()}}};
    data += t.bytes;
  }
  if (!metadata.is_null()) header["__metadata__"] = metadata;
  std::string text = header.dump();
  while (text.size() % 8) text += ' ';
  uint64_t n = text.size();
  std::string out(reinterpret_cast<const char*>(&n), 8);
  return out + text + data;
}

inline std::string f32_bytes(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

// A tiny Llama checkpoint directory: hidden 8, 2 heads of 4 with 1 KV head, FFN 16, vocab 10.
struct TinyHf {
  int layers = 2;
  bool tied = false;
  nlohmann::json config;
  std::vector<StTensor> tensors;

  explicit TinyHf(uint32_t seed = 7, int n_layers = 2, bool tie = false) : layers(n_layers), tied(tie) {
    config = {{"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"}, {"hidden_size", 8},
              {"intermediate_size", 16}, {"num_hidden_layers", layers}, {"num_attention_heads", 2},
              {"num_key_value_heads", 1}, {"rms_norm_eps", 1e-5}, {"rope_theta", 100000.0},
              {"vocab_size", 10}, {"max_position_embeddings", 64}, {"tie_word_embeddings", tied}};
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    auto tensor = [&](const std::string& name, std::vector<int64_t> shape) {
      int64_t n = 1;
      for (auto d : shape) n *= d;
      std::vector<float> v(static_cast<size_t>(n));
      for (auto& x : v) x = normal(rng);
      tensors.push_back({name, "F32", shape, f32_bytes(v)});
    };
    tensor("model.embed_tokens.weight", {10, 8});
    for (int l = 0; l < layers; ++l) {
      std::string p = "model.layers." + std::to_string(l) + ".";
      tensor(p + "input_layernorm.weight", {8});
      tensor(p + "self_attn.q_proj.weight", {8, 8});
      tensor(p + "self_attn.k_proj.weight", {4, 8});
      tensor(p + "self_attn.v_proj.weight", {4, 8});
      tensor(p + "self_attn.o_proj.weight", {8, 8});
      tensor(p + "post_attention_layernorm.weight", {8});
      tensor(p + "mlp.gate_proj.weight", {16, 8});
      tensor(p + "mlp.up_proj.weight", {16, 8});
      tensor(p + "mlp.down_proj.weight", {8, 16});
    }
    tensor("model.norm.weight", {8});
    if (!tied) tensor("lm_head.weight", {10, 8});
  }
  StTensor* find(const std::string& name) {
    for (auto& t : tensors)
      if (t.name == name) return &t;
    return nullptr;
  }
  void erase(const std::string& name) {
    std::erase_if(tensors, [&](const StTensor& t) { return t.name == name; });
  }
  void write(const std::string& dir, bool with_tokenizer = true) const {
    write_all(dir + "/config.json", config.dump(2));
    write_all(dir + "/model.safetensors", safetensors_image(tensors, nlohmann::json{{"format", "pt"}}));
    if (with_tokenizer) write_all(dir + "/tokenizer.json", "{}");
  }
};

}  // namespace lookahead::moe::format_test
