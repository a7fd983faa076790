#pragma once
// Workloads: flows (messages between two hosts) with start times and dependencies.
//
// Contract:
// - A flow starts at max(start_ps, the completion of its last dependency, the completion of the
//   last group in after_groups + after_groups_delay_ps). A flow completes when its receiver holds
//   every byte. Dependencies name earlier or later flows by id; cycles (through flows or gating
//   groups) are rejected by validate(). A group completes when all its flows have; an empty group
//   is complete at time 0.
// - group: flows sharing a group id report one completion time (the latest member); collectives
//   use one group per step or per collective.
// - lb / path: per-flow override of the network's load balancing; with LoadBalancing::SOURCE and
//   path >= 0 the flow (QP) is pinned to Topology path `path` between its hosts.
// - entropy: fixed ECMP entropy; -1 draws one from the seed.
// - split_on_start: the flow is carried by queue pairs planned when it becomes ready
//   (Simulator::on_split), e.g. by a planner that learns failed paths during the run.
// - channel / lane: connection order. Flows with the same channel (>= 0) between the same hosts
//   are messages posted on one connection (a communicator's QP to that peer): the sender transmits
//   a lane's messages one at a time, in the order they became ready; the next starts sending when
//   the one before has sent its last packet (not when it is acknowledged), as an RDMA QP works
//   through its send queue. A split flow's k-th QP is lane k. -1: the flow is its own QP.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "net/route/path_selection.h"
#include "net/topo/topology.h"

namespace lookahead::net {

struct FlowSpec {
  int src = 0;
  int dst = 0;
  uint64_t bytes = 0;
  uint64_t start_ps = 0;
  std::vector<int> deps;  // flow ids that must complete first
  int group = -1;
  std::optional<LoadBalancing> lb;
  int path = -1;
  int64_t entropy = -1;
  bool split_on_start = false;  // the simulator asks for its QPs when it is ready (Simulator::on_split)
  int channel = -1;             // connection order (see the contract); -1: none
  int lane = 0;                 // with channel: which of the connection's QPs carries it
  // Group gates: the flow also waits for every flow of these groups to complete, and then for
  // after_groups_delay_ps more (a job that runs after other jobs, its rank's start jitter).
  std::vector<int> after_groups;
  uint64_t after_groups_delay_ps = 0;
};

class Workload {
 public:
  int add_flow(const FlowSpec& flow);  // returns the flow id (dense, from 0)
  int add_flow(int src, int dst, uint64_t bytes, uint64_t start_ps = 0, std::vector<int> deps = {}, int group = -1);
  int add_group(std::string name);     // returns the group id
  int group_id(const std::string& name);  // existing or new
  // Throws lookahead::Error: hosts out of range or equal, zero bytes, unknown dependency, cycle,
  // source path out of range. `where` prefixes messages (e.g. the spec file name).
  void validate(const Topology& topology, const std::string& where = "workload") const;

  std::vector<FlowSpec> flows;
  std::vector<std::string> groups;
};

// Generators for common patterns (seeded).
void add_permutation(Workload& w, int hosts, uint64_t bytes, uint64_t seed);  // each host sends to one, receives from one
void add_all_to_all(Workload& w, int hosts, uint64_t bytes);
void add_incast(Workload& w, int senders, int receiver, uint64_t bytes);

}  // namespace lookahead::net
