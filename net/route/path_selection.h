#pragma once
// How a packet's path is chosen (the schemes the paper compares).
//
// - ecmp: every switch hashes (its seed, the flow's fixed entropy, src, dst) over its live
//   up-ports; one flow, one path.
// - spray: oblivious packet spraying; the sender draws a new entropy for every packet.
// - source: the packet carries its path (the up-port index per tier, see SourceRoute); switches
//   obey it. The planner pins a flow (QP) to a path this way.
// - reps: Recycled Entropy Packet Spraying: the sender reuses entropies whose packets were
//   acknowledged without an ECN mark (RepsEntropies), explores new ones otherwise, and after a
//   timeout freezes (cycles known-good entropies without exploring).
#include <cstdint>
#include <string>

#include "net/core/rng.h"

namespace lookahead::net {

enum class LoadBalancing : uint8_t { ECMP = 0, SPRAY = 1, SOURCE = 2, REPS = 3 };
const char* load_balancing_name(LoadBalancing lb);
LoadBalancing parse_load_balancing(const std::string& name, const std::string& key);  // throws naming key

// Each switch's own ECMP hash seed (real switches seed per switch to avoid polarisation), from the
// run's seed and the switch's node id. The simulator (net/sim) and the planner's ECMP/MP-RDMA plans
// (net/balance) both call this, so a plan predicts exactly the path the simulator takes.
inline uint64_t ecmp_switch_seed(uint64_t seed, int switch_node) {
  return splitmix64(seed * 0x9e3779b97f4a7c15ull + static_cast<uint64_t>(switch_node));
}

// The up-port a switch with `switch_seed` picks among `ports` live up-ports.
inline uint32_t ecmp_choice(uint64_t switch_seed, uint32_t entropy, int32_t src, int32_t dst, uint32_t ports) {
  uint64_t key = switch_seed ^ (static_cast<uint64_t>(entropy) << 32) ^ (static_cast<uint64_t>(static_cast<uint32_t>(src)) << 16) ^
                 static_cast<uint64_t>(static_cast<uint32_t>(dst)) * 0x9e3779b1ull;
  return static_cast<uint32_t>((splitmix64(key) >> 11) % ports);
}

// REPS sender state: a circular buffer of known-good entropies (8 entries, ~34 bytes).
class RepsEntropies {
 public:
  static constexpr int kSize = 8;
  // Entropy for the next packet: a recycled one if any (exploit), else a fresh draw (explore).
  // Frozen: cycle the buffered entropies without consuming them; explore only if none is known.
  uint32_t next(Rng& rng, bool frozen) {
    if (count_ > 0) {
      if (frozen) return buf_[(head_ + (cycle_++ % count_)) % kSize];
      uint32_t e = buf_[head_];
      head_ = static_cast<uint8_t>((head_ + 1) % kSize);
      --count_;
      return e;
    }
    return static_cast<uint32_t>(rng.next() >> 40);
  }
  // An ACK came back; unmarked ones are recycled (the oldest is overwritten when full).
  void on_ack(uint32_t entropy, bool marked) {
    if (marked) return;
    if (count_ == kSize) {
      head_ = static_cast<uint8_t>((head_ + 1) % kSize);
      --count_;
    }
    buf_[(head_ + count_) % kSize] = entropy;
    ++count_;
  }
  int count() const { return count_; }

 private:
  uint32_t buf_[kSize] = {};
  uint8_t head_ = 0;
  uint8_t count_ = 0;
  uint32_t cycle_ = 0;
};

}  // namespace lookahead::net
