#pragma once
// Expert-parallel MoE all-to-all traffic from pre-gated routing.
//
// Read-ME's pre-gating router gives every token its expert before the backbone runs, so the
// dispatch/combine all-to-all of an expert-parallel deployment is known a whole forward pass ahead.
// This file turns a batch's routing into that traffic, as net flows with per-flow bytes and the
// dependencies that order the layers.
//
// Deployment model (plain, stated so it can be checked by hand):
// - G hosts (every host of the fabric), E experts, S expert slots per host (default ceil(E/G)).
//   Slots are filled by a placement (place_experts): every expert has at least one replica and a
//   host never holds two replicas of one expert. Rules (errors otherwise): G >= 2, E >= 1,
//   G*S >= E (every expert fits), S <= E.
//   - round_robin: slot k (k = 0..G*S-1) is on host k mod G and holds expert k mod E; with G > E
//     (or spare slots) experts wrap round and get extra replicas whatever their load.
//   - hot: replica counts follow the batch's expert loads (lookahead: the loads are known before
//     the batch runs): one replica each, then each spare slot to the expert with the most tokens
//     per replica (ties: lowest index; at most G replicas). Experts in decreasing replica count
//     (then load) fill slots k -> host k mod G.
// - The batch's B tokens are data-parallel: token i (in batch order) lives on host floor(i*G/B).
// - A token goes to a replica of its expert: its own host if that holds one (no network), else the
//   source's tokens of that expert are spread evenly over the replicas (the first (count mod r)
//   replicas counted from index (source mod r) get one token more).
// - Dispatch sends each token's hidden state (bytes_per_token = hidden x dtype bytes) to the expert
//   host; combine sends the expert output (same size) back. Every layer repeats both phases.
//
// Read-ME routes a token to the SAME expert in every layer (one router for all layers), so every
// layer's traffic matrix is the same; layer-wise routers (Mixtral) would differ per layer. The
// per-layer structure is still real: it is the dependency chain
//     dispatch(l) into host g  ->  combine(l) out of g  ->  dispatch(l+1) out of every host it fed
// expressed as groups: group "l<l>/dispatch/h<g>" holds the dispatch flows into g; the combine flows
// out of g wait for it (FlowSpec::after_groups). Group "l<l>/combine/h<h>" holds the combine flows
// into h; h's dispatch flows of layer l+1 wait for it. Expert compute time is not modelled (0).
// Sync::PHASE instead puts a barrier between phases (every flow waits for all groups of the phase
// before it), as when each dispatch and combine is a separate blocking all-to-all collective.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "net/topo/topology.h"
#include "net/workload/workload.h"

namespace lookahead::bridge {

enum class PlacementKind { ROUND_ROBIN, HOT };
// "round-robin" | "hot". Throws lookahead::Error naming `parameter`.
PlacementKind parse_placement(std::string_view name, std::string_view parameter = "--placement");
const char* placement_name(PlacementKind kind);

struct ExpertPlacement {
  std::vector<std::vector<int>> replicas;  // expert -> hosts holding it (increasing)
  std::vector<std::vector<int>> on_host;   // host -> experts it holds (slot order)
  int slots_per_host = 0;
};

// Throws lookahead::Error on the rules above. `expert_tokens` (size E) is used by `hot` only.
// slots_per_host 0: ceil(E/G).
ExpertPlacement place_experts(int experts, int hosts, int slots_per_host, PlacementKind kind,
                              const std::vector<uint64_t>& expert_tokens);

// Tokens per expert in a batch of routed tokens (expert ids must be < experts; throws otherwise).
std::vector<uint64_t> expert_loads(const std::vector<int32_t>& token_experts, int experts);

// tokens[h][g]: tokens of source host h whose expert replica is on host g (diagonal: stay local).
struct TrafficMatrix {
  int hosts = 0;
  std::vector<std::vector<uint64_t>> tokens;
  uint64_t remote_tokens() const;  // off-diagonal sum
};

// The batch's tokens (token_experts[i] = expert of token i) on `hosts` hosts. Throws on an empty
// batch, fewer tokens than hosts, or an expert without a replica.
TrafficMatrix traffic_matrix(const std::vector<int32_t>& token_experts, const ExpertPlacement& placement, int hosts);

enum class Sync { HOST, PHASE };

struct Phase {
  int layer = 0;
  bool combine = false;
  std::vector<int> flows;   // workload flow ids of this phase
  std::vector<int> groups;  // group per receiving host (index = host), workload group ids
};

struct MoeTraffic {
  net::Workload workload;   // flows in phase order: l0 dispatch, l0 combine, l1 dispatch, ...
  std::vector<Phase> phases;
  std::vector<std::string> flow_names;  // e.g. "l0/d/3>5" (flow ids in specs)
  uint64_t bytes_per_token = 0;
  int layers = 0;
  Sync sync = Sync::HOST;
};

// Per-layer dispatch + combine flows of `matrix` for `layers` layers, with the dependency groups
// above. Zero-token pairs make no flow. Throws if layers < 1 or bytes_per_token < 1.
Sync parse_sync(std::string_view name, std::string_view parameter = "--sync");  // "host" | "phase"
MoeTraffic moe_traffic(const TrafficMatrix& matrix, int layers, uint64_t bytes_per_token, Sync sync = Sync::HOST);

// A `lookahead net run --spec` scenario: the topology's shape, `lb`, seed, and every flow with its
// id, bytes, group and after_groups (the spec extension documented in net/scenario/spec.h).
nlohmann::json scenario_json(const net::Topology& topology, const MoeTraffic& traffic, const std::string& lb, uint64_t seed);

// The topology's own spec keys ({"kind": "leaf_spine", "leaves": ...}) as a spec's "topology".
nlohmann::json topology_json(const net::Topology& topology);

}  // namespace lookahead::bridge
