#pragma once
// Collective flags shared by `lookahead net congestion`, `net plan` and `net repro`:
// --collective, --algo, --size, --ranks, --placement, --chunks, and the skewed MoE all-to-all
// (--collective moe_alltoall --skew --tokens --token-bytes).
#include <CLI/CLI.hpp>

#include <string>

#include "common/error.h"
#include "net/collective/collective.h"

namespace lookahead::cli {

struct CollectiveFlags {
  std::string collective = "allreduce";
  std::string algo = "direct";
  std::string size = "64MiB";
  int ranks = 0;  // 0: every host
  std::string placement = "linear";
  int chunks = 4;
  double skew = 1.0;
  uint64_t tokens = 4096;
  std::string token_bytes = "8KiB";
  uint64_t seed = 1;

  void add(CLI::App& cmd) {
    cmd.add_option("--collective", collective,
                   "allreduce, allgather, reducescatter, alltoall, or moe_alltoall (skewed sizes) (default allreduce)");
    cmd.add_option("--algo", algo, "ring, direct, hd (halving-doubling), dbt (double binary tree) (default direct)");
    cmd.add_option("--size", size, "message size per rank, e.g. 64MiB, 1MB (default 64MiB)");
    cmd.add_option("--ranks", ranks, "ranks (default: one per host)");
    cmd.add_option("--placement", placement, "ranks to hosts: linear or random (seeded) (default linear)");
    cmd.add_option("--chunks", chunks, "dbt: pipeline chunks per tree (default 4)");
    cmd.add_option("--skew", skew, "moe_alltoall: Zipf exponent of expert popularity (default 1.0)");
    cmd.add_option("--tokens", tokens, "moe_alltoall: tokens each rank routes (default 4096)");
    cmd.add_option("--token-bytes", token_bytes, "moe_alltoall: bytes per token (default 8KiB)");
    cmd.add_option("--seed", seed, "seed for placement, hashing, shuffles (default 1)");
  }

  bool is_moe() const { return collective == "moe_alltoall" || collective == "moe-alltoall"; }

  net::collective::Collective build(int hosts) const {
    using namespace net::collective;
    int p = ranks > 0 ? ranks : hosts;
    if (ranks < 0) fail("--ranks: must be >= 2 (got {})", ranks);
    auto rank_host = place_ranks(p, hosts, parse_placement(placement), seed);
    if (is_moe()) return skewed_all_to_all(rank_host, tokens, parse_bytes(token_bytes, "--token-bytes"), skew, seed);
    CollectiveSpec spec;
    spec.kind = parse_kind(collective);
    spec.algorithm = spec.kind == Kind::all_to_all && algo == "direct" ? Algorithm::direct : parse_algorithm(algo);
    spec.ranks = p;
    spec.message_bytes = parse_bytes(size, "--size");
    spec.chunks = chunks;
    return expand(spec, rank_host);
  }

  std::string describe(const net::collective::Collective& c) const {
    if (is_moe())
      return fmt::format("moe_alltoall (skew {:g}, {} tokens x {} per rank) on {} ranks ({})", skew, tokens, token_bytes,
                         c.rank_host.size(), placement);
    return fmt::format("{}/{} {} on {} ranks ({})", net::collective::kind_name(c.spec.kind),
                       net::collective::algorithm_name(c.spec.algorithm), size, c.rank_host.size(), placement);
  }
};

}  // namespace lookahead::cli
