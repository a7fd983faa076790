#pragma once
// Load-balancing schemes as plans: how each flow of a batch becomes queue pairs (QPs) and which
// path each QP's bytes take. One plan type serves the fluid congestion checker (it adds QP bytes
// onto path links) and a simulator (it opens one QP per entry, routed as `routing` says).
//
// Schemes (the paper's baselines and Ethereal):
//   ecmp        one QP per flow; every switch on the way up hashes the QP's entropy (a seeded
//               per-switch hash over its live up-ports, ecmp_port()); `path` is that outcome.
//   mprdma-X    every flow cut into X equal subflows (QPs), each with its own entropy, each hashed.
//   spray       one QP per flow, sprayed per packet; fluid view: bytes split evenly over live paths.
//   ethereal    the paper's splitting planner (split_plan.h): per source host and destination
//               leaf/ToR, q whole flows round-robin and r flows cut into s/gcd(r,s) equal pieces,
//               each a QP pinned to one live path by source routing. Seeded per-host shuffle of
//               destination order and path order. Flows under the same leaf/ToR bypass it.
//   ethereal-min  beyond the paper, for unequal flow sizes: the same batches, each path gets exactly
//               spraying's share of the batch with at most n + s - 1 pieces (split_batch_min_pieces).
//   ethereal-tiered  beyond the paper, fat-tree across pods: balance each (host, destination ToR) batch
//               over the ToR up-ports only, then, per (destination pod, ToR up-port), the pieces over the
//               aggregation up-ports (cores). Every link still gets spraying's load, with far fewer
//               QPs than the flat (ToR uplink x agg uplink) product when flows per ToR < paths. Falls
//               back to the flat plan for batches with a failed path. Elsewhere: as ethereal.
//
// Failed links: ethereal, ethereal-min and spray use only live paths (the source knows, as after
// Ethereal's QP timeout). ECMP switches only skip their own dead up-ports; a path through a dead link
// further on is taken anyway and its bytes are black-holed (`path` still names it).
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "net/topo/topology.h"

namespace lookahead::net::balance {

enum class SchemeKind { ECMP, MPRDMA, SPRAY, ETHEREAL, ETHEREAL_MIN, ETHEREAL_TIERED };

struct Scheme {
  SchemeKind kind = SchemeKind::ETHEREAL;
  int subflows = 1;  // mprdma-X: X
  std::string name() const;
};

// ecmp | mprdma-X (X >= 1) | spray | ethereal | ethereal-min | ethereal-tiered. Throws naming the parameter.
// kSchemeNames lists them for help texts.
inline constexpr const char* kSchemeNames = "ecmp, mprdma-X (X in 1..1024), spray, ethereal, ethereal-min, ethereal-tiered";
Scheme parse_scheme(std::string_view name, std::string_view parameter = "--scheme");
// The schemes `--scheme all` means, in report order.
std::vector<Scheme> all_schemes();

enum class Routing : uint8_t {
  PINNED,   // source-routed on `path`
  HASHED,   // ECMP on `entropy`; `path` is where the hash lands
  SPRAYED,  // per-packet spraying; `path` is -1
};

struct FlowDemand {
  int src_host = 0;
  int dst_host = 0;
  uint64_t bytes = 0;
};

struct Qp {
  int flow = 0;  // index into the planned flows
  int src_host = 0, dst_host = 0;
  uint64_t offset = 0;  // first byte of the flow this QP carries
  uint64_t bytes = 0;
  Routing routing = Routing::PINNED;
  int path = -1;         // Topology path index between src_host and dst_host
  uint32_t entropy = 0;  // hashed: the header entropy (e.g. UDP source port) the switches hash
  uint64_t start_ps = 0;  // when the QP starts, after the batch arrived (PlanTiming; 0: at once)
};

// Ethereal's timing (v2, section 3): a host queues the flows that arrive together per destination
// leaf and load-balances them as one batch after a batching window (paper: 100 ns); each piece then
// starts after a seeded uniform jitter in [0, jitter_ps] (paper: 0-50 ns). With it, make_plan sets
// Qp::start_ps = batch_window_ps + jitter for the ethereal schemes' cross-leaf QPs; flows under one
// leaf bypass the balancer (0) and the other schemes start at once. Loads and paths do not change:
// only when each piece starts (the fluid checker ignores it; the packet simulator delays the QP).
struct PlanTiming {
  uint64_t batch_window_ps = 0;
  uint64_t jitter_ps = 0;
};
inline constexpr PlanTiming kPaperTiming{100'000, 50'000};
// The timing from nanoseconds, as the CLIs' --batch-window-ns and --jitter-ns give it; each must be in
// [0, 1e9] ns, else throws lookahead::Error naming that flag.
PlanTiming plan_timing_ns(double batch_window_ns, double jitter_ns);

struct Plan {
  Scheme scheme;
  std::vector<Qp> qps;
  std::vector<int> qps_per_host(int hosts) const;  // QPs each host opens (as a source)
};

// Up-port index an ECMP switch picks for `entropy` among `ports` live up-ports: the packet
// simulator's hash (net/route ecmp_choice with its per-switch seed derived from the network seed),
// so a fluid ECMP plan lands where the simulator's packets go for the same seed.
int ecmp_port(uint32_t entropy, int switch_node, int src, int dst, int ports, uint64_t seed);
// The path index ECMP takes between two hosts for `entropy` (dead local up-ports skipped).
int ecmp_path(const Topology& topo, int src, int dst, uint32_t entropy, uint64_t seed);

// Plans a batch of flows that arrive together. Flows between distinct hosts only. Deterministic for
// a seed. Throws lookahead::Error on bad input (host out of range, src == dst, a flow smaller than
// its pieces, no live path).
//
// known_failed(src host, dst host, path): paths the source has learned are failed (Ethereal's QP
// timeout, see failed_paths.h). The ethereal schemes leave them out of a batch's paths on top
// of the topology's dead links (all of a batch's live paths if it would leave none); the others
// ignore it.
using KnownFailed = std::function<bool(int src, int dst, int path)>;
Plan make_plan(const Topology& topo, const std::vector<FlowDemand>& flows, const Scheme& scheme, uint64_t seed,
               const KnownFailed& known_failed = {}, const PlanTiming& timing = {});

}  // namespace lookahead::net::balance
