#include "moe/serving/expert_cache.h"

#include <algorithm>

#include "common/error.h"

namespace lookahead::moe::serving {

CachePolicy parse_cache_policy(std::string_view name, std::string_view what) {
  // The serving store's Belady sees the known batch plus a predicted horizon (it is online);
  // "belady" is kept as the name earlier releases used.
  if (name == "belady-online" || name == "belady") return CachePolicy::BELADY;
  if (name == "lru") return CachePolicy::LRU;
  if (name == "random") return CachePolicy::RANDOM;
  if (name == "none") return CachePolicy::NONE;
  fail("{}: unknown '{}' (expected belady-online, lru, random or none)", what, name);
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

bool ExpertCache::fits(uint64_t bytes) const {
  if (capacity_.max_slabs > 0 && static_cast<int64_t>(resident_.size()) + 1 > capacity_.max_slabs) return false;
  if (capacity_.max_bytes > 0 && resident_bytes_ + bytes > capacity_.max_bytes) return false;
  return true;
}

bool ExpertCache::never_fits(uint64_t bytes) const {
  return policy_ == CachePolicy::NONE || (capacity_.max_bytes > 0 && bytes > capacity_.max_bytes);
}

std::optional<SlabKey> ExpertCache::victim(const std::function<bool(const SlabKey&, uint64_t)>& evictable) {
  // Iterate in key order so ties (and the random pick) do not depend on hash-table layout.
  std::vector<SlabKey> keys;
  keys.reserve(resident_.size());
  for (const SlabKey& k : residents())
    if (evictable(k, resident_.at(k).next_use)) keys.push_back(k);
  if (keys.empty()) return std::nullopt;
  SlabKey chosen = keys.front();
  switch (policy_) {
    case CachePolicy::BELADY: {
      uint64_t furthest = resident_.at(chosen).next_use;
      for (const SlabKey& k : keys) {
        uint64_t next = resident_.at(k).next_use;
        if (next > furthest) { furthest = next; chosen = k; }  // strict: ties keep the lowest key
      }
      break;
    }
    case CachePolicy::LRU: {
      uint64_t oldest = kNever;
      for (const SlabKey& k : keys) {
        uint64_t last = resident_.at(k).last_use;
        if (last < oldest) { oldest = last; chosen = k; }
      }
      break;
    }
    case CachePolicy::RANDOM:
      chosen = keys[rng_() % keys.size()];
      break;
    case CachePolicy::NONE:
      break;
  }
  return chosen;
}

void ExpertCache::insert(const SlabKey& key, uint64_t bytes, uint64_t now, uint64_t next_use) {
  LOOKAHEAD_CHECK(!resident_.count(key));
  resident_[key] = Entry{bytes, now, next_use};
  resident_bytes_ += bytes;
}

void ExpertCache::touch(const SlabKey& key, uint64_t now, uint64_t next_use) {
  Entry& e = resident_.at(key);
  e.last_use = now;
  e.next_use = next_use;
}

void ExpertCache::set_next_use(const SlabKey& key, uint64_t next_use) { resident_.at(key).next_use = next_use; }

void ExpertCache::erase(const SlabKey& key) {
  auto it = resident_.find(key);
  LOOKAHEAD_CHECK(it != resident_.end());
  resident_bytes_ -= it->second.bytes;
  resident_.erase(it);
  ++stats_.evictions;
}

void ExpertCache::evict_one() {
  LOOKAHEAD_CHECK(!resident_.empty());
  const std::optional<SlabKey> v = victim([](const SlabKey&, uint64_t) { return true; });
  erase(*v);
}

bool ExpertCache::access(const SlabAccess& access, uint64_t now, uint64_t next_use) {
  ++stats_.accesses;
  if (contains(access.key)) {
    ++stats_.hits;
    touch(access.key, now, next_use);
    return true;
  }
  ++stats_.misses;
  stats_.bytes_loaded += access.bytes;
  if (never_fits(access.bytes)) return false;
  while (!fits(access.bytes)) evict_one();
  insert(access.key, access.bytes, now, next_use);
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
