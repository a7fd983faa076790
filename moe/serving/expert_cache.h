#pragma once
// Expert cache policies of the Read-ME serving system (paper section 4: "Belady caching").
// Pure bookkeeping: which (layer, expert) weight slabs sit in the fast tier (RAM budget; the
// paper's GPU memory) and what a miss costs in slow-tier bytes. The store that actually loads slabs
// (O_DIRECT reads, prefetch) is tiered_experts.h; it drives this class's policy.
//
// Model (demand paging): every access uses the slab now, so a miss loads it and inserts it; when the
// cache is full, residents are evicted until it fits. A slab larger than the whole byte budget is
// loaded for the access and never kept. Policies pick the victim:
//   - belady: the resident whose next use is furthest in the future (never used again = infinity;
//     ties: the lowest (layer, expert)). Needs the future access sequence, which Read-ME has exactly
//     because the router runs before the backbone. With a slab-count capacity this is Belady's MIN,
//     the optimal miss count (tested against brute force); with a byte budget and unequal slab
//     sizes it is the usual heuristic, not guaranteed optimal.
//   - lru: the least recently used resident.
//   - random: a resident chosen uniformly by a seeded generator (deterministic for a seed).
//   - none: nothing is kept; every access is a miss.
//
// Contract: ExpertCache::access() is the online interface (belady needs the position of the
// accessed slab's next use, kNever if none); replay() runs a whole sequence, computing next uses
// itself. A store that loads slabs itself and has slabs it must not evict yet (in flight, pinned;
// the two-tier store in tiered_experts.h) drives the same policy through the lower-level members
// fits() / victim() / insert() / touch() / set_next_use() / erase(); access() is built on them, so
// both share one victim choice. Capacity: max_slabs (k) and/or max_bytes, 0 = unlimited for that dimension; at least one
// must be set unless the policy is none (else lookahead::Error). Deterministic for a given seed.
#include <compare>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace lookahead::moe::serving {

struct SlabKey {
  int32_t layer = 0;
  int32_t expert = 0;
  auto operator<=>(const SlabKey&) const = default;
};

struct SlabKeyHash {
  size_t operator()(const SlabKey& k) const {
    return std::hash<uint64_t>()((static_cast<uint64_t>(static_cast<uint32_t>(k.layer)) << 32) |
                                 static_cast<uint32_t>(k.expert));
  }
};

struct SlabAccess {
  SlabKey key;
  uint64_t bytes = 0;  // the slab's size: bytes read from the slow tier on a miss
};

enum class CachePolicy { BELADY, LRU, RANDOM, NONE };
// "belady-online" (or its older name "belady"), "lru", "random", "none"; anything else throws
// lookahead::Error naming `what`. The name says what the serving store has: Belady's victim rule
// over the next uses it knows (the current batch plus a predicted horizon). CachePolicy::BELADY
// itself is only the victim rule (replay() over a whole sequence is the offline optimum), so
// cache_policy_name(BELADY) is "belady".
CachePolicy parse_cache_policy(std::string_view name, std::string_view what = "cache policy");
const char* cache_policy_name(CachePolicy policy);

struct CacheCapacity {
  int64_t max_slabs = 0;   // k slabs; 0 = no slab limit
  uint64_t max_bytes = 0;  // byte budget; 0 = no byte limit
};

struct CacheStats {
  uint64_t accesses = 0;
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t evictions = 0;
  uint64_t bytes_loaded = 0;  // slow-tier bytes read (sum of missed slabs' sizes)
  double hit_ratio() const { return accesses ? static_cast<double>(hits) / accesses : 0.0; }
};

class ExpertCache {
 public:
  static constexpr uint64_t kNever = std::numeric_limits<uint64_t>::max();

  ExpertCache(CachePolicy policy, CacheCapacity capacity, uint64_t seed = 0);

  // Uses `access.key` at time `now` (strictly increasing across calls); `next_use` is the time of
  // the same slab's next access (kNever if none), read only by belady. Returns true on a hit.
  bool access(const SlabAccess& access, uint64_t now, uint64_t next_use = kNever);

  bool contains(const SlabKey& key) const { return resident_.count(key) != 0; }

  // Lower-level interface (no stats but evictions). fits(): a slab of `bytes` can be inserted
  // without evicting. never_fits(): it is larger than the byte budget (or the policy is none).
  bool fits(uint64_t bytes) const;
  bool never_fits(uint64_t bytes) const;
  // The policy's victim among the residents `evictable` accepts (given key and next use), or none.
  std::optional<SlabKey> victim(const std::function<bool(const SlabKey&, uint64_t next_use)>& evictable);
  // insert(): `key` must not be resident; it does not evict (check fits() first).
  void insert(const SlabKey& key, uint64_t bytes, uint64_t now, uint64_t next_use);
  void touch(const SlabKey& key, uint64_t now, uint64_t next_use);  // a use of a resident
  void set_next_use(const SlabKey& key, uint64_t next_use);
  uint64_t next_use(const SlabKey& key) const { return resident_.at(key).next_use; }
  void erase(const SlabKey& key);  // an eviction (counted)
  // Residents in (layer, expert) order.
  std::vector<SlabKey> residents() const;
  uint64_t resident_bytes() const { return resident_bytes_; }
  const CacheStats& stats() const { return stats_; }

 private:
  struct Entry {
    uint64_t bytes = 0;
    uint64_t last_use = 0;
    uint64_t next_use = kNever;
  };
  void evict_one();

  CachePolicy policy_;
  CacheCapacity capacity_;
  std::mt19937_64 rng_;
  std::unordered_map<SlabKey, Entry, SlabKeyHash> resident_;
  uint64_t resident_bytes_ = 0;
  CacheStats stats_;
};

// Replays `accesses` in order through a fresh cache; times are the sequence positions.
CacheStats replay(CachePolicy policy, CacheCapacity capacity, const std::vector<SlabAccess>& accesses,
                  uint64_t seed = 0);

// next_use[i] = the position of the next access to accesses[i].key after i, or ExpertCache::kNever.
std::vector<uint64_t> next_uses(const std::vector<SlabAccess>& accesses);

}  // namespace lookahead::moe::serving
