// The fuzz seed corpora are written by tests/fuzz/make_corpus.py, an independent Python
// implementation of the GGUF and safetensors layouts; reading them here checks our readers
// against it (and keeps the seeds valid).
#include <gtest/gtest.h>

#include <cstring>

#include "moe/format/gguf.h"
#include "moe/format/safetensors.h"

namespace lookahead::moe {
namespace {

const std::string kCorpus = std::string(LOOKAHEAD_TEST_DATA) + "/../fuzz/corpus/";

TEST(FormatCorpus, GgufSeedsParse) {
  GgufFile empty(kCorpus + "gguf_fuzz/empty.gguf");
  EXPECT_TRUE(empty.tensors().empty());

  GgufFile tiny(kCorpus + "gguf_fuzz/llama_tiny.gguf");
  EXPECT_EQ(tiny.version(), 3u);
  EXPECT_EQ(tiny.get_string("general.architecture"), "llama");
  EXPECT_EQ(tiny.get_int("llama.attention.head_count_kv"), 1);
  EXPECT_FLOAT_EQ(static_cast<float>(tiny.get_float("llama.attention.layer_norm_rms_epsilon")), 1e-5f);
  EXPECT_EQ(tiny.get_string_array("tokenizer.ggml.tokens").at(3), "<|im_start|>");
  EXPECT_EQ(tiny.get_int_array("tokenizer.ggml.token_type"), (std::vector<int64_t>{1, 1, 1, 3}));
  EXPECT_FALSE(tiny.get_bool("tokenizer.ggml.add_bos_token"));
  ASSERT_EQ(tiny.tensors().size(), 6u);
  const auto& q = tiny.tensor("blk.0.attn_q.weight");
  EXPECT_EQ(q.type, TensorType::Q8_0);
  EXPECT_EQ(q.bytes, 32u * 34);
  EXPECT_EQ(tiny.tensor("token_embd.weight").type, TensorType::Q4_1);
  EXPECT_EQ(tiny.tensor("blk.0.attn_k.weight").type, TensorType::Q4_0);
  EXPECT_EQ(tiny.tensor("output.weight").type, TensorType::BF16);
  // The generator fills tensor bytes with (i * 7 + 3) % 61 from each tensor's start.
  for (const auto& t : tiny.tensors()) {
    EXPECT_EQ(t.file_offset % 32, 0u) << t.name;
    for (uint64_t i = 0; i < t.bytes; i += 97) ASSERT_EQ(t.data[i], (i * 7 + 3) % 61) << t.name << " byte " << i;
  }

  GgufFile every(kCorpus + "gguf_fuzz/every_type_v2.gguf");
  EXPECT_EQ(every.version(), 2u);
  EXPECT_EQ(every.alignment(), 64u);
  EXPECT_EQ(every.data_offset() % 64, 0u);
  EXPECT_EQ(every.get_int("u8"), 255);
  EXPECT_EQ(every.get_int("i8"), -1);
  EXPECT_EQ(every.get_int("u16"), 65535);
  EXPECT_EQ(every.get_int("i16"), -2);
  EXPECT_EQ(every.get_int("i32"), -3);
  EXPECT_EQ(every.get_int("u64"), int64_t{1} << 40);
  EXPECT_EQ(every.get_int("i64"), -(int64_t{1} << 40));
  EXPECT_EQ(every.get_float("f64"), 0.25);
  EXPECT_TRUE(every.get_bool("bool"));
  EXPECT_EQ(every.tensor("t").shape, (std::vector<int64_t>{3, 2}));
}

TEST(FormatCorpus, SafetensorsSeedsParse) {
  SafetensorsFile empty(kCorpus + "safetensors_fuzz/empty.safetensors");
  EXPECT_TRUE(empty.tensors().empty());
  SafetensorsFile tiny(kCorpus + "safetensors_fuzz/llama_tiny.safetensors");
  EXPECT_EQ(tiny.metadata().at("format"), "pt");
  ASSERT_EQ(tiny.tensors().size(), 4u);
  EXPECT_EQ(tiny.find_tensor("model.embed_tokens.weight")->shape, (std::vector<int64_t>{8, 4}));
  EXPECT_EQ(tiny.find_tensor("model.embed_tokens.weight")->type, TensorType::BF16);
  EXPECT_EQ(tiny.find_tensor("model.layers.0.self_attn.q_proj.weight")->bytes, 128u);
  SafetensorsFile odd(kCorpus + "safetensors_fuzz/scalar_and_empty.safetensors");
  EXPECT_EQ(odd.find_tensor("c")->shape, (std::vector<int64_t>{2, 1, 1, 1}));
  SafetensorsFile quantized(kCorpus + "safetensors_fuzz/quantized_blocks.safetensors");
  EXPECT_EQ(quantized.find_tensor("q8")->type, TensorType::Q8_0);
  EXPECT_EQ(quantized.find_tensor("q8")->shape, (std::vector<int64_t>{64, 2}));
  EXPECT_EQ(quantized.find_tensor("q4")->type, TensorType::Q4_1);
  EXPECT_EQ(quantized.find_tensor("q4")->shape, (std::vector<int64_t>{64, 1}));
  EXPECT_EQ(quantized.find_tensor("n")->type, TensorType::F32);
}

}  // namespace
}  // namespace lookahead::moe
