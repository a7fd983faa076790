// `lookahead net gpt`: a GPT iteration written as a `net repro --jobs` spec on a given fabric, which
// the repro then runs under each scheme; bad flags are errors naming the flag, with no file written.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "tests/integration/cli_run.h"
#include "tests/scratch_path.h"

namespace {

namespace fs = std::filesystem;
using lookahead::test::run_cli;
using lookahead::test::scratch_path;

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

fs::path small_fabric() {
  const fs::path base = scratch_path("gpt_base.json");
  std::ofstream(base) << R"({"topology": {"kind": "leaf_spine", "leaves": 4, "spines": 4, "hosts_per_leaf": 4, "host_gbps": 400}})";
  return base;
}

TEST(NetGptCli, WritesAJobsSpecThatTheReproRuns) {
  const fs::path spec = scratch_path("gpt_spec.json"), out = scratch_path("gpt_out");
  fs::remove(spec);
  auto r = run_cli("net gpt --model gpt-117m --layers 2 --tokens-per-rank 256 --algo hd --base " + small_fabric().string() +
                   " --out " + spec.string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "16 data-parallel ranks")) << r.output;
  r = run_cli("net repro --jobs " + spec.string() + " --schemes ecmp,spray,ethereal --threads 1 --out " + out.string());
  ASSERT_EQ(r.status, 0) << r.output;
  std::ifstream csv(out / "net-repro-jobs.csv");
  std::string header, line;
  std::getline(csv, header);
  EXPECT_TRUE(contains(header, "cct_us_bucket0")) << header;
  int rows = 0;
  while (std::getline(csv, line)) {
    ++rows;
    EXPECT_TRUE(contains(line, ",1,")) << "did not finish: " << line;
  }
  EXPECT_EQ(rows, 3);
  fs::remove_all(out);
  fs::remove(spec);
}

TEST(NetGptCli, BadFlagsAreErrorsAndWriteNothing) {
  const fs::path spec = scratch_path("gpt_bad.json"), base = small_fabric();
  fs::remove(spec);
  auto bad = [&](const std::string& flags, const std::string& says) {
    auto r = run_cli("net gpt " + flags + " --out " + spec.string());
    EXPECT_NE(r.status, 0) << flags;
    EXPECT_TRUE(contains(r.output, says)) << flags << ": " << r.output;
    EXPECT_FALSE(fs::exists(spec)) << flags;
  };
  bad("--model gpt-5", "unknown 'gpt-5'");
  bad("--ranks 17 --base " + base.string(), "the fabric has 16");
  bad("--layers 40", "layers must be");
  bad("--mfu 2", "MFU");
  bad("--bucket 0", "--bucket");
  const fs::path with_flows = scratch_path("gpt_flows.json");
  std::ofstream(with_flows) << R"({"topology": {"kind": "leaf_spine", "leaves": 2, "spines": 2, "hosts_per_leaf": 2},
                                   "flows": [{"src": 0, "dst": 1, "bytes": 1000}]})";
  bad("--base " + with_flows.string(), "has 'flows'");
  fs::remove(with_flows);
}

}  // namespace
