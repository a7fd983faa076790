// Our engine against an independent implementation: Hugging Face transformers (PyTorch, float32)
// loading the same GGUF. The reference values were produced by tools/reference_logits.py and are
// committed as fixtures in tests/data/reference/, so this test needs neither torch nor Python.
//
// For every fixture prompt it checks:
//   - our tokenizer gives exactly the ids transformers' tokenizer gave (same add_special flag);
//   - fed those ids, our forward pass has the same argmax at every position;
//   - the logits agree within a bound measured for the weight type (over transformers' top-k at
//     every position, and over the whole vocabulary for the stored last-position rows).
// Why the bounds differ by type: transformers dequantizes Q4_1 weights to float32 and multiplies in
// float32; our engine (like llama.cpp) quantizes activations to 8-bit blocks and multiplies in
// integers, so Q4_1 differs by that rounding. With F16 weights both sides see the same weights.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include <unistd.h>

#include "moe/checkpoint/model_source.h"
// The F16 test needs our converter; it is compiled as soon as moe/checkpoint/convert.h is in the tree.
#if __has_include("moe/checkpoint/convert.h")
#include "moe/checkpoint/convert.h"
#define LOOKAHEAD_REFERENCE_HAS_CONVERT 1
#endif
#include "moe/model/llama.h"

namespace {

using namespace lookahead::moe;
namespace fs = std::filesystem;

struct ReferencePrompt {
  std::string name;
  std::string text;
  bool add_special = true;
  std::vector<int32_t> ids;
  std::vector<int32_t> argmax;
  std::vector<float> top2_gap;
  std::vector<std::vector<int32_t>> topk_ids;
  std::vector<std::vector<float>> topk_logits;
  std::vector<float> full_last;  // whole last-position row, or empty
};

struct ReferenceFixture {
  std::string model_file;
  uint64_t model_bytes = 0;
  int32_t n_vocab = 0;
  std::string reference;
  std::vector<ReferencePrompt> prompts;
};

ReferenceFixture load_fixture(const std::string& json_path) {
  std::ifstream in(json_path);
  EXPECT_TRUE(in.good()) << "cannot open fixture " << json_path;
  const nlohmann::json j = nlohmann::json::parse(in);
  ReferenceFixture f;
  f.model_file = j.at("model").at("file").get<std::string>();
  f.model_bytes = j.at("model").at("bytes").get<uint64_t>();
  f.n_vocab = j.at("n_vocab").get<int32_t>();
  f.reference = j.at("reference").get<std::string>();
  const std::string bin_name = j.at("full_last_file").get<std::string>();  // "" = no whole rows stored
  const fs::path bin_path = fs::path(json_path).parent_path() / bin_name;
  std::vector<float> rows;
  if (!bin_name.empty() && fs::is_regular_file(bin_path)) {
    std::ifstream bin(bin_path, std::ios::binary);
    bin.seekg(0, std::ios::end);
    rows.resize(static_cast<size_t>(bin.tellg()) / sizeof(float));
    bin.seekg(0);
    bin.read(reinterpret_cast<char*>(rows.data()), static_cast<std::streamsize>(rows.size() * sizeof(float)));
  }
  for (const auto& p : j.at("prompts")) {
    ReferencePrompt r;
    r.name = p.at("name").get<std::string>();
    r.text = p.at("text").get<std::string>();
    r.add_special = p.at("add_special").get<bool>();
    r.ids = p.at("ids").get<std::vector<int32_t>>();
    r.argmax = p.at("argmax").get<std::vector<int32_t>>();
    r.top2_gap = p.at("top2_gap").get<std::vector<float>>();
    r.topk_ids = p.at("topk_ids").get<std::vector<std::vector<int32_t>>>();
    r.topk_logits = p.at("topk_logits").get<std::vector<std::vector<float>>>();
    if (p.contains("full_last")) {
      const size_t off = p.at("full_last").at("offset").get<size_t>();
      const size_t count = p.at("full_last").at("count").get<size_t>();
      EXPECT_LE(off + count, rows.size()) << "fixture " << bin_path << " is shorter than " << json_path << " says";
      if (off + count <= rows.size()) r.full_last.assign(rows.begin() + off, rows.begin() + off + count);
    }
    f.prompts.push_back(std::move(r));
  }
  return f;
}

std::string fixture_path(const char* name) { return std::string(LOOKAHEAD_TEST_DATA) + "/reference/" + name; }

struct PromptComparison {
  int argmax_mismatches = 0;
  float max_diff_topk = 0;  // over transformers' top-k ids, every position
  float max_diff_full = 0;  // over the whole vocabulary, last position (when stored)
  float mean_diff_topk = 0;
};

// How close two engines may be and still disagree on the argmax. 0 = never: the argmax must be the
// same at every position. For quantized weights the reference's top-2 gap at a position can be
// smaller than the known arithmetic difference; there a different argmax is accepted when the
// reference's gap is below `tie_gap` and our logits for the two tokens are within `tie_gap` too.
struct Tolerance {
  float max_diff = 0;   // largest |logit difference| accepted (top-k and full rows)
  float mean_diff = 0;  // largest mean |logit difference| over top-k entries of one prompt
  float tie_gap = 0;
};

// Runs `ids` through our engine and compares every position with the reference.
PromptComparison compare_prompt(const LlamaModel& model, const ReferencePrompt& p, const Tolerance& tol) {
  const int32_t vocab = model.hparams().n_vocab;
  const int64_t n = static_cast<int64_t>(p.ids.size());
  ContextOptions opt;
  opt.n_ctx = n;
  opt.n_batch = std::min<int64_t>(n, 512);
  LlamaContext ctx(model, opt);
  const float* logits = ctx.forward(p.ids.data(), n, 0);  // rows [0, n)
  PromptComparison c;
  double sum = 0;
  int64_t count = 0;
  for (int64_t pos = 0; pos < n; ++pos) {
    const float* row = logits + pos * vocab;
    const int32_t ours = static_cast<int32_t>(std::max_element(row, row + vocab) - row);
    const int32_t ref = p.argmax[static_cast<size_t>(pos)];
    if (ours != ref) {
      ++c.argmax_mismatches;
      const float ref_gap = p.top2_gap[static_cast<size_t>(pos)];
      const bool near_tie = ref_gap < tol.tie_gap && row[ours] - row[ref] < tol.tie_gap;
      std::printf("  %s position %lld: our argmax %d (logit %.4f) != reference %d (our logit %.4f; reference top-2 gap %.4f)%s\n",
                  p.name.c_str(), static_cast<long long>(pos), ours, row[ours], ref, row[ref], ref_gap,
                  near_tie ? " near-tie" : "");
      EXPECT_TRUE(near_tie) << p.name << " position " << pos << ": different argmax where the reference is not a near-tie";
    }
    const auto& ids = p.topk_ids[static_cast<size_t>(pos)];
    const auto& refk = p.topk_logits[static_cast<size_t>(pos)];
    for (size_t k = 0; k < ids.size(); ++k) {
      const float d = std::fabs(row[ids[k]] - refk[k]);
      c.max_diff_topk = std::max(c.max_diff_topk, d);
      sum += d;
      ++count;
    }
  }
  c.mean_diff_topk = count ? static_cast<float>(sum / static_cast<double>(count)) : 0.0f;
  if (!p.full_last.empty()) {
    const float* row = logits + (n - 1) * vocab;
    for (int32_t i = 0; i < vocab; ++i) c.max_diff_full = std::max(c.max_diff_full, std::fabs(row[i] - p.full_last[static_cast<size_t>(i)]));
  }
  return c;
}

// Checks one fixture against one model file.
void check_against_reference(const std::string& fixture_json, const std::string& model_path, const Tolerance& tol,
                             bool check_size = true) {
  const ReferenceFixture f = load_fixture(fixture_json);
  ASSERT_FALSE(f.prompts.empty());
  ASSERT_TRUE(fs::exists(model_path)) << model_path << " is missing (scripts/setup downloads it)";
  if (check_size) {
    ASSERT_EQ(fs::file_size(model_path), f.model_bytes) << model_path << " is not the file the fixture was made from";
  }
  auto source = open_model(model_path);
  LlamaModel model(*source);
  ASSERT_EQ(model.hparams().n_vocab, f.n_vocab);
  float worst = 0, worst_mean = 0;
  size_t positions = 0, mismatches = 0;
  std::printf("reference: %s (%s)\n", f.model_file.c_str(), f.reference.c_str());
  std::printf("%-16s %6s %10s %14s %14s %14s\n", "prompt", "tokens", "argmax ok", "max|d| top-k", "mean|d| top-k",
              "max|d| vocab");
  for (const auto& p : f.prompts) {
    const PromptComparison c = compare_prompt(model, p, tol);
    std::printf("%-16s %6zu %4zu/%-5zu %14.5f %14.5f %14s\n", p.name.c_str(), p.ids.size(),
                p.ids.size() - static_cast<size_t>(c.argmax_mismatches), p.ids.size(), c.max_diff_topk, c.mean_diff_topk,
                p.full_last.empty() ? "-" : std::to_string(c.max_diff_full).c_str());
    if (tol.tie_gap == 0) {
      EXPECT_EQ(c.argmax_mismatches, 0) << p.name;
    }
    EXPECT_LE(c.max_diff_topk, tol.max_diff) << p.name << ": top-k logits differ from the reference by more than the bound";
    EXPECT_LE(c.max_diff_full, tol.max_diff) << p.name << ": last-position logits differ from the reference by more than the bound";
    EXPECT_LE(c.mean_diff_topk, tol.mean_diff) << p.name << ": mean top-k logit difference above the bound";
    worst = std::max({worst, c.max_diff_topk, c.max_diff_full});
    worst_mean = std::max(worst_mean, c.mean_diff_topk);
    positions += p.ids.size();
    mismatches += static_cast<size_t>(c.argmax_mismatches);
  }
  std::printf("same argmax at %zu/%zu positions; max |logit difference| %.5f (bound %.5f); worst prompt mean %.5f (bound %.5f)\n",
              positions - mismatches, positions, worst, tol.max_diff, worst_mean, tol.mean_diff);
}

void check_tokenizer_against_reference(const std::string& fixture_json, const std::string& model_path) {
  const ReferenceFixture f = load_fixture(fixture_json);
  ASSERT_TRUE(fs::exists(model_path)) << model_path << " is missing (scripts/setup downloads it)";
  auto source = open_model(model_path);
  const Tokenizer& tok = source->tokenizer();
  for (const auto& p : f.prompts) {
    EXPECT_EQ(tok.encode(p.text, p.add_special, /*parse_special=*/true), p.ids) << p.name << ": " << p.text;
    // Decoding the reference ids gives the text back (BOS, when added, decodes to its text form).
    if (!p.add_special) {
      EXPECT_EQ(tok.decode(p.ids), p.text) << p.name;
    }
  }
}

const std::string kQ4_1Model = std::string(LOOKAHEAD_MODELS_DIR) + "/SmolLM2-135M-Instruct.Q4_1.gguf";

// Q4_1 bounds, from the measurement in docs/results/engine-logits.md (max |d| 1.66, worst prompt
// mean 0.22, 19 of 556 argmaxes different, all at reference top-2 gaps <= 0.31 with our two logits
// within 0.11) with some margin. The difference is our Q8 activations vs transformers' float32
// ones: the F16 test below shows the forward pass itself agrees to 1e-4.
constexpr Tolerance kQ4_1Tolerance{2.5f, 0.3f, 0.5f};

#ifdef LOOKAHEAD_REFERENCE_HAS_CONVERT
// F16 weights: both sides use the same float16 weights and float32 activations, so only the order
// of float32 sums differs. The F16 file is written by our converter (moe/checkpoint/convert.h) from the
// Q4_1 model; its tensor values equal those of the file the fixture was made from (gguf-py's
// dequantize + float16 rounding, tools/make_f16_gguf.py), which the bound checks indirectly.
// Measured: max |d| 8e-5, every argmax equal (docs/results/engine-logits.md); the issue asks < 1e-2.
constexpr Tolerance kF16Tolerance{1e-2f, 1e-3f, 0.0f};

TEST(ReferenceLogits, SmolLM2F16MatchesTransformers) {
  const fs::path dir = fs::temp_directory_path() / ("lookahead_reference_f16_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string f16 = (dir / "SmolLM2-135M-Instruct.F16.gguf").string();
  ConvertOptions opt;
  opt.model = kQ4_1Model;
  opt.out = f16;
  opt.type = TensorType::F16;
  opt.progress = false;
  convert_to_gguf(opt);
  check_against_reference(fixture_path("smollm2_f16_logits.json"), f16, kF16Tolerance, /*check_size=*/false);
  fs::remove_all(dir);
}
#endif

// llama.cpp on the same Q4_1 file (tools/llama_cpp_logits.cpp, KV cache F32). llama.cpp also
// quantizes activations to 8-bit blocks, yet its logits are not closer to ours than transformers'
// are (measured: max 1.75, worst prompt mean 0.26, 20 of 556 argmaxes different, all near-ties;
// docs/results/engine-logits.md): the two engines' rounding differs in detail, so the same bounds
// as against transformers apply. A bit-faithful port of ggml's arithmetic would meet far tighter ones.
constexpr Tolerance kQ4_1LlamaCppTolerance = kQ4_1Tolerance;

TEST(ReferenceLogits, SmolLM2Q4_1MatchesLlamaCpp) {
  check_against_reference(fixture_path("smollm2_q4_1_llama_cpp_logits.json"), kQ4_1Model, kQ4_1LlamaCppTolerance);
}

TEST(ReferenceLogits, SmolLM2Q4_1TokenizerMatchesTransformers) {
  check_tokenizer_against_reference(fixture_path("smollm2_q4_1_logits.json"), kQ4_1Model);
}

TEST(ReferenceLogits, SmolLM2Q4_1MatchesTransformers) {
  check_against_reference(fixture_path("smollm2_q4_1_logits.json"), kQ4_1Model, kQ4_1Tolerance);
}

}  // namespace
