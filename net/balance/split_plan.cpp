#include "net/balance/split_plan.h"

#include <algorithm>
#include <numeric>

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

std::vector<Piece> split_batch_min_pieces(const std::vector<uint64_t>& flow_bytes, const std::vector<int>& paths) {
  check_batch(flow_bytes, paths);
  const int n = static_cast<int>(flow_bytes.size());
  const size_t s = paths.size();
  uint64_t total = 0;
  for (uint64_t f : flow_bytes) total += f;
  std::vector<uint64_t> room(s);  // bytes each path still has to take to reach its spraying share
  for (size_t p = 0; p < s; ++p) room[p] = collective::part_bytes(total, s, p);
  // Largest flows first, each whole on the emptiest path if it fits there (ties: earlier path).
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
  // The rest end to end, cut at path boundaries (in path order): every cut adds one piece, so at
  // most |rest| + s - 1 pieces, fewer where a boundary falls between two flows.
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

}  // namespace lookahead::net::balance
