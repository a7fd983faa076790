// Topology builders: shapes, path enumeration, source routes, failures, summaries, spec errors.
#include <gtest/gtest.h>

#include <set>

#include "common/error.h"
#include "net/topo/topology.h"

using namespace lookahead::net;

namespace {

std::string error_of(auto&& fn) {
  try {
    fn();
  } catch (const lookahead::Error& e) {
    return e.what();
  }
  return "";
}

// A path must be a connected walk from src to dst.
void expect_walk(const Topology& t, int src, int dst, const std::vector<int>& path) {
  ASSERT_FALSE(path.empty());
  EXPECT_EQ(t.links[path.front()].from, src);
  EXPECT_EQ(t.links[path.back()].to, dst);
  for (size_t i = 1; i < path.size(); ++i) EXPECT_EQ(t.links[path[i - 1]].to, t.links[path[i]].from);
}

}  // namespace

TEST(TopoLeafSpine, ShapeAndPaths) {
  LeafSpineSpec spec;
  spec.leaves = 4;
  spec.spines = 3;
  spec.hosts_per_leaf = 2;
  Topology t = build_leaf_spine(spec);
  EXPECT_EQ(t.hosts(), 8);
  EXPECT_EQ(t.switches(), 7);
  EXPECT_EQ(t.links.size(), 2u * (8 + 4 * 3));
  EXPECT_EQ(t.path_count(0, 1), 1);  // same leaf
  EXPECT_EQ(t.path_count(0, 2), 3);
  std::set<int> spines_used;
  for (int p = 0; p < 3; ++p) {
    auto links = t.path_links(0, 7, p);
    ASSERT_EQ(links.size(), 4u);
    expect_walk(t, 0, 7, links);
    spines_used.insert(t.links[links[1]].to);
    EXPECT_EQ(t.path_index(0, 7, t.source_route(0, 7, p)), p);
  }
  EXPECT_EQ(spines_used.size(), 3u);
  auto same = t.path_links(0, 1, 0);
  EXPECT_EQ(same.size(), 2u);
  expect_walk(t, 0, 1, same);
  EXPECT_THROW(t.path_links(0, 7, 3), lookahead::Error);
  EXPECT_THROW(t.path_links(0, 8, 0), lookahead::Error);
}

TEST(TopoLeafSpine, ParallelLinksAndSummary) {
  LeafSpineSpec spec;
  spec.leaves = 2;
  spec.spines = 2;
  spec.hosts_per_leaf = 8;
  spec.parallel_links = 2;
  spec.host_gbps = 100;
  spec.fabric_gbps = 100;
  Topology t = build_leaf_spine(spec);
  EXPECT_EQ(t.path_count(0, 8), 4);
  // Paths 0 and 2 use the same spine over different cables, and go down on the matching cable.
  auto a = t.path_links(0, 8, 0), b = t.path_links(0, 8, 2);
  EXPECT_EQ(t.links[a[1]].to, t.links[b[1]].to);
  EXPECT_NE(a[1], b[1]);
  EXPECT_NE(a[2], b[2]);
  EXPECT_EQ(t.links[b[2]].parallel, 1);
  auto s = t.summary();
  EXPECT_DOUBLE_EQ(s.oversubscription, 2.0);  // 8 x 100 down, 4 x 100 up
  EXPECT_DOUBLE_EQ(s.bisection_bps, 1 * 4 * 100e9);
  EXPECT_EQ(s.max_paths, 4);
}

TEST(TopoLeafSpine, OversubscriptionSetsFabricRate) {
  LeafSpineSpec spec;
  spec.leaves = 2;
  spec.spines = 4;
  spec.hosts_per_leaf = 8;
  spec.host_gbps = 100;
  spec.oversubscription = 2;
  Topology t = build_leaf_spine(spec);
  EXPECT_EQ(t.links[t.up_ports[t.first_leaf][0]].rate_bps, 100'000'000'000ull);
  EXPECT_DOUBLE_EQ(t.summary().oversubscription, 2.0);
}

TEST(TopoFatTree, KAryShape) {
  FatTreeSpec spec;
  spec.k = 4;
  Topology t = build_fat_tree(spec);
  EXPECT_EQ(t.hosts(), 16);
  EXPECT_EQ(t.switches(), 20);
  EXPECT_EQ(t.links.size(), 2u * (16 + 16 + 16));
  EXPECT_EQ(t.path_count(0, 1), 1);   // same ToR
  EXPECT_EQ(t.path_count(0, 2), 2);   // same pod: agg choice
  EXPECT_EQ(t.path_count(0, 15), 4);  // across pods: (ToR uplink, agg uplink)
  std::set<int> cores;
  for (int p = 0; p < 4; ++p) {
    auto links = t.path_links(0, 15, p);
    ASSERT_EQ(links.size(), 6u);
    expect_walk(t, 0, 15, links);
    cores.insert(t.links[links[2]].to);
    auto r = t.source_route(0, 15, p);
    EXPECT_EQ(r.port[0], p % 2);
    EXPECT_EQ(r.port[1], p / 2);
    EXPECT_EQ(t.path_index(0, 15, r), p);
  }
  EXPECT_EQ(cores.size(), 4u);
  for (int p = 0; p < 2; ++p) expect_walk(t, 0, 2, t.path_links(0, 2, p));
  auto s = t.summary();
  EXPECT_EQ(s.kind, "fat_tree");
  EXPECT_DOUBLE_EQ(s.oversubscription, 1.0);
  EXPECT_DOUBLE_EQ(s.bisection_bps, 8 * 100e9);
  EXPECT_EQ(s.max_paths, 4);
}

TEST(TopoFatTree, Large1024Hosts) {
  FatTreeSpec spec;
  spec.k = 16;
  Topology t = build_fat_tree(spec);
  EXPECT_EQ(t.hosts(), 1024);
  EXPECT_EQ(t.path_count(0, 1023), 64);
  for (int p : {0, 17, 63}) expect_walk(t, 0, 1023, t.path_links(0, 1023, p));
}

TEST(TopoFatTree, FailuresExcludePaths) {
  FatTreeSpec spec;
  spec.k = 4;
  Topology t = build_fat_tree(spec);
  auto links = t.path_links(0, 15, 3);
  int core_uplink = links[2];
  t.set_link_up(core_uplink, false);
  EXPECT_FALSE(t.path_is_live(0, 15, 3));
  auto live = t.live_paths(0, 15);
  EXPECT_EQ(live, (std::vector<int>{0, 1, 2}));
  t.set_link_up(core_uplink, true);
  EXPECT_EQ(t.live_paths(0, 15).size(), 4u);
}

TEST(TopoSpecErrors, NameTheKey) {
  LeafSpineSpec ls;
  ls.spines = 0;
  EXPECT_NE(error_of([&] { build_leaf_spine(ls); }).find("'spines'"), std::string::npos);
  ls = LeafSpineSpec{};
  ls.leaves = 3;
  ls.hosts = 10;
  EXPECT_NE(error_of([&] { build_leaf_spine(ls); }).find("'hosts'"), std::string::npos);
  ls = LeafSpineSpec{};
  ls.oversubscription = 0.5;
  EXPECT_NE(error_of([&] { build_leaf_spine(ls); }).find("'oversubscription'"), std::string::npos);
  FatTreeSpec ft;
  ft.k = 5;
  EXPECT_NE(error_of([&] { build_fat_tree(ft); }).find("'k'"), std::string::npos);
  ft = FatTreeSpec{};
  ft.k = 4;
  ft.pods = 2;
  EXPECT_NE(error_of([&] { build_fat_tree(ft); }).find("'pods'"), std::string::npos);
  ft = FatTreeSpec{};
  ft.pods = 2;
  ft.tors_per_pod = 2;
  ft.aggs_per_pod = 2;
  ft.cores = 3;
  ft.hosts_per_tor = 2;
  EXPECT_NE(error_of([&] { build_fat_tree(ft); }).find("'cores'"), std::string::npos);
}
