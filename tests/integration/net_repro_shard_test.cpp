// `lookahead net repro` sharded over processes (issue 17 item 6): N processes each run their share of
// the grid and shard 0 merges; the merged report is byte-identical to one process's. With mpirun
// (Open MPI) as the launcher when it is installed, and with --shard-index/--shard-count always.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "tests/integration/cli_run.h"
#include "tests/scratch_path.h"

namespace {

namespace fs = std::filesystem;
using lookahead::test::run_cli;
using lookahead::test::run_shell;
using lookahead::test::test_binary;

// A small grid: 8x8x8 leaf-spine with and without a failed cable, two algorithms, four schemes, two
// seeds (28 runs); --no-wall zeroes the only measured column.
const std::string kGrid =
    "net repro --quick --fabrics leaf_spine,leaf_spine_fail --algos ring,hd --sizes 1MiB "
    "--schemes spray,ethereal,ecmp,ethereal-known --seeds 2 --threads 1 --no-wall";

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  EXPECT_TRUE(in.good()) << p;
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

fs::path fresh_dir(const std::string& name) {
  fs::path d = lookahead::test::scratch_path(name);
  fs::remove_all(d);
  return d;
}

void expect_same_report(const fs::path& single, const fs::path& sharded) {
  for (const char* f : {"net-repro.csv", "net-repro-seeds.csv", "net-repro.md"}) {
    const std::string a = slurp(single / f), b = slurp(sharded / f);
    EXPECT_FALSE(a.empty()) << f;
    EXPECT_EQ(a, b) << f << " differs between one process and the sharded run";
  }
  for (const auto& e : fs::directory_iterator(sharded))
    EXPECT_EQ(e.path().filename().string().find(".shard-"), std::string::npos) << "left behind: " << e.path();
}

fs::path single_process_run() {
  fs::path d = fresh_dir("repro_single");
  auto r = run_cli(kGrid + " --out " + d.string());
  EXPECT_EQ(r.status, 0) << r.output;
  return d;
}

}  // namespace

TEST(NetReproShard, MpirunTwoRanksMatchOneProcessByteForByte) {
  if (run_shell("command -v mpirun >/dev/null 2>&1").status != 0)
    GTEST_SKIP() << "mpirun not found: apt-get install -y openmpi-bin (scripts/setup installs it)";
  fs::path single = single_process_run();
  fs::path sharded = fresh_dir("repro_mpirun");
  auto r = run_shell("mpirun --oversubscribe --allow-run-as-root -n 2 " + test_binary() + " " + kGrid + " --shard --out " +
                     sharded.string() + " 2>&1");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("shard 1 of 2: 14 of 28 runs"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("merged 2 shard files"), std::string::npos) << r.output;
  expect_same_report(single, sharded);
}

TEST(NetReproShard, ExplicitShardsAndMergeMatchOneProcess) {
  fs::path single = single_process_run();
  // Three shards as three separate jobs (e.g. a Slurm array), merged afterwards.
  fs::path d = fresh_dir("repro_shards");
  for (int i = 0; i < 3; ++i) {
    auto r = run_cli(kGrid + " --shard-index " + std::to_string(i) + " --shard-count 3 --out " + d.string() +
                     (i == 0 ? " --shard-timeout-s 0.5" : ""));
    if (i == 0) {  // shards 1 and 2 have not run yet: shard 0 gives up after its timeout
      EXPECT_EQ(r.status, 1) << r.output;
      EXPECT_NE(r.output.find("lookahead: error: --shard: shard 0 waited"), std::string::npos) << r.output;
    } else {
      ASSERT_EQ(r.status, 0) << r.output;
    }
  }
  auto r = run_cli(kGrid + " --merge-shards 3 --out " + d.string());
  ASSERT_EQ(r.status, 0) << r.output;
  expect_same_report(single, d);
  // A merge of shards that are not there (they were merged and removed) or of another grid is an error.
  r = run_cli(kGrid + " --merge-shards 3 --out " + d.string());
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("lookahead: error: --merge-shards: 3 of 3 shard files missing"), std::string::npos) << r.output;
  ASSERT_EQ(run_cli(kGrid + " --shard-index 1 --shard-count 2 --out " + d.string()).status, 0);
  r = run_cli(kGrid + " --seed 5 --merge-shards 2 --out " + d.string());
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("is from another grid"), std::string::npos) << r.output;
}

TEST(NetReproShard, BadShardFlagsAreErrors) {
  auto expect = [](const std::string& args, const std::string& message) {
    auto r = run_shell("env -u OMPI_COMM_WORLD_RANK -u OMPI_COMM_WORLD_SIZE -u PMI_RANK -u PMI_SIZE -u SLURM_PROCID -u "
                       "SLURM_NTASKS " + test_binary() + " " + args + " 2>&1");
    EXPECT_EQ(r.status, 1) << args << "\n" << r.output;
    EXPECT_NE(r.output.find("lookahead: error: " + message), std::string::npos) << args << "\n" << r.output;
  };
  expect(kGrid + " --shard-index 2 --shard-count 2", "--shard-index: must be in [0, 2) (got 2)");
  expect(kGrid + " --shard-index 0", "--shard-count: must be at least 1 (got 0)");
  expect(kGrid + " --shard", "--shard: no launcher environment");
  expect(kGrid + " --shard --shard-index 0 --shard-count 2", "--shard: takes the shard from the launcher");
  expect(kGrid + " --merge-shards 2 --shard-index 0 --shard-count 2", "--merge-shards: merges finished shards");
}
