#include "net/balance/split_plan.h"

#include <algorithm>
#include <functional>
#include <map>
#include <numeric>
#include <optional>

#include "common/error.h"
#include "net/collective/collective.h"

namespace lookahead::net::balance {

namespace {

void check_batch(const std::vector<uint64_t>& flow_bytes, const std::vector<int>& paths) {
  if (paths.empty()) fail("split plan: no live path for a batch of {} flows", flow_bytes.size());
  for (size_t i = 0; i < flow_bytes.size(); ++i)
    if (flow_bytes[i] == 0) fail("split plan: flow {} of the batch has 0 bytes", i);
}

}  // namespace

int equal_scheme_pieces(int n, int s) {
  int r = n % s;
  int g = std::gcd(r, s);
  return r == 0 ? n : n - r + r * (s / g);
}

std::vector<Piece> split_batch_equal(const std::vector<uint64_t>& flow_bytes, const std::vector<int>& paths) {
  check_batch(flow_bytes, paths);
  const int n = static_cast<int>(flow_bytes.size());
  const int s = static_cast<int>(paths.size());
  const int q = n / s, r = n % s;
  std::vector<Piece> pieces;
  pieces.reserve(static_cast<size_t>(equal_scheme_pieces(n, s)));
  // Whole flows round-robin: flow i on path i mod s; they end exactly at path position 0 again.
  for (int i = 0; i < q * s; ++i) pieces.push_back({i, 0, flow_bytes[i], paths[i % s]});
  if (r == 0) return pieces;
  const int g = std::gcd(r, s);
  const int k = s / g;  // pieces per remainder flow
  for (int i = 0; i < r; ++i) {
    const int flow = q * s + i;
    const uint64_t f = flow_bytes[flow];
    if (f < static_cast<uint64_t>(k))
      fail("split plan: flow of {} bytes cannot be cut into {} pieces (message smaller than the number of pieces)", f,
           k);
    // Remainder flow i's piece t lands on path position (i*k + t) mod s = (i mod g)*k + t, so the r/g
    // flows with one residue i mod g meet on the same k paths. Rotating their extra bytes by e per
    // flow within that class (m = i / g) spreads them evenly: path loads differ by at most one byte.
    const uint64_t base = f / static_cast<uint64_t>(k);
    const uint64_t extra = f % static_cast<uint64_t>(k);
    const uint64_t m = static_cast<uint64_t>(i / g);
    uint64_t offset = 0;
    for (int t = 0; t < k; ++t) {
      uint64_t rotated = (static_cast<uint64_t>(t) + static_cast<uint64_t>(k) - (m * extra) % static_cast<uint64_t>(k)) %
                         static_cast<uint64_t>(k);
      uint64_t bytes = base + (rotated < extra ? 1 : 0);
      pieces.push_back({flow, offset, bytes, paths[(i % g) * k + t]});
      offset += bytes;
    }
  }
  return pieces;
}

namespace {

// The fallback of split_batch_min_pieces for batches too varied for the exact search: path p gets
// exactly part_bytes(total, s, p); flows are placed whole on the emptiest path while they fit (largest
// first) and the rest are laid end to end and cut at the path boundaries: at most n + s - 1 pieces.
std::vector<Piece> greedy_min_pieces(const std::vector<uint64_t>& flow_bytes, const std::vector<int>& paths) {
  const int n = static_cast<int>(flow_bytes.size());
  const size_t s = paths.size();
  uint64_t total = 0;
  for (uint64_t f : flow_bytes) total += f;
  std::vector<uint64_t> room(s);  // bytes each path still has to take to reach its spraying share
  for (size_t p = 0; p < s; ++p) room[p] = collective::part_bytes(total, s, p);
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return flow_bytes[a] > flow_bytes[b]; });
  std::vector<Piece> pieces;
  std::vector<int> rest;
  for (int flow : order) {
    size_t best = static_cast<size_t>(std::max_element(room.begin(), room.end()) - room.begin());
    if (room[best] >= flow_bytes[flow]) {
      pieces.push_back({flow, 0, flow_bytes[flow], paths[best]});
      room[best] -= flow_bytes[flow];
    } else {
      rest.push_back(flow);
    }
  }
  std::sort(rest.begin(), rest.end());
  size_t p = 0;
  for (int flow : rest) {
    uint64_t offset = 0, left = flow_bytes[flow];
    while (left > 0) {
      while (p < s && room[p] == 0) ++p;
      LOOKAHEAD_CHECK(p < s);  // the rooms add up to exactly the bytes left
      uint64_t take = std::min(left, room[p]);
      pieces.push_back({flow, offset, take, paths[p]});
      room[p] -= take;
      offset += take;
      left -= take;
    }
  }
  return pieces;
}

// One connected part of a plan: these flows laid end to end over `bins` consecutive paths, the first
// `extra` of which carry b + 1 bytes and the others b (b = total / s).
struct Component {
  std::vector<int> flows;
  int bins = 0;
  uint64_t extra = 0;
};

// The exact search of split_batch_min_pieces. A plan's pieces are the edges of a bipartite graph
// between flows and paths; a minimal plan's graph is a forest (bytes shifted around a cycle remove one
// of its edges), so pieces = n + s - components, and the fewest pieces are the most components. A
// component is a set of flows and k paths whose loads (b or b + 1 each) add up to the flows' bytes;
// all components together use s paths and e = total mod s loads of b + 1. Flows of one size are
// interchangeable, so the search runs over count vectors (how many flows of each distinct size are
// placed) and the paths used so far: a dynamic programme over (count vector, paths) that appends one
// component at a time. Returns nothing when that state space exceeds `budget` transitions.
std::optional<std::vector<Component>> most_components(const std::vector<uint64_t>& flow_bytes, uint64_t s, uint64_t budget) {
  uint64_t total = 0;
  for (uint64_t f : flow_bytes) total += f;
  const uint64_t b = total / s, e = total % s;
  // Distinct sizes and the flows of each (batch order).
  std::map<uint64_t, std::vector<int>, std::greater<>> by_size;
  for (size_t i = 0; i < flow_bytes.size(); ++i) by_size[flow_bytes[i]].push_back(static_cast<int>(i));
  std::vector<uint64_t> value;
  std::vector<std::vector<int>> members;
  for (auto& [v, ids] : by_size) value.push_back(v), members.push_back(ids);
  const size_t d = value.size();
  // Cost: pairs of count vectors (one below the other) x pairs of path counts per vector.
  const uint64_t k_per_vec = b == 0 ? s + 1 : std::min<uint64_t>(s + 1, e / b + 2);
  double pairs = static_cast<double>(k_per_vec * k_per_vec);
  std::vector<uint64_t> stride(d + 1, 1);
  for (size_t i = 0; i < d; ++i) {
    const double c = static_cast<double>(members[i].size());
    pairs *= (c + 1) * (c + 2) / 2;
    if (pairs > static_cast<double>(budget)) return std::nullopt;
    stride[i + 1] = stride[i] * (members[i].size() + 1);
  }
  const uint64_t vectors = stride[d];
  std::vector<uint64_t> bytes(vectors, 0);  // bytes of the flows a count vector places
  for (uint64_t v = 0; v < vectors; ++v)
    for (size_t i = 0; i < d; ++i) bytes[v] += (v / stride[i]) % (members[i].size() + 1) * value[i];
  // The path counts k a count vector may end a component at: its bytes are k*b + u with u loads of
  // b + 1 so far (u <= k, u <= e) and the e - u still to place fitting on the s - k paths left.
  auto extra_at = [&](uint64_t v, uint64_t k) -> int64_t {
    if (bytes[v] < k * b) return -1;
    uint64_t u = bytes[v] - k * b;
    if (u > k || u > e || e - u > s - k) return -1;
    return static_cast<int64_t>(u);
  };
  // Those k form a range (every condition is linear in k): [k_lo, k_hi] per vector, empty if lo > hi.
  std::vector<uint64_t> k_lo(vectors, 1), k_hi(vectors, 0);
  for (uint64_t v = 0; v < vectors; ++v) {
    bool any = false;
    for (uint64_t k = b == 0 ? s : std::min<uint64_t>(s, bytes[v] / b);; --k) {  // down from the largest k with k*b <= bytes
      if (extra_at(v, k) >= 0) {
        if (!any) k_hi[v] = k;
        k_lo[v] = k, any = true;
      } else if (any) {
        break;
      }
      if (k == 0) break;
    }
  }
  const uint64_t width = s + 1;
  std::vector<int32_t> best(vectors * width, -1);
  std::vector<uint64_t> parent(vectors * width, 0);
  best[0] = 0;
  std::vector<uint64_t> digits(d), sub(d);
  for (uint64_t v = 0; v < vectors; ++v) {
    for (size_t i = 0; i < d; ++i) digits[i] = (v / stride[i]) % (members[i].size() + 1);
    for (uint64_t k = k_lo[v]; k <= k_hi[v]; ++k) {
      const int64_t u = extra_at(v, k);
      if (u < 0 || (v == 0 && k == 0)) continue;
      int32_t& here = best[v * width + k];
      // Paths that carry nothing (b == 0): each is a component of its own.
      if (b == 0 && k > 0 && best[v * width + k - 1] >= 0 && extra_at(v, k - 1) == u && best[v * width + k - 1] + 1 > here) {
        here = best[v * width + k - 1] + 1;
        parent[v * width + k] = v * width + k - 1;
      }
      // A component with at least one flow: every count vector w below v (odometer over the digits).
      std::fill(sub.begin(), sub.end(), 0);
      for (uint64_t w = 0;;) {
        if (w != v)
          for (uint64_t j = k_lo[w]; j <= k_hi[w] && j < k; ++j) {
            const int32_t before = best[w * width + j];
            if (before < 0 || before + 1 <= here) continue;
            const int64_t uw = extra_at(w, j);
            if (uw < 0 || uw > u || static_cast<uint64_t>(u - uw) > k - j) continue;
            here = before + 1;
            parent[v * width + k] = w * width + j;
          }
        size_t i = 0;
        while (i < d && sub[i] == digits[i]) w -= sub[i] * stride[i], sub[i] = 0, ++i;
        if (i == d) break;
        ++sub[i], w += stride[i];
      }
    }
  }
  // Walk back from every flow on every path.
  std::vector<Component> parts;
  std::vector<size_t> used(d, 0);
  std::vector<std::pair<uint64_t, uint64_t>> chain;  // (vector, k) from the start
  for (uint64_t at = (vectors - 1) * width + s; at != 0; at = parent[at]) chain.push_back({at / width, at % width});
  chain.push_back({0, 0});
  std::reverse(chain.begin(), chain.end());
  LOOKAHEAD_CHECK(best[(vectors - 1) * width + s] >= 1);
  for (size_t c = 1; c < chain.size(); ++c) {
    auto [w, j] = chain[c - 1];
    auto [v, k] = chain[c];
    Component part;
    part.bins = static_cast<int>(k - j);
    part.extra = static_cast<uint64_t>(extra_at(v, k) - extra_at(w, j));
    for (size_t i = 0; i < d; ++i) {
      const uint64_t add = (v / stride[i]) % (members[i].size() + 1) - (w / stride[i]) % (members[i].size() + 1);
      for (uint64_t a = 0; a < add; ++a) part.flows.push_back(members[i][used[i]++]);
    }
    parts.push_back(std::move(part));
  }
  return parts;
}

}  // namespace

std::vector<Piece> split_batch_min_pieces(const std::vector<uint64_t>& flow_bytes, const std::vector<int>& paths) {
  check_batch(flow_bytes, paths);
  const uint64_t s = paths.size();
  auto parts = most_components(flow_bytes, s, kMinPiecesSearchBudget);
  if (!parts) return greedy_min_pieces(flow_bytes, paths);
  uint64_t total = 0;
  for (uint64_t f : flow_bytes) total += f;
  const uint64_t b = total / s;
  // Each component: its flows end to end (batch order) over its paths, cut at the path boundaries.
  std::vector<Piece> pieces;
  size_t next_path = 0;
  for (auto& part : *parts) {
    std::sort(part.flows.begin(), part.flows.end());
    size_t f = 0;
    uint64_t offset = 0;
    for (int bin = 0; bin < part.bins; ++bin) {
      uint64_t room = b + (static_cast<uint64_t>(bin) < part.extra ? 1 : 0);
      const int path = paths[next_path++];
      while (room > 0) {
        LOOKAHEAD_CHECK(f < part.flows.size());
        const int flow = part.flows[f];
        const uint64_t take = std::min(room, flow_bytes[flow] - offset);
        pieces.push_back({flow, offset, take, path});
        room -= take;
        offset += take;
        if (offset == flow_bytes[flow]) ++f, offset = 0;
      }
    }
    LOOKAHEAD_CHECK(f == part.flows.size());
  }
  LOOKAHEAD_CHECK(next_path == paths.size());
  return pieces;
}

}  // namespace lookahead::net::balance
