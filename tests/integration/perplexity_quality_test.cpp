// `lookahead moe perplexity` beyond perplexity: next-token top-1 accuracy, and --kl-base's mean
// KL(base || model) and top-1 agreement on the same scored positions. A model against itself gives
// KL 0 and full agreement; different routings of one Read-ME model (router against its dense FFN,
// or against one oracle expert) and different models give KL > 0; a base that cannot be compared
// (missing, another vocabulary, no dense FFN for the default --kl-base-route dense) is an error
// naming the problem.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/integration/cli_run.h"

namespace {

namespace fs = std::filesystem;

using lookahead::test::CliRun;
CliRun run(const std::string& args) { return lookahead::test::run_cli(args); }

// The JSON object in a command's output (stderr is merged into it).
nlohmann::json json_of(const CliRun& r) {
  const size_t open = r.output.find('{'), close = r.output.rfind('}');
  if (open == std::string::npos || close == std::string::npos || close < open) return {};
  return nlohmann::json::parse(r.output.substr(open, close - open + 1), nullptr, /*allow_exceptions=*/false);
}

class PerplexityQualityCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("lookahead_ppl_quality_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    dense_ = std::string(LOOKAHEAD_MODELS_DIR) + "/SmolLM2-135M-Instruct.Q4_1.gguf";
    std::ofstream text(dir_ / "text.txt");
    for (int i = 0; i < 6; ++i)
      text << "The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs.\n"
              "def add(a, b):\n    return a + b\n\nWer immer tut, was er schon kann, bleibt immer das, was er ist.\n";
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& p) const { return (dir_ / p).string(); }
  // A tiny random Read-ME model with SmolLM2's tokenizer and no dense FFN.
  std::string synth(const std::string& name, const std::string& extra = "") const {
    const std::string out = path(name);
    const CliRun r = run("moe synth --shape tiny --experts 3 --layers 2 --seed 5 --tokenizer " + dense_ + " --out " +
                         out + " " + extra);
    EXPECT_EQ(r.status, 0) << r.output;
    return out;
  }
  std::string ppl_args(const std::string& model, const std::string& route) const {
    return "moe perplexity --model " + model + (route.empty() ? "" : " --route " + route) + " --file " +
           path("text.txt") + " --ctx 32 --chunks 2 --threads 1 --json";
  }
  fs::path dir_;
  std::string dense_;
};

TEST_F(PerplexityQualityCli, ReportsTop1AccuracyAndKlOfAModelAgainstItselfIsZero) {
  const std::string model = synth("tiny");
  CliRun r = run(ppl_args(model, "router"));
  ASSERT_EQ(r.status, 0) << r.output;
  nlohmann::json j = json_of(r);
  ASSERT_TRUE(j.contains("top1")) << r.output;
  EXPECT_GE(j["top1"].get<double>(), 0.0);
  EXPECT_LE(j["top1"].get<double>(), 1.0);
  EXPECT_EQ(j["n_scored"].get<int64_t>(), 2 * (32 - 1 - 16));
  EXPECT_FALSE(j.contains("kl")) << "no KL without --kl-base";
  const double ppl = j["ppl"].get<double>(), top1 = j["top1"].get<double>();

  for (const char* route : {"router", "oracle:expert1", "random:4"}) {
    r = run(ppl_args(model, route) + " --kl-base " + model + " --kl-base-route " + route);
    ASSERT_EQ(r.status, 0) << route << ": " << r.output;
    j = json_of(r);
    ASSERT_TRUE(j.contains("kl")) << route << ": " << r.output;
    EXPECT_EQ(j["kl"].get<double>(), 0.0) << route;
    EXPECT_EQ(j["kl_stderr"].get<double>(), 0.0) << route;
    EXPECT_EQ(j["top1_agree"].get<double>(), 1.0) << route;
  }
  // --kl-base changes nothing about the evaluated model's own numbers.
  r = run(ppl_args(model, "router") + " --kl-base " + model + " --kl-base-route router");
  j = json_of(r);
  EXPECT_EQ(j["ppl"].get<double>(), ppl);
  EXPECT_EQ(j["top1"].get<double>(), top1);

  // The dense model against itself (a .gguf: --kl-base-route dense is its only routing).
  r = run(ppl_args(dense_, "") + " --kl-base " + dense_);
  ASSERT_EQ(r.status, 0) << r.output;
  j = json_of(r);
  EXPECT_EQ(j["kl"].get<double>(), 0.0);
  EXPECT_EQ(j["top1_agree"].get<double>(), 1.0);

  // Text output names both.
  r = run("moe perplexity --model " + model + " --file " + path("text.txt") + " --ctx 32 --chunks 1 --kl-base " + model +
          " --kl-base-route router");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("Top-1 accuracy:"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("KL(base || model): 0.000000"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("same top-1 as base: 100.000%"), std::string::npos) << r.output;
}

TEST_F(PerplexityQualityCli, KlBetweenDifferentRoutingsOrModelsIsPositive) {
  const std::string model = synth("tiny");
  CliRun r = run(ppl_args(model, "router") + " --kl-base " + model + " --kl-base-route oracle:expert0");
  ASSERT_EQ(r.status, 0) << r.output;
  nlohmann::json j = json_of(r);
  EXPECT_GT(j["kl"].get<double>(), 0.0) << r.output;
  EXPECT_GT(j["kl_stderr"].get<double>(), 0.0) << r.output;
  EXPECT_LE(j["top1_agree"].get<double>(), 1.0);

  // Against the dense SmolLM2 the random tiny model is far off: KL of several nats.
  r = run(ppl_args(model, "router") + " --kl-base " + dense_);
  ASSERT_EQ(r.status, 0) << r.output;
  j = json_of(r);
  EXPECT_GT(j["kl"].get<double>(), 1.0) << r.output;
  EXPECT_EQ(j["kl_base_route"].get<std::string>(), "dense");
}

// A refactored SmolLM2 that keeps its dense FFN: the router against --kl-base-route dense (the
// default) of the same directory.
TEST_F(PerplexityQualityCli, RouterAgainstTheDenseRouteOfTheSameReadMeModel) {
  for (const char* domain : {"code", "german"}) {
    fs::create_directories(dir_ / "corpus" / domain);
    for (const char* split : {"calibration", "train", "heldout"})
      fs::copy_file(dir_ / "text.txt", dir_ / "corpus" / domain / (std::string(split) + ".txt"));
  }
  const std::string out = path("readme");
  CliRun r = run("moe refactor --model " + dense_ + " --corpus " + path("corpus") + " --out " + out +
                 " --stats-tokens 96 --router-tokens 96 --ctx 64 --router-ctx 32 --router-steps 2 --router-batch 2"
                 " --router-width 16 --router-inter 16 --router-heads 2");
  ASSERT_EQ(r.status, 0) << r.output;
  r = run(ppl_args(out, "router") + " --kl-base " + out);
  ASSERT_EQ(r.status, 0) << r.output;
  nlohmann::json j = json_of(r);
  EXPECT_EQ(j["kl_base_route"].get<std::string>(), "dense");
  EXPECT_GT(j["kl"].get<double>(), 0.0) << r.output;
  EXPECT_LT(j["top1_agree"].get<double>(), 1.0) << r.output;  // half the FFN neurons gone
  // The dense route against itself.
  r = run(ppl_args(out, "dense") + " --kl-base " + out);
  ASSERT_EQ(r.status, 0) << r.output;
  j = json_of(r);
  EXPECT_EQ(j["kl"].get<double>(), 0.0) << r.output;
  EXPECT_EQ(j["top1_agree"].get<double>(), 1.0) << r.output;
}

TEST_F(PerplexityQualityCli, AnIncomparableBaseIsAnError) {
  const std::string model = synth("tiny");
  const std::string other_vocab = synth("own_vocab", "--no-tokenizer");
  struct Case {
    std::string args, expect;
  };
  const Case cases[] = {
      {"--kl-base " + path("missing"), "--kl-base"},
      {"--kl-base " + path("missing"), "missing"},
      {"--kl-base " + model, "no dense FFN"},  // the default --kl-base-route dense
      {"--kl-base " + model + " --kl-base-route oracle:nope", "nope"},
      {"--kl-base " + dense_ + " --kl-base-route router", "dense model"},
      {"--kl-base " + other_vocab + " --kl-base-route router", "vocabulary"},
  };
  for (const Case& c : cases) {
    const CliRun r = run(ppl_args(model, "router") + " " + c.args);
    EXPECT_NE(r.status, 0) << c.args << ": " << r.output;
    EXPECT_NE(r.output.find("error"), std::string::npos) << c.args << ": " << r.output;
    EXPECT_NE(r.output.find(c.expect), std::string::npos) << c.args << ": " << r.output;
  }
}

}  // namespace
