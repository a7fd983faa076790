// `lookahead net topo/run/plan` flags end to end (issue 17 items 3 and 4): the fat-tree CLI builds the
// fabric `net repro` uses or refuses what it cannot honour; `net plan` says what it plans and refuses
// input it would otherwise replace by a default.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "net/analysis/paper_fabrics.h"
#include "tests/integration/cli_run.h"

namespace {

using lookahead::test::run_cli;

bool contains(const std::string& text, const std::string& what) { return text.find(what) != std::string::npos; }

void expect_error(const std::string& args, const std::string& message) {
  auto r = run_cli(args);
  EXPECT_EQ(r.status, 1) << args << "\n" << r.output;
  EXPECT_TRUE(contains(r.output, "lookahead: error: " + message)) << args << "\n" << r.output;
}

const std::string kReproFatTree =
    "--topology fat_tree --pods 2 --tors-per-pod 16 --aggs-per-pod 16 --cores 16 --hosts-per-tor 16 --gbps 400";

}  // namespace

TEST(NetTopologyFlags, FatTreeFlagsBuildTheReprosFabric) {
  auto r = run_cli("net topo " + kReproFatTree + " --core-parallel-links 16 --oversubscription 1 --json");
  ASSERT_EQ(r.status, 0) << r.output;
  auto j = nlohmann::json::parse(r.output);
  auto want = lookahead::net::build_fat_tree(lookahead::net::analysis::paper_fat_tree_spec(false));
  auto s = want.summary();
  EXPECT_EQ(j["hosts"], 512);
  EXPECT_EQ(j["hosts"], s.hosts);
  EXPECT_EQ(j["switches"], s.switches);
  EXPECT_EQ(j["links"], s.links);
  EXPECT_EQ(j["tiers"], 3);
  EXPECT_EQ(j["max_paths"], s.max_paths);
  EXPECT_DOUBLE_EQ(j["bisection_gbps"].get<double>(), s.bisection_bps / 1e9);
  EXPECT_DOUBLE_EQ(j["oversubscription"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(j["host_gbps"].get<double>(), 400.0);
  EXPECT_EQ(j["tor_parallel_links"], 1);
  EXPECT_EQ(j["core_parallel_links"], 16);
  // The same fabric with the agg-core capacity as one fat cable: 1:1, fewer links.
  r = run_cli("net topo " + kReproFatTree + " --agg-core-gbps 6400 --oversubscription 1 --json");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_DOUBLE_EQ(nlohmann::json::parse(r.output)["oversubscription"].get<double>(), 1.0);
  // The text summary names the cables.
  r = run_cli("net topo " + kReproFatTree + " --core-parallel-links 16");
  EXPECT_TRUE(contains(r.output, "1 cable(s) per ToR-agg pair, 16 per agg-core pair")) << r.output;
  // net run takes the same flags.
  r = run_cli("net run --topology fat_tree --k 4 --tor-parallel-links 2 --core-parallel-links 2 --workload permutation "
              "--bytes 20000 --lb spray --json");
  ASSERT_EQ(r.status, 0) << r.output;
}

TEST(NetTopologyFlags, OversubscriptionTheShapeCannotGiveIsRefused) {
  // Without the 16 agg-core cables each agg has 16 cables down and 1 up: 16:1, not the 1:1 asked for
  // (this printed "oversubscription 16:1" and exited 0).
  expect_error("net topo " + kReproFatTree + " --oversubscription 1",
               "--oversubscription 1: the ToRs are 1:1 but the aggregation switches of this fat-tree are 16:1 (16 cables "
               "down to ToRs, 1 up to cores); for 1:1 there too give --core-parallel-links 16 or --agg-core-gbps 6400");
  // A ToR ratio the aggregation tier matches or beats is fine.
  auto r = run_cli("net topo --topology fat_tree --k 4 --oversubscription 2 --json");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_DOUBLE_EQ(nlohmann::json::parse(r.output)["oversubscription"].get<double>(), 2.0);
}

TEST(NetTopologyFlags, FlagsOfTheOtherTopologyAreRefused) {
  // These were silently ignored.
  expect_error("net topo " + kReproFatTree + " --parallel-links 16",
               "--parallel-links: a leaf_spine flag; a fat_tree takes --tor-parallel-links (ToR-agg cables) and "
               "--core-parallel-links (agg-core cables)");
  expect_error("net topo --topology fat_tree --k 4 --spines 3", "--spines: a leaf_spine flag; it does nothing with --topology fat_tree");
  expect_error("net topo --topology fat_tree --k 4 --hosts-per-leaf 3", "--hosts-per-leaf: a leaf_spine flag");
  expect_error("net topo --k 4", "--k: a fat_tree flag; it does nothing with --topology leaf_spine");
  expect_error("net topo --core-parallel-links 2", "--core-parallel-links: a fat_tree flag");
  expect_error("net run --topology fat_tree --k 4 --leaves 2 --workload permutation --bytes 1000", "--leaves: a leaf_spine flag");
  expect_error("net plan --topology fat_tree --k 4 --parallel-links 2 --flow 0:15:1MiB", "--parallel-links: a leaf_spine flag");
  expect_error("net topo --topology fat_tree --k 4 --agg-core-gbps 0", "--agg-core-gbps must be a positive rate in Gbit/s, got 0");
  expect_error("net topo --topology fat_tree --k 4 --core-parallel-links 0", "fat_tree spec: 'core_parallel_links' must be at least 1");
}

TEST(NetPlanCli, NothingToPlanIsAnErrorNotADefaultAllReduce) {
  // `net plan` alone planned a 64 MiB all-reduce nobody asked for.
  expect_error("net plan", "nothing to plan: give --flow SRC:DST:BYTES (repeatable), --flows FILE, or a collective");
  expect_error("net plan --scheme ethereal-min", "nothing to plan");
  // Any collective flag asks for a collective; the defaults of the others are printed.
  auto r = run_cli("net plan --algo ring --leaves 2 --spines 2 --hosts-per-leaf 2");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "allreduce/ring 64MiB on 4 ranks (linear), step 0 of 6")) << r.output;
  // Collective flags with explicit flows did nothing; now they are refused.
  expect_error("net plan --flow 0:16:1MiB --size 4MiB", "--size: a collective flag; it does nothing with --flow/--flows");
  expect_error("net plan --flow 0:16:1MiB --step 2", "--step: a collective flag; it does nothing with --flow/--flows");
  expect_error("net plan --algo ring --step -1", "--step: must be at least 0 (got -1)");
}

TEST(NetPlanCli, RanksZeroAndSizeZeroAreErrors) {
  // --ranks 0 meant "every host"; leaving the flag out still does.
  expect_error("net plan --ranks 0", "--ranks: must be at least 2 (got 0); leave --ranks out for one rank per host (256)");
  expect_error("net congestion --ranks 1", "--ranks: must be at least 2 (got 1)");
  auto r = run_cli("net plan --collective allreduce --leaves 2 --spines 2 --hosts-per-leaf 2");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "on 4 ranks")) << r.output;
  // Size 0 said "expected a byte size like 64MiB, 1MB or 4096".
  expect_error("net plan --flow 0:16:0", "--flow: 0 bytes is not allowed (got '0'); sizes must be at least 1 byte");
  expect_error("net plan --algo ring --size 0MiB", "--size: 0 bytes is not allowed (got '0MiB')");
  expect_error("net congestion --size 0", "--size: 0 bytes is not allowed");
  expect_error("net plan --flow 0:16:lots", "--flow: expected a byte size like 64MiB, 1MB or 4096, got 'lots'");
}

TEST(NetPlanCli, SameLeafDestinationStaysUnderItsLeaf) {
  // Printed "path 0 up-ports (0, 0)" as if it left the leaf.
  auto r = run_cli("net plan --flow 0:1:1MiB --flow 0:16:1MiB");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "stays under leaf0 (no uplink)")) << r.output;
  r = run_cli("net plan --flow 0:1:1MiB");
  EXPECT_FALSE(contains(r.output, "up-ports")) << r.output;
  r = run_cli("net plan --topology fat_tree --k 4 --flow 0:1:1MiB");
  EXPECT_TRUE(contains(r.output, "stays under tor0 (no uplink)")) << r.output;
}

TEST(NetPlanCli, UnequalSizesInABatchGetAWarning) {
  auto r = run_cli("net plan --flow 0:16:1MiB --flow 0:17:2MiB");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "lookahead: warning: unequal flow sizes in a batch (host 0 -> leaf1: 1048576 and 2097152 bytes)"))
      << r.output;
  EXPECT_TRUE(contains(r.output, "ethereal-min balances any sizes")) << r.output;
  // JSON on stdout stays JSON; the warning goes to stderr.
  auto j = lookahead::test::run_shell(lookahead::test::test_binary() + " net plan --flow 0:16:1MiB --flow 0:17:2MiB --json 2>/dev/null");
  ASSERT_EQ(j.status, 0);
  EXPECT_EQ(nlohmann::json::parse(j.output)["unequal_batches"], true);
  // Equal sizes, or unequal sizes towards different leaves: no warning.
  r = run_cli("net plan --flow 0:16:1MiB --flow 0:32:2MiB");
  EXPECT_FALSE(contains(r.output, "warning")) << r.output;
}

TEST(NetPlanCli, EtherealMinIsNeverMorePiecesThanEthereal) {
  // The case: 16 x 65536 B from one host to one remote leaf over 14 spines (29 QPs before).
  std::string flows;
  for (int d = 16; d < 32; ++d) flows += " --flow 0:" + std::to_string(d) + ":65536";
  auto a = run_cli("net plan --leaves 2 --spines 14 --scheme ethereal" + flows);
  auto b = run_cli("net plan --leaves 2 --spines 14 --scheme ethereal-min" + flows);
  EXPECT_TRUE(contains(a.output, "ethereal: 16 flows -> 28 QPs")) << a.output;
  EXPECT_TRUE(contains(b.output, "ethereal-min: 16 flows -> 28 QPs")) << b.output;
  EXPECT_TRUE(contains(b.output, "min 74898 max 74899 bytes over 14 uplinks")) << b.output;
}

TEST(NetPlanCli, BatchingWindowAndJitterAreShownAndChecked) {
  auto r = run_cli("net plan --flow 0:16:1MiB --json");
  ASSERT_EQ(r.status, 0) << r.output;
  for (const auto& q : nlohmann::json::parse(r.output)["qps"]) {
    EXPECT_GE(q["start_ns"].get<double>(), 100.0);
    EXPECT_LE(q["start_ns"].get<double>(), 150.0);
  }
  r = run_cli("net plan --flow 0:16:1MiB");
  EXPECT_TRUE(contains(r.output, "cross-leaf QPs start 100 ns (batching window) + 0-50 ns seeded jitter")) << r.output;
  r = run_cli("net plan --flow 0:16:1MiB --batch-window-ns 0 --jitter-ns 0 --json");
  for (const auto& q : nlohmann::json::parse(r.output)["qps"]) EXPECT_EQ(q["start_ns"].get<double>(), 0.0);
  expect_error("net plan --flow 0:16:1MiB --jitter-ns -1", "--jitter-ns: must be in [0, 1e9] ns, got -1");
  expect_error("net repro --quick --batch-window-ns -5 --out /tmp", "--batch-window-ns: must be in [0, 1e9] ns, got -5");
}
