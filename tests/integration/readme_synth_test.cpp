// `lookahead moe synth` end to end: a tiny random Read-ME model with SmolLM2's tokenizer loads in
// `moe info`, generates under random, router and oracle routing, and drives `moe tier-bench`; a
// Q8_0 one generates and replays through the tiered expert store; bad
// input fails with a message naming the problem and leaves nothing behind.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "tests/integration/cli_run.h"

namespace {

namespace fs = std::filesystem;

using lookahead::test::CliRun;
CliRun run(const std::string& args) { return lookahead::test::run_cli(args); }

class ReadMeSynthCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("lookahead_synth_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    tokenizer_ = std::string(LOOKAHEAD_MODELS_DIR) + "/SmolLM2-135M-Instruct.Q4_1.gguf";
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& p) const { return (dir_ / p).string(); }
  fs::path dir_;
  std::string tokenizer_;
};

TEST_F(ReadMeSynthCli, TinyModelRunsInEveryMoeCommand) {
  const std::string out = path("tiny");
  CliRun r = run("moe synth --shape tiny --experts 3 --dtype bf16 --layers 3 --seed 1 --tokenizer " + tokenizer_ +
                 " --out " + out);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("3 layers, 3 experts, BF16, vocab 49152"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(fs::path(out) / "tokenizer.gguf"));

  r = run("moe info --model " + out);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("expert2"), std::string::npos) << r.output;

  for (const char* route : {"random", "router", "oracle:expert1"}) {
    r = run("moe generate --model " + out + " --route " + route + " --prompt Hello --tokens 4 --seed 3");
    EXPECT_EQ(r.status, 0) << route << ": " << r.output;
  }
  r = run("moe generate --model " + out + " --route dense --prompt Hello --tokens 4");
  EXPECT_NE(r.status, 0) << r.output;  // experts-only: no dense FFN

  r = run("moe tier-bench --model " + out + " --budget k=4 --policy belady --prefetch on --batches 6 --json");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("\"hit_ratio\""), std::string::npos) << r.output;

  // Exists: refused without --force, replaced with it.
  r = run("moe synth --shape tiny --experts 2 --layers 1 --tokenizer " + tokenizer_ + " --out " + out);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("already exists"), std::string::npos) << r.output;
  r = run("moe synth --shape tiny --experts 2 --layers 1 --tokenizer " + tokenizer_ + " --out " + out + " --force");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("1 layers, 2 experts"), std::string::npos) << r.output;
}

// Quantized experts (the format's U8-stored GGML blocks): the model loads, generates, and replays
// through the tiered expert store, whose slabs are then Q8_0's 34 bytes per 32 values.
TEST_F(ReadMeSynthCli, Q8_0ModelGeneratesAndReplaysThroughTheTieredStore) {
  const std::string out = path("q8");
  CliRun r = run("moe synth --shape tiny --experts 3 --dtype q8_0 --layers 2 --seed 2 --tokenizer " + tokenizer_ +
                 " --out " + out);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("2 layers, 3 experts, Q8_0"), std::string::npos) << r.output;
  r = run("moe generate --model " + out + " --route router --prompt Hello --tokens 4 --seed 3");
  ASSERT_EQ(r.status, 0) << r.output;
  {
    FILE* f = fopen(path("corpus.txt").c_str(), "w");
    ASSERT_NE(f, nullptr);
    fputs("The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs.\n", f);
    fclose(f);
  }
  r = run("moe replay --model " + out + " --synth 4 --corpus " + path("corpus.txt") +
          " --prompt-median 8 --output-median 4 --rate 4 --cache belady --budget 2experts --prefetch on --seed 1 "
          "--threads 1 --json");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("\"cache_hit_ratio\""), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("\"requests\":4"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("\"cache_in_flight\""), std::string::npos) << r.output;

  // Issue 16: record the access stream on the model clock, compare the policies on it offline.
  const std::string stream = path("stream.json");
  r = run("moe replay --model " + out + " --synth 4 --corpus " + path("corpus.txt") +
          " --prompt-median 8 --output-median 4 --rate 4 --cache belady-online --budget 2experts --prefetch off "
          "--seed 1 --threads 1 --clock model --record-stream " + stream + " --json");
  ASSERT_EQ(r.status, 0) << r.output;
  ASSERT_TRUE(fs::exists(stream));
  r = run("moe cache-sim --stream " + stream + " --budget 1experts --budget 2experts --json");
  ASSERT_EQ(r.status, 0) << r.output;
  for (const char* policy : {"optimum", "belady-online", "lru", "random"})
    EXPECT_NE(r.output.find(std::string("\"policy\":\"") + policy + "\""), std::string::npos) << policy << r.output;
  r = run("moe cache-sim --stream " + stream + " --budget 2experts");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("| 2experts | optimum |"), std::string::npos) << r.output;
  struct Case {
    std::string args, expect;
  };
  const Case bad[] = {
      {"--stream " + stream + " --budget 2experts --policy belady", "'belady' is ambiguous"},
      {"--stream " + stream + " --budget 9experts", "has only 3 experts"},
      {"--stream " + stream, "--budget is required"},
      {"--stream " + path("corpus.txt") + " --budget 1experts", "not a JSON object"},
  };
  for (const Case& c : bad) {
    r = run("moe cache-sim " + c.args);
    EXPECT_NE(r.status, 0) << c.args;
    EXPECT_NE(r.output.find(c.expect), std::string::npos) << c.args << ": " << r.output;
  }
}

TEST_F(ReadMeSynthCli, BadInputIsAnErrorAndLeavesNothing) {
  const std::string out = path("bad");
  struct Case {
    std::string args, expect;
  };
  const Case cases[] = {
      {"--shape gpt5", "unknown shape 'gpt5'"},
      {"--shape tiny --dtype q5_k", "must be bf16, f16, f32, q8_0, q4_0 or q4_1"},
      {"--shape tiny --dtype q8_0 --keep 0.1", "--keep"},
      {"--shape tiny --experts 0", "--experts"},
      {"--shape tiny --keep 0", "--keep"},
      {"--shape tiny --tokenizer " + path("missing.gguf"), "missing.gguf"},
  };
  for (const Case& c : cases) {
    const CliRun r = run("moe synth " + c.args + " --out " + out);
    EXPECT_NE(r.status, 0) << c.args;
    EXPECT_NE(r.output.find(c.expect), std::string::npos) << c.args << ": " << r.output;
    EXPECT_FALSE(fs::exists(out)) << c.args;
  }
  for (const auto& entry : fs::directory_iterator(dir_)) ADD_FAILURE() << "left behind: " << entry.path();
}

}  // namespace
