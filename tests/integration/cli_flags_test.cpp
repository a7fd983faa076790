// CLI defaults and flag validation through the real binary (issue 15 items 3, 6, 7, 9, 15).
// LOOKAHEAD_TEST_BINARY (environment) runs these against another build, e.g. an older one.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "moe/format/gguf.h"
#include "tests/unit/moe/format_test_files.h"

#include "tests/integration/cli_run.h"

namespace {

namespace fs = std::filesystem;

using CliResult = lookahead::test::CliRun;
using lookahead::test::run_shell;
std::string binary() { return lookahead::test::test_binary(); }

// `env` is prepended to the command (VAR=value ...).
CliResult run(const std::string& args, const std::string& env = "") {
  return run_shell(env + (env.empty() ? "" : " ") + binary() + " " + args + " 2>&1");
}

bool contains(const std::string& text, const std::string& what) { return text.find(what) != std::string::npos; }

const std::string kModel = std::string(LOOKAHEAD_MODELS_DIR) + "/SmolLM2-135M-Instruct.Q4_1.gguf";
const std::string kText = std::string(LOOKAHEAD_TEST_DATA) + "/../../README.md";  // any short text

// Item 3: libgomp's 300000-spin default collapsed decode beside any other load; the binary runs
// with 1000 spins unless the user chose a wait policy or spin count.
TEST(CliDefaults, OpenMpSpinIsShortByDefaultAndTheUsersSettingWins) {
  // Unset the user's variables so the default applies (then the report of the final image counts).
  CliResult r = run("--version", "env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT OMP_DISPLAY_ENV=verbose");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "GOMP_SPINCOUNT = '1000'")) << r.output;
  r = run("--version", "env -u OMP_WAIT_POLICY GOMP_SPINCOUNT=7 OMP_DISPLAY_ENV=verbose");
  EXPECT_TRUE(contains(r.output, "GOMP_SPINCOUNT = '7'")) << r.output;
  EXPECT_FALSE(contains(r.output, "GOMP_SPINCOUNT = '1000'")) << r.output;
  r = run("--version", "env -u GOMP_SPINCOUNT OMP_WAIT_POLICY=passive OMP_DISPLAY_ENV=verbose");
  EXPECT_TRUE(contains(r.output, "GOMP_SPINCOUNT = '0'")) << r.output;
  EXPECT_FALSE(contains(r.output, "GOMP_SPINCOUNT = '1000'")) << r.output;
}

// Item 7: a value out of range is an error naming the flag, never replaced by the default.
struct BadFlag {
  std::string args;
  std::string message;
};

void expect_errors(const std::vector<BadFlag>& cases) {
  for (const BadFlag& c : cases) {
    // `timeout`: a binary that accepted the flag might serve forever (moe serve); never a pass.
    CliResult r = run(c.args, "timeout 60");
    EXPECT_EQ(r.status, 1) << c.args << "\n" << r.output;
    EXPECT_TRUE(contains(r.output, "lookahead: error: " + c.message)) << c.args << "\n" << r.output;
  }
}

TEST(CliValidation, NetTopologyFlagsOutOfRangeAreErrors) {
  expect_errors({
      {"net topo --gbps 0", "leaf_spine spec: 'host_gbps' must be positive, got 0"},
      {"net topo --gbps -1", "leaf_spine spec: 'host_gbps' must be positive, got -1"},
      {"net topo --topology fat_tree --gbps 0", "fat_tree spec: 'host_gbps' must be positive, got 0"},
      {"net topo --latency-ns -5", "leaf_spine spec: 'host_latency_ns' must not be negative, got -5"},
      {"net topo --topology fat_tree --k 0", "--k must be an even number in [2, 256], got 0"},
      {"net topo --fabric-gbps 0", "--fabric-gbps must be a positive rate in Gbit/s, got 0"},
      {"net topo --oversubscription 0", "--oversubscription must be at least 1, got 0"},
      {"net run --topology fat_tree --k 4 --gbps 0 --workload permutation --bytes 1000",
       "fat_tree spec: 'host_gbps' must be positive, got 0"},
  });
}

TEST(CliValidation, SamplingFlagsOutOfRangeAreErrorsBeforeTheModelLoads) {
  // The model path does not exist: the flag is reported first.
  const std::string gen = "moe generate --model /nonexistent.gguf --prompt hi ";
  expect_errors({
      {gen + "--temp -1", "--temp: -1 is not in [0, 2]"},
      {gen + "--temp inf", "--temp: inf is not in [0, 2]"},
      {gen + "--temp 2.5", "--temp: 2.5 is not in [0, 2]"},
      {gen + "--top-p 5", "--top-p: 5 is not in (0, 1]"},
      {gen + "--top-p 0", "--top-p: 0 is not in (0, 1]"},
      {gen + "--top-k -3", "--top-k: -3 is below 0 (0 = all tokens)"},
      {"moe chat --model /nonexistent.gguf --temp -1", "--temp: -1 is not in [0, 2]"},
  });
}

TEST(CliValidation, ContextAndLengthsAreCheckedTheSameWayEverywhere) {
  if (!fs::exists(kModel)) GTEST_SKIP() << "run scripts/setup to download " << kModel;
  const std::string too_big = "--ctx 9000 is larger than the model's training context of 8192 tokens";
  expect_errors({
      {"moe generate --model " + kModel + " --prompt hi --ctx 9000", too_big},
      {"moe perplexity --model " + kModel + " -f " + kText + " --ctx 9000", too_big},
      {"moe serve --model " + kModel + " --port 0 --ctx 9000", too_big},
      {"moe generate --model " + kModel + " --prompt hi --ctx 0", "--ctx must be >= 1 tokens, got 0"},
      {"moe perplexity --model " + kModel + " -f " + kText + " --ctx 2", "--ctx must be >= 4 tokens, got 2"},
      {"moe serve --model " + kModel + " --ctx 8", "--ctx must be >= 16 tokens, got 8"},
      {"moe perplexity --model " + kModel + " -f " + kText + " --chunks 0",
       "--chunks must be -1 (all windows) or at least 1, got 0"},
      {"moe bench --model " + kModel + " -p 9000 -n 0 -r 1", "-p 9000: longer than the model's training context of 8192 tokens"},
  });
}

// A GGUF whose RMSNorm epsilon is NaN used to generate 0 tokens and exit 0.
TEST(CliValidation, NanRmsEpsilonIsRefused) {
  if (!fs::exists(kModel)) GTEST_SKIP() << "run scripts/setup to download " << kModel;
  std::ifstream in(kModel, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  const std::string key = "llama.attention.layer_norm_rms_epsilon";
  const size_t at = bytes.find(key);
  ASSERT_NE(at, std::string::npos);
  const size_t value = at + key.size() + 4;  // after the key: u32 type (6 = f32), then the value
  ASSERT_EQ(bytes[at + key.size()], 6);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  bytes.replace(value, 4, reinterpret_cast<const char*>(&nan), 4);
  const fs::path bad = fs::temp_directory_path() / ("lookahead_nan_eps_" + std::to_string(::getpid()) + ".gguf");
  std::ofstream(bad, std::ios::binary) << bytes;
  CliResult r = run("moe generate --model " + bad.string() + " --prompt hi --tokens 4");
  fs::remove(bad);
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "the RMSNorm epsilon (layer_norm_rms_epsilon / rms_norm_eps) must be a positive number, "
                                 "got nan"))
      << r.output;
}

// Item 6: work that cannot fit is refused up front with the estimate and the limit; the limit is
// --memory-limit (default: the memory available now), and a flag overrides it.
TEST(CliResources, OversizedWorkIsRefusedWithTheEstimateAndTheLimit) {
  const std::string permutation = "net run --workload permutation --bytes 1000 --topology fat_tree ";
  expect_errors({
      {"moe generate --model /nonexistent.gguf --prompt hi -t 10000", "--threads 10000 is more than 4 per core"},
      {"moe generate --model /nonexistent.gguf --prompt hi -t -1", "--threads must be >= 0"},
      {permutation + "--k 256 --memory-limit 8GiB", "a fat_tree topology of 4194304 hosts needs about"},
      {permutation + "--k 32 --memory-limit 40MiB",
       "simulating 8192 hosts and 8192 flows needs about 60.2 MiB of memory, more than the limit of 40.0 MiB "
       "(--memory-limit); --memory-limit SIZE|none overrides"},
      {"net run --topology fat_tree --k 64 --workload all_to_all --bytes 1000 --memory-limit 64GiB",
       "--workload all_to_all of 4294901760 flows needs about 4.7 TiB of memory"},
      {"net topo --topology fat_tree --k 256 --memory-limit 1GiB", "a fat_tree topology of 4194304 hosts needs about"},
      {permutation + "--k 16 --memory-limit 1MiB", "a fat_tree topology of 1024 hosts needs about 3.0 MiB of memory"},
      {permutation + "--k 16 --memory-limit lots", "--memory-limit: expected auto, none or a size like 8GiB"},
  });
  CliResult r = run(permutation + "--k 16 --memory-limit none");
  EXPECT_EQ(r.status, 0) << r.output;
  r = run(permutation + "--k 16");  // the default limit: the memory available now
  EXPECT_EQ(r.status, 0) << r.output;
}

TEST(CliResources, ServeRefusesMaxRunningThatCannotFit) {
  if (!fs::exists(kModel)) GTEST_SKIP() << "run scripts/setup to download " << kModel;
  expect_errors({{"moe serve --port 0 --model " + kModel + " --max-running 100000 --memory-limit 64GiB",
                  "--max-running 100000 at --ctx 2048 (logits and KV caches of 90.2 MiB per sequence) needs about "
                  "8.6 TiB of memory, more than the limit of 64.0 GiB"}});
}

// Item 9: info --json gives metadata as JSON values (not re-quoted, not shortened); tokenize and
// info accept every model directory generate accepts.
TEST(CliModelDirs, InfoJsonKeepsMetadataValuesWhole) {
  if (!fs::exists(kModel)) GTEST_SKIP() << "run scripts/setup to download " << kModel;
  CliResult r = run_shell(binary() + " moe info --model " + kModel + " --json");
  ASSERT_EQ(r.status, 0) << r.output;
  const nlohmann::json meta = nlohmann::json::parse(r.output)["metadata"];
  lookahead::moe::GgufFile file(kModel);
  EXPECT_EQ(meta["general.architecture"], "llama");
  EXPECT_EQ(meta["tokenizer.chat_template"], file.get_string("tokenizer.chat_template"));
  EXPECT_GT(meta["tokenizer.chat_template"].get<std::string>().size(), 100u);
  EXPECT_EQ(meta["llama.context_length"], 8192);
  EXPECT_EQ(meta["tokenizer.ggml.tokens"], (nlohmann::json{{"array_length", 49152}}));
}

TEST(CliModelDirs, TokenizeAndInfoAcceptReadMeAndHuggingFaceDirectories) {
  if (!fs::exists(kModel)) GTEST_SKIP() << "run scripts/setup to download " << kModel;
  const fs::path dir = fs::temp_directory_path() / ("lookahead_model_dirs_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string readme = (dir / "readme").string(), hf = (dir / "hf").string();
  CliResult r = run("moe synth --shape tiny --experts 2 --layers 1 --tokenizer " + kModel + " --out " + readme);
  ASSERT_EQ(r.status, 0) << r.output;
  fs::create_directories(hf);
  lookahead::moe::format_test::TinyHf(7).write(hf, /*with_tokenizer=*/false);
  fs::copy_file(fs::path(readme) / "tokenizer.gguf", fs::path(hf) / "tokenizer.gguf");

  const CliResult expected = run("moe tokenize --model " + kModel + " --prompt 'Hi there'");
  ASSERT_EQ(expected.status, 0) << expected.output;
  for (const std::string& model : {readme, hf}) {
    r = run("moe tokenize --model " + model + " --prompt 'Hi there'");
    EXPECT_EQ(r.status, 0) << model << "\n" << r.output;
    EXPECT_EQ(r.output, expected.output) << model;
  }
  r = run_shell(binary() + " moe info --model " + hf + " --json --tensors");
  ASSERT_EQ(r.status, 0) << r.output;
  const nlohmann::json j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["format"], "huggingface");
  EXPECT_EQ(j["config"]["layers"], 2);
  EXPECT_EQ(j["config"]["vocab_size"], 10);
  EXPECT_EQ(j["tensors"].size(), 21u);
  r = run("moe info --model " + readme);
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "Read-ME model")) << r.output;
  fs::remove_all(dir);
}

// Item 15: flag-parser errors are one `lookahead: error:` line with status 1, like every other error.
TEST(CliErrors, ParserErrorsAreOneLineWithStatusOne) {
  struct Case {
    std::string args, line;
  };
  for (const Case& c : std::vector<Case>{
           {"moe generate --tokens abc",
            "lookahead: error: Could not convert: --tokens = abc (see lookahead moe generate --help)\n"},
           {"net run --frob", "lookahead: error: The following argument was not expected: --frob (see lookahead net run --help)\n"},
           {"moe generate", "lookahead: error: --model is required (see lookahead moe generate --help)\n"},
           {"moe frob", "lookahead: error: unknown command 'moe frob' (see lookahead moe --help)\n"},
           {"frob", "lookahead: error: unknown command group 'frob' (expected 'moe', 'net' or 'bridge'; see lookahead --help)\n"},
       }) {
    CliResult r = run(c.args);
    EXPECT_EQ(r.status, 1) << c.args;
    EXPECT_EQ(r.output, c.line) << c.args;
  }
}

TEST(CliErrors, DirectoryWhereAFileIsExpectedSaysSo) {
  const std::string dir = fs::temp_directory_path().string();
  std::vector<BadFlag> cases = {
      {"net run --spec " + dir, dir + ": is a directory; expected a file"},
      {"net run --topology fat_tree --k 4 --matrix " + dir, dir + ": is a directory; expected a file"},
      {"net plan --flows " + dir, "--flows " + dir + ": is a directory; expected a file"},
  };
  if (fs::exists(kModel)) {
    cases.push_back({"moe tokenize --model " + kModel + " --file " + dir, "--file " + dir + ": is a directory; expected a file"});
    cases.push_back(
        {"moe perplexity --model " + kModel + " --file " + dir, "--file " + dir + ": is a directory; expected a file"});
    cases.push_back({"moe replay --model " + kModel + " --trace " + dir, "trace " + dir + ": is a directory; expected a file"});
  }
  expect_errors(cases);
}

TEST(CliErrors, ReadmeScenarioExampleRuns) {
  const std::string spec = std::string(LOOKAHEAD_TEST_DATA) + "/../../docs/examples/scenario.json";
  CliResult r = run("net run --spec " + spec);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "jobs: 2, all finished")) << r.output;
  EXPECT_TRUE(contains(r.output, "group step1: 1/1 flows")) << r.output;
}

TEST(CliErrors, HelpListsAcceptedValuesAndDefaults) {
  EXPECT_TRUE(contains(run("net congestion --help").output, "ethereal-tiered"));
  EXPECT_TRUE(contains(run("net congestion --help").output, "moe_alltoall"));
  EXPECT_TRUE(contains(run("net plan --help").output, "ethereal-tiered"));
  EXPECT_TRUE(contains(run("net repro --help").output, "ethereal-tiered"));
  const std::string gen = run("moe generate --help").output;
  EXPECT_TRUE(contains(gen, "--temp FLOAT=0.8")) << gen;
  EXPECT_TRUE(contains(gen, "-c,--ctx INT=2048")) << gen;
  EXPECT_TRUE(contains(gen, "-n,--tokens INT=128")) << gen;
  const std::string net = run("net run --help").output;
  EXPECT_TRUE(contains(net, "(default 4096)")) << net;
  EXPECT_FALSE(contains(net, "--mtu UINT=0")) << net;  // a sentinel shown as the default would contradict it
}

}  // namespace
