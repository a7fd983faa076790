#pragma once
// Collective communication expanded into dependent point-to-point flows (ASTRA-sim's view of a
// collective: algorithm -> steps -> sends).
//
// Contract:
// - expand() returns every flow a collective sends between distinct ranks, with byte counts that
//   add up exactly to the message (chunks of M/p differ by at most one byte; no byte is lost).
// - Flow::deps are data dependencies: a rank forwards or reduces data only after receiving it, so a
//   flow depends on the flows that bring its data into its source rank. No other ordering is implied
//   here; a simulator may post a flow as soon as its deps have completed. (The workload layer puts
//   a collective's flows on one connection channel, so a rank's messages to the same peer are
//   sent in order, as on the one QP NCCL keeps per peer: net/workload/workload.h.)
// - CollectiveSpec::rendezvous adds ordering that is not data: a send waits for its receiver to reach
//   the step (below). Those deps point at flows of the receiver's previous step.
// - Flow::step is the length of the longest dependency chain before the flow; the flows of one
//   step are the batch that arrives together (observation (i) of the paper) and is what the fluid
//   congestion checker and the splitting planner look at.
// - Bad input (more ranks than hosts, a message smaller than its chunk count, halving-doubling on a
//   non-power-of-two rank count, an algorithm the collective does not have) throws lookahead::Error.
//
// Message size M means: all-reduce / reduce-scatter: each rank's input buffer; all-gather: each
// rank's output buffer (every rank contributes M/p); all-to-all: each rank's send buffer, M/p to
// every rank (its own share stays local).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lookahead::net::collective {

enum class Kind { ALL_REDUCE, ALL_GATHER, REDUCE_SCATTER, ALL_TO_ALL };
enum class Algorithm { RING, DIRECT, HALVING_DOUBLING, DOUBLE_BINARY_TREE };

Kind parse_kind(std::string_view name);            // allreduce|allgather|reducescatter|alltoall
Algorithm parse_algorithm(std::string_view name);  // ring|direct|hd|dbt (long names accepted too)
std::string_view kind_name(Kind kind);
std::string_view algorithm_name(Algorithm algorithm);  // short names: ring, direct, hd, dbt

struct Flow {
  int id = 0;  // index in Collective::flows
  int src_rank = 0, dst_rank = 0;
  int src_host = 0, dst_host = 0;
  uint64_t bytes = 0;
  int step = 0;           // longest chain of deps before this flow
  std::vector<int> deps;  // ids of flows that must finish before this one starts
};

struct CollectiveSpec {
  Kind kind = Kind::ALL_REDUCE;
  Algorithm algorithm = Algorithm::RING;
  int ranks = 0;
  uint64_t message_bytes = 0;
  // Double binary tree only: each tree's half of the message is pipelined in this many chunks.
  int chunks = 4;
  // Step-synchronous sends (MPI's MPI_Sendrecv per step with rendezvous for large messages): on ring
  // and halving-doubling, a rank's step-t send to a peer also waits until the peer has finished its
  // own step t - 1 (its send and its receive), as if the peer posts its receive only then. Without
  // it (the default, ASTRA-sim's view) a send starts as soon as its data is there, and a rank that
  // is ahead pushes later steps onto a lagging peer's downlink. Direct (its second exchange already
  // waits for all of its rank's receives) and double binary tree (NCCL's pipelined trees, in order per
  // edge) have no pairwise steps and are the same either way.
  bool rendezvous = false;
};

struct Collective {
  CollectiveSpec spec;
  std::vector<int> rank_host;               // rank -> host
  std::vector<Flow> flows;                  // in id order; deps always point to smaller ids
  std::vector<std::vector<int>> steps;      // flow ids per step

  // Bytes each rank sends in total (index = rank).
  std::vector<uint64_t> bytes_sent_per_rank() const;
};

enum class Placement { LINEAR, RANDOM };
Placement parse_placement(std::string_view name);  // linear|random

// Ranks -> hosts: linear puts rank i on host i; random picks a seeded random set of distinct hosts
// in random order. Throws if ranks > hosts or ranks < 2.
std::vector<int> place_ranks(int ranks, int hosts, Placement placement, uint64_t seed);

Collective expand(const CollectiveSpec& spec, const std::vector<int>& rank_host);

// Expert-parallel MoE dispatch: an all-to-all whose flow sizes differ. Rank j hosts expert j; each
// rank routes `tokens_per_rank` tokens, a token to expert e with probability proportional to
// 1/(rank_of(e)+1)^zipf_skew, where rank_of is a seeded random popularity order of the experts
// (skew 0: uniform). Flow i->j carries tokens(i->j) * bytes_per_token bytes; empty flows are
// dropped. One step, no deps. Deterministic for a seed.
Collective skewed_all_to_all(const std::vector<int>& rank_host, uint64_t tokens_per_rank, uint64_t bytes_per_token,
                             double zipf_skew, uint64_t seed);

// "64MiB", "1MB", "4096", "2GiB", "512KiB", "1.5MB": bytes (KB/MB/GB are powers of 10, KiB/MiB/GiB of 2).
// Throws naming `parameter` on anything else or on 0.
uint64_t parse_bytes(std::string_view text, std::string_view parameter);

// Size of part `index` when `total` bytes are cut into `parts` nearly equal parts (the first
// total % parts parts get one byte more).
inline uint64_t part_bytes(uint64_t total, uint64_t parts, uint64_t index) {
  return total / parts + (index < total % parts ? 1 : 0);
}

}  // namespace lookahead::net::collective
