// The splitting planner: the brief's worked checks (s = 16) and property tests over random batches.
#include <gtest/gtest.h>

#include <algorithm>
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
    auto load = path_loads(pieces);
    auto ids = path_ids(s);
    for (int p = 0; p < s; ++p) {
      uint64_t share = total / s + (static_cast<uint64_t>(p) < total % s ? 1 : 0);
      ASSERT_EQ(load[ids[p]], share) << "trial " << trial;
    }
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
