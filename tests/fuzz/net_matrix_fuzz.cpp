// libFuzzer target: the connection-matrix flow file (net/scenario/spec.cpp,
// parse_connection_matrix; format in net/scenario/spec.h). The first byte picks the topology (a
// 2x2x4 leaf-spine or a k=4 fat-tree) and whether the workload already holds flows (ids and
// dependencies then start past them); the rest is the file. Any input must either load or throw
// lookahead::Error; a crash, sanitizer report, leak or hang is a bug. Flows that load must
// validate against the topology.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/error.h"
#include "net/scenario/spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lookahead::net;
  if (size == 0) return 0;
  static const Topology leaf_spine = [] {
    LeafSpineSpec s;
    s.leaves = 2, s.spines = 2, s.hosts_per_leaf = 4;
    return build_leaf_spine(s);
  }();
  static const Topology fat_tree = [] {
    FatTreeSpec s;
    s.k = 4;
    return build_fat_tree(s);
  }();
  const Topology& topo = (data[0] & 1) ? fat_tree : leaf_spine;
  Workload w;
  if (data[0] & 2) {
    w.add_flow(0, 1, 1000);
    w.add_flow(1, 2, 1000, 0, {0}, w.add_group("existing"));
  }
  std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    parse_connection_matrix(text, "fuzz.cm", topo, w);
    w.validate(topo, "fuzz.cm");
  } catch (const lookahead::Error&) {
  }
  return 0;
}
