#include "net/workload/workload.h"

#include <algorithm>
#include <numeric>

#include "common/error.h"

namespace lookahead::net {

int Workload::add_flow(const FlowSpec& flow) {
  flows.push_back(flow);
  return static_cast<int>(flows.size()) - 1;
}

int Workload::add_flow(int src, int dst, uint64_t bytes, uint64_t start_ps, std::vector<int> deps, int group) {
  FlowSpec f;
  f.src = src;
  f.dst = dst;
  f.bytes = bytes;
  f.start_ps = start_ps;
  f.deps = std::move(deps);
  f.group = group;
  return add_flow(f);
}

int Workload::add_group(std::string name) {
  groups.push_back(std::move(name));
  return static_cast<int>(groups.size()) - 1;
}

int Workload::group_id(const std::string& name) {
  for (size_t i = 0; i < groups.size(); ++i)
    if (groups[i] == name) return static_cast<int>(i);
  return add_group(name);
}

void Workload::validate(const Topology& topology, const std::string& where) const {
  int n = static_cast<int>(flows.size());
  for (int i = 0; i < n; ++i) {
    const FlowSpec& f = flows[i];
    if (f.src < 0 || f.src >= topology.hosts())
      fail("{}: flow {}: 'src' host {} does not exist (topology has {} hosts)", where, i, f.src, topology.hosts());
    if (f.dst < 0 || f.dst >= topology.hosts())
      fail("{}: flow {}: 'dst' host {} does not exist (topology has {} hosts)", where, i, f.dst, topology.hosts());
    if (f.src == f.dst) fail("{}: flow {}: 'src' and 'dst' are the same host {}", where, i, f.src);
    if (f.bytes == 0) fail("{}: flow {}: 'bytes' must be positive", where, i);
    if (f.bytes > (uint64_t{1} << 42)) fail("{}: flow {}: 'bytes' too large ({})", where, i, f.bytes);
    if (f.group < -1 || f.group >= static_cast<int>(groups.size())) fail("{}: flow {}: unknown 'group' {}", where, i, f.group);
    for (int d : f.deps)
      if (d < 0 || d >= n || d == i) fail("{}: flow {}: 'deps' names unknown flow {}", where, i, d);
    for (int g : f.after_groups)
      if (g < 0 || g >= static_cast<int>(groups.size())) fail("{}: flow {}: 'after_groups' names unknown group {}", where, i, g);
    if (f.path >= 0 && f.path >= topology.path_count(f.src, f.dst))
      fail("{}: flow {}: 'path' {} out of range (hosts {} -> {} have {} paths)", where, i, f.path, f.src, f.dst,
           topology.path_count(f.src, f.dst));
  }
  // Cycle check: Kahn's algorithm over dependency edges; group g is node n + g (its flows -> g ->
  // the flows gated on it).
  const int nodes = n + static_cast<int>(groups.size());
  std::vector<int> indegree(nodes, 0);
  std::vector<std::vector<int>> dependents(nodes);
  auto edge = [&](int from, int to) {
    dependents[from].push_back(to);
    ++indegree[to];
  };
  for (int i = 0; i < n; ++i) {
    for (int d : flows[i].deps) edge(d, i);
    for (int g : flows[i].after_groups) edge(n + g, i);
    if (flows[i].group >= 0) edge(i, n + flows[i].group);
  }
  std::vector<int> ready;
  for (int i = 0; i < nodes; ++i)
    if (indegree[i] == 0) ready.push_back(i);
  int seen = 0;
  while (!ready.empty()) {
    int i = ready.back();
    ready.pop_back();
    ++seen;
    for (int j : dependents[i])
      if (--indegree[j] == 0) ready.push_back(j);
  }
  if (seen != nodes) {
    for (int i = 0; i < n; ++i)
      if (indegree[i] > 0) fail("{}: 'deps' (or 'after_groups') form a cycle through flow {}", where, i);
    fail("{}: 'after_groups' form a cycle", where);
  }
}

void add_permutation(Workload& w, int hosts, uint64_t bytes, uint64_t seed) {
  if (hosts < 2) fail("permutation needs at least 2 hosts");
  // A random derangement: shuffle, then fix points are swapped with a neighbour.
  std::vector<int> perm(hosts);
  std::iota(perm.begin(), perm.end(), 0);
  Rng rng(seed ^ 0x7065726dull);
  for (int i = hosts - 1; i > 0; --i) std::swap(perm[i], perm[rng.next() % static_cast<uint64_t>(i + 1)]);
  for (int i = 0; i < hosts; ++i)
    if (perm[i] == i) std::swap(perm[i], perm[(i + 1) % hosts]);
  for (int i = 0; i < hosts; ++i) w.add_flow(i, perm[i], bytes);
}

void add_all_to_all(Workload& w, int hosts, uint64_t bytes) {
  for (int s = 0; s < hosts; ++s)
    for (int d = 0; d < hosts; ++d)
      if (s != d) w.add_flow(s, d, bytes);
}

void add_incast(Workload& w, int senders, int receiver, uint64_t bytes) {
  for (int s = 0, added = 0; added < senders; ++s)
    if (s != receiver) {
      w.add_flow(s, receiver, bytes);
      ++added;
    }
}

}  // namespace lookahead::net
