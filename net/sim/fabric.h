#pragma once
// The fabric: output ports (one per directed link) that serialise packets onto their links, links
// that delay them (and lose them while failed), and switches that forward an arriving packet to an
// output port, with buffer limits, ECN marking and PFC pause/resume.
//
// Contract: the fabric owns SimState's fabric section (ports, queue histograms, ECMP seeds, live
// up-ports, buffer and PFC accounting) and the link state in topo. It takes packets from the
// endpoints (enqueue, and a host port's idle time pulls the next one from Endpoints::nic_pull) and
// hands back the ones that reach a host (on_arrive's result); what a packet means to its flow is
// the endpoints' business. It schedules only kTxDone, kArrive and kPause events.
#include <cstdint>

#include "net/sim/state.h"

namespace lookahead::net {

class Endpoints;

class Fabric {
 public:
  Fabric(SimState& state, Endpoints& hosts) : s_(state), hosts_(hosts) {}
  void init();  // sizes the fabric section for the topology

  // Queues a packet at a link's output port (drops it if the link is down or the buffer full).
  void enqueue(uint32_t link, uint32_t packet);
  // Starts serialising the next packet if the port is idle and has one (a host port asks its NIC).
  void start_tx(uint32_t link);
  void poke(uint32_t link) {
    if (!s_.ports[link].busy) start_tx(link);
  }

  void on_tx_done(uint32_t link, uint32_t packet);
  // The packet reached the end of the link: forwarded at a switch (kNoPacket), dropped
  // (kNoPacket), or arrived at a host (returns it; the caller hands it to the endpoints).
  uint32_t on_arrive(uint32_t link, uint32_t packet);
  void on_pause(uint32_t link, bool pause);
  void on_link_state(uint32_t link, bool up);

  // Brings a port's time-weighted queue histogram up to now (results read it at the end).
  void hist_account(uint32_t port);

 private:
  void drop(uint32_t packet, uint32_t link);
  void rebuild_live(int node);

  SimState& s_;
  Endpoints& hosts_;
};

}  // namespace lookahead::net
