#pragma once
// Scenario files for `lookahead net run`: a JSON spec (topology + network + workload + failures)
// and a connection-matrix text format for flows.
//
// JSON spec (every key optional except topology.kind; unknown keys are errors naming their path):
//   {"topology": {"kind": "leaf_spine", "leaves": 16, "spines": 16, "hosts_per_leaf": 16, ...},
//    "network": {"mtu": 4096, "cc": "dctcp", "lb": "ecmp", "pfc": false, "rto_us": 200, ...},
//    "seed": 1, "until_us": 10000, "about": <anything: ignored, e.g. what generated the spec>,
//    "workload": {"kind": "permutation", "bytes": 2000000, "seed": 1},
//    "flows": [{"id": "a", "src": 0, "dst": 5, "bytes": 1000000, "start_us": 0, "deps": ["b"],
//               "group": "step0", "after_groups": ["g"], "lb": "source", "path": 3, "entropy": 7,
//               "channel": 0, "lane": 0}],
//    "matrix": "flows.cm",
//    "failures": [{"from": "leaf0", "to": "spine1", "parallel": 0, "at_us": 50, "up_us": 80}],
//    "jobs": [{"id": "a2a", "collective": "alltoall", "size": "16MiB", "ranks": 64, "start_us": 0, "jitter_us": 5},
//             {"id": "ar", "collective": "allreduce", "algo": "ring", "size": 67108864, "hosts": [0, 1, "host9"],
//              "after": ["a2a"], "jitter_us": 5, "chunks": 4, "rendezvous": false}]}
// A flow's "after_groups" (names) make it wait for every flow of those groups as well as its "deps":
// O(1) entries per flow where "deps" would list every flow of a group (MoE all-to-all layers,
// bridge/traffic.h); a name no flow carries is an empty group, complete at time 0. Flows with the
// same "channel" (and "lane", default 0) between the same hosts are one connection's messages, sent
// one at a time in the order they become ready (FlowSpec::channel); a job's flows share one channel.
// Topology keys are the fields of LeafSpineSpec / FatTreeSpec; network keys those of
// NetworkConfig with times in us (rto_us, reps_freeze_us, dcqcn_period_us, ...); transport:
// init_cwnd_bytes, max_cwnd_bytes (0: default), dctcp_alpha_init (default 0), retry_limit
// (default 7), reps_state ("connection" default | "qp").
//
// Jobs (net/workload/jobs.h): each a collective (collective allreduce|allgather|reducescatter|alltoall,
// default allreduce; algo ring|direct|hd|dbt, default ring, direct for alltoall; size bytes or "64MiB")
// on its ranks: "hosts" (a list), or "ranks" (default every host) placed from "first_host" (default 0)
// upwards, or "placement": "random" (seeded by the spec's seed and the job). "start_us", "jitter_us"
// (each rank enters up to this much later, seeded by the spec's seed), "after" (job ids),
// "rendezvous" (ring and hd step-synchronous: collective::CollectiveSpec::rendezvous). Their
// flows follow every other flow of the workload, one group per job, named by its id.
//
// Connection matrix (one flow per line, '#' comments; ids default to the line's flow index):
//   [id NAME] SRC->DST size BYTES [start_us T] [after ID[,ID...]] [group G] [lb MODE] [path P]
#include <optional>
#include <string>
#include <vector>

#include "net/sim/config.h"
#include "net/sim/simulator.h"
#include "net/topo/topology.h"
#include "net/workload/jobs.h"
#include "net/workload/workload.h"

namespace lookahead::net {

struct LinkFailure {
  int link = -1;
  SimTime down_ps = 0;
  SimTime up_ps = kNever;
  bool both = true;
};

struct Scenario {
  Topology topology;
  NetworkConfig network;
  Workload workload;
  std::vector<LinkFailure> failures;
  SimTime until_ps = kNever;
  std::vector<Job> jobs;  // also in `workload`, from flow job_flows_begin on (one group each)
  size_t job_flows_begin = 0;
};

// Parses a JSON spec file. Throws lookahead::Error naming the file and the key (or line).
Scenario load_scenario(const std::string& path);
Scenario parse_scenario(const std::string& text, const std::string& where, const std::string& base_dir = ".");

// Reads connection-matrix flows into `workload`. Throws naming "file:line".
void load_connection_matrix(const std::string& path, const Topology& topology, Workload& workload);
void parse_connection_matrix(const std::string& text, const std::string& where, const Topology& topology, Workload& workload);

// Adds a generated workload: kind permutation | all_to_all | incast.
void add_generated(Workload& w, const Topology& topology, const std::string& kind, uint64_t bytes, uint64_t seed, int receiver,
                   int senders, const std::string& key);

}  // namespace lookahead::net
