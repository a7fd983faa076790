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
#include <deque>
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

// One QP of a connection (FlowSpec::channel, source, destination, lane) works through its send
// queue in order: `sending` is the message transmitting its first copy of every packet, `waiting`
// the messages posted behind it. Without this a collective's steps between the same pair of hosts
// share the NIC round-robin and all finish at the end of the batch, so a ring whose rank fell one
// step behind forwards every later step late as well (MP-RDMA-2 ring at 256 hosts ran 14x slower
// than spraying at some sizes).
struct SendLane {
  int sending = -1;
  std::deque<int> waiting;
};

class SendLanes {
 public:
  int index(int channel, int src, int dst, int lane) {
    auto [it, added] = by_key_.try_emplace(Key{channel, src, dst, lane}, static_cast<int>(lanes_.size()));
    if (added) lanes_.emplace_back();
    return it->second;
  }
  SendLane& lane(int index) { return lanes_[static_cast<size_t>(index)]; }

 private:
  struct Key {
    int channel, src, dst, lane;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const {
      uint64_t h = (static_cast<uint64_t>(static_cast<uint32_t>(k.src)) << 32) | static_cast<uint32_t>(k.dst);
      h ^= ((static_cast<uint64_t>(static_cast<uint32_t>(k.channel)) << 32) | static_cast<uint32_t>(k.lane)) * 0x9e3779b97f4a7c15ull;
      return static_cast<size_t>(h ^ (h >> 29));
    }
  };
  std::unordered_map<Key, int, KeyHash> by_key_;
  std::vector<SendLane> lanes_;
};

}  // namespace lookahead::net
