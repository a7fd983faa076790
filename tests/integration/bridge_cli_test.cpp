// `lookahead bridge traffic|run|placement` end to end: the generated spec runs in `net run`, a
// real Read-ME router drives it, results are deterministic, and bad input is a clear error.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <cctype>
#include <string>

#include "tests/integration/cli_run.h"
#include "tests/scratch_path.h"

namespace {

using lookahead::test::run_cli;

// The number just before `marker` in `text` (e.g. "12" in "..., 12 flows, ..."); -1 if none.
// (std::regex would do, but GCC 12 with ASan warns inside <regex> and the build uses -Werror.)
long number_before(const std::string& text, const std::string& marker) {
  size_t end = text.find(marker);
  if (end == std::string::npos) return -1;
  size_t begin = end;
  while (begin > 0 && std::isdigit(static_cast<unsigned char>(text[begin - 1]))) --begin;
  return begin == end ? -1 : std::stol(text.substr(begin, end - begin));
}

const std::string kSmall = "--leaves 2 --spines 2 --hosts-per-leaf 2 --layers 3 --batch-tokens 256 --hidden 1024";

TEST(BridgeCli, GeneratedSpecRunsInNetRun) {
  const std::string spec = lookahead::test::scratch_path("bridge_spec.json").string();
  auto t = run_cli("bridge traffic --zipf 1.2 --experts 4 " + kSmall + " --out " + spec);
  ASSERT_EQ(t.status, 0) << t.output;
  EXPECT_NE(t.output.find("3 layers"), std::string::npos) << t.output;
  auto r = run_cli("net run --spec " + spec);
  ASSERT_EQ(r.status, 0) << r.output;
  // Every flow finishes, and each layer's groups are reported.
  const long flows = number_before(r.output, " flows, ");
  const size_t finished = r.output.find(" finished");
  ASSERT_NE(finished, std::string::npos) << r.output;
  const std::string line = r.output.substr(0, finished);  // "...: A of B"
  const long of_total = number_before(line + "|", "|");
  const long done = number_before(line, " of ");
  EXPECT_GT(flows, 0) << r.output;
  EXPECT_EQ(done, of_total) << r.output;
  EXPECT_EQ(done, flows) << r.output;
  EXPECT_NE(r.output.find("group l2/combine/h"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("unfinished"), std::string::npos) << r.output;
}

TEST(BridgeCli, RunReportsEverySchemeAndIsDeterministic) {
  const std::string args = "bridge run --zipf 1.0 --experts 4 " + kSmall + " --json";
  auto a = run_cli(args), b = run_cli(args);
  ASSERT_EQ(a.status, 0) << a.output;
  EXPECT_EQ(a.output, b.output);
  auto j = nlohmann::json::parse(a.output);
  ASSERT_EQ(j["schemes"].size(), 6u);
  for (const auto& s : j["schemes"]) {
    EXPECT_TRUE(s["finished"].get<bool>()) << s["scheme"];
    EXPECT_EQ(s["layer_cct_us"].size(), 3u);
    EXPECT_GT(s["forward_us"].get<double>(), j["bound"]["forward_us"].get<double>()) << s["scheme"];
  }
}

TEST(BridgeCli, RealRouterOnRealText) {
  const std::string model = std::string(LOOKAHEAD_CACHE_DIR) + "/demo/SmolLM2-135M-ReadMe-lsq";
  const std::string text = std::string(LOOKAHEAD_CACHE_DIR) + "/corpus/code/heldout.txt";
  if (!std::filesystem::exists(model + "/config.json") || !std::filesystem::exists(text))
    GTEST_SKIP() << "needs the demo's Read-ME model (scripts/demo) and the corpus";
  auto r = run_cli("bridge traffic --model " + model + " --text " + text + " " + kSmall + " --json -t 1");
  ASSERT_EQ(r.status, 0) << r.output;
  auto j = nlohmann::json::parse(r.output);
  uint64_t routed = 0;
  for (const auto& n : j["expert_tokens"]) routed += n.get<uint64_t>();
  EXPECT_EQ(routed, 256u);
  EXPECT_EQ(j["expert_tokens"].size(), j["experts"].get<size_t>());
  uint64_t matrix = 0;
  for (const auto& row : j["tokens"])
    for (const auto& n : row) matrix += n.get<uint64_t>();
  EXPECT_EQ(matrix, 256u);  // every token is either local or sent to exactly one host
}

TEST(BridgeCli, PlacementStudyRuns) {
  auto r = run_cli("bridge placement --zipf 1.5 --experts 8 --batches 3 --passes 4 " + kSmall);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("break-even passes"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("total over 3 batches x 4 passes"), std::string::npos) << r.output;
}

TEST(BridgeCli, BadInputIsAClearError) {
  struct Case {
    std::string args, message;
  };
  const Case cases[] = {
      {"bridge traffic --zipf 1 --experts 4 --placement random", "--placement: unknown placement 'random' (expected round-robin or hot)"},
      {"bridge traffic --zipf 1 --experts 4 --batch-tokens 0", "--batch-tokens must be >= 1"},
      {"bridge run --model /nonexistent/model --text /etc/hostname", "/nonexistent/model"},
      {"bridge traffic --model /nonexistent/model", "--model needs --text FILE"},
      {"bridge traffic --experts 4", "give exactly one routing source"},
      {"bridge traffic --zipf 1 --experts 40 --slots-per-host 1", "16 hosts x 1 slots per host cannot hold 40 experts"},
      {"bridge traffic --zipf 1 --experts 4 --slots-per-host 5", "--slots-per-host 5 exceeds the 4 experts"},
      {"bridge traffic --zipf 1 --experts 4 --batch-tokens 8", "fewer than the 16 hosts"},
      {"bridge run --zipf 1 --experts 4 --schemes ecmp,foo", "--schemes: unknown scheme 'foo'"},
      {"bridge traffic --zipf 1 --experts 4 --dtype int3", "--dtype: expected bf16, f16, f32 or fp8"},
  };
  for (const auto& c : cases) {
    auto r = run_cli(c.args);
    EXPECT_EQ(r.status, 1) << c.args << "\n" << r.output;
    EXPECT_NE(r.output.find("lookahead: error: "), std::string::npos) << c.args << "\n" << r.output;
    EXPECT_NE(r.output.find(c.message), std::string::npos) << c.args << "\n" << r.output;
  }
}

}  // namespace
