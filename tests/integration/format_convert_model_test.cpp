// The real model (SmolLM2-135M-Instruct, Q4_1) converted to F16 and Q8_0 with `moe convert`: every
// tensor read back matches the dequantized source within the target type's rounding, metadata is
// copied, and bad input files give a one-line error and exit status 1 from the CLI.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "moe/checkpoint/convert.h"
#include "moe/format/gguf.h"
#include "moe/kernels/quantize.h"

namespace lookahead::moe {
namespace {

namespace fs = std::filesystem;
const std::string kModel = std::string(LOOKAHEAD_MODELS_DIR) + "/SmolLM2-135M-Instruct.Q4_1.gguf";

class FormatConvertModel : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(kModel)) GTEST_SKIP() << "run scripts/setup to download " << kModel;
    dir_ = fs::temp_directory_path() / ("lookahead_convert_model_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  std::string file(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

std::vector<float> row_floats(const TensorView& t, int64_t r) {
  std::vector<float> v(static_cast<size_t>(t.shape[0]));
  dequantize_row(t.type, t.data + r * row_bytes(t.type, t.shape[0]), v.data(), t.shape[0]);
  return v;
}

// Runs a command, returns (exit status, combined output).
std::pair<int, std::string> run(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

void compare(const GgufFile& src, const GgufFile& out, TensorType target) {
  ASSERT_EQ(src.tensors().size(), out.tensors().size());
  for (const auto& [key, value] : src.metadata()) {
    if (key == "general.file_type" || key == "general.quantization_version") continue;
    ASSERT_TRUE(out.has(key)) << key;
    EXPECT_EQ(out.metadata().at(key).type, value.type) << key;
  }
  EXPECT_EQ(out.get_string_array("tokenizer.ggml.tokens"), src.get_string_array("tokenizer.ggml.tokens"));
  EXPECT_EQ(out.get_int("general.file_type"), llama_file_type(target));
  for (const auto& s : src.tensors()) {
    const TensorView& o = out.tensor(s.name);
    ASSERT_EQ(o.shape, s.shape) << s.name;
    EXPECT_EQ(o.type, s.shape.size() == 1 ? TensorType::F32 : target) << s.name;
    for (int64_t r = 0; r < s.rows(); ++r) {
      auto x = row_floats(s, r), y = row_floats(o, r);
      for (int64_t b = 0; b < s.shape[0]; b += 32) {
        float amax = 0;
        for (int64_t i = b; i < b + 32 && i < s.shape[0]; ++i) amax = std::max(amax, std::fabs(x[i]));
        for (int64_t i = b; i < b + 32 && i < s.shape[0]; ++i) {
          // F16: round to nearest (half an ulp, 2^-11 relative); Q8_0: half a step of amax/127 plus
          // the f16 rounding of the scale.
          double bound = target == TensorType::F16 ? std::fabs(x[i]) * std::ldexp(1.0, -11) + 1e-7
                                                   : amax / 127.0 * 0.5 + amax * std::ldexp(1.0, -10) + 1e-7;
          if (o.type == TensorType::F32) bound = 0;
          double err = std::fabs(static_cast<double>(y[i]) - x[i]);
          if (err > bound) FAIL() << s.name << " row " << r << " col " << i << ": " << y[i] << " vs " << x[i];
        }
      }
    }
  }
}

TEST_F(FormatConvertModel, F16ViaLibrary) {
  ConvertOptions o;
  o.model = kModel;
  o.out = file("f16.gguf");
  o.type = TensorType::F16;
  o.progress = false;
  auto summary = convert_to_gguf(o);
  GgufFile src(kModel), out(o.out);
  EXPECT_EQ(summary.tensors, src.tensors().size());
  EXPECT_EQ(summary.fallbacks, 0u);
  compare(src, out, TensorType::F16);
}

TEST_F(FormatConvertModel, Q8_0ViaCli) {
  auto [status, output] = run(std::string(LOOKAHEAD_BINARY) + " moe convert --model " + kModel + " --out " +
                              file("q8.gguf") + " --type q8_0");
  ASSERT_EQ(status, 0) << output;
  GgufFile src(kModel), out(file("q8.gguf"));
  compare(src, out, TensorType::Q8_0);
  EXPECT_EQ(out.get_int("general.quantization_version"), 2);
}

TEST_F(FormatConvertModel, TruncatedModelIsAOneLineCliError) {
  std::ifstream in(kModel, std::ios::binary);
  std::string head(100000, '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  std::ofstream(file("trunc.gguf"), std::ios::binary).write(head.data(), static_cast<std::streamsize>(head.size()));
  const std::vector<std::string> commands = {" moe info --model ", " moe convert --type f16 --out " + file("o.gguf") + " --model "};
  for (const auto& cmd : commands) {
    auto [status, output] = run(std::string(LOOKAHEAD_BINARY) + cmd + file("trunc.gguf"));
    EXPECT_EQ(status, 1) << output;
    EXPECT_EQ(std::count(output.begin(), output.end(), '\n'), 1) << output;
    EXPECT_NE(output.find("trunc.gguf"), std::string::npos) << output;
    EXPECT_NE(output.find("error"), std::string::npos) << output;
  }
  EXPECT_FALSE(fs::exists(file("o.gguf")));
}

}  // namespace
}  // namespace lookahead::moe
