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
// Contract (fewest-pieces scheme, split_batch_min_pieces): for flows of any sizes, path p gets
// exactly its share of the batch total (total/s, the first total mod s paths one byte more), as
// spraying would, with at most n + s - 1 pieces: flows are placed whole on the emptiest path while
// they fit (largest first), and the rest are laid end to end and cut at the path boundaries. For n
// equal flows this is q whole flows per path plus r + s - gcd(r, s) pieces (the paper's note).
//
// Both throw lookahead::Error if a flow has fewer bytes than the pieces it must be cut into, or if
// there is no path. Paths are opaque ids (Topology path indices); order matters (round-robin order).
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
std::vector<Piece> split_batch_min_pieces(const std::vector<uint64_t>& flow_bytes, const std::vector<int>& paths);

// Pieces the equal-size scheme makes for n flows over s paths: n - r + r*s/gcd(r, s).
int equal_scheme_pieces(int n, int s);

}  // namespace lookahead::net::balance
