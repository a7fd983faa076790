#pragma once
// The splitting planner of "Challenging the Need for Packet Spraying" / Ethereal (v2, section 3):
// per source host and destination leaf, a batch of n flows over the s good paths.
//
// Contract (equal-size scheme, split_batch_equal): n = q*s + r, g = gcd(r, s). The first q*s flows
// (in batch order) go whole, round-robin over the paths in the given order; each of the r remaining
// flows is cut into s/g pieces, continuing round-robin, so every path gets q whole flows and r/g
// pieces. With n flows of one size f every path then carries n*f/s bytes. Integer bytes: a flow of f
// bytes cut into k = s/g pieces gets pieces of floor(f/k) bytes, and f mod k of them one byte more;
// which pieces get the extra byte rotates from flow to flow so that path loads differ by at most one
// byte (not r/g bytes, which a fixed choice would give). Pieces = n - r + r*s/g.
//
// Contract (fewest-pieces scheme, split_batch_min_pieces): for flows of any sizes, every path gets
// spraying's share of the batch total (total/s bytes, rounded: e = total mod s paths carry one byte
// more), with the fewest pieces any such plan can have. A plan is a forest between flows and paths,
// so pieces = n + s - (its connected components); an exact search over groups of flows (count vectors
// over the distinct sizes, see split_plan.cpp) finds the most components whenever that search costs
// at most kMinPiecesSearchBudget steps: always for equal sizes (n + s - gcd(n, s) pieces for large
// flows, never more than the equal scheme's n - r + r*s/g; 16 x 65536 B over 14 paths: 28), and for
// up to about 10 distinct sizes. Beyond that budget (finding the fewest pieces for arbitrary sizes is
// NP-hard: it contains subset sum) it falls back to a greedy plan with path p getting exactly
// part_bytes(total, s, p) and at most n + s - 1 pieces: flows placed whole on the emptiest path while
// they fit (largest first), the rest laid end to end and cut at the path boundaries.
// Tests: BalanceSplitPlan.MinPieces* compare with brute force on an exhaustive small grid.
// Both throw lookahead::Error if there is no path or a flow has 0 bytes; split_batch_equal also if a
// flow has fewer bytes than the pieces it must be cut into (split_batch_min_pieces then leaves paths
// empty: with total < s bytes, spraying's share of some paths is 0). Paths are opaque ids (Topology path indices); order matters (round-robin order).
#include <cstdint>
#include <vector>

namespace lookahead::net::balance {

struct Piece {
  int flow = 0;         // index into the batch
  uint64_t offset = 0;  // byte offset of the piece within its flow
  uint64_t bytes = 0;
  int path = 0;         // one of the given path ids
};

std::vector<Piece> split_batch_equal(const std::vector<uint64_t>& flow_bytes, const std::vector<int>& paths);
// Transitions the exact fewest-pieces search may take before falling back to the greedy plan.
inline constexpr uint64_t kMinPiecesSearchBudget = 1u << 17;
std::vector<Piece> split_batch_min_pieces(const std::vector<uint64_t>& flow_bytes, const std::vector<int>& paths);

// Pieces the equal-size scheme makes for n flows over s paths: n - r + r*s/gcd(r, s).
int equal_scheme_pieces(int n, int s);

}  // namespace lookahead::net::balance
