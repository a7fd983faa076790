// Expert cache policies (moe/serving/expert_cache.h): Belady is optimal (brute force on small
// cases), LRU and random behave as defined, and a Table-4-style check on a sequence with temporal
// locality.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <random>
#include <set>

#include "common/error.h"
#include "moe/serving/expert_cache.h"

namespace lookahead::moe::serving {
namespace {

std::vector<SlabAccess> seq(const std::vector<int32_t>& experts, uint64_t bytes = 100) {
  std::vector<SlabAccess> out;
  for (int32_t e : experts) out.push_back({SlabKey{0, e}, bytes});
  return out;
}

// Fewest misses over every eviction choice (demand paging: a miss must insert the slab).
uint64_t brute_force_min_misses(const std::vector<SlabAccess>& a, size_t k) {
  std::function<uint64_t(size_t, std::set<SlabKey>)> go = [&](size_t i, std::set<SlabKey> cache) -> uint64_t {
    if (i == a.size()) return 0;
    if (cache.count(a[i].key)) return go(i + 1, cache);
    if (cache.size() < k) {
      cache.insert(a[i].key);
      return 1 + go(i + 1, cache);
    }
    uint64_t best = UINT64_MAX;
    for (const SlabKey& victim : std::vector<SlabKey>(cache.begin(), cache.end())) {
      std::set<SlabKey> next = cache;
      next.erase(victim);
      next.insert(a[i].key);
      best = std::min(best, 1 + go(i + 1, next));
    }
    return best;
  };
  return go(0, {});
}

TEST(ServingExpertCache, BeladyMatchesBruteForceOnSmallSequences) {
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 300; ++trial) {
    size_t len = 1 + rng() % 11;
    int32_t n_keys = 2 + static_cast<int32_t>(rng() % 4);
    size_t k = 1 + rng() % 3;
    std::vector<int32_t> e(len);
    for (auto& x : e) x = static_cast<int32_t>(rng() % n_keys);
    auto a = seq(e);
    CacheStats s = replay(CachePolicy::BELADY, {static_cast<int64_t>(k), 0}, a);
    ASSERT_EQ(s.misses, brute_force_min_misses(a, k)) << "trial " << trial;
    ASSERT_EQ(s.hits + s.misses, len);
    // Nothing beats it.
    for (CachePolicy p : {CachePolicy::LRU, CachePolicy::RANDOM, CachePolicy::NONE}) {
      ASSERT_GE(replay(p, {static_cast<int64_t>(k), 0}, a, trial).misses, s.misses);
    }
  }
}

TEST(ServingExpertCache, HandMadeReferenceStrings) {
  // A B C A, k = 2. LRU evicts A for C (4 misses); Belady evicts B (next use never): 3 misses.
  auto a = seq({0, 1, 2, 0});
  EXPECT_EQ(replay(CachePolicy::LRU, {2, 0}, a).misses, 4u);
  EXPECT_EQ(replay(CachePolicy::BELADY, {2, 0}, a).misses, 3u);
  // The classic string 7 0 1 2 0 3 0 4 2 3 0 3 2 with 3 frames: OPT 7 faults, LRU 9.
  auto c = seq({7, 0, 1, 2, 0, 3, 0, 4, 2, 3, 0, 3, 2});
  EXPECT_EQ(replay(CachePolicy::BELADY, {3, 0}, c).misses, 7u);
  EXPECT_EQ(replay(CachePolicy::LRU, {3, 0}, c).misses, 9u);
  // none keeps nothing; bytes loaded = misses * slab size.
  CacheStats n = replay(CachePolicy::NONE, {}, seq({1, 1, 1}, 64));
  EXPECT_EQ(n.misses, 3u);
  EXPECT_EQ(n.bytes_loaded, 192u);
}

TEST(ServingExpertCache, LruEvictsLeastRecentlyUsed) {
  ExpertCache cache(CachePolicy::LRU, {3, 0});
  uint64_t t = 0;
  for (int32_t e : {0, 1, 2, 0}) cache.access({SlabKey{0, e}, 1}, t++);
  cache.access({SlabKey{0, 3}, 1}, t++);  // 1 is least recent
  EXPECT_EQ(cache.residents(), (std::vector<SlabKey>{{0, 0}, {0, 2}, {0, 3}}));
  EXPECT_EQ(cache.stats().evictions, 1u);
}

TEST(ServingExpertCache, RandomIsSeededAndEvictsOnlyResidents) {
  std::mt19937_64 rng(3);
  std::vector<int32_t> e(500);
  for (auto& x : e) x = static_cast<int32_t>(rng() % 7);
  auto a = seq(e);
  CacheStats s1 = replay(CachePolicy::RANDOM, {3, 0}, a, 42);
  CacheStats s2 = replay(CachePolicy::RANDOM, {3, 0}, a, 42);
  EXPECT_EQ(s1.misses, s2.misses);
  EXPECT_EQ(s1.evictions, s1.misses - 3);  // full after the first 3 misses, then one eviction each
  // Uniform random eviction on a uniform random string: hit ratio near k / n = 3/7.
  EXPECT_NEAR(s1.hit_ratio(), 3.0 / 7.0, 0.08);
  ExpertCache cache(CachePolicy::RANDOM, {2, 0}, 1);
  for (uint64_t t = 0; t < 50; ++t) {
    cache.access({SlabKey{0, static_cast<int32_t>(t % 5)}, 1}, t);
    ASSERT_LE(cache.residents().size(), 2u);
    ASSERT_TRUE(cache.contains(SlabKey{0, static_cast<int32_t>(t % 5)}));
  }
}

TEST(ServingExpertCache, ByteBudget) {
  // Budget 250 bytes, slabs of 100: two fit. A slab larger than the budget is never kept.
  ExpertCache cache(CachePolicy::LRU, {0, 250});
  cache.access({SlabKey{0, 0}, 100}, 0);
  cache.access({SlabKey{0, 1}, 100}, 1);
  cache.access({SlabKey{1, 0}, 100}, 2);
  EXPECT_EQ(cache.resident_bytes(), 200u);
  EXPECT_FALSE(cache.contains(SlabKey{0, 0}));
  cache.access({SlabKey{2, 0}, 300}, 3);
  EXPECT_FALSE(cache.contains(SlabKey{2, 0}));
  EXPECT_EQ(cache.resident_bytes(), 200u);
  EXPECT_EQ(cache.stats().bytes_loaded, 600u);
}

TEST(ServingExpertCache, BadInput) {
  EXPECT_THROW(ExpertCache(CachePolicy::LRU, {0, 0}), Error);
  EXPECT_THROW(parse_cache_policy("fifo"), Error);
  EXPECT_EQ(parse_cache_policy("belady"), CachePolicy::BELADY);
  EXPECT_EQ(parse_cache_policy("belady-online"), CachePolicy::BELADY);  // the honest name; "belady" still works
  EXPECT_STREQ(cache_policy_name(CachePolicy::RANDOM), "random");
}

// Table 4 style: tokens whose expert repeats the previous token's with probability 0.71 (the
// paper's measured temporal locality), batches of 8 tokens, each batch touching its unique experts
// in each of 4 layers; cache k of 7 experts per layer (4k slabs). Belady >= LRU and >= random.
TEST(ServingExpertCache, TableFourStyleBeladyBeatsLruAndRandom) {
  const int32_t n_expert = 7, n_layer = 4, batch = 8, n_batches = 400;
  std::mt19937_64 rng(11);
  std::vector<int32_t> streams(batch);
  for (auto& s : streams) s = static_cast<int32_t>(rng() % n_expert);
  std::vector<SlabAccess> accesses;
  for (int b = 0; b < n_batches; ++b) {
    std::set<int32_t> used;
    for (auto& s : streams) {
      if (std::uniform_real_distribution<double>(0, 1)(rng) > 0.71) s = static_cast<int32_t>(rng() % n_expert);
      used.insert(s);
    }
    for (int32_t l = 0; l < n_layer; ++l) {
      for (int32_t e : used) accesses.push_back({SlabKey{l, e}, 1000});
    }
  }
  for (int64_t k = 2; k <= 5; ++k) {
    CacheCapacity cap{k * n_layer, 0};
    double belady = replay(CachePolicy::BELADY, cap, accesses).hit_ratio();
    double lru = replay(CachePolicy::LRU, cap, accesses).hit_ratio();
    double random = replay(CachePolicy::RANDOM, cap, accesses, 5).hit_ratio();
    std::printf("k=%lld: random %.1f%%  lru %.1f%%  belady %.1f%%\n", static_cast<long long>(k), 100 * random,
                100 * lru, 100 * belady);
    EXPECT_GE(belady, lru) << "k=" << k;
    EXPECT_GE(belady, random) << "k=" << k;
    EXPECT_GT(belady, 0.0);
  }
}

}  // namespace
}  // namespace lookahead::moe::serving
