// GGUF writer round trips through the reader, and the reader rejects malformed files with errors
// that name the file and the field.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "common/error.h"
#include "moe/format/gguf.h"
#include "moe/format/gguf_writer.h"

namespace lookahead::moe {
namespace {

namespace fs = std::filesystem;

class FormatGgufTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("lookahead_format_gguf_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string file(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
void write_all(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

GgufValue typed(GgufValueType type, std::variant<uint64_t, int64_t, double, bool, std::string> v) {
  GgufValue out;
  out.type = type;
  std::visit([&](auto&& x) { out.value = x; }, v);
  return out;
}

// A writer holding every metadata value type and tensors of every supported type.
struct Sample {
  std::vector<std::vector<uint8_t>> data;
  GgufWriter writer{64};
  Sample() {
    writer.set("u8", typed(GgufValueType::UINT8, uint64_t{200}));
    writer.set("i8", typed(GgufValueType::INT8, int64_t{-100}));
    writer.set("u16", typed(GgufValueType::UINT16, uint64_t{60000}));
    writer.set("i16", typed(GgufValueType::INT16, int64_t{-30000}));
    writer.set("u32", gguf_u32(4000000000u));
    writer.set("i32", gguf_i32(-2000000000));
    writer.set("u64", gguf_u64(uint64_t{1} << 60));
    writer.set("i64", typed(GgufValueType::INT64, int64_t{-(int64_t{1} << 60)}));
    writer.set("f32", gguf_f32(0.125f));
    writer.set("f64", typed(GgufValueType::FLOAT64, 1e300));
    writer.set("bool", gguf_bool(true));
    writer.set("string", gguf_string("h\xc3\xa9llo"));
    writer.set("strings", gguf_string_array({"a", "", "<|im_start|>"}));
    writer.set("floats", gguf_f32_array({1.5f, -2.0f}));
    writer.set("ints", gguf_i32_array({1, -2, 3}));
    auto nested = std::make_shared<GgufArray>();
    nested->element_type = GgufValueType::ARRAY;
    nested->values.push_back(gguf_i32_array({7}));
    nested->values.push_back(gguf_i32_array({}));
    GgufValue nested_value;
    nested_value.type = GgufValueType::ARRAY;
    nested_value.value = nested;
    writer.set("nested", nested_value);
    struct Spec {
      const char* name;
      TensorType type;
      std::vector<int64_t> shape;
    };
    const Spec specs[] = {{"a.f32", TensorType::F32, {3, 5}},   {"b.f16", TensorType::F16, {7}},
                          {"c.bf16", TensorType::BF16, {2, 2, 2}}, {"d.q8_0", TensorType::Q8_0, {64, 3}},
                          {"e.q4_0", TensorType::Q4_0, {32, 1, 2}}, {"f.q4_1", TensorType::Q4_1, {96}}};
    uint32_t seed = 1;
    for (const auto& s : specs) {
      int64_t n = 1;
      for (auto d : s.shape) n *= d;
      data.push_back(random_bytes(static_cast<size_t>(n / traits(s.type).block_size * traits(s.type).type_size), seed++));
      writer.add_tensor(s.name, s.type, s.shape, data.back().data(), data.back().size());
    }
  }
};

TEST_F(FormatGgufTest, RoundTripKeepsEveryValueTypeAndTensor) {
  Sample sample;
  sample.writer.write(file("a.gguf"));
  GgufFile f(file("a.gguf"));
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.get_int("u8"), 200);
  EXPECT_EQ(f.get_int("i8"), -100);
  EXPECT_EQ(f.get_int("u16"), 60000);
  EXPECT_EQ(f.get_int("i16"), -30000);
  EXPECT_EQ(f.get_int("u32"), 4000000000LL);
  EXPECT_EQ(f.get_int("i32"), -2000000000);
  EXPECT_EQ(f.get_int("u64"), int64_t{1} << 60);
  EXPECT_EQ(f.get_int("i64"), -(int64_t{1} << 60));
  EXPECT_EQ(f.get_float("f32"), 0.125);
  EXPECT_EQ(f.get_float("f64"), 1e300);
  EXPECT_TRUE(f.get_bool("bool"));
  EXPECT_EQ(f.get_string("string"), "h\xc3\xa9llo");
  EXPECT_EQ(f.get_string_array("strings"), (std::vector<std::string>{"a", "", "<|im_start|>"}));
  EXPECT_EQ(f.get_float_array("floats"), (std::vector<double>{1.5, -2.0}));
  EXPECT_EQ(f.get_int_array("ints"), (std::vector<int64_t>{1, -2, 3}));
  EXPECT_EQ(f.metadata().at("u8").type, GgufValueType::UINT8);
  EXPECT_EQ(f.metadata().at("i16").type, GgufValueType::INT16);
  EXPECT_EQ(f.metadata().at("f64").type, GgufValueType::FLOAT64);
  EXPECT_EQ(f.metadata().at("general.alignment").type, GgufValueType::UINT32);
  const auto& nested = std::get<std::shared_ptr<GgufArray>>(f.metadata().at("nested").value);
  ASSERT_EQ(nested->values.size(), 2u);
  EXPECT_EQ(std::get<std::shared_ptr<GgufArray>>(nested->values[0].value)->values.size(), 1u);

  ASSERT_EQ(f.tensors().size(), sample.data.size());
  EXPECT_EQ(f.data_offset() % 64, 0u);
  for (size_t i = 0; i < f.tensors().size(); ++i) {
    const auto& t = f.tensors()[i];
    EXPECT_EQ(t.file_offset % 64, 0u) << t.name;
    ASSERT_EQ(t.bytes, sample.data[i].size()) << t.name;
    EXPECT_EQ(std::memcmp(t.data, sample.data[i].data(), t.bytes), 0) << t.name;
  }
  EXPECT_EQ(f.tensor("d.q8_0").type, TensorType::Q8_0);
  EXPECT_EQ(f.tensor("c.bf16").shape, (std::vector<int64_t>{2, 2, 2}));
}

// Copies a file through the writer: metadata (sorted by key in GgufFile) and tensors.
void rewrite(const GgufFile& f, const std::string& path) {
  GgufWriter w(f.alignment());
  for (const auto& [k, v] : f.metadata()) w.set(k, v);
  for (const auto& t : f.tensors()) w.add_tensor(t.name, t.type, t.shape, t.data, t.bytes);
  w.write(path);
}

TEST_F(FormatGgufTest, RewriteIsByteIdentical) {
  Sample sample;
  sample.writer.write(file("a.gguf"));
  GgufFile a(file("a.gguf"));
  rewrite(a, file("b.gguf"));
  GgufFile b(file("b.gguf"));
  rewrite(b, file("c.gguf"));
  EXPECT_EQ(read_all(file("b.gguf")), read_all(file("c.gguf")));
  ASSERT_EQ(a.metadata().size(), b.metadata().size());
  for (const auto& [k, v] : a.metadata()) EXPECT_EQ(b.metadata().at(k).type, v.type) << k;
  // Same keys and tensors, different key order only: the sizes match exactly.
  EXPECT_EQ(read_all(file("a.gguf")).size(), read_all(file("b.gguf")).size());
}

TEST_F(FormatGgufTest, InMemoryImageParsesLikeTheFile) {
  Sample sample;
  sample.writer.write(file("a.gguf"));
  std::string bytes = read_all(file("a.gguf"));
  GgufFile m("memory", reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  EXPECT_EQ(m.tensors().size(), 6u);
  EXPECT_EQ(m.get_string("string"), "h\xc3\xa9llo");
}

TEST_F(FormatGgufTest, WriterRejectsBadTensorsAndLeavesNoFile) {
  GgufWriter w;
  std::vector<uint8_t> d(64);
  EXPECT_THROW(w.add_tensor("q", TensorType::Q8_0, {16}, d.data(), 17), Error);  // 16 % 32 != 0
  EXPECT_THROW(w.add_tensor("f", TensorType::F32, {4}, d.data(), 15), Error);     // wrong byte count
  EXPECT_THROW(w.add_tensor(std::string(64, 'x'), TensorType::F32, {4}, d.data(), 16), Error);
  EXPECT_THROW(w.add_tensor("z", TensorType::F32, {}, d.data(), 4), Error);
  w.add_tensor("ok", TensorType::F32, {4}, d.data(), 16);
  EXPECT_THROW(w.add_tensor("ok", TensorType::F32, {4}, d.data(), 16), Error);
  EXPECT_THROW(w.set("general.alignment", gguf_u32(3)), Error);
  // A producer that throws mid-write leaves neither the output nor a temporary behind.
  w.add_tensor("boom", TensorType::F32, {4}, [](uint8_t*) { fail("producer failed"); });
  EXPECT_THROW(w.write(file("out.gguf")), Error);
  EXPECT_TRUE(fs::is_empty(dir_));
}

// A minimal valid file (one F32 tensor of 4 values) as raw bytes, so tests can corrupt any field.
std::string tiny_gguf(uint32_t type = 0, uint64_t offset = 0, size_t data_bytes = 16) {
  GgufWriter w;
  w.set("general.architecture", gguf_string("llama"));
  static std::vector<uint8_t> d(16, 1);
  w.add_tensor("t", TensorType::F32, {4}, d.data(), 16);
  std::string path = (fs::temp_directory_path() / ("lookahead_tiny_" + std::to_string(::getpid()))).string();
  w.write(path);
  std::string bytes = read_all(path);
  fs::remove(path);
  // Tensor info: ... "t" (u64 len + 1 byte), u32 n_dims, u64 dim, u32 type, u64 offset; data follows at 32k.
  size_t info = bytes.find(std::string("\x01\0\0\0\0\0\0\0t", 9));
  size_t type_pos = info + 9 + 4 + 8;
  std::memcpy(&bytes[type_pos], &type, 4);
  std::memcpy(&bytes[type_pos + 4], &offset, 8);
  bytes.resize(bytes.size() - 32 + data_bytes);
  return bytes;
}

TEST_F(FormatGgufTest, TinyFileIsValid) {
  write_all(file("t.gguf"), tiny_gguf());
  GgufFile f(file("t.gguf"));
  EXPECT_EQ(f.tensor("t").bytes, 16u);
}

void expect_error(const std::string& path, const std::vector<std::string>& parts) {
  try {
    GgufFile f(path);
    FAIL() << "no error for " << path;
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

TEST_F(FormatGgufTest, EveryTruncationIsAnError) {
  std::string bytes = tiny_gguf();
  GgufFile whole("whole", reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  // Cutting anywhere before the end of the tensor data must fail (never crash or read past).
  for (size_t n = 0; n < whole.data_offset() + 16; ++n) {
    std::string cut = bytes.substr(0, n);
    EXPECT_THROW(GgufFile("cut", reinterpret_cast<const uint8_t*>(cut.data()), cut.size()), Error) << n;
  }
  write_all(file("trunc.gguf"), bytes.substr(0, 40));
  expect_error(file("trunc.gguf"), {"truncated"});
}

TEST_F(FormatGgufTest, WrongMagic) {
  std::string bytes = tiny_gguf();
  bytes[0] = 'X';
  write_all(file("magic.gguf"), bytes);
  expect_error(file("magic.gguf"), {"magic"});
}

TEST_F(FormatGgufTest, UnknownTensorType) {
  write_all(file("type.gguf"), tiny_gguf(12));  // Q4_K
  expect_error(file("type.gguf"), {"'t'", "Q4_K"});
  write_all(file("type2.gguf"), tiny_gguf(999));
  expect_error(file("type2.gguf"), {"'t'", "unknown"});
}

TEST_F(FormatGgufTest, TensorDataPastEndOfFile) {
  write_all(file("short.gguf"), tiny_gguf(0, 0, 8));
  expect_error(file("short.gguf"), {"'t'", "past the end"});
  write_all(file("offset.gguf"), tiny_gguf(0, 1u << 20));
  expect_error(file("offset.gguf"), {"'t'", "past the end"});
  write_all(file("unaligned.gguf"), tiny_gguf(0, 4));
  expect_error(file("unaligned.gguf"), {"'t'", "aligned"});
}

TEST_F(FormatGgufTest, MissingFileNamesThePath) { expect_error(file("nope.gguf"), {"cannot open"}); }

}  // namespace
}  // namespace lookahead::moe
