#pragma once
// Packets as small PODs in a pool: the hot path allocates nothing per packet.
//
// Contract: PacketPool::alloc() returns an index that stays valid until free(index); indices are
// reused LIFO. `next` links a packet into one intrusive FIFO (a port queue) at a time.
#include <cstdint>
#include <vector>

#include "net/topo/topology.h"

namespace lookahead::net {

enum class PacketType : uint8_t { DATA = 0, ACK = 1, NACK = 2 };

inline constexpr uint32_t kNoPacket = 0xffffffffu;

struct Packet {
  uint32_t next = kNoPacket;  // intrusive queue link
  uint32_t flow = 0;
  uint32_t seq = 0;       // data: packet number; ack/nack: the acknowledged packet number
  uint32_t cum = 0;       // ack/nack: receiver's next expected packet number
  uint32_t entropy = 0;   // load-balancing entropy (ECMP hash input)
  int32_t src = 0;        // host the packet travels from
  int32_t dst = 0;        // host it travels to
  int32_t in_link = -1;   // link it arrived on at the current switch (PFC ingress accounting)
  uint16_t size = 0;      // bytes on the wire
  PacketType type = PacketType::DATA;
  uint8_t lb = 0;         // LoadBalancing of this packet
  bool ecn = false;       // congestion experienced (data) / echo (ack)
  uint8_t parallel[2] = {0, 0};  // parallel cable index chosen going up at tier 0 and 1
  SourceRoute route;      // up-port per tier for source-routed packets
};

class PacketPool {
 public:
  uint32_t alloc() {
    if (free_.empty()) {
      packets_.emplace_back();
      return static_cast<uint32_t>(packets_.size() - 1);
    }
    uint32_t id = free_.back();
    free_.pop_back();
    return id;
  }
  void free(uint32_t id) { free_.push_back(id); }
  Packet& operator[](uint32_t id) { return packets_[id]; }
  const Packet& operator[](uint32_t id) const { return packets_[id]; }
  size_t capacity() const { return packets_.size(); }
  size_t live() const { return packets_.size() - free_.size(); }

 private:
  std::vector<Packet> packets_;
  std::vector<uint32_t> free_;
};

}  // namespace lookahead::net
