#pragma once
// Collective flags shared by `lookahead net congestion`, `net plan` and `net repro`:
// --collective, --algo, --size, --ranks, --placement, --chunks, and the skewed MoE all-to-all
// (--collective moe_alltoall --skew --tokens --token-bytes).
#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "common/error.h"
#include "net/collective/collective.h"

namespace lookahead::cli {

struct CollectiveFlags {
  std::string collective = "allreduce";
  std::string algo = "direct";
  std::string size = "64MiB";
  int ranks = 0;  // 0 (the flag left out): every host
  std::string placement = "linear";
  int chunks = 4;
  double skew = 1.0;
  uint64_t tokens = 4096;
  std::string token_bytes = "8KiB";
  uint64_t seed = 1;

  std::vector<CLI::Option*> options;  // every collective flag, to tell whether a collective was asked for
  CLI::Option* ranks_opt = nullptr;

  void add(CLI::App& cmd) {
    options = {
        cmd.add_option("--collective", collective,
                       "allreduce, allgather, reducescatter, alltoall, or moe_alltoall (skewed sizes) (default allreduce)"),
        cmd.add_option("--algo", algo, "ring, direct, hd (halving-doubling), dbt (double binary tree) (default direct)"),
        cmd.add_option("--size", size, "message size per rank, at least 1 byte, e.g. 64MiB, 1MB (default 64MiB)"),
        ranks_opt = cmd.add_option("--ranks", ranks, "ranks, >= 2 (default: one per host)"),
        cmd.add_option("--placement", placement, "ranks to hosts: linear or random (seeded) (default linear)"),
        cmd.add_option("--chunks", chunks, "dbt: pipeline chunks per tree (default 4)"),
        cmd.add_option("--skew", skew, "moe_alltoall: Zipf exponent of expert popularity (default 1.0)"),
        cmd.add_option("--tokens", tokens, "moe_alltoall: tokens each rank routes (default 4096)"),
        cmd.add_option("--token-bytes", token_bytes, "moe_alltoall: bytes per token (default 8KiB)")};
    cmd.add_option("--seed", seed, "seed for placement, hashing, shuffles (default 1)");
  }
  // True when a collective flag (not --seed) was given.
  bool any_given() const {
    for (auto* o : options)
      if (o->count() > 0) return true;
    return false;
  }

  bool is_moe() const { return collective == "moe_alltoall" || collective == "moe-alltoall"; }

  net::collective::Collective build(int hosts) const {
    using namespace net::collective;
    // --ranks given is used as given: 0 or 1 is an error, not "every host" (leave the flag out for that).
    if (ranks_opt && ranks_opt->count() > 0 && ranks < 2)
      fail("--ranks: must be at least 2 (got {}); leave --ranks out for one rank per host ({})", ranks, hosts);
    if (ranks < 0) fail("--ranks: must be at least 2 (got {})", ranks);
    int p = ranks > 0 ? ranks : hosts;
    auto rank_host = place_ranks(p, hosts, parse_placement(placement), seed);
    if (is_moe()) return skewed_all_to_all(rank_host, tokens, parse_bytes(token_bytes, "--token-bytes"), skew, seed);
    CollectiveSpec spec;
    spec.kind = parse_kind(collective);
    spec.algorithm = spec.kind == Kind::ALL_TO_ALL && algo == "direct" ? Algorithm::DIRECT : parse_algorithm(algo);
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
