// Scenario specs and connection matrices: good files load, bad ones fail naming the key or line.
#include <gtest/gtest.h>

#include "common/error.h"
#include "net/scenario/spec.h"

using namespace lookahead::net;

namespace {

std::string error_of(const std::string& text) {
  try {
    parse_scenario(text, "spec.json");
  } catch (const lookahead::Error& e) {
    return e.what();
  }
  return "";
}

const char* kTopo = R"("topology": {"kind": "leaf_spine", "leaves": 2, "spines": 2, "hosts_per_leaf": 2, "host_gbps": 100})";

}  // namespace

TEST(SimSpec, LoadsFullScenario) {
  std::string text = std::string("{") + kTopo + R"(,
    "network": {"mtu": 9000, "cc": "dcqcn", "lb": "reps", "pfc": true, "rto_us": 100},
    "seed": 5,
    "flows": [{"id": "a", "src": 0, "dst": 2, "bytes": 100000, "group": "s0"},
              {"id": "b", "src": "host1", "dst": 3, "bytes": 5000, "deps": ["a"], "group": "s1", "lb": "source", "path": 1}],
    "failures": [{"from": "leaf0", "to": "spine1", "at_us": 5, "up_us": 9}]})";
  Scenario sc = parse_scenario(text, "spec.json");
  EXPECT_EQ(sc.topology.hosts(), 4);
  EXPECT_EQ(sc.network.mtu_bytes, 9000u);
  EXPECT_EQ(sc.network.cc, CongestionControl::DCQCN);
  EXPECT_EQ(sc.network.lb, LoadBalancing::REPS);
  EXPECT_TRUE(sc.network.pfc);
  EXPECT_EQ(sc.network.rto_ps, 100'000'000u);
  EXPECT_EQ(sc.network.seed, 5u);
  ASSERT_EQ(sc.workload.flows.size(), 2u);
  EXPECT_EQ(sc.workload.flows[1].deps, std::vector<int>{0});
  EXPECT_EQ(sc.workload.flows[1].path, 1);
  EXPECT_EQ(sc.workload.groups.size(), 2u);
  ASSERT_EQ(sc.failures.size(), 1u);
  const Link& l = sc.topology.links[sc.failures[0].link];
  EXPECT_EQ(node_name(sc.topology, l.from), "leaf0");
  EXPECT_EQ(node_name(sc.topology, l.to), "spine1");
  EXPECT_EQ(sc.failures[0].down_ps, 5'000'000u);
}

TEST(SimSpec, ErrorsNameTheKey) {
  auto with = [](const std::string& rest) { return std::string("{") + kTopo + rest + "}"; };
  EXPECT_NE(error_of(with(R"(, "flowz": [])")).find("unknown key 'flowz'"), std::string::npos);
  EXPECT_NE(error_of(R"({"topology": {"kind": "leaf_spine", "spines": 0}})").find("'spines'"), std::string::npos);
  EXPECT_NE(error_of(R"({"topology": {"kind": "leaf_spine", "leaves": 3, "hosts": 10}})").find("'hosts'"), std::string::npos);
  EXPECT_NE(error_of(R"({"topology": {"kind": "fat_tree", "k": 4, "oversubscription": 0.5}})").find("'oversubscription'"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"topology": {"kind": "ring"}})").find("kind"), std::string::npos);
  EXPECT_NE(error_of(with(R"(, "flows": [{"src": 0, "dst": 9, "bytes": 10}])")).find("flows[0].dst"), std::string::npos);
  EXPECT_NE(error_of(with(R"(, "flows": [{"src": 0, "dst": 1, "bytes": 10, "size": 3}])")).find("unknown key 'size'"), std::string::npos);
  EXPECT_NE(error_of(with(R"(, "flows": [{"id": "a", "src": 0, "dst": 1, "bytes": 10, "deps": ["b"]},
                                          {"id": "b", "src": 1, "dst": 0, "bytes": 10, "deps": ["a"]}])"))
                .find("cycle"),
            std::string::npos);
  EXPECT_NE(error_of(with(R"(, "network": {"lb": "magic"})")).find("network.lb"), std::string::npos);
  EXPECT_NE(error_of(with(R"(, "network": {"mtu": "big"})")).find("network.mtu"), std::string::npos);
  EXPECT_NE(error_of("{\"topology\": \n {\"kind\": }").find("line 2"), std::string::npos);
  // Found by tests/fuzz/net_spec_fuzz: rates and latencies too large for the integer units
  // (overflowed a float-to-int conversion), rates too small to serialise a packet, bad fractions.
  EXPECT_NE(error_of(R"({"topology": {"kind": "leaf_spine", "host_gbps": 1e300}})").find("'host_gbps'"), std::string::npos);
  EXPECT_NE(error_of(R"({"topology": {"kind": "leaf_spine", "host_gbps": 1e-300}})").find("'host_gbps'"), std::string::npos);
  EXPECT_NE(error_of(R"({"topology": {"kind": "fat_tree", "k": 4, "fabric_latency_ns": 1e300}})").find("'fabric_latency_ns'"),
            std::string::npos);
  EXPECT_NE(error_of(with(R"(, "network": {"ecn_pmax": 2})")).find("network.ecn_pmax"), std::string::npos);
  EXPECT_NE(error_of(with(R"(, "network": {"dctcp_g": 0})")).find("network.dctcp_g"), std::string::npos);
  EXPECT_NE(error_of(with(R"(, "seed": 1E99999)")).find("invalid JSON"), std::string::npos);  // was an uncaught out_of_range
}

TEST(SimSpec, ConnectionMatrix) {
  LeafSpineSpec s;
  s.leaves = 2, s.spines = 2, s.hosts_per_leaf = 2;
  Topology t = build_leaf_spine(s);
  Workload w;
  parse_connection_matrix("# a ring step\nid a 0->2 size 1000 group g\n1->3 size 2000 start_us 1.5 after a lb source path 1\n", "m.cm", t, w);
  ASSERT_EQ(w.flows.size(), 2u);
  EXPECT_EQ(w.flows[1].deps, std::vector<int>{0});
  EXPECT_EQ(w.flows[1].start_ps, 1'500'000u);
  EXPECT_EQ(w.flows[1].path, 1);
  auto err = [&](const std::string& text) {
    Workload x;
    try {
      parse_connection_matrix(text, "m.cm", t, x);
    } catch (const lookahead::Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(err("0->2 size 10\n0->7 size 10\n").find("m.cm:2"), std::string::npos);
  EXPECT_NE(err("0->2 size 10 colour red\n").find("unknown key 'colour'"), std::string::npos);
  EXPECT_NE(err("0->2\n").find("m.cm:1: missing 'size'"), std::string::npos);
  EXPECT_NE(err("0->2 size 10 after x\n").find("unknown flow 'x'"), std::string::npos);
  EXPECT_NE(err("id a 0->2 size 10 after b\nid b 2->0 size 10 after a\n").find("cycle"), std::string::npos);
}
