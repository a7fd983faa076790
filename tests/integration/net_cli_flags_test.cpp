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
