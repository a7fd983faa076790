// `lookahead moe refactor` end to end on the real SmolLM2 model with tiny settings (two domains,
// a few hundred tokens, a 3-step router), then the Read-ME model runs under every routing; and the
// bad inputs fail with a message naming the problem and leave no output directory.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "tests/integration/cli_run.h"

namespace {

namespace fs = std::filesystem;

using lookahead::test::CliRun;
CliRun run(const std::string& args) { return lookahead::test::run_cli(args); }

class ReadMeRefactorCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("lookahead_refactor_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    const char* code =
        "def fibonacci(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n\n"
        "class Stack:\n    def __init__(self):\n        self.items = []\n    def push(self, x):\n"
        "        self.items.append(x)\n\n#include <stdio.h>\nint main(void) { printf(\"%d\\n\", 42); return 0; }\n";
    const char* german =
        "Wenn die Zeit kommt, in der man koennte, ist die Zeit vorbei, in der man kann.\n\n"
        "Kluge Leute erkennt man daran, dass sie bei einem Anfall von Dummheit schweigen.\n\n"
        "Wer immer tut, was er schon kann, bleibt immer das, was er schon ist.\n";
    for (const char* split : {"calibration", "train", "heldout"}) {
      fs::create_directories(dir_ / "corpus" / "code");
      fs::create_directories(dir_ / "corpus" / "german");
      std::ofstream(dir_ / "corpus" / "code" / (std::string(split) + ".txt")) << code << code;
      std::ofstream(dir_ / "corpus" / "german" / (std::string(split) + ".txt")) << german << german;
    }
    model_ = std::string(LOOKAHEAD_MODELS_DIR) + "/SmolLM2-135M-Instruct.Q4_1.gguf";
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& p) const { return (dir_ / p).string(); }
  std::string refactor_args(const std::string& out) const {
    return "moe refactor --model " + model_ + " --corpus " + path("corpus") + " --out " + out +
           " --stats-tokens 96 --router-tokens 96 --ctx 64 --router-ctx 32 --router-steps 3 --router-batch 2"
           " --router-width 16 --router-inter 16 --router-heads 2 --no-dense-ffn";
  }
  fs::path dir_;
  std::string model_;
};

TEST_F(ReadMeRefactorCli, RefactorsRunsAndEvaluates) {
  const std::string out = path("readme");
  CliRun r = run(refactor_args(out));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("Read-ME model with 2 experts"), std::string::npos) << r.output;
  // Reconstruction is on by default and reports each expert's FFN output error before and after.
  EXPECT_NE(r.output.find("reconstructed"), std::string::npos) << r.output;
  ASSERT_TRUE(fs::exists(out + "/config.json"));
  ASSERT_TRUE(fs::exists(out + "/model.safetensors"));
  EXPECT_TRUE(fs::exists(out + "/tokenizer.gguf"));

  r = run("moe info --model " + out);
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("2 experts"), std::string::npos) << r.output;
  for (const char* route : {"router", "oracle:code", "random:3"}) {
    r = run("moe generate --model " + out + " --route " + route + " --prompt 'def add(a, b):' --tokens 4 --temp 0");
    EXPECT_EQ(r.status, 0) << route << ": " << r.output;
  }
  // Without a dense FFN, --route dense is refused by name.
  r = run("moe generate --model " + out + " --route dense --prompt hi --tokens 2");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("no dense FFN"), std::string::npos) << r.output;
  r = run("moe perplexity --model " + out + " --file " + path("corpus/code/heldout.txt") + " --ctx 32 --chunks 1 --json");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("\"ppl\""), std::string::npos) << r.output;
  r = run("moe router-eval --model " + out + " --corpus " + path("corpus") + " --tokens-per-domain 32 --ctx 32 --json");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("temporal_locality"), std::string::npos) << r.output;
  r = run("moe bench --model " + out + " -p 8 -n 4 --reps 1 --json");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("router_share"), std::string::npos) << r.output;
}

// A Q8_0 export of the real model: experts rounded to whole 32-neuron blocks, every matrix in the
// format's quantized tensors, and the model runs.
TEST_F(ReadMeRefactorCli, Q8_0ExportHasWholeBlockExpertsAndRuns) {
  const std::string out = path("readme_q8");
  CliRun r = run(refactor_args(out) + " --dtype q8_0");
  ASSERT_EQ(r.status, 0) << r.output;
  r = run("moe info --model " + out + " --json");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("Q8_0"), std::string::npos) << r.output;
  std::ifstream st(out + "/model.safetensors", std::ios::binary);
  uint64_t n = 0;
  st.read(reinterpret_cast<char*>(&n), 8);
  std::string header(n, '\0');
  st.read(header.data(), static_cast<std::streamsize>(n));
  EXPECT_NE(header.find("ggml_types"), std::string::npos);
  EXPECT_NE(header.find("\"dtype\":\"U8\""), std::string::npos);
  r = run("moe generate --model " + out + " --route oracle:code --prompt 'def add(a, b):' --tokens 4 --temp 0");
  EXPECT_EQ(r.status, 0) << r.output;
}

// `moe convert` of an F16 Read-ME directory (the format stage 2 writes) to Q8_0: experts padded to
// whole 32-neuron blocks with zero neurons, the model runs, and its perplexity stays within 3% of
// the F16 model's (Q8_0 rounding only; the padding adds exactly nothing).
TEST_F(ReadMeRefactorCli, ConvertsAReadMeDirectoryToQ8_0) {
  const std::string f16 = path("readme_f16"), q8 = path("readme_f16_q8");
  CliRun r = run(refactor_args(f16));
  ASSERT_EQ(r.status, 0) << r.output;
  r = run("moe convert --model " + f16 + " --out " + q8 + " --type q8_0");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("Read-ME model in q8_0"), std::string::npos) << r.output;
  r = run("moe info --model " + q8 + " --json");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("Q8_0"), std::string::npos) << r.output;
  auto ppl = [&](const std::string& model) {
    CliRun p = run("moe perplexity --model " + model + " --route oracle:code --file " + path("corpus/code/heldout.txt") +
                   " --ctx 64 --chunks 1 --json");
    EXPECT_EQ(p.status, 0) << p.output;
    const size_t at = p.output.find("\"ppl\":");
    return at == std::string::npos ? -1.0 : std::stod(p.output.substr(at + 6));
  };
  const double a = ppl(f16), b = ppl(q8);
  EXPECT_GT(a, 1.0);
  EXPECT_NEAR(b / a, 1.0, 0.03) << "f16 " << a << " q8_0 " << b;
  // Converting onto an existing directory, or to "keep", is refused by name.
  r = run("moe convert --model " + f16 + " --out " + q8 + " --type q4_1");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("exists"), std::string::npos) << r.output;
  r = run("moe convert --model " + f16 + " --out " + path("keep") + " --type keep");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("--type"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(path("keep")));
}

// --select output (neurons chosen on the Gram) with --general-mix: same expert sizes (whole Q8_0
// blocks), the choice is recorded in the metadata, and the model runs.
TEST_F(ReadMeRefactorCli, OutputSelectionWithGeneralMixKeepsTheSizesAndRuns) {
  const std::string out = path("readme_select");
  CliRun r = run(refactor_args(out) + " --dtype q8_0 --select output --general-mix 0.5 --ridge 1e-2");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("neuron selection by output error"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("expert 0 code         50.0% of FFN neurons"), std::string::npos) << r.output;
  std::ifstream st(out + "/model.safetensors", std::ios::binary);
  uint64_t n = 0;
  st.read(reinterpret_cast<char*>(&n), 8);
  std::string header(n, '\0');
  st.read(header.data(), static_cast<std::streamsize>(n));
  EXPECT_NE(header.find("neurons selected by output error"), std::string::npos);
  EXPECT_NE(header.find("0.5 of every expert's Grams from all domains"), std::string::npos);
  r = run("moe generate --model " + out + " --route router --prompt 'def add(a, b):' --tokens 4 --temp 0");
  EXPECT_EQ(r.status, 0) << r.output;
}

// `moe prune`: a plain dense checkpoint whose FFN is the experts' mean width, that every command opens.
TEST_F(ReadMeRefactorCli, PruneWritesTheSameActiveSizeDenseBaseline) {
  const std::string out = path("pruned");
  CliRun r = run("moe prune --model " + model_ + " --corpus " + path("corpus") + " --out " + out +
                 " --stats-tokens 96 --ctx 64");
  ASSERT_EQ(r.status, 0) << r.output;
  // keep 0.5 of SmolLM2's 1536 neurons: experts of 766-767 neurons, so width 766 or 767.
  EXPECT_TRUE(r.output.find("FFN width 766") != std::string::npos || r.output.find("FFN width 767") != std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("reconstructed"), std::string::npos) << r.output;
  std::ifstream config_file(out + "/config.json");
  const std::string config((std::istreambuf_iterator<char>(config_file)), std::istreambuf_iterator<char>());
  EXPECT_TRUE(config.find("\"intermediate_size\": 766") != std::string::npos ||
              config.find("\"intermediate_size\": 767") != std::string::npos)
      << config;
  r = run("moe generate --model " + out + " --prompt 'def add(a, b):' --tokens 4 --temp 0");
  EXPECT_EQ(r.status, 0) << r.output;
  // An explicit width; a width that is not whole blocks of a quantized type is refused by name.
  r = run("moe prune --model " + model_ + " --corpus " + path("corpus") + " --out " + path("pruned_q8") +
          " --stats-tokens 96 --ctx 64 --width 100 --dtype q8_0 --reconstruct none");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("--width 100 must be a multiple of 32"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(path("pruned_q8")));
  r = run("moe prune --model " + model_ + " --corpus " + path("corpus") + " --out " + path("pruned_q8") +
          " --stats-tokens 96 --ctx 64 --width 128 --dtype q8_0 --reconstruct none");
  ASSERT_EQ(r.status, 0) << r.output;
  r = run("moe generate --model " + path("pruned_q8") + " --prompt hi --tokens 2 --temp 0");
  EXPECT_EQ(r.status, 0) << r.output;
}

// `moe corpus-tokens`: training windows of every domain, interleaved, in the trainer's format.
TEST_F(ReadMeRefactorCli, CorpusTokensWritesInterleavedTrainingWindows) {
  const std::string out = path("tokens.safetensors");
  CliRun r = run("moe corpus-tokens --model " + model_ + " --corpus " + path("corpus") + " --tokens-per-domain 40 --ctx 16 --out " + out);
  ASSERT_EQ(r.status, 0) << r.output;
  std::ifstream st(out, std::ios::binary);
  uint64_t n = 0;
  st.read(reinterpret_cast<char*>(&n), 8);
  std::string header(n, '\0');
  st.read(header.data(), static_cast<std::streamsize>(n));
  for (const char* name : {"\"tokens\"", "\"seq_start\"", "\"domain\"", "\"domains\":\"code,german\""})
    EXPECT_NE(header.find(name), std::string::npos) << name << "\n" << header;
  EXPECT_NE(r.output.find("tokens of 2 domains"), std::string::npos) << r.output;
  r = run("moe corpus-tokens --model " + model_ + " --corpus " + path("corpus") + " --tokens-per-domain 0 --out " + path("t0"));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("--tokens-per-domain must be positive"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(path("t0")));
}

TEST_F(ReadMeRefactorCli, BadInputFailsClearlyAndLeavesNothing) {
  struct Case {
    std::string args, expect;
  };
  const std::string out = path("bad_out");
  std::vector<Case> cases = {
      {refactor_args(out) + " --keep 1.5", "--keep must lie in (0, 1]"},
      {refactor_args(out) + " --keep 0", "--keep must lie in (0, 1]"},
      {refactor_args(out) + " --domains code,latin", "latin"},
      {refactor_args(out) + " --experts-from clusters", "--experts-from"},
      {refactor_args(out) + " --reconstruct qr", "--reconstruct 'qr' must be lsq or none"},
      {refactor_args(out) + " --ridge -1", "--ridge '-1' must be auto or a number >= 0"},
      {refactor_args(out) + " --reconstruct-tokens 0", "--reconstruct-tokens must be positive"},
      {refactor_args(out) + " --select random", "--select 'random' must be activation or output"},
      {refactor_args(out) + " --general-mix 2", "--general-mix must lie in [0, 1]"},
      {refactor_args(out) + " --select output --select-damp 0", "--select-damp must be finite and > 0"},
      {"moe refactor --model " + path("nope.gguf") + " --corpus " + path("corpus") + " --out " + out, "nope.gguf"},
      {"moe generate --model " + model_ + " --route router --prompt hi", "Read-ME model"},
  };
  // An empty domain.
  fs::create_directories(dir_ / "corpus_empty" / "code");
  fs::create_directories(dir_ / "corpus_empty" / "empty");
  for (const char* split : {"calibration", "train"}) {
    fs::copy_file(dir_ / "corpus" / "code" / (std::string(split) + ".txt"),
                  dir_ / "corpus_empty" / "code" / (std::string(split) + ".txt"));
    std::ofstream(dir_ / "corpus_empty" / "empty" / (std::string(split) + ".txt"));
  }
  cases.push_back({"moe refactor --model " + model_ + " --corpus " + path("corpus_empty") + " --out " + out, "empty"});
  for (const auto& c : cases) {
    const CliRun r = run(c.args);
    EXPECT_NE(r.status, 0) << c.args;
    EXPECT_NE(r.output.find(c.expect), std::string::npos) << c.args << "\n" << r.output;
    EXPECT_FALSE(fs::exists(out)) << c.args;
  }
}

}  // namespace
