// `lookahead net run` / `net topo` end to end: spec files, flags, JSON, determinism, bad input.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/scratch_path.h"

namespace {

struct Output {
  int status;
  std::string text;
};

Output run(const std::string& args) {
  std::string cmd = std::string(LOOKAHEAD_BINARY) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  Output o{-1, ""};
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) o.text.append(buf, n);
  o.status = pclose(p);
  return o;
}

std::string temp_file(const std::string& name, const std::string& contents) {
  std::string path = lookahead::test::scratch_path(name).string();
  std::ofstream(path) << contents;
  return path;
}

}  // namespace

TEST(NetRunCli, TopoSummary) {
  Output o = run("net topo --topology fat_tree --k 4 --json");
  ASSERT_EQ(o.status, 0) << o.text;
  auto j = nlohmann::json::parse(o.text);
  EXPECT_EQ(j["hosts"], 16);
  EXPECT_EQ(j["switches"], 20);
  EXPECT_EQ(j["max_paths"], 4);
  Output bad = run("net topo --spines 0");
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.text.find("'spines'"), std::string::npos) << bad.text;
}

TEST(NetRunCli, SpecRunIsDeterministicJson) {
  std::string spec = temp_file("net_run_spec.json", R"({
    "topology": {"kind": "fat_tree", "k": 4},
    "network": {"lb": "spray"},
    "seed": 3,
    "workload": {"kind": "permutation", "bytes": 200000},
    "flows": [{"id": "x", "src": 0, "dst": 15, "bytes": 50000, "group": "tail"}]})");
  Output a = run("net run --spec " + spec + " --json --links");
  Output b = run("net run --spec " + spec + " --json --links");
  ASSERT_EQ(a.status, 0) << a.text;
  EXPECT_EQ(a.text, b.text);
  auto j = nlohmann::json::parse(a.text);
  EXPECT_EQ(j["summary"]["finished"], 17);
  EXPECT_EQ(j["summary"]["conserved"], true);
  EXPECT_EQ(j["groups"][0]["name"], "tail");
  EXPECT_FALSE(j["links"].empty());
  Output c = run("net run --spec " + spec + " --json --seed 4");
  EXPECT_NE(a.text, c.text);
}

TEST(NetRunCli, FlagsAndCsv) {
  std::string prefix = lookahead::test::scratch_path("net_run_csv").string();
  Output o = run("net run --leaves 2 --spines 2 --hosts-per-leaf 4 --gbps 100 --workload incast --senders 3 --bytes 100000 --cc dcqcn --csv " +
                 prefix);
  ASSERT_EQ(o.status, 0) << o.text;
  EXPECT_NE(o.text.find("3 of 3 finished"), std::string::npos) << o.text;
  std::ifstream flows(prefix + "_flows.csv");
  std::string header;
  std::getline(flows, header);
  EXPECT_EQ(header.rfind("id,src,dst,bytes", 0), 0u);
}

TEST(NetRunCli, BadInputNamesTheProblem) {
  std::string cyc = temp_file("net_cyc.cm", "id a 0->2 size 10 after b\nid b 2->0 size 10 after a\n");
  Output o = run("net run --leaves 2 --spines 2 --hosts-per-leaf 2 --matrix " + cyc);
  EXPECT_NE(o.status, 0);
  EXPECT_NE(o.text.find("cycle"), std::string::npos) << o.text;
  std::string unknown = temp_file("net_unknown.json", R"({"topology": {"kind": "leaf_spine", "spinez": 2}})");
  o = run("net run --spec " + unknown);
  EXPECT_NE(o.status, 0);
  EXPECT_NE(o.text.find("unknown key 'spinez'"), std::string::npos) << o.text;
  o = run("net run --leaves 2 --spines 2 --hosts-per-leaf 2 --workload permutation --lb bogus");
  EXPECT_NE(o.status, 0);
  EXPECT_NE(o.text.find("--lb"), std::string::npos) << o.text;
  std::string nohost = temp_file("net_nohost.cm", "0->99 size 10\n");
  o = run("net run --leaves 2 --spines 2 --hosts-per-leaf 2 --matrix " + nohost);
  EXPECT_NE(o.status, 0);
  EXPECT_NE(o.text.find("net_nohost.cm:1"), std::string::npos) << o.text;
}

TEST(NetRunCli, LostAcksFailTheFlowAndTheSummarySaysSo) {
  // Issue 17: the data path works, the ACK path (leaf1 -> spine1, one direction) is down. The
  // receiver gets every byte, the sender retries and gives up: the flow is FAILED, not finished.
  std::string spec = temp_file("net_run_lost_acks.json", R"({
    "topology": {"kind": "leaf_spine", "leaves": 2, "spines": 2, "hosts_per_leaf": 4},
    "flows": [{"id": "a", "src": 0, "dst": 4, "bytes": 40960, "lb": "source", "path": 1, "group": "step0"},
              {"id": "b", "src": 4, "dst": 5, "bytes": 10000, "deps": ["a"], "group": "step1"}],
    "failures": [{"from": "leaf1", "to": "spine1", "both": false, "at_us": 0}]})");
  Output j = run("net run --spec " + spec + " --json --retry-limit 2");
  ASSERT_EQ(j.status, 0) << j.text;
  auto r = nlohmann::json::parse(j.text);
  EXPECT_EQ(r["summary"]["failed"], 1);
  EXPECT_EQ(r["summary"]["finished"], 0);
  EXPECT_EQ(r["summary"]["not_started"], 1);
  EXPECT_EQ(r["flows"][0]["state"], "failed");
  EXPECT_EQ(r["flows"][0]["timeouts"], 3);
  EXPECT_TRUE(r["flows"][0]["finish_us"].is_null());
  EXPECT_FALSE(r["flows"][0]["receiver_done_us"].is_null());
  EXPECT_EQ(r["flows"][1]["state"], "not_started");
  EXPECT_EQ(r["groups"][0]["state"], "failed");
  EXPECT_EQ(r["config"]["retry_limit"], 2);
  EXPECT_EQ(r["config"]["reps_state"], "connection");
  EXPECT_TRUE(r["groups"][0]["completion_us"].is_null());
  Output t = run("net run --spec " + spec);
  ASSERT_EQ(t.status, 0) << t.text;
  EXPECT_NE(t.text.find("0 of 2 finished"), std::string::npos) << t.text;
  EXPECT_NE(t.text.find("1 FAILED (retry limit 7 reached), 1 never started"), std::string::npos) << t.text;
  EXPECT_NE(t.text.find("group step0: 0/1 flows, completion FAILED"), std::string::npos) << t.text;
  Output bad = run("net run --spec " + spec + " --reps-state flow");
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.text.find("lookahead: error: --reps-state: expected connection or qp, got 'flow'"), std::string::npos) << bad.text;
  Output small = run("net run --spec " + spec + " --max-cwnd-bytes 100");
  EXPECT_NE(small.status, 0);
  EXPECT_NE(small.text.find("'max_cwnd_bytes' must be 0 (default) or at least one MTU"), std::string::npos) << small.text;
}
