#pragma once
// Ethereal's failure learning: what a source host knows about failed paths, learnt from its own
// source-routed QPs' retransmission timeouts (no switch or controller tells it).
//
// Contract:
// - timeout(src, dst, path, now): a QP from host src to host dst timed out on Topology path `path`.
//   The path is marked failed for (src, dst's leaf/ToR) until now + hold_ps (kFailedPathHoldPs, the
//   paper's 100 ms, by default): every destination under that leaf/ToR shares the mark, since a path
//   index names the same uplinks for all of them. A source never holds every path to a leaf failed:
//   when this mark would make it so, the oldest other mark is forgotten (expires now). Returns the
//   path to move the QP to: of the other paths src does not know to be failed at `now`, taken
//   cyclically after `path` (over topo.path_count(src, dst)), the (spread mod their number)-th; or -1
//   if there is none. spread 0: the next one. The simulator passes a hash of the QP, so the QPs that
//   leave one path spread over the others instead of all landing on the next (which doubled that
//   path's load: learning Ethereal's direct all-reduce under a failure).
// - known_failed(src, dst, path, now): whether a mark for (src, dst's leaf/ToR, path) holds at `now`
//   (a mark expires at its hold time; a later timeout on the same path renews it).
// - learned(): distinct (src, destination leaf/ToR, path) entries ever marked (renewals not counted).
// - Starts knowing nothing. Deterministic; keeps a reference to `topo`, which must outlive it.
#include <cstdint>
#include <map>
#include <utility>

#include "net/topo/topology.h"

namespace lookahead::net::balance {

// How long a QP timeout marks a path failed (the paper: 100 ms), in picoseconds.
inline constexpr uint64_t kFailedPathHoldPs = 100'000'000'000ull;

class FailedPaths {
 public:
  explicit FailedPaths(const Topology& topo, uint64_t hold_ps = kFailedPathHoldPs) : topo_(topo), hold_ps_(hold_ps) {}

  int timeout(int src, int dst, int path, uint64_t now_ps, uint64_t spread = 0);
  bool known_failed(int src, int dst, int path, uint64_t now_ps) const;
  int learned() const { return learned_; }

 private:
  const Topology& topo_;
  uint64_t hold_ps_;
  std::map<std::pair<int, int>, std::map<int, uint64_t>> until_;  // (host, dst leaf/ToR) -> path -> marked until
  int learned_ = 0;
};

}  // namespace lookahead::net::balance
