#include "net/analysis/congestion.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>

#include "common/error.h"

namespace lookahead::net::analysis {

namespace {

bool path_is_live(const Topology& topo, const std::vector<int>& links) {
  for (int l : links)
    if (!topo.links[l].up) return false;
  return true;
}

}  // namespace

std::optional<UnequalBatch> find_unequal_batch(const Topology& topo, const std::vector<balance::FlowDemand>& flows) {
  std::map<std::pair<int, int>, uint64_t> size;
  for (const auto& f : flows) {
    auto [it, fresh] = size.emplace(std::make_pair(f.src_host, topo.tor_of(f.dst_host)), f.bytes);
    if (!fresh && it->second != f.bytes) return UnequalBatch{f.src_host, topo.tor_of(f.dst_host), it->second, f.bytes};
  }
  return std::nullopt;
}

std::string link_name(const Topology& topo, int link) {
  const Link& l = topo.links[link];
  std::string name = node_name(topo, l.from) + "->" + node_name(topo, l.to);
  if (l.parallel > 0) name += fmt::format("#{}", l.parallel);
  return name;
}

std::vector<int> parse_failed_cable(const Topology& topo, const std::string& text, const std::string& parameter) {
  int id = -1;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (ec == std::errc() && ptr == text.data() + text.size()) {
    if (id < 0 || id >= static_cast<int>(topo.links.size()))
      fail("{}: link id {} out of range (the topology has {} directed links)", parameter, id, topo.links.size());
    return {id, topo.reverse_link(id)};
  }
  // "a-b" or "a-b#k": the cable between two named nodes (either order), parallel cable k.
  std::string spec = text;
  int parallel = 0;
  if (auto hash = spec.find('#'); hash != std::string::npos) {
    std::string k = spec.substr(hash + 1);
    auto [p2, ec2] = std::from_chars(k.data(), k.data() + k.size(), parallel);
    if (ec2 != std::errc() || p2 != k.data() + k.size() || parallel < 0)
      fail("{}: bad parallel cable index in '{}'", parameter, text);
    spec = spec.substr(0, hash);
  }
  auto dash = spec.find('-');
  if (dash == std::string::npos)
    fail("{}: expected a cable like leaf3-spine5 (or tor0-agg1, agg1-core2, or a link id), got '{}'", parameter, text);
  std::string a = spec.substr(0, dash), b = spec.substr(dash + 1);
  if (!b.empty() && b[0] == '>') b = b.substr(1);  // accept leaf3->spine5 as printed
  for (size_t l = 0; l < topo.links.size(); ++l) {
    const Link& link = topo.links[l];
    if (link.parallel != parallel) continue;
    std::string from = node_name(topo, link.from), to = node_name(topo, link.to);
    if ((from == a && to == b) || (from == b && to == a)) return {static_cast<int>(l), topo.reverse_link(static_cast<int>(l))};
  }
  fail("{}: no cable '{}' in this topology (names: host<i>, {}, spine/core <i>; e.g. {})", parameter, text,
       topo.three_tier() ? "tor<i>, agg<i>" : "leaf<i>", topo.three_tier() ? "tor0-agg0" : "leaf0-spine0");
}

LinkLoads link_loads(const Topology& topo, const balance::Plan& plan) {
  LinkLoads loads;
  loads.bytes.assign(topo.links.size(), 0.0);
  loads.qps.assign(topo.links.size(), 0);
  // Sprayed bytes are spread per (source host, destination leaf): every destination under one leaf
  // shares the fabric part of the paths, so the path enumeration runs once per pair, not per flow.
  std::map<std::pair<int, int>, std::pair<double, int>> sprayed;  // (src, dst tor) -> (bytes, a dst host)
  for (const auto& qp : plan.qps) {
    if (qp.routing == balance::Routing::SPRAYED) {
      if (topo.tor_of(qp.src_host) == topo.tor_of(qp.dst_host)) {
        for (int l : topo.path_links(qp.src_host, qp.dst_host, 0)) loads.bytes[l] += static_cast<double>(qp.bytes);
        continue;
      }
      auto& entry = sprayed[{qp.src_host, topo.tor_of(qp.dst_host)}];
      entry.first += static_cast<double>(qp.bytes);
      entry.second = qp.dst_host;
      loads.bytes[topo.host_uplink(qp.src_host)] += static_cast<double>(qp.bytes);
      loads.bytes[topo.host_downlink(qp.dst_host)] += static_cast<double>(qp.bytes);
      if (!topo.links[topo.host_uplink(qp.src_host)].up || !topo.links[topo.host_downlink(qp.dst_host)].up)
        loads.blackholed_bytes += static_cast<double>(qp.bytes);
      continue;
    }
    std::vector<int> links = topo.path_links(qp.src_host, qp.dst_host, qp.path);
    if (!path_is_live(topo, links)) loads.blackholed_bytes += static_cast<double>(qp.bytes);
    for (int l : links) {
      loads.bytes[l] += static_cast<double>(qp.bytes);
      ++loads.qps[l];
    }
  }
  for (const auto& [key, entry] : sprayed) {
    const auto [src, tor] = key;
    const auto [bytes, dst] = entry;
    // Live fabric paths: ignore the host links (counted above) when judging liveness.
    std::vector<std::vector<int>> live;
    for (int path = 0; path < topo.path_count(src, dst); ++path) {
      std::vector<int> links = topo.path_links(src, dst, path);
      std::vector<int> fabric(links.begin() + 1, links.end() - 1);
      if (path_is_live(topo, fabric)) live.push_back(std::move(fabric));
    }
    if (live.empty()) {
      loads.blackholed_bytes += bytes;
      continue;
    }
    double share = bytes / static_cast<double>(live.size());
    for (const auto& fabric : live)
      for (int l : fabric) loads.bytes[l] += share;
  }
  return loads;
}

MaxLoad max_load(const Topology& topo, const LinkLoads& loads, bool fabric_only) {
  MaxLoad m;
  for (size_t l = 0; l < topo.links.size(); ++l) {
    const Link& link = topo.links[l];
    if (fabric_only && (topo.nodes[link.from].tier == Tier::HOST || topo.nodes[link.to].tier == Tier::HOST)) continue;
    double b = loads.bytes[l];
    if (b > m.bytes) m.bytes = b, m.link = static_cast<int>(l);
    double us = b * 8.0 / static_cast<double>(link.rate_bps) * 1e6;
    if (us > m.drain_us) m.drain_us = us, m.drain_link = static_cast<int>(l);
  }
  return m;
}

StepResult check_step(const Topology& topo, const std::vector<balance::FlowDemand>& flows,
                      const std::vector<balance::Scheme>& schemes, uint64_t seed) {
  StepResult result;
  result.flows = static_cast<int>(flows.size());
  for (const auto& f : flows) {
    result.bytes += f.bytes;
    result.cross_leaf_flows += topo.tor_of(f.src_host) != topo.tor_of(f.dst_host);
  }
  balance::Scheme spray{balance::SchemeKind::SPRAY, 1};
  LinkLoads spray_loads = link_loads(topo, balance::make_plan(topo, flows, spray, seed));
  MaxLoad spray_max = max_load(topo, spray_loads, true);
  result.spray_max_bytes = spray_max.bytes;
  result.spray_step_us = max_load(topo, spray_loads, false).drain_us;
  for (const auto& scheme : schemes) {
    balance::Plan plan = balance::make_plan(topo, flows, scheme, seed);
    LinkLoads loads = scheme.kind == balance::SchemeKind::SPRAY ? spray_loads : link_loads(topo, plan);
    MaxLoad m = max_load(topo, loads, true);
    SchemeResult r;
    r.scheme = scheme.name();
    r.max_bytes = m.bytes;
    r.max_drain_us = m.drain_us;
    r.step_us = max_load(topo, loads, false).drain_us;
    r.ratio_to_spray = spray_max.bytes > 0 ? m.bytes / spray_max.bytes : (m.bytes > 0 ? INFINITY : 1.0);
    r.qps = static_cast<int>(plan.qps.size());
    auto per_host = plan.qps_per_host(topo.hosts());
    r.max_qps_per_host = per_host.empty() ? 0 : *std::max_element(per_host.begin(), per_host.end());
    r.blackholed_bytes = loads.blackholed_bytes;
    // Integer rounding: each pinned piece is within one byte of its exact share.
    double allowance = m.link >= 0 ? std::max(1, loads.qps[m.link]) : 1;
    r.matches_spray = std::fabs(m.bytes - spray_max.bytes) <= allowance + 1e-9 * spray_max.bytes;
    r.max_link = m.link >= 0 ? link_name(topo, m.link) : "-";
    result.schemes.push_back(std::move(r));
  }
  return result;
}

}  // namespace lookahead::net::analysis
