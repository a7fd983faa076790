#include "bridge/even_split.h"

#include <algorithm>
#include <map>

#include "common/error.h"

namespace lookahead::bridge {

net::balance::Plan plan_even_pieces(const net::Topology& topo, const std::vector<net::balance::FlowDemand>& flows) {
  net::balance::Plan plan;
  plan.scheme = {net::balance::SchemeKind::ETHEREAL_MIN, 1};  // closest named kind; the bridge labels it ethereal-even
  std::map<std::pair<int, int>, std::vector<int>> batches;  // (source host, destination leaf) -> flow indices
  for (size_t i = 0; i < flows.size(); ++i) {
    const auto& f = flows[i];
    if (f.src_host == f.dst_host || f.src_host < 0 || f.dst_host < 0 || f.src_host >= topo.hosts() || f.dst_host >= topo.hosts())
      fail("flow {}: hosts {} -> {} out of range or equal", i, f.src_host, f.dst_host);
    if (topo.tor_of(f.src_host) == topo.tor_of(f.dst_host)) {
      plan.qps.push_back({static_cast<int>(i), f.src_host, f.dst_host, 0, f.bytes, net::balance::Routing::PINNED, 0, 0});
      continue;
    }
    batches[{f.src_host, topo.tor_of(f.dst_host)}].push_back(static_cast<int>(i));
  }
  const int G = topo.hosts();
  for (auto& [key, ids] : batches) {
    const int src = key.first;
    // Destination order rotated by the source, so sources do not all start on the same host.
    std::sort(ids.begin(), ids.end(), [&](int a, int b) {
      return (flows[static_cast<size_t>(a)].dst_host - src + G) % G < (flows[static_cast<size_t>(b)].dst_host - src + G) % G;
    });
    const std::vector<int> paths = topo.live_paths(src, flows[static_cast<size_t>(ids[0])].dst_host);
    if (paths.empty()) fail("no live path from host {} to leaf/ToR node {}", src, key.second);
    const auto s = static_cast<uint64_t>(paths.size());
    const auto n = static_cast<uint64_t>(ids.size());
    const uint64_t pieces = s * ((n + s - 1) / s);
    uint64_t total = 0;
    for (int id : ids) total += flows[static_cast<size_t>(id)].bytes;
    size_t flow = 0;        // index into ids
    uint64_t offset = 0;    // bytes of ids[flow] already planned
    for (uint64_t j = 0; j < pieces; ++j) {
      uint64_t left = total / pieces + (j < total % pieces ? 1 : 0);
      const int path = paths[static_cast<size_t>((j + static_cast<uint64_t>(src)) % s)];
      while (left > 0) {
        const auto& f = flows[static_cast<size_t>(ids[flow])];
        const uint64_t take = std::min(left, f.bytes - offset);
        plan.qps.push_back({ids[flow], f.src_host, f.dst_host, offset, take, net::balance::Routing::PINNED, path, 0});
        left -= take;
        offset += take;
        if (offset == f.bytes) ++flow, offset = 0;
      }
    }
  }
  return plan;
}

}  // namespace lookahead::bridge
