#pragma once
// Sender state that belongs to a connection (source host, destination host) rather than to one
// queue pair: REPS's recycled entropies and its freeze deadline. In a collective a new QP carries
// each step's flow, but the path knowledge REPS learned (which entropies came back unmarked, that a
// timeout suggests a failure) is about the pair of hosts, so later QPs between them inherit it.
//
// Contract: ConnectionTable::index(src, dst) returns the same index for the same pair for the whole
// run (an index into its vector of RepsConnection, which only grows); fresh() adds a private entry
// (per-QP mode, NetworkConfig::reps_state = qp). Called when a QP is set up, never per packet.
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "net/route/path_selection.h"
#include "net/core/time.h"

namespace lookahead::net {

struct RepsConnection {
  RepsEntropies entropies;
  SimTime frozen_until = 0;  // after a timeout: cycle known-good entropies, explore none, until then
};

class ConnectionTable {
 public:
  int index(int src, int dst) {
    uint64_t key = (static_cast<uint64_t>(static_cast<uint32_t>(src)) << 32) | static_cast<uint32_t>(dst);
    auto [it, added] = by_pair_.try_emplace(key, static_cast<int>(reps_.size()));
    if (added) reps_.emplace_back();
    return it->second;
  }
  int fresh() {
    reps_.emplace_back();
    return static_cast<int>(reps_.size() - 1);
  }
  RepsConnection& reps(int index) { return reps_[static_cast<size_t>(index)]; }
  size_t size() const { return reps_.size(); }

 private:
  std::unordered_map<uint64_t, int> by_pair_;
  std::vector<RepsConnection> reps_;
};

}  // namespace lookahead::net
