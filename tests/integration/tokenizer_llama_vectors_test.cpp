// llama.cpp's tokenizer test vectors (models/ggml-vocab-*.gguf with .inp/.out, fetched from the
// llama-cpp-python sdist by scripts/fetch.d/llama-cpp-sdist): our tokenizers must give the same
// ids as llama.cpp's tests/test-tokenizer-0 (add_special = false, parse_special = false).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "moe/format/gguf.h"
#include "moe/tokenize/tokenizer.h"

namespace lookahead::moe {
namespace {

const std::string kVocabDir = std::string(LOOKAHEAD_CACHE_DIR) + "/llama.cpp/models/";

struct VectorCase {
  std::string text;
  std::vector<int32_t> ids;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The format of test-tokenizer-0.cpp's read_tests: inputs separated by "\n__ggml_vocab_test__\n",
// one output line of space-separated ids per input.
std::vector<VectorCase> read_cases(const std::string& vocab) {
  std::string inp = read_file(vocab + ".inp");
  std::string out = read_file(vocab + ".out");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> inputs;
  for (size_t pos = 0; pos < inp.size();) {
    size_t next = inp.find(sep, pos);
    if (next == std::string::npos) {
      inputs.push_back(inp.substr(pos));
      break;
    }
    inputs.push_back(inp.substr(pos, next - pos));
    pos = next + sep.size();
  }
  std::vector<VectorCase> cases;
  std::istringstream lines(out);
  std::string line;
  for (size_t i = 0; std::getline(lines, line); ++i) {
    if (i >= inputs.size()) break;
    VectorCase c{inputs[i], {}};
    std::istringstream ids(line);
    for (int32_t id; ids >> id;) c.ids.push_back(id);
    cases.push_back(std::move(c));
  }
  EXPECT_EQ(cases.size(), inputs.size()) << vocab << ": .inp and .out disagree on the number of cases";
  return cases;
}

std::string show(const std::vector<int32_t>& ids) {
  std::string s;
  for (auto id : ids) s += std::to_string(id) + " ";
  return s;
}

struct Outcome {
  size_t passed = 0;
  size_t round_trips = 0;  // decode(encode(text)) == text
  size_t total = 0;
  std::string first_mismatches;
};

Outcome run_vectors(const std::string& name) {
  const std::string vocab = kVocabDir + "ggml-vocab-" + name + ".gguf";
  Outcome outcome;
  if (!std::filesystem::exists(vocab) || !std::filesystem::exists(vocab + ".inp")) {
    ADD_FAILURE() << vocab << " (or its .inp/.out) is missing; run scripts/fetch.d/llama-cpp-sdist";
    return outcome;
  }
  GgufFile file(vocab);
  auto tokenizer = Tokenizer::from_gguf(file);
  int shown = 0;
  for (const auto& c : read_cases(vocab)) {
    ++outcome.total;
    auto ids = tokenizer->encode(c.text, /*add_special=*/false, /*parse_special=*/false);
    if (tokenizer->decode(ids) == c.text) ++outcome.round_trips;
    if (ids == c.ids) {
      ++outcome.passed;
    } else if (shown++ < 5) {
      outcome.first_mismatches += "\n  input '" + c.text + "'\n    expected " + show(c.ids) + "\n    got      " + show(ids);
    }
  }
  return outcome;
}

class LlamaCppVectors : public testing::TestWithParam<const char*> {};

TEST_P(LlamaCppVectors, EveryCaseMatches) {
  Outcome o = run_vectors(GetParam());
  ASSERT_GT(o.total, 0u);
  RecordProperty("passed", static_cast<int>(o.passed));
  RecordProperty("total", static_cast<int>(o.total));
  EXPECT_EQ(o.passed, o.total) << GetParam() << ": " << o.passed << "/" << o.total << " cases pass; first mismatches:"
                               << o.first_mismatches;
  EXPECT_EQ(o.round_trips, o.total) << GetParam() << ": decode(encode(x)) != x for some cases";
  std::printf("[vectors] %s: %zu/%zu\n", GetParam(), o.passed, o.total);
}

// gpt-2 and llama-spm are the required ones; the others use pre-tokenizers we also implement.
INSTANTIATE_TEST_SUITE_P(Vocab, LlamaCppVectors,
                         testing::Values("gpt-2", "llama-spm", "llama-bpe", "qwen2", "starcoder", "refact",
                                         "command-r", "falcon", "mpt", "deepseek-coder", "deepseek-llm",
                                         "phi-3", "qwen35"),
                         [](const testing::TestParamInfo<const char*>& info) {
                           std::string s = info.param;
                           for (auto& ch : s)
                             if (ch == '-') ch = '_';
                           return s;
                         });

}  // namespace
}  // namespace lookahead::moe
