// safetensors: tensors come back with GGML-order shapes and the right bytes; every malformed
// header is a lookahead::Error naming the file and tensor; sharded checkpoints via weight_map.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "moe/format/safetensors.h"
#include "moe/format/safetensors_writer.h"
#include "moe/kernels/quantize.h"
#include "tests/unit/moe/format_test_files.h"

namespace lookahead::moe {
namespace {

using namespace format_test;
using nlohmann::json;

SafetensorsFile parse(const std::string& image) {
  return SafetensorsFile("img.safetensors", reinterpret_cast<const uint8_t*>(image.data()), image.size());
}

void expect_error(const std::string& image, const std::vector<std::string>& parts) {
  try {
    parse(image);
    FAIL() << "no error";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("img.safetensors"), std::string::npos) << msg;
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  }
}

// Raw image with a hand-written header (no padding, data appended).
std::string raw(const std::string& header, size_t data_bytes) {
  uint64_t n = header.size();
  return std::string(reinterpret_cast<const char*>(&n), 8) + header + std::string(data_bytes, '\0');
}

TEST(FormatSafetensors, ReadsTensorsWithReversedShape) {
  std::vector<float> w(6);
  for (int i = 0; i < 6; ++i) w[i] = static_cast<float>(i);
  std::string image = safetensors_image({{"w", "F32", {2, 3}, f32_bytes(w)},
                                         {"h", "F16", {4}, std::string(8, '\1')},
                                         {"b", "BF16", {1, 2, 2}, std::string(8, '\2')}},
                                        json{{"format", "pt"}});
  auto f = parse(image);
  ASSERT_EQ(f.tensors().size(), 3u);
  const TensorView* t = f.find_tensor("w");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->type, TensorType::F32);
  EXPECT_EQ(t->shape, (std::vector<int64_t>{3, 2}));  // [out=2, in=3] -> GGML {3, 2}
  EXPECT_EQ(t->rows(), 2);
  EXPECT_EQ(t->bytes, 24u);
  float row1[3];
  std::memcpy(row1, t->data + 12, 12);
  EXPECT_EQ(row1[0], 3.0f);
  EXPECT_EQ(row1[2], 5.0f);
  EXPECT_EQ(f.find_tensor("h")->type, TensorType::F16);
  EXPECT_EQ(f.find_tensor("b")->shape, (std::vector<int64_t>{2, 2, 1}));
  EXPECT_EQ(f.find_tensor("b")->type, TensorType::BF16);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.find_tensor("nope"), nullptr);
}

TEST(FormatSafetensors, RejectsMalformedHeaders) {
  expect_error("abc", {"truncated"});
  expect_error(raw("{}", 0).substr(0, 9), {"truncated"});
  std::string huge(8, '\xff');
  expect_error(huge + "{}", {"header length"});
  expect_error(raw("{\"a\": ", 0), {"not valid JSON"});
  expect_error(raw("[1]", 0), {"not a JSON object"});
  expect_error(raw(std::string(100, '[') + std::string(100, ']'), 0), {"nested too deeply"});
  expect_error(raw(R"({"w": {"dtype": "I64", "shape": [2], "data_offsets": [0, 16]}})", 16), {"'w'", "I64", "F32"});
  expect_error(raw(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 16]}})", 16), {"'w'", "needs 8 bytes"});
  expect_error(raw(R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", 8), {"'w'", "past the end"});
  expect_error(raw(R"({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", 4), {"'w'", "shape"});
  expect_error(raw(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}})", 4), {"'w'", "begin"});
  expect_error(raw(R"({"w": {"dtype": "F32", "shape": [1]}})", 4), {"'w'", "data_offsets"});
  expect_error(raw(R"({"w": {"shape": [1], "data_offsets": [0, 4]}})", 4), {"'w'", "dtype"});
  expect_error(raw(R"({"w": 3})", 0), {"'w'"});
  expect_error(raw(R"({"__metadata__": {"k": 1}})", 0), {"__metadata__", "'k'"});
  expect_error(raw(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                      "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                   12),
               {"overlap", "'a'", "'b'"});
  expect_error(raw(R"({"w": {"dtype": "F32", "shape": [1099511627776, 1099511627776], "data_offsets": [0, 4]}})", 4),
               {"'w'", "too large"});
}

// Quantized tensors: GGML blocks stored as U8 [rows, row bytes] and declared in __metadata__
// (safetensors.h). Written by SafetensorsWriter, read back as the declared type and value shape,
// bytes identical to quantize_row's.
TEST(FormatSafetensors, QuantizedBlocksRoundTripThroughTheWriter) {
  const int64_t rows = 3, cols = 64;
  std::vector<float> values(static_cast<size_t>(rows * cols));
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i % 17) * 0.25f - 2.0f;
  std::vector<std::vector<uint8_t>> expected;
  const std::vector<TensorType> types = {TensorType::Q8_0, TensorType::Q4_0, TensorType::Q4_1};
  for (TensorType type : types) {
    std::vector<uint8_t> q(static_cast<size_t>(rows * row_bytes(type, cols)));
    for (int64_t r = 0; r < rows; ++r)
      quantize_row(type, values.data() + r * cols, q.data() + r * row_bytes(type, cols), cols);
    expected.push_back(std::move(q));
  }
  const std::string dir = ::testing::TempDir() + "/quantized_st_" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/q.safetensors";
  SafetensorsWriter w;
  w.set_metadata("format", "pt");
  EXPECT_THROW(w.set_metadata(kGgmlTypesKey, "{}"), Error);  // reserved: derived from the tensors
  w.add_tensor("q8", TensorType::Q8_0, {rows, cols}, expected[0].data());
  w.add_tensor("f", TensorType::F32, {rows, cols}, values.data());
  w.add_tensor("q4_0", TensorType::Q4_0, {rows, cols}, expected[1].data());
  w.add_tensor("q4_1", TensorType::Q4_1, {rows, cols}, expected[2].data());
  EXPECT_THROW(w.add_tensor("odd", TensorType::Q8_0, {2, 48}, expected[0].data()), Error);  // 48 % 32 != 0
  w.write(path);

  SafetensorsFile f(path);
  const char* names[] = {"q8", "q4_0", "q4_1"};
  for (size_t i = 0; i < types.size(); ++i) {
    const TensorView* t = f.find_tensor(names[i]);
    ASSERT_NE(t, nullptr) << names[i];
    EXPECT_EQ(t->type, types[i]) << names[i];
    EXPECT_EQ(t->shape, (std::vector<int64_t>{cols, rows})) << names[i];
    ASSERT_EQ(t->bytes, expected[i].size()) << names[i];
    EXPECT_EQ(std::memcmp(t->data, expected[i].data(), expected[i].size()), 0) << names[i];
  }
  EXPECT_EQ(f.find_tensor("f")->type, TensorType::F32);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(json::parse(f.metadata().at(kGgmlTypesKey)),
            (json{{"q8", "Q8_0"}, {"q4_0", "Q4_0"}, {"q4_1", "Q4_1"}}));

  // What a plain safetensors reader sees: U8 rows of bytes.
  std::ifstream in(path, std::ios::binary);
  uint64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), 8);
  std::string header(n, '\0');
  in.read(header.data(), static_cast<std::streamsize>(n));
  const json h = json::parse(header);
  EXPECT_EQ(h["q8"]["dtype"], "U8");
  EXPECT_EQ(h["q8"]["shape"], (json{rows, 68}));
  EXPECT_EQ(h["q4_1"]["shape"], (json{rows, 40}));
  std::filesystem::remove_all(dir);
}

TEST(FormatSafetensors, QuantizedDeclarationsAreChecked) {
  auto with_types = [](const std::string& types, const std::string& tensors, size_t bytes) {
    json meta = {{"ggml_types", types}};
    return raw("{\"__metadata__\": " + meta.dump() + (tensors.empty() ? "" : ", " + tensors) + "}", bytes);
  };
  const std::string u8_68 = R"("w": {"dtype": "U8", "shape": [1, 68], "data_offsets": [0, 68]})";
  EXPECT_EQ(parse(with_types(R"({"w": "Q8_0"})", u8_68, 68)).find_tensor("w")->shape, (std::vector<int64_t>{64, 1}));
  expect_error(raw("{" + u8_68 + "}", 68), {"'w'", "U8", "ggml_types"});           // undeclared U8
  expect_error(with_types(R"({"w": "Q8_0"})", R"("w": {"dtype": "F32", "shape": [17], "data_offsets": [0, 68]})", 68),
               {"'w'", "Q8_0", "stored as F32"});
  expect_error(with_types(R"({"w": "Q8_0"})", R"("w": {"dtype": "U8", "shape": [1, 60], "data_offsets": [0, 60]})", 60),
               {"'w'", "34-byte block"});
  expect_error(with_types(R"({"w": "Q8_0"})", R"("w": {"dtype": "U8", "shape": [], "data_offsets": [0, 1]})", 1),
               {"'w'", "block"});
  expect_error(with_types(R"({"w": "Q5_K"})", u8_68, 68), {"'w'", "Q5_K"});
  expect_error(with_types(R"({"w": 8})", u8_68, 68), {"'w'", "not a string"});
  expect_error(with_types(R"(["w"])", u8_68, 68), {"ggml_types", "object"});
  expect_error(with_types(R"({"w": {"t": "Q8_0"}})", u8_68, 68), {"ggml_types", "flat"});
  expect_error(with_types(R"({"w": )", u8_68, 68), {"ggml_types", "not valid JSON"});
  expect_error(with_types(R"({"w": "Q8_0", "gone": "Q4_0"})", u8_68, 68), {"'gone'", "does not hold"});
}

TEST(FormatSafetensors, EveryTruncationIsAnError) {
  std::string image = safetensors_image({{"w", "F32", {2, 2}, std::string(16, '\3')}});
  for (size_t n = 0; n < image.size(); ++n) EXPECT_THROW(parse(image.substr(0, n)), Error) << n;
  EXPECT_NO_THROW(parse(image));
}

TEST(FormatSafetensors, ScalarAndEmptyTensorsAreAllowed) {
  auto f = parse(raw(R"({"s": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]},
                         "e": {"dtype": "F16", "shape": [0, 3], "data_offsets": [4, 4]}})",
                     4));
  EXPECT_EQ(f.find_tensor("s")->elements(), 1);
  EXPECT_EQ(f.find_tensor("e")->bytes, 0u);
}

TEST(FormatSafetensors, ShardedCheckpointFollowsWeightMap) {
  TempDir dir(test_dir_name());
  write_all(dir.file("model-00001-of-00002.safetensors"),
            safetensors_image({{"a", "F32", {2}, f32_bytes({1, 2})}, {"extra", "F32", {1}, f32_bytes({9})}}));
  write_all(dir.file("model-00002-of-00002.safetensors"), safetensors_image({{"b", "F16", {2, 2}, std::string(8, '\7')}}));
  json index = {{"metadata", {{"total_size", 16}}},
                {"weight_map", {{"a", "model-00001-of-00002.safetensors"}, {"b", "model-00002-of-00002.safetensors"}}}};
  write_all(dir.file("model.safetensors.index.json"), index.dump());
  SafetensorsCheckpoint ckpt(dir.path().string());
  EXPECT_EQ(ckpt.tensors().size(), 2u);  // "extra" is not in weight_map
  EXPECT_EQ(ckpt.shards().size(), 2u);
  ASSERT_NE(ckpt.find_tensor("b"), nullptr);
  EXPECT_EQ(ckpt.find_tensor("b")->shape, (std::vector<int64_t>{2, 2}));
  EXPECT_NE(ckpt.file_of("b").find("model-00002-of-00002"), std::string::npos);

  // weight_map naming a tensor its shard lacks.
  index["weight_map"]["c"] = "model-00002-of-00002.safetensors";
  write_all(dir.file("model.safetensors.index.json"), index.dump());
  try {
    SafetensorsCheckpoint bad(dir.path().string());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'c'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("model.safetensors.index.json"), std::string::npos) << e.what();
  }
  // A shard path leaving the directory.
  index["weight_map"]["c"] = "../x.safetensors";
  write_all(dir.file("model.safetensors.index.json"), index.dump());
  EXPECT_THROW(SafetensorsCheckpoint(dir.path().string()), Error);
  // A missing shard names the shard file.
  index["weight_map"]["c"] = "model-00003-of-00002.safetensors";
  write_all(dir.file("model.safetensors.index.json"), index.dump());
  try {
    SafetensorsCheckpoint bad(dir.path().string());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model-00003-of-00002.safetensors"), std::string::npos) << e.what();
  }
  // The same tensor stored in two shards.
  index["weight_map"].erase("c");
  write_all(dir.file("model.safetensors.index.json"), index.dump());
  write_all(dir.file("model-00002-of-00002.safetensors"),
            safetensors_image({{"b", "F16", {2, 2}, std::string(8, '\7')}, {"a", "F32", {2}, f32_bytes({1, 2})}}));
  EXPECT_THROW(SafetensorsCheckpoint(dir.path().string()), Error);
}

TEST(FormatSafetensors, SingleFileAndMissingCheckpoint) {
  TempDir dir(test_dir_name());
  EXPECT_THROW(SafetensorsCheckpoint(dir.path().string()), Error);
  write_all(dir.file("model.safetensors"), safetensors_image({{"a", "F32", {2}, f32_bytes({1, 2})}}));
  SafetensorsCheckpoint ckpt(dir.path().string());
  EXPECT_EQ(ckpt.tensors().size(), 1u);
}

}  // namespace
}  // namespace lookahead::moe
