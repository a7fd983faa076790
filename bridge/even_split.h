#pragma once
// A second unequal-size splitter for the MoE all-to-all: equal pieces on every path.
//
// Why: ethereal-min (net/balance) gives every path of a (source host, destination leaf/ToR) batch
// exactly its byte share, but with pieces of any size (a path may carry one big piece, another five
// small ones). A NIC that serves its queue pairs in turn sends on each path at a rate proportional
// to the QPs on it, not their bytes, so the path with the big piece finishes last. Here every path
// gets the same number of equal-size pieces, so equal bytes also go out at equal rates.
//
// Contract (plan_even_pieces): per source host and destination leaf/ToR, the batch's n cross-leaf
// flows (destination order rotated by the source) are laid end to end and cut into s*m pieces,
// s = the live paths to that leaf, m = ceil(n/s): piece j has floor(T/(s*m)) bytes, the first
// T mod (s*m) one more (T the batch's bytes), and goes to path (j + source) mod s of the live path
// list. A piece that spans a flow boundary becomes one QP per flow it covers, on the same path.
// So each path carries m pieces and its bytes differ from any other path's by at most one byte;
// QPs <= s*m + n - 1. Zero-byte pieces (T < s*m) are dropped. Flows under the source's own
// leaf/ToR are one QP each on path 0. Pinned (source-routed) QPs. Throws lookahead::Error when a
// batch has no live path.
#include <cstdint>
#include <vector>

#include "net/balance/plan.h"
#include "net/topo/topology.h"

namespace lookahead::bridge {

net::balance::Plan plan_even_pieces(const net::Topology& topology, const std::vector<net::balance::FlowDemand>& flows);

}  // namespace lookahead::bridge
