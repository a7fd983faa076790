#include "net/collective/collective.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cmath>
#include <numeric>
#include <random>

#include "common/error.h"

namespace lookahead::net::collective {

Kind parse_kind(std::string_view name) {
  if (name == "allreduce" || name == "all-reduce" || name == "all_reduce") return Kind::ALL_REDUCE;
  if (name == "allgather" || name == "all-gather" || name == "all_gather") return Kind::ALL_GATHER;
  if (name == "reducescatter" || name == "reduce-scatter" || name == "reduce_scatter") return Kind::REDUCE_SCATTER;
  if (name == "alltoall" || name == "all-to-all" || name == "all_to_all") return Kind::ALL_TO_ALL;
  fail("--collective: unknown collective '{}' (expected allreduce, allgather, reducescatter or alltoall)", name);
}

Algorithm parse_algorithm(std::string_view name) {
  if (name == "ring") return Algorithm::RING;
  if (name == "direct") return Algorithm::DIRECT;
  if (name == "hd" || name == "halving-doubling" || name == "halving_doubling" || name == "recursive-doubling")
    return Algorithm::HALVING_DOUBLING;
  if (name == "dbt" || name == "double-binary-tree" || name == "double_binary_tree") return Algorithm::DOUBLE_BINARY_TREE;
  fail("--algo: unknown algorithm '{}' (expected ring, direct, hd or dbt)", name);
}

std::string_view kind_name(Kind kind) {
  switch (kind) {
    case Kind::ALL_REDUCE: return "allreduce";
    case Kind::ALL_GATHER: return "allgather";
    case Kind::REDUCE_SCATTER: return "reducescatter";
    case Kind::ALL_TO_ALL: return "alltoall";
  }
  return "?";
}

std::string_view algorithm_name(Algorithm algorithm) {
  switch (algorithm) {
    case Algorithm::RING: return "ring";
    case Algorithm::DIRECT: return "direct";
    case Algorithm::HALVING_DOUBLING: return "hd";
    case Algorithm::DOUBLE_BINARY_TREE: return "dbt";
  }
  return "?";
}

uint64_t parse_bytes(std::string_view text, std::string_view parameter) {
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  std::string number(text.substr(0, i));
  std::string_view unit = text.substr(i);
  static const std::pair<std::string_view, double> units[] = {
      {"", 1}, {"B", 1}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0},
      {"K", 1024.0}, {"M", 1048576.0}, {"G", 1073741824.0}};
  double scale = 0;
  for (const auto& [name, factor] : units)
    if (unit == name) scale = factor;
  char* end = nullptr;
  double value = number.empty() ? 0 : std::strtod(number.c_str(), &end);
  if (scale != 0 && !number.empty() && end == number.c_str() + number.size() && value == 0)
    fail("{}: 0 bytes is not allowed (got '{}'); sizes must be at least 1 byte", parameter, text);
  if (scale == 0 || number.empty() || end != number.c_str() + number.size() || !(value * scale >= 1) ||
      value * scale > 1e15)
    fail("{}: expected a byte size like 64MiB, 1MB or 4096, got '{}'", parameter, text);
  return static_cast<uint64_t>(value * scale + 0.5);
}

Placement parse_placement(std::string_view name) {
  if (name == "linear") return Placement::LINEAR;
  if (name == "random") return Placement::RANDOM;
  fail("--placement: unknown placement '{}' (expected linear or random)", name);
}

std::vector<uint64_t> Collective::bytes_sent_per_rank() const {
  std::vector<uint64_t> sent(rank_host.size(), 0);
  for (const auto& f : flows) sent[f.src_rank] += f.bytes;
  return sent;
}

std::vector<int> place_ranks(int ranks, int hosts, Placement placement, uint64_t seed) {
  if (ranks < 2) fail("--ranks: a collective needs at least 2 ranks (got {})", ranks);
  if (ranks > hosts) fail("--ranks: {} ranks do not fit on {} hosts (one rank per host)", ranks, hosts);
  std::vector<int> host(hosts);
  std::iota(host.begin(), host.end(), 0);
  if (placement == Placement::RANDOM) {
    std::mt19937_64 rng(seed);
    std::shuffle(host.begin(), host.end(), rng);
  }
  host.resize(ranks);
  return host;
}

namespace {

// Builds the flow list; ids are assigned in creation order, so deps (created earlier) are smaller.
class Builder {
 public:
  explicit Builder(Collective& c) : c_(c) {}

  int add(int src, int dst, uint64_t bytes, std::vector<int> deps) {
    Flow f;
    f.id = static_cast<int>(c_.flows.size());
    f.src_rank = src;
    f.dst_rank = dst;
    f.src_host = c_.rank_host[src];
    f.dst_host = c_.rank_host[dst];
    f.bytes = bytes;
    f.deps = std::move(deps);
    c_.flows.push_back(std::move(f));
    return c_.flows.back().id;
  }

 private:
  Collective& c_;
};

// Chunk i of M cut into p parts: M/p, the first M % p chunks one byte larger.
struct Chunks {
  uint64_t total;
  int parts;
  uint64_t size(int i) const { return part_bytes(total, static_cast<uint64_t>(parts), static_cast<uint64_t>(i)); }
  uint64_t range(int lo, int hi) const {  // bytes of chunks [lo, hi)
    uint64_t sum = 0;
    for (int i = lo; i < hi; ++i) sum += size(i);
    return sum;
  }
};

// into[r]: ids of the flows of the previous phase that deliver data into rank r.
using Inbound = std::vector<std::vector<int>>;

Inbound ring_reduce_scatter(Builder& b, int p, const Chunks& chunks, Inbound into) {
  // Step k: rank i sends chunk (i - k) mod p (partially reduced) to rank i + 1.
  for (int k = 0; k < p - 1; ++k) {
    Inbound next(p);
    for (int i = 0; i < p; ++i) {
      int dst = (i + 1) % p;
      int id = b.add(i, dst, chunks.size(((i - k) % p + p) % p), into[i]);
      next[dst].push_back(id);
    }
    into = std::move(next);
  }
  return into;
}

Inbound ring_all_gather(Builder& b, int p, const Chunks& chunks, Inbound into, int first_chunk_offset) {
  // Step k: rank i forwards chunk (i + offset - k) mod p to rank i + 1; at k = 0 that is the chunk it
  // owns (offset 0 for a plain all-gather, 1 after a ring reduce-scatter, which leaves rank i with
  // chunk i + 1 reduced).
  for (int k = 0; k < p - 1; ++k) {
    Inbound next(p);
    for (int i = 0; i < p; ++i) {
      int dst = (i + 1) % p;
      int chunk = ((i + first_chunk_offset - k) % p + p) % p;
      int id = b.add(i, dst, chunks.size(chunk), into[i]);
      next[dst].push_back(id);
    }
    into = std::move(next);
  }
  return into;
}

Inbound direct_exchange(Builder& b, int p, const Chunks& chunks, const Inbound& into, bool own_chunk) {
  // Every rank sends to every other rank at once: chunk j to rank j (reduce-scatter, all-to-all) or
  // its own chunk i to everyone (all-gather).
  Inbound next(p);
  for (int i = 0; i < p; ++i)
    for (int j = 0; j < p; ++j) {
      if (i == j) continue;
      int id = b.add(i, j, chunks.size(own_chunk ? i : j), into[i]);
      next[j].push_back(id);
    }
  return next;
}

Inbound halving_reduce_scatter(Builder& b, int p, const Chunks& chunks, Inbound into) {
  // Recursive halving: distance p/2, p/4, ..., 1. Each rank keeps the half of its chunk range that
  // holds its own chunk and sends the other half to its partner; after log2 p steps rank i holds
  // chunk i fully reduced. What a rank sends at a step sums everything it received at every earlier
  // step (each of them brought partial sums over its kept range), so the send depends on all of
  // those receives, not only the last one: `held` collects them. (With only the last one, a rank
  // whose latest partner was ahead forwarded sums it did not have yet, and ran steps ahead.)
  Inbound held = std::move(into);
  std::vector<int> lo(p, 0), hi(p, p);
  for (int d = p / 2; d >= 1; d /= 2) {
    std::vector<int> received(p, -1);
    std::vector<int> new_lo = lo, new_hi = hi;
    for (int i = 0; i < p; ++i) {
      int partner = i ^ d;
      int mid = (lo[i] + hi[i]) / 2;
      bool keep_low = (i & d) == 0;
      int send_lo = keep_low ? mid : lo[i], send_hi = keep_low ? hi[i] : mid;
      received[partner] = b.add(i, partner, chunks.range(send_lo, send_hi), held[i]);
      new_lo[i] = keep_low ? lo[i] : mid;
      new_hi[i] = keep_low ? mid : hi[i];
    }
    for (int i = 0; i < p; ++i) held[i].push_back(received[i]);
    lo = new_lo;
    hi = new_hi;
  }
  return held;
}

Inbound doubling_all_gather(Builder& b, int p, const Chunks& chunks, Inbound into) {
  // Recursive doubling: distance 1, 2, ..., p/2; each rank sends everything it holds, which doubles:
  // its own chunk (the flows in `into` bring it) and every earlier step's receive, so the send
  // depends on all of them (`held`, as in halving_reduce_scatter).
  Inbound held = std::move(into);
  std::vector<int> lo(p), hi(p);
  for (int i = 0; i < p; ++i) lo[i] = i, hi[i] = i + 1;
  for (int d = 1; d < p; d *= 2) {
    std::vector<int> received(p, -1);
    std::vector<int> new_lo = lo, new_hi = hi;
    for (int i = 0; i < p; ++i) {
      int partner = i ^ d;
      received[partner] = b.add(i, partner, chunks.range(lo[i], hi[i]), held[i]);
      new_lo[i] = std::min(lo[i], lo[partner]);
      new_hi[i] = std::max(hi[i], hi[partner]);
    }
    for (int i = 0; i < p; ++i) held[i].push_back(received[i]);
    lo = new_lo;
    hi = new_hi;
  }
  return held;
}

// NCCL's binary tree (ncclGetBtree): rank r's parent flips r's lowest set bit and sets the next one
// (falling back to just flipping it when that leaves the rank range); rank 0 is the root.
std::vector<int> btree_parents(int p) {
  std::vector<int> parent(p, -1);
  for (int r = 1; r < p; ++r) {
    int bit = 1;
    while (!(bit & r)) bit <<= 1;
    int up = (r ^ bit) | (bit << 1);
    if (up >= p) up = r ^ bit;
    parent[r] = up;
  }
  return parent;
}

void double_binary_tree(Builder& b, int p, uint64_t message, int chunks) {
  // Two trees, each carrying half of the message (NCCL's double binary tree): tree 0 is the binary
  // tree above, tree 1 its mirror (rank r -> p-1-r) for even p and its shift by one for odd p, so
  // most ranks that are inner nodes of one tree are leaves of the other. Each half is pipelined in
  // `chunks` chunks: reduce up the tree (a node sends chunk c after receiving chunk c from all its
  // children), then broadcast down (a node forwards chunk c after receiving it). Chunks on one tree
  // edge go in order (one connection per edge), which is what makes the pipeline.
  std::vector<int> parent0 = btree_parents(p);
  std::vector<std::vector<int>> parent(2, std::vector<int>(p, -1));
  for (int r = 0; r < p; ++r) {
    parent[0][r] = parent0[r];
    if (p % 2 == 0) {
      int m = p - 1 - r;
      parent[1][r] = parent0[m] < 0 ? -1 : p - 1 - parent0[m];
    } else {
      int m = (r - 1 + p) % p;
      parent[1][r] = parent0[m] < 0 ? -1 : (parent0[m] + 1) % p;
    }
  }
  for (int t = 0; t < 2; ++t) {
    uint64_t half = part_bytes(message, 2, static_cast<uint64_t>(t));
    if (half < static_cast<uint64_t>(chunks))
      fail("--size: {} bytes cannot be cut into 2 trees x {} chunks (message smaller than the number of pieces)",
           message, chunks);
  }
  // Per tree: children lists and a root-first order (BFS), reversed for the reduce phase.
  std::vector<std::vector<std::vector<int>>> children(2, std::vector<std::vector<int>>(p));
  std::vector<std::vector<int>> order(2);
  for (int t = 0; t < 2; ++t) {
    int root = -1;
    for (int r = 0; r < p; ++r) {
      if (parent[t][r] < 0) root = r;
      else children[t][parent[t][r]].push_back(r);
    }
    order[t].push_back(root);
    for (size_t i = 0; i < order[t].size(); ++i)
      for (int child : children[t][order[t][i]]) order[t].push_back(child);
    LOOKAHEAD_CHECK(static_cast<int>(order[t].size()) == p);
  }
  // Last flow id on each tree edge (per tree, per child rank) in each phase, for in-order chunks.
  std::vector<std::vector<int>> last_up(2, std::vector<int>(p, -1)), last_down(2, std::vector<int>(p, -1));
  for (int c = 0; c < chunks; ++c) {
    for (int t = 0; t < 2; ++t) {
      uint64_t bytes = part_bytes(part_bytes(message, 2, static_cast<uint64_t>(t)), static_cast<uint64_t>(chunks),
                                  static_cast<uint64_t>(c));
      std::vector<int> up(p, -1);  // this chunk's reduce flow out of each rank
      for (auto it = order[t].rbegin(); it != order[t].rend(); ++it) {
        int v = *it;
        if (parent[t][v] < 0) continue;
        std::vector<int> deps;
        for (int child : children[t][v]) deps.push_back(up[child]);
        if (last_up[t][v] >= 0) deps.push_back(last_up[t][v]);
        up[v] = last_up[t][v] = b.add(v, parent[t][v], bytes, std::move(deps));
      }
      std::vector<int> down(p, -1);  // this chunk's broadcast flow into each rank
      for (int v : order[t]) {
        for (int child : children[t][v]) {
          std::vector<int> deps;
          if (parent[t][v] < 0) {
            for (int c2 : children[t][v]) deps.push_back(up[c2]);  // the root has the reduced chunk
          } else {
            deps.push_back(down[v]);
          }
          if (last_down[t][child] >= 0) deps.push_back(last_down[t][child]);
          down[child] = last_down[t][child] = b.add(v, child, bytes, std::move(deps));
        }
      }
    }
  }
}

}  // namespace

Collective expand(const CollectiveSpec& spec, const std::vector<int>& rank_host) {
  const int p = spec.ranks;
  if (p < 2) fail("--ranks: a collective needs at least 2 ranks (got {})", p);
  if (static_cast<int>(rank_host.size()) != p)
    fail("rank placement has {} hosts for {} ranks", rank_host.size(), p);
  Collective c;
  c.spec = spec;
  c.rank_host = rank_host;
  Builder b(c);
  const bool chunked = !(spec.algorithm == Algorithm::DOUBLE_BINARY_TREE && spec.kind == Kind::ALL_REDUCE);
  if (chunked && spec.message_bytes < static_cast<uint64_t>(p))
    fail("--size: {} bytes cannot be cut into {} per-rank chunks (message smaller than the number of pieces)",
         spec.message_bytes, p);
  if (spec.algorithm == Algorithm::HALVING_DOUBLING && (p & (p - 1)) != 0)
    fail("--algo hd: halving-doubling needs a power-of-two number of ranks (got {})", p);
  Chunks chunks{spec.message_bytes, p};
  Inbound none(p);
  auto unsupported = [&] {
    fail("--algo: {} has no {} algorithm here (all-reduce: ring, direct, hd, dbt; all-gather and reduce-scatter: "
         "ring, direct, hd; all-to-all: direct)",
         kind_name(spec.kind), algorithm_name(spec.algorithm));
  };
  switch (spec.kind) {
    case Kind::ALL_REDUCE:
      switch (spec.algorithm) {
        case Algorithm::RING: ring_all_gather(b, p, chunks, ring_reduce_scatter(b, p, chunks, none), 1); break;
        case Algorithm::DIRECT:
          direct_exchange(b, p, chunks, direct_exchange(b, p, chunks, none, false), true);
          break;
        case Algorithm::HALVING_DOUBLING:
          doubling_all_gather(b, p, chunks, halving_reduce_scatter(b, p, chunks, none));
          break;
        case Algorithm::DOUBLE_BINARY_TREE:
          if (spec.chunks < 1) fail("--chunks: need at least 1 pipeline chunk (got {})", spec.chunks);
          double_binary_tree(b, p, spec.message_bytes, spec.chunks);
          break;
      }
      break;
    case Kind::ALL_GATHER:
    case Kind::REDUCE_SCATTER: {
      bool gather = spec.kind == Kind::ALL_GATHER;
      switch (spec.algorithm) {
        case Algorithm::RING:
          gather ? ring_all_gather(b, p, chunks, none, 0) : ring_reduce_scatter(b, p, chunks, none);
          break;
        case Algorithm::DIRECT: direct_exchange(b, p, chunks, none, gather); break;
        case Algorithm::HALVING_DOUBLING:
          gather ? doubling_all_gather(b, p, chunks, none) : halving_reduce_scatter(b, p, chunks, none);
          break;
        case Algorithm::DOUBLE_BINARY_TREE: unsupported();
      }
      break;
    }
    case Kind::ALL_TO_ALL:
      if (spec.algorithm != Algorithm::DIRECT) unsupported();
      direct_exchange(b, p, chunks, none, false);
      break;
  }
  // Steps: longest dependency chain (deps have smaller ids, so one pass in id order suffices).
  int max_step = -1;
  for (auto& f : c.flows) {
    f.step = 0;
    for (int d : f.deps) f.step = std::max(f.step, c.flows[d].step + 1);
    max_step = std::max(max_step, f.step);
  }
  c.steps.assign(max_step + 1, {});
  for (const auto& f : c.flows) c.steps[f.step].push_back(f.id);
  if (spec.rendezvous && (spec.algorithm == Algorithm::RING || spec.algorithm == Algorithm::HALVING_DOUBLING)) {
    // Ring and hd: every rank sends one flow and receives one per step, so step t - 1's flows out of
    // and into the receiver are its whole previous step. They are older (smaller ids, one step less),
    // so the steps stay as computed.
    for (size_t t = 1; t < c.steps.size(); ++t) {
      std::vector<std::vector<int>> touching(p);  // step t - 1's flows per rank (sent or received)
      for (int id : c.steps[t - 1]) {
        touching[c.flows[id].src_rank].push_back(id);
        touching[c.flows[id].dst_rank].push_back(id);
      }
      for (int id : c.steps[t]) {
        Flow& f = c.flows[id];
        for (int d : touching[f.dst_rank])
          if (std::find(f.deps.begin(), f.deps.end(), d) == f.deps.end()) f.deps.push_back(d);
      }
    }
  }
  return c;
}

Collective skewed_all_to_all(const std::vector<int>& rank_host, uint64_t tokens_per_rank, uint64_t bytes_per_token,
                             double zipf_skew, uint64_t seed) {
  const int p = static_cast<int>(rank_host.size());
  if (p < 2) fail("--ranks: a collective needs at least 2 ranks (got {})", p);
  if (tokens_per_rank == 0 || bytes_per_token == 0) fail("skewed all-to-all: tokens per rank and bytes per token must be > 0");
  if (!(zipf_skew >= 0)) fail("--skew: must be >= 0 (got {})", zipf_skew);
  std::mt19937_64 rng(seed);
  std::vector<int> popularity(p);
  std::iota(popularity.begin(), popularity.end(), 0);
  std::shuffle(popularity.begin(), popularity.end(), rng);
  std::vector<double> weight(p);
  for (int e = 0; e < p; ++e) weight[e] = 1.0 / std::pow(static_cast<double>(popularity[e] + 1), zipf_skew);
  std::discrete_distribution<int> expert(weight.begin(), weight.end());
  Collective c;
  c.spec = {Kind::ALL_TO_ALL, Algorithm::DIRECT, p, tokens_per_rank * bytes_per_token, 1};
  c.rank_host = rank_host;
  Builder b(c);
  for (int i = 0; i < p; ++i) {
    std::vector<uint64_t> tokens(p, 0);
    for (uint64_t t = 0; t < tokens_per_rank; ++t) ++tokens[expert(rng)];
    for (int j = 0; j < p; ++j)
      if (j != i && tokens[j] > 0) b.add(i, j, tokens[j] * bytes_per_token, {});
  }
  c.steps.assign(1, {});
  for (const auto& f : c.flows) c.steps[0].push_back(f.id);
  return c;
}

}  // namespace lookahead::net::collective
