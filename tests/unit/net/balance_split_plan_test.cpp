// The splitting planner: the brief's worked checks (s = 16) and property tests over random batches.
#include <gtest/gtest.h>

#include <algorithm>
#include <climits>
#include <functional>
#include <map>
#include <numeric>
#include <random>
#include <set>

#include "common/error.h"
#include "net/balance/split_plan.h"

using namespace lookahead::net::balance;

namespace {

std::vector<int> path_ids(int s) {
  std::vector<int> p(s);
  std::iota(p.begin(), p.end(), 100);  // opaque ids, not 0..s-1, to catch index/id mix-ups
  return p;
}

std::map<int, uint64_t> path_loads(const std::vector<Piece>& pieces) {
  std::map<int, uint64_t> load;
  for (const auto& p : pieces) load[p.path] += p.bytes;
  return load;
}

// Every flow is covered exactly once by its pieces, in order, with no gaps.
void expect_flows_covered(const std::vector<Piece>& pieces, const std::vector<uint64_t>& sizes) {
  std::vector<std::vector<Piece>> by_flow(sizes.size());
  for (const auto& p : pieces) {
    ASSERT_GE(p.flow, 0);
    ASSERT_LT(p.flow, static_cast<int>(sizes.size()));
    ASSERT_GT(p.bytes, 0u);
    by_flow[p.flow].push_back(p);
  }
  for (size_t i = 0; i < sizes.size(); ++i) {
    auto& v = by_flow[i];
    std::sort(v.begin(), v.end(), [](const Piece& a, const Piece& b) { return a.offset < b.offset; });
    uint64_t next = 0;
    for (const auto& p : v) {
      EXPECT_EQ(p.offset, next) << "flow " << i;
      next += p.bytes;
    }
    EXPECT_EQ(next, sizes[i]) << "flow " << i;
  }
}

// Every path carries spraying's share: total / s bytes, and exactly total mod s of them one more.
void expect_spraying_share(const std::vector<Piece>& pieces, uint64_t total, int s) {
  auto load = path_loads(pieces);
  auto ids = path_ids(s);
  const uint64_t b = total / static_cast<uint64_t>(s);
  uint64_t extra = 0;
  for (int p = 0; p < s; ++p) {
    const uint64_t l = load.count(ids[p]) ? load[ids[p]] : 0;
    ASSERT_TRUE(l == b || l == b + 1) << "path " << p << " carries " << l << ", share " << b;
    extra += l - b;
  }
  ASSERT_EQ(extra, total % static_cast<uint64_t>(s));
  for (const auto& [path, bytes] : load) ASSERT_TRUE(path >= ids.front() && path <= ids.back()) << path;
}

// Brute force, independent of the planner: the fewest nonzero entries of a flows x paths byte matrix
// whose rows are the flow sizes and whose columns are spraying's shares (b or b + 1, total mod s of
// them b + 1). Every row is tried as every composition over the s paths (tiny sizes only).
int brute_force_min_pieces(const std::vector<uint64_t>& sizes, int s) {
  uint64_t total = std::accumulate(sizes.begin(), sizes.end(), uint64_t{0});
  const uint64_t b = total / static_cast<uint64_t>(s);
  std::vector<uint64_t> column(s, 0);
  int best = INT32_MAX;
  std::function<void(size_t, int, uint64_t, int)> place = [&](size_t flow, int path, uint64_t left, int pieces) {
    if (pieces >= best) return;
    if (flow == sizes.size()) {
      uint64_t extra = 0;
      for (uint64_t c : column) {
        if (c != b && c != b + 1) return;
        extra += c - b;
      }
      if (extra == total % static_cast<uint64_t>(s)) best = pieces;
      return;
    }
    if (path == s - 1) {  // the rest of the flow on the last path
      if (column[path] + left > b + 1) return;
      column[path] += left;
      place(flow + 1, 0, flow + 1 < sizes.size() ? sizes[flow + 1] : 0, pieces + (left > 0));
      column[path] -= left;
      return;
    }
    for (uint64_t take = 0; take <= left && column[path] + take <= b + 1; ++take) {
      column[path] += take;
      place(flow, path + 1, left - take, pieces + (take > 0));
      column[path] -= take;
    }
  };
  place(0, 0, sizes[0], 0);
  return best;
}

// Brute force over set partitions: a minimal plan is a forest, so pieces = n + s - components. A
// component is a group of flows (bytes S) on k paths with k*b <= S <= k*(b + 1); the groups' k must
// add up to s (the k of a group range over an interval, so their sum ranges over [sum lo, sum hi]).
// With b = 0 (total < s) the paths left empty are components of their own.
int partition_min_pieces(const std::vector<uint64_t>& sizes, int s) {
  const int n = static_cast<int>(sizes.size());
  uint64_t total = std::accumulate(sizes.begin(), sizes.end(), uint64_t{0});
  const uint64_t b = total / static_cast<uint64_t>(s);
  std::vector<int> group(n, 0);  // restricted growth string
  int most = 0;
  std::function<void(int, int)> assign = [&](int i, int groups) {
    if (i == n) {
      std::vector<uint64_t> sum(groups, 0);
      for (int f = 0; f < n; ++f) sum[group[f]] += sizes[f];
      uint64_t lo = 0, hi = 0;
      for (uint64_t g : sum) {
        uint64_t k_lo = (g + b) / (b + 1), k_hi = b == 0 ? UINT32_MAX : g / b;  // ceil(g / (b+1)), floor(g / b)
        if (k_lo < 1) k_lo = 1;
        if (k_lo > k_hi) return;
        lo += k_lo, hi += k_hi;
      }
      if (b == 0) {
        if (lo <= static_cast<uint64_t>(s)) most = std::max(most, groups + s - static_cast<int>(lo));
      } else if (lo <= static_cast<uint64_t>(s) && static_cast<uint64_t>(s) <= hi) {
        most = std::max(most, groups);
      }
      return;
    }
    for (int g = 0; g <= groups; ++g) {
      group[i] = g;
      assign(i + 1, std::max(groups, g + 1));
    }
  };
  assign(0, 0);
  return n + s - most;
}

}  // namespace

TEST(BalanceSplitPlan, TwentyFlowsOverSixteenSpines) {
  const uint64_t F = 1 << 20;
  std::vector<uint64_t> sizes(20, F);
  auto pieces = split_batch_equal(sizes, path_ids(16));
  EXPECT_EQ(pieces.size(), 32u);  // 16 whole + 4 flows x 4 pieces
  EXPECT_EQ(equal_scheme_pieces(20, 16), 32);
  int whole = 0, quarter = 0;
  for (const auto& p : pieces) {
    whole += p.bytes == F;
    quarter += p.bytes == F / 4;
  }
  EXPECT_EQ(whole, 16);
  EXPECT_EQ(quarter, 16);
  auto load = path_loads(pieces);
  ASSERT_EQ(load.size(), 16u);
  for (auto [path, bytes] : load) EXPECT_EQ(bytes, F + F / 4) << "path " << path;  // 1.25 F per spine
  expect_flows_covered(pieces, sizes);
}

TEST(BalanceSplitPlan, OneFlowIsCutIntoSixteenths) {
  const uint64_t F = 16 * 4096;
  auto pieces = split_batch_equal({F}, path_ids(16));
  ASSERT_EQ(pieces.size(), 16u);
  std::set<int> paths;
  for (const auto& p : pieces) {
    EXPECT_EQ(p.bytes, F / 16);
    paths.insert(p.path);
  }
  EXPECT_EQ(paths.size(), 16u);
}

TEST(BalanceSplitPlan, SixteenFlowsAreNotSplit) {
  const uint64_t F = 12345;
  std::vector<uint64_t> sizes(16, F);
  auto pieces = split_batch_equal(sizes, path_ids(16));
  ASSERT_EQ(pieces.size(), 16u);
  for (auto [path, bytes] : path_loads(pieces)) EXPECT_EQ(bytes, F);
  for (const auto& p : pieces) EXPECT_EQ(p.bytes, F);
}

TEST(BalanceSplitPlan, RandomBatchesLoadEveryPathEqually) {
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 2000; ++trial) {
    int s = 1 + static_cast<int>(rng() % 64);
    int n = 1 + static_cast<int>(rng() % 200);
    // Half the trials with f a multiple of s (exact n*f/s), half with arbitrary f >= s.
    uint64_t f = trial % 2 ? s * (1 + rng() % 5000) : s + rng() % 1000000;
    std::vector<uint64_t> sizes(n, f);
    auto pieces = split_batch_equal(sizes, path_ids(s));
    EXPECT_EQ(static_cast<int>(pieces.size()), equal_scheme_pieces(n, s));
    auto load = path_loads(pieces);
    ASSERT_EQ(static_cast<int>(load.size()), std::min(s, static_cast<int>(pieces.size())));
    uint64_t lo = UINT64_MAX, hi = 0, sum = 0;
    for (auto [path, bytes] : load) lo = std::min(lo, bytes), hi = std::max(hi, bytes), sum += bytes;
    if (static_cast<int>(load.size()) < s) lo = 0;
    ASSERT_EQ(sum, n * f);
    ASSERT_LE(hi - lo, 1u) << "n=" << n << " s=" << s << " f=" << f;  // integer bytes: within one byte
    if ((n * f) % s == 0) {
      for (auto [path, bytes] : load) ASSERT_EQ(bytes, n * f / s) << "n=" << n << " s=" << s << " f=" << f;
    }
    expect_flows_covered(pieces, sizes);
  }
}

TEST(BalanceSplitPlan, MessageSmallerThanPiecesIsAnError) {
  // n = 1 over 16 paths needs 16 pieces: a 15-byte flow cannot be cut that way.
  EXPECT_THROW(split_batch_equal({15}, path_ids(16)), lookahead::Error);
  EXPECT_NO_THROW(split_batch_equal({16}, path_ids(16)));
  EXPECT_THROW(split_batch_equal({100}, {}), lookahead::Error);
  EXPECT_THROW(split_batch_equal({0}, path_ids(4)), lookahead::Error);
}

TEST(BalanceSplitPlan, MinPiecesMatchesSprayingWithFewPieces) {
  std::mt19937_64 rng(11);
  for (int trial = 0; trial < 2000; ++trial) {
    int s = 1 + static_cast<int>(rng() % 32);
    int n = 1 + static_cast<int>(rng() % 60);
    std::vector<uint64_t> sizes(n);
    for (auto& f : sizes) f = 1 + rng() % (trial % 3 == 0 ? 100 : 1000000);  // some tiny flows too
    auto pieces = split_batch_min_pieces(sizes, path_ids(s));
    uint64_t total = std::accumulate(sizes.begin(), sizes.end(), uint64_t{0});
    expect_spraying_share(pieces, total, s);
    ASSERT_LE(static_cast<int>(pieces.size()), n + s - 1);
    expect_flows_covered(pieces, sizes);
  }
}

TEST(BalanceSplitPlan, MinPiecesOnEqualFlowsNeedsRPlusSMinusGcd) {
  // n = q*s + r equal flows: q*s whole flows plus r + s - gcd(r, s) pieces (the brief's note).
  for (int s : {4, 8, 12, 16}) {
    for (int n = 1; n <= 3 * s; ++n) {
      int q = n / s, r = n % s;
      uint64_t f = static_cast<uint64_t>(s) * 1024;
      std::vector<uint64_t> sizes(n, f);
      auto pieces = split_batch_min_pieces(sizes, path_ids(s));
      int expected = r == 0 ? n : q * s + r + s - std::gcd(r, s);
      EXPECT_EQ(static_cast<int>(pieces.size()), expected) << "n=" << n << " s=" << s;
      EXPECT_LE(static_cast<int>(pieces.size()), equal_scheme_pieces(n, s));
    }
  }
  // s = 16, n = 20 (r = 4): the equal-size scheme needs 32 pieces, unequal pieces need 32 too;
  // n = 19 (r = 3): 16 + 3*16 = 64 equal pieces against 16 + 3 + 16 - 1 = 34.
  EXPECT_EQ(equal_scheme_pieces(19, 16), 64);
  EXPECT_EQ(split_batch_min_pieces(std::vector<uint64_t>(19, 16 * 1024), path_ids(16)).size(), 34u);
}

TEST(BalanceSplitPlan, MinPiecesSixteenFlowsOverFourteenPathsIsTwentyEight) {
  // Issue 17: 16 x 65536 B over 14 paths took 29 pieces (shares fixed to the first paths) against the
  // equal scheme's 28. The fewest: two groups of 8 flows on 7 paths each, 16 + 14 - 2 = 28.
  std::vector<uint64_t> sizes(16, 65536);
  auto pieces = split_batch_min_pieces(sizes, path_ids(14));
  EXPECT_EQ(pieces.size(), 28u);
  EXPECT_EQ(equal_scheme_pieces(16, 14), 28);
  expect_spraying_share(pieces, 16 * 65536, 14);
  expect_flows_covered(pieces, sizes);
}

TEST(BalanceSplitPlan, MinPiecesEqualFlowsNeverMoreThanTheEqualScheme) {
  // Equal flows larger than s^2 bytes: n + s - gcd(n, s) pieces, at most the equal scheme's count.
  for (uint64_t f : {65536ull, 65537ull, 1000003ull})
    for (int s = 1; s <= 16; ++s)
      for (int n = 1; n <= 48; ++n) {
        std::vector<uint64_t> sizes(n, f);
        auto pieces = split_batch_min_pieces(sizes, path_ids(s));
        ASSERT_EQ(static_cast<int>(pieces.size()), n + s - std::gcd(n, s)) << "n=" << n << " s=" << s << " f=" << f;
        ASSERT_LE(static_cast<int>(pieces.size()), equal_scheme_pieces(n, s));
        expect_spraying_share(pieces, n * f, s);
        expect_flows_covered(pieces, sizes);
      }
}

TEST(BalanceSplitPlan, MinPiecesIsMinimalOnEveryTinyBatch) {
  // Exhaustive: every multiset of 1..3 flows of 1..6 bytes over 1..4 paths, against the byte-matrix
  // brute force (which assumes nothing about the plan's shape).
  int cases = 0;
  for (int s = 1; s <= 4; ++s)
    for (int n = 1; n <= 3; ++n) {
      std::vector<uint64_t> sizes(n, 1);
      for (;;) {
        auto pieces = split_batch_min_pieces(sizes, path_ids(s));
        uint64_t total = std::accumulate(sizes.begin(), sizes.end(), uint64_t{0});
        expect_spraying_share(pieces, total, s);
        expect_flows_covered(pieces, sizes);
        const int brute = brute_force_min_pieces(sizes, s);
        ASSERT_EQ(static_cast<int>(pieces.size()), brute)
            << "s=" << s << " sizes=" << ::testing::PrintToString(sizes);
        ASSERT_EQ(partition_min_pieces(sizes, s), brute) << "s=" << s << " sizes=" << ::testing::PrintToString(sizes);
        ++cases;
        int i = n - 1;  // next nondecreasing tuple
        while (i >= 0 && sizes[i] == 6) --i;
        if (i < 0) break;
        ++sizes[i];
        for (int j = i + 1; j < n; ++j) sizes[j] = sizes[i];
      }
    }
  EXPECT_EQ(cases, 4 * (6 + 21 + 56));
}

TEST(BalanceSplitPlan, MinPiecesIsMinimalOnASmallGridOfRealSizes) {
  // Exhaustive over 1..6 flows drawn (as multisets) from five sizes near 64 KiB, over 1..9 paths,
  // against the set-partition brute force.
  const std::vector<uint64_t> values = {40000, 65536, 65537, 98304, 131072};
  int cases = 0;
  for (int s = 1; s <= 9; ++s)
    for (int n = 1; n <= 6; ++n) {
      std::vector<int> pick(n, 0);
      for (;;) {
        std::vector<uint64_t> sizes;
        for (int v : pick) sizes.push_back(values[v]);
        auto pieces = split_batch_min_pieces(sizes, path_ids(s));
        expect_spraying_share(pieces, std::accumulate(sizes.begin(), sizes.end(), uint64_t{0}), s);
        expect_flows_covered(pieces, sizes);
        ASSERT_EQ(static_cast<int>(pieces.size()), partition_min_pieces(sizes, s))
            << "s=" << s << " sizes=" << ::testing::PrintToString(sizes);
        ++cases;
        int i = n - 1;
        while (i >= 0 && pick[i] == static_cast<int>(values.size()) - 1) --i;
        if (i < 0) break;
        ++pick[i];
        for (int j = i + 1; j < n; ++j) pick[j] = pick[i];
      }
    }
  EXPECT_GT(cases, 2000);
}
