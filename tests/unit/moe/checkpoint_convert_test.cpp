// Conversion to GGUF: from HF directories (q/k permuted, llama.* keys, tokenizer keys) and from
// GGUF files (metadata copied, weights re-typed exactly as the quantizer would).
#include <gtest/gtest.h>

#include <cstring>

#include "common/error.h"
#include "moe/checkpoint/convert.h"
#include "moe/format/gguf.h"
#include "moe/format/gguf_writer.h"
#include "moe/checkpoint/model_source.h"
#include "moe/kernels/quantize.h"
#include "tests/unit/moe/format_test_files.h"

namespace lookahead::moe {
namespace {

using namespace format_test;
using nlohmann::json;

ConvertSummary convert(const std::string& model, const std::string& out, const std::string& type) {
  ConvertOptions o;
  o.model = model;
  o.out = out;
  o.type = parse_convert_type(type);
  o.progress = false;
  return convert_to_gguf(o);
}

std::vector<float> floats(const TensorView& t) {
  std::vector<float> v(static_cast<size_t>(t.elements()));
  for (int64_t r = 0; r < t.rows(); ++r)
    dequantize_row(t.type, t.data + r * row_bytes(t.type, t.shape[0]), v.data() + r * t.shape[0], t.shape[0]);
  return v;
}

TEST(FormatConvert, RopeRowPermutationMatchesLlamaCpp) {
  // numpy: w.reshape(n_head, 2, hd/2, ...).swapaxes(1, 2).reshape(w.shape), rows = 2 heads x 4.
  EXPECT_EQ(hf_to_gguf_rope_rows(8, 2), (std::vector<int64_t>{0, 2, 1, 3, 4, 6, 5, 7}));
  EXPECT_EQ(hf_to_gguf_rope_rows(6, 1), (std::vector<int64_t>{0, 3, 1, 4, 2, 5}));
}

TEST(FormatConvert, HfDirectoryToGgufF32) {
  TempDir dir(test_dir_name());
  std::string in = (dir.path() / "hf").string();
  std::filesystem::create_directories(in);
  TinyHf hf;
  hf.write(in, /*with_tokenizer=*/false);  // weights only: converts with a warning
  std::string out = dir.file("out.gguf");
  auto s = convert(in, out, "f32");
  EXPECT_EQ(s.tensors, 1u + 2 * 9 + 2);
  GgufFile g(out);
  EXPECT_EQ(g.get_string("general.architecture"), "llama");
  EXPECT_EQ(g.get_string("general.name"), "hf");
  EXPECT_EQ(g.get_int("llama.embedding_length"), 8);
  EXPECT_EQ(g.get_int("llama.feed_forward_length"), 16);
  EXPECT_EQ(g.get_int("llama.block_count"), 2);
  EXPECT_EQ(g.get_int("llama.attention.head_count"), 2);
  EXPECT_EQ(g.get_int("llama.attention.head_count_kv"), 1);
  EXPECT_EQ(g.get_int("llama.rope.dimension_count"), 4);
  EXPECT_EQ(g.get_int("llama.context_length"), 64);
  EXPECT_EQ(g.get_int("llama.vocab_size"), 10);
  EXPECT_FLOAT_EQ(static_cast<float>(g.get_float("llama.rope.freq_base")), 100000.0f);
  EXPECT_FLOAT_EQ(static_cast<float>(g.get_float("llama.attention.layer_norm_rms_epsilon")), 1e-5f);
  EXPECT_EQ(g.metadata().at("llama.block_count").type, GgufValueType::UINT32);
  EXPECT_EQ(g.metadata().at("llama.rope.freq_base").type, GgufValueType::FLOAT32);
  EXPECT_EQ(g.get_int("general.file_type"), 0);
  EXPECT_FALSE(g.has("tokenizer.ggml.model"));

  // q: 2 heads of 4 rows; k: 1 KV head of 4 rows, permuted like llama.cpp's converter.
  auto check_rows = [&](const std::string& gguf, const std::string& hfname, int64_t heads) {
    const TensorView& t = g.tensor(gguf);
    const StTensor* src = hf.find(hfname);
    auto perm = hf_to_gguf_rope_rows(t.rows(), heads);
    const int64_t rb = t.shape[0] * 4;
    for (int64_t r = 0; r < t.rows(); ++r)
      EXPECT_EQ(std::memcmp(t.data + r * rb, src->bytes.data() + perm[r] * rb, rb), 0) << gguf << " row " << r;
  };
  check_rows("blk.0.attn_q.weight", "model.layers.0.self_attn.q_proj.weight", 2);
  check_rows("blk.1.attn_k.weight", "model.layers.1.self_attn.k_proj.weight", 1);
  // Everything else is copied unchanged.
  const TensorView& v = g.tensor("blk.1.attn_v.weight");
  EXPECT_EQ(v.shape, (std::vector<int64_t>{8, 4}));
  EXPECT_EQ(std::memcmp(v.data, hf.find("model.layers.1.self_attn.v_proj.weight")->bytes.data(), v.bytes), 0);
  EXPECT_EQ(g.tensor("output.weight").shape, (std::vector<int64_t>{8, 10}));

  // The result is a valid GGUF llama model for our own loader too.
  auto source = open_model(out);
  EXPECT_EQ(source->hparams().n_head_kv, 1);
  EXPECT_FALSE(source->hparams().rope_neox);
}

TEST(FormatConvert, HfTokenizerKeys) {
  TempDir dir(test_dir_name());
  std::string in = (dir.path() / "hf").string();
  std::filesystem::create_directories(in);
  TinyHf hf;
  hf.write(in);
  json tok = {{"model", {{"type", "BPE"}, {"vocab", {{"a", 0}, {"b", 1}, {"ab", 2}}}, {"merges", {"a b"}}}},
              {"added_tokens", {{{"id", 3}, {"content", "<|im_start|>"}, {"special", true}},
                                {{"id", 4}, {"content", "<|im_end|>"}, {"special", true}},
                                {{"id", 5}, {"content", "word"}, {"special", false}}}},
              {"pre_tokenizer", {{"type", "Sequence"},
                                 {"pretokenizers", {{{"type", "Digits"}, {"individual_digits", true}},
                                                    {{"type", "ByteLevel"}}}}}},
              {"decoder", {{"type", "ByteLevel"}}}};
  write_all(in + "/tokenizer.json", tok.dump());
  write_all(in + "/tokenizer_config.json",
            json{{"bos_token", "<|im_start|>"}, {"eos_token", {{"content", "<|im_end|>"}}}, {"add_bos_token", false},
                 {"chat_template", "{{ messages }}"}}
                .dump());
  std::string out = dir.file("out.gguf");
  convert(in, out, "f16");
  GgufFile g(out);
  EXPECT_EQ(g.get_string("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(g.get_string("tokenizer.ggml.pre"), "smollm");
  auto tokens = g.get_string_array("tokenizer.ggml.tokens");
  ASSERT_EQ(tokens.size(), 10u);  // padded to vocab_size
  EXPECT_EQ(tokens[2], "ab");
  EXPECT_EQ(tokens[3], "<|im_start|>");
  EXPECT_EQ(tokens[9], "[PAD9]");
  EXPECT_EQ(g.get_int_array("tokenizer.ggml.token_type"), (std::vector<int64_t>{1, 1, 1, 3, 3, 4, 5, 5, 5, 5}));
  EXPECT_EQ(g.get_string_array("tokenizer.ggml.merges"), (std::vector<std::string>{"a b"}));
  EXPECT_EQ(g.get_int("tokenizer.ggml.bos_token_id"), 3);
  EXPECT_EQ(g.get_int("tokenizer.ggml.eos_token_id"), 4);
  EXPECT_FALSE(g.get_bool("tokenizer.ggml.add_bos_token"));
  EXPECT_EQ(g.get_string("tokenizer.chat_template"), "{{ messages }}");
  EXPECT_EQ(g.get_int("general.file_type"), 1);
  EXPECT_EQ(g.tensor("blk.0.ffn_up.weight").type, TensorType::F16);
  EXPECT_EQ(g.tensor("blk.0.ffn_norm.weight").type, TensorType::F32);
}

// A GGUF source with 64-wide rows (quantizable), one 8-wide matrix (falls back) and a norm.
std::string write_gguf_source(const TempDir& dir, std::vector<float>& w) {
  GgufWriter writer;
  writer.set("general.architecture", gguf_string("llama"));
  writer.set("custom.key", gguf_string_array({"kept"}));
  w.resize(64 * 3);
  for (size_t i = 0; i < w.size(); ++i) w[i] = std::sin(0.37f * static_cast<float>(i)) * 3.0f;
  static std::vector<float> small(8 * 2, 0.5f), norm(64, 1.25f);
  writer.add_tensor("w.weight", TensorType::F32, {64, 3}, w.data(), w.size() * 4);
  writer.add_tensor("small.weight", TensorType::F32, {8, 2}, small.data(), small.size() * 4);
  writer.add_tensor("norm.weight", TensorType::F32, {64}, norm.data(), norm.size() * 4);
  std::string path = dir.file("src.gguf");
  writer.write(path);
  return path;
}

TEST(FormatConvert, GgufToQ8_0IsExactQuantization) {
  TempDir dir(test_dir_name());
  std::vector<float> w;
  std::string src = write_gguf_source(dir, w);
  auto s = convert(src, dir.file("q8.gguf"), "q8_0");
  EXPECT_EQ(s.fallbacks, 1u);
  GgufFile g(dir.file("q8.gguf"));
  EXPECT_EQ(g.get_string_array("custom.key"), (std::vector<std::string>{"kept"}));
  EXPECT_EQ(g.get_int("general.file_type"), 7);
  EXPECT_EQ(g.get_int("general.quantization_version"), 2);
  const TensorView& t = g.tensor("w.weight");
  ASSERT_EQ(t.type, TensorType::Q8_0);
  std::vector<uint8_t> expect(static_cast<size_t>(row_bytes(TensorType::Q8_0, 64) * 3));
  for (int r = 0; r < 3; ++r) quantize_row(TensorType::Q8_0, w.data() + r * 64, expect.data() + r * 68, 64);
  ASSERT_EQ(t.bytes, expect.size());
  EXPECT_EQ(std::memcmp(t.data, expect.data(), t.bytes), 0);
  auto back = floats(t);
  for (size_t i = 0; i < w.size(); ++i) EXPECT_NEAR(back[i], w[i], 3.0f / 127) << i;
  EXPECT_EQ(g.tensor("small.weight").type, TensorType::F16);
  EXPECT_EQ(g.tensor("norm.weight").type, TensorType::F32);
  EXPECT_EQ(floats(g.tensor("norm.weight"))[63], 1.25f);

  // Q8_0 -> keep copies bytes; Q8_0 -> f32 dequantizes exactly.
  convert(dir.file("q8.gguf"), dir.file("keep.gguf"), "keep");
  GgufFile k(dir.file("keep.gguf"));
  EXPECT_EQ(k.tensor("w.weight").type, TensorType::Q8_0);
  EXPECT_EQ(std::memcmp(k.tensor("w.weight").data, expect.data(), expect.size()), 0);
  EXPECT_EQ(k.get_int("general.file_type"), 7);
  convert(dir.file("q8.gguf"), dir.file("f32.gguf"), "F32");
  GgufFile f(dir.file("f32.gguf"));
  EXPECT_EQ(floats(f.tensor("w.weight")), back);
  EXPECT_FALSE(f.has("general.quantization_version"));
  EXPECT_EQ(f.get_int("general.file_type"), 0);
}

TEST(FormatConvert, BadInputLeavesNoOutput) {
  TempDir dir(test_dir_name());
  EXPECT_THROW(parse_convert_type("q5_k"), Error);
  EXPECT_THROW(convert(dir.file("missing.gguf"), dir.file("o.gguf"), "f16"), Error);
  std::string in = (dir.path() / "hf").string();
  std::filesystem::create_directories(in);
  TinyHf hf;
  hf.find("model.norm.weight")->shape = {4, 2};
  hf.write(in);
  try {
    convert(in, dir.file("o.gguf"), "f16");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.norm.weight"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(dir.file("o.gguf")));
  for (const auto& entry : std::filesystem::directory_iterator(dir.path()))
    EXPECT_EQ(entry.path().filename().string().find(".tmp."), std::string::npos) << entry.path();
}

}  // namespace
}  // namespace lookahead::moe
