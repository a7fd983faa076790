#include "bridge/traffic.h"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <numeric>

#include "common/error.h"

namespace lookahead::bridge {

PlacementKind parse_placement(std::string_view name, std::string_view parameter) {
  if (name == "round-robin" || name == "round_robin") return PlacementKind::ROUND_ROBIN;
  if (name == "hot") return PlacementKind::HOT;
  fail("{}: unknown placement '{}' (expected round-robin or hot)", parameter, name);
}

const char* placement_name(PlacementKind kind) { return kind == PlacementKind::HOT ? "hot" : "round-robin"; }

ExpertPlacement place_experts(int experts, int hosts, int slots_per_host, PlacementKind kind,
                              const std::vector<uint64_t>& expert_tokens) {
  if (hosts < 2) fail("expert parallelism needs at least 2 hosts (got {})", hosts);
  if (experts < 1) fail("need at least 1 expert (got {})", experts);
  if (slots_per_host < 0) fail("--slots-per-host must be >= 0 (got {})", slots_per_host);
  const int S = slots_per_host > 0 ? slots_per_host : (experts + hosts - 1) / hosts;
  if (static_cast<int64_t>(hosts) * S < experts)
    fail("{} hosts x {} slots per host cannot hold {} experts (raise --slots-per-host to at least {})", hosts, S, experts,
         (experts + hosts - 1) / hosts);
  if (S > experts) fail("--slots-per-host {} exceeds the {} experts (a host would hold one expert twice)", S, experts);
  if (kind == PlacementKind::HOT && static_cast<int>(expert_tokens.size()) != experts)
    fail("hot placement needs the load of each of the {} experts (got {})", experts, expert_tokens.size());
  const int slots = hosts * S;
  ExpertPlacement p;
  p.slots_per_host = S;
  p.replicas.assign(static_cast<size_t>(experts), {});
  p.on_host.assign(static_cast<size_t>(hosts), {});
  std::vector<int> slot_expert(static_cast<size_t>(slots));
  if (kind == PlacementKind::ROUND_ROBIN) {
    for (int k = 0; k < slots; ++k) slot_expert[static_cast<size_t>(k)] = k % experts;
  } else {
    std::vector<int> count(static_cast<size_t>(experts), 1);
    for (int spare = slots - experts; spare > 0; --spare) {
      int best = -1;
      for (int e = 0; e < experts; ++e) {
        if (count[static_cast<size_t>(e)] >= hosts) continue;
        // tokens per replica: compare a/b > c/d as a*d > c*b (exact).
        if (best < 0 || expert_tokens[static_cast<size_t>(e)] * static_cast<uint64_t>(count[static_cast<size_t>(best)]) >
                            expert_tokens[static_cast<size_t>(best)] * static_cast<uint64_t>(count[static_cast<size_t>(e)]))
          best = e;
      }
      if (best < 0) break;  // every expert on every host already (S == E)
      ++count[static_cast<size_t>(best)];
    }
    std::vector<int> order(static_cast<size_t>(experts));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
      if (count[static_cast<size_t>(a)] != count[static_cast<size_t>(b)]) return count[static_cast<size_t>(a)] > count[static_cast<size_t>(b)];
      return expert_tokens[static_cast<size_t>(a)] > expert_tokens[static_cast<size_t>(b)];
    });
    int k = 0;
    for (int e : order)
      for (int r = 0; r < count[static_cast<size_t>(e)]; ++r) slot_expert[static_cast<size_t>(k++)] = e;
    // Slots left over only when every expert already sits on every host; they stay empty.
    for (; k < slots; ++k) slot_expert[static_cast<size_t>(k)] = -1;
  }
  // Consecutive slots go to consecutive hosts, and an expert's replicas are consecutive slots
  // (round-robin: k and k+E, never on one host since G*S < E+G), so no host holds an expert twice.
  for (int k = 0; k < slots; ++k) {
    const int e = slot_expert[static_cast<size_t>(k)];
    if (e < 0) continue;
    const int h = k % hosts;
    auto& reps = p.replicas[static_cast<size_t>(e)];
    if (std::find(reps.begin(), reps.end(), h) != reps.end()) continue;
    reps.push_back(h);
    p.on_host[static_cast<size_t>(h)].push_back(e);
  }
  for (auto& reps : p.replicas) std::sort(reps.begin(), reps.end());
  return p;
}

std::vector<uint64_t> expert_loads(const std::vector<int32_t>& token_experts, int experts) {
  std::vector<uint64_t> loads(static_cast<size_t>(experts), 0);
  for (size_t i = 0; i < token_experts.size(); ++i) {
    const int32_t e = token_experts[i];
    if (e < 0 || e >= experts) fail("token {}: expert {} out of range (the model has {} experts)", i, e, experts);
    ++loads[static_cast<size_t>(e)];
  }
  return loads;
}

uint64_t TrafficMatrix::remote_tokens() const {
  uint64_t n = 0;
  for (int h = 0; h < hosts; ++h)
    for (int g = 0; g < hosts; ++g)
      if (h != g) n += tokens[static_cast<size_t>(h)][static_cast<size_t>(g)];
  return n;
}

TrafficMatrix traffic_matrix(const std::vector<int32_t>& token_experts, const ExpertPlacement& placement, int hosts) {
  const auto B = static_cast<uint64_t>(token_experts.size());
  if (B == 0) fail("the batch has no tokens (--batch-tokens must be >= 1)");
  if (B < static_cast<uint64_t>(hosts)) fail("the batch has {} tokens, fewer than the {} hosts (each host needs a token)", B, hosts);
  if (static_cast<int>(placement.on_host.size()) != hosts)
    fail("the placement is for {} hosts, not {}", placement.on_host.size(), hosts);
  const int E = static_cast<int>(placement.replicas.size());
  // count[h][e]: tokens of source host h routed to expert e.
  std::vector<std::vector<uint64_t>> count(static_cast<size_t>(hosts), std::vector<uint64_t>(static_cast<size_t>(E), 0));
  for (uint64_t i = 0; i < B; ++i) {
    const int32_t e = token_experts[i];
    if (e < 0 || e >= E) fail("token {}: expert {} out of range ({} experts)", i, e, E);
    const auto h = static_cast<size_t>(i * static_cast<uint64_t>(hosts) / B);
    ++count[h][static_cast<size_t>(e)];
  }
  TrafficMatrix m;
  m.hosts = hosts;
  m.tokens.assign(static_cast<size_t>(hosts), std::vector<uint64_t>(static_cast<size_t>(hosts), 0));
  for (int h = 0; h < hosts; ++h)
    for (int e = 0; e < E; ++e) {
      const uint64_t c = count[static_cast<size_t>(h)][static_cast<size_t>(e)];
      if (c == 0) continue;
      const auto& reps = placement.replicas[static_cast<size_t>(e)];
      if (reps.empty()) fail("expert {} has no replica in the placement", e);
      if (std::find(reps.begin(), reps.end(), h) != reps.end()) {
        m.tokens[static_cast<size_t>(h)][static_cast<size_t>(h)] += c;  // the expert is local
        continue;
      }
      const auto r = static_cast<uint64_t>(reps.size());
      for (uint64_t j = 0; j < r; ++j) {
        const uint64_t rank = (j + r - static_cast<uint64_t>(h) % r) % r;  // remainder rotates with the source
        const uint64_t share = c / r + (rank < c % r ? 1 : 0);
        m.tokens[static_cast<size_t>(h)][static_cast<size_t>(reps[j])] += share;
      }
    }
  return m;
}

Sync parse_sync(std::string_view name, std::string_view parameter) {
  if (name == "host") return Sync::HOST;
  if (name == "phase") return Sync::PHASE;
  fail("{}: unknown '{}' (expected host or phase)", parameter, name);
}

MoeTraffic moe_traffic(const TrafficMatrix& matrix, int layers, uint64_t bytes_per_token, Sync sync) {
  if (layers < 1) fail("--layers must be >= 1 (got {})", layers);
  if (bytes_per_token < 1) fail("bytes per token must be >= 1 (hidden size and dtype)");
  const int G = matrix.hosts;
  MoeTraffic t;
  t.layers = layers;
  t.bytes_per_token = bytes_per_token;
  t.sync = sync;
  net::Workload& w = t.workload;
  std::vector<int> prev_combine;  // group ids of the previous layer's combine, per receiving host
  for (int l = 0; l < layers; ++l) {
    for (int phase = 0; phase < 2; ++phase) {
      const bool combine = phase == 1;
      Phase ph;
      ph.layer = l;
      ph.combine = combine;
      for (int g = 0; g < G; ++g) ph.groups.push_back(w.add_group(fmt::format("l{}/{}/h{}", l, combine ? "combine" : "dispatch", g)));
      const std::vector<int> dispatch_groups = combine ? t.phases.back().groups : std::vector<int>{};
      // Each source lists its destinations from src+1 round (the usual shifted all-to-all order):
      // a NIC serves its flows in this order, and a common order would make every host start with
      // host 0 (synchronised incast).
      for (int src = 0; src < G; ++src)
        for (int k = 1; k < G; ++k) {
          const int dst = (src + k) % G;
          // Dispatch src->dst carries src's tokens for dst's experts; combine dst'->src' returns them.
          const uint64_t tokens = combine ? matrix.tokens[static_cast<size_t>(dst)][static_cast<size_t>(src)]
                                          : matrix.tokens[static_cast<size_t>(src)][static_cast<size_t>(dst)];
          if (tokens == 0) continue;
          net::FlowSpec f;
          f.src = src;
          f.dst = dst;
          f.bytes = tokens * bytes_per_token;
          f.group = ph.groups[static_cast<size_t>(dst)];
          if (sync == Sync::PHASE) {
            if (!t.phases.empty()) f.after_groups = t.phases.back().groups;  // barrier: the whole previous phase
          } else if (combine) {
            f.after_groups.push_back(dispatch_groups[static_cast<size_t>(src)]);  // src's experts got all their tokens
          } else if (l > 0) {
            f.after_groups.push_back(prev_combine[static_cast<size_t>(src)]);  // src got layer l-1's outputs back
          }
          ph.flows.push_back(w.add_flow(f));
          t.flow_names.push_back(fmt::format("l{}/{}/{}>{}", l, combine ? "c" : "d", src, dst));
        }
      if (combine) prev_combine = ph.groups;
      t.phases.push_back(std::move(ph));
    }
  }
  return t;
}

nlohmann::json topology_json(const net::Topology& t) {
  nlohmann::json j;
  j["kind"] = t.kind;
  auto gbps = [&](int link) { return static_cast<double>(t.links[static_cast<size_t>(link)].rate_bps) / 1e9; };
  auto ns = [&](int link) { return static_cast<double>(t.links[static_cast<size_t>(link)].latency_ps) / 1e3; };
  const int host_up = t.host_uplink(0);
  const int fabric_up = t.up_ports[static_cast<size_t>(t.tor_of(0))].at(0);
  if (t.kind == "leaf_spine") {
    j["leaves"] = t.leaves;
    j["spines"] = t.spines;
    j["hosts_per_leaf"] = t.hosts_per_leaf;
    j["parallel_links"] = t.leaf_parallel;
    j["fabric_gbps"] = gbps(fabric_up);
  } else {
    j["pods"] = t.pods;
    j["tors_per_pod"] = t.tors_per_pod;
    j["aggs_per_pod"] = t.aggs_per_pod;
    j["cores"] = t.cores;
    j["hosts_per_tor"] = t.hosts_per_leaf;
    j["tor_parallel_links"] = t.leaf_parallel;
    j["core_parallel_links"] = t.core_parallel;
    j["tor_agg_gbps"] = gbps(fabric_up);
    const int agg_up = t.up_ports[static_cast<size_t>(t.first_agg)].at(0);
    j["agg_core_gbps"] = gbps(agg_up);
  }
  j["host_gbps"] = gbps(host_up);
  j["host_latency_ns"] = ns(host_up);
  j["fabric_latency_ns"] = ns(fabric_up);
  return j;
}

nlohmann::json scenario_json(const net::Topology& topology, const MoeTraffic& traffic, const std::string& lb, uint64_t seed) {
  nlohmann::json j;
  j["topology"] = topology_json(topology);
  j["network"] = {{"lb", lb}};
  j["seed"] = seed;
  nlohmann::json flows = nlohmann::json::array();
  for (size_t i = 0; i < traffic.workload.flows.size(); ++i) {
    const net::FlowSpec& f = traffic.workload.flows[i];
    nlohmann::json flow = {{"id", traffic.flow_names[i]}, {"src", f.src}, {"dst", f.dst}, {"bytes", f.bytes},
                           {"group", traffic.workload.groups[static_cast<size_t>(f.group)]}};
    if (!f.after_groups.empty()) {
      nlohmann::json after = nlohmann::json::array();
      for (int g : f.after_groups) after.push_back(traffic.workload.groups[static_cast<size_t>(g)]);
      flow["after_groups"] = after;
    }
    flows.push_back(std::move(flow));
  }
  j["flows"] = std::move(flows);
  return j;
}

}  // namespace lookahead::bridge
