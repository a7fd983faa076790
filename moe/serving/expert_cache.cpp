#include "moe/serving/expert_cache.h"

#include <algorithm>

#include "common/error.h"

namespace lookahead::moe::serving {

CachePolicy parse_cache_policy(std::string_view name, std::string_view what) {
  if (name == "belady") return CachePolicy::BELADY;
  if (name == "lru") return CachePolicy::LRU;
  if (name == "random") return CachePolicy::RANDOM;
  if (name == "none") return CachePolicy::NONE;
  fail("{}: unknown '{}' (expected belady, lru, random or none)", what, name);
}

const char* cache_policy_name(CachePolicy policy) {
  switch (policy) {
    case CachePolicy::BELADY: return "belady";
    case CachePolicy::LRU: return "lru";
    case CachePolicy::RANDOM: return "random";
    case CachePolicy::NONE: return "none";
  }
  return "?";
}

ExpertCache::ExpertCache(CachePolicy policy, CacheCapacity capacity, uint64_t seed)
    : policy_(policy), capacity_(capacity), rng_(seed) {
  if (capacity.max_slabs < 0) fail("expert cache: max_slabs must be >= 0, got {}", capacity.max_slabs);
  if (policy != CachePolicy::NONE && capacity.max_slabs == 0 && capacity.max_bytes == 0) {
    fail("expert cache: policy {} needs a capacity (max_slabs or max_bytes > 0)", cache_policy_name(policy));
  }
}

bool ExpertCache::fits(uint64_t extra_bytes) const {
  if (capacity_.max_slabs > 0 && static_cast<int64_t>(resident_.size()) + 1 > capacity_.max_slabs) return false;
  if (capacity_.max_bytes > 0 && resident_bytes_ + extra_bytes > capacity_.max_bytes) return false;
  return true;
}

void ExpertCache::evict_one() {
  LOOKAHEAD_CHECK(!resident_.empty());
  // Iterate in key order so ties (and the random pick) do not depend on hash-table layout.
  std::vector<SlabKey> keys = residents();
  SlabKey victim = keys.front();
  switch (policy_) {
    case CachePolicy::BELADY: {
      uint64_t furthest = resident_.at(victim).next_use;
      for (const SlabKey& k : keys) {
        uint64_t next = resident_.at(k).next_use;
        if (next > furthest) { furthest = next; victim = k; }  // strict: ties keep the lowest key
      }
      break;
    }
    case CachePolicy::LRU: {
      uint64_t oldest = kNever;
      for (const SlabKey& k : keys) {
        uint64_t last = resident_.at(k).last_use;
        if (last < oldest) { oldest = last; victim = k; }
      }
      break;
    }
    case CachePolicy::RANDOM:
      victim = keys[rng_() % keys.size()];
      break;
    case CachePolicy::NONE:
      break;
  }
  resident_bytes_ -= resident_.at(victim).bytes;
  resident_.erase(victim);
  ++stats_.evictions;
}

bool ExpertCache::access(const SlabAccess& access, uint64_t now, uint64_t next_use) {
  ++stats_.accesses;
  auto it = resident_.find(access.key);
  if (it != resident_.end()) {
    ++stats_.hits;
    it->second.last_use = now;
    it->second.next_use = next_use;
    return true;
  }
  ++stats_.misses;
  stats_.bytes_loaded += access.bytes;
  if (policy_ == CachePolicy::NONE) return false;
  if (capacity_.max_bytes > 0 && access.bytes > capacity_.max_bytes) return false;  // never fits
  while (!fits(access.bytes)) evict_one();
  resident_[access.key] = Entry{access.bytes, now, next_use};
  resident_bytes_ += access.bytes;
  return false;
}

std::vector<SlabKey> ExpertCache::residents() const {
  std::vector<SlabKey> keys;
  keys.reserve(resident_.size());
  for (const auto& [k, e] : resident_) keys.push_back(k);
  std::sort(keys.begin(), keys.end());
  return keys;
}

std::vector<uint64_t> next_uses(const std::vector<SlabAccess>& accesses) {
  std::vector<uint64_t> next(accesses.size(), ExpertCache::kNever);
  std::unordered_map<SlabKey, uint64_t, SlabKeyHash> seen;
  for (size_t i = accesses.size(); i-- > 0;) {
    auto it = seen.find(accesses[i].key);
    if (it != seen.end()) next[i] = it->second;
    seen[accesses[i].key] = i;
  }
  return next;
}

CacheStats replay(CachePolicy policy, CacheCapacity capacity, const std::vector<SlabAccess>& accesses,
                  uint64_t seed) {
  ExpertCache cache(policy, capacity, seed);
  std::vector<uint64_t> next = next_uses(accesses);
  for (size_t i = 0; i < accesses.size(); ++i) cache.access(accesses[i], i, next[i]);
  return cache.stats();
}

}  // namespace lookahead::moe::serving
