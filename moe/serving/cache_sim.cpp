#include "moe/serving/cache_sim.h"

#include <algorithm>
#include <unordered_map>
#include <vector>

#include "common/error.h"

namespace lookahead::moe::serving {

StreamPolicy parse_stream_policy(std::string_view name, std::string_view what) {
  if (name == "optimum") return StreamPolicy::OPTIMUM;
  if (name == "belady-online") return StreamPolicy::BELADY_ONLINE;
  if (name == "lru") return StreamPolicy::LRU;
  if (name == "random") return StreamPolicy::RANDOM;
  if (name == "belady")
    fail("{}: 'belady' is ambiguous here: give optimum (Belady over the whole recorded stream) or belady-online "
         "(Belady on the known batch plus the recorded predicted horizon)", what);
  fail("{}: unknown '{}' (expected optimum, belady-online, lru or random)", what, name);
}

const char* stream_policy_name(StreamPolicy policy) {
  switch (policy) {
    case StreamPolicy::OPTIMUM: return "optimum";
    case StreamPolicy::BELADY_ONLINE: return "belady-online";
    case StreamPolicy::LRU: return "lru";
    case StreamPolicy::RANDOM: return "random";
  }
  return "?";
}

namespace {

// TieredExperts' demand path with prefetch off, step by step: each step's plan replaces the last;
// next uses are plan positions after the cursor (the accessed key's first occurrence at or after
// it), kNever when the key is not in the rest of the plan.
CacheStats online_belady(const AccessStream& stream, CacheCapacity capacity) {
  ExpertCache cache(CachePolicy::BELADY, capacity);
  std::unordered_map<SlabKey, std::vector<uint64_t>, SlabKeyHash> positions;
  uint64_t now = 0;
  for (const StreamStep& step : stream.steps) {
    positions.clear();
    for (uint64_t i = 0; i < step.plan.size(); ++i) positions[step.plan[i]].push_back(i);
    auto plan_next = [&](const SlabKey& key, uint64_t from) {
      auto it = positions.find(key);
      if (it == positions.end()) return ExpertCache::kNever;
      auto pos = std::lower_bound(it->second.begin(), it->second.end(), from);
      return pos == it->second.end() ? ExpertCache::kNever : *pos;
    };
    uint64_t cursor = 0;
    for (const SlabKey& key : step.accesses) {
      ++now;
      uint64_t next_use = ExpertCache::kNever;
      if (const uint64_t pos = plan_next(key, cursor); pos != ExpertCache::kNever) {
        cursor = pos + 1;
        next_use = plan_next(key, cursor);
      }
      for (const SlabKey& r : cache.residents()) cache.set_next_use(r, plan_next(r, cursor));
      cache.access({key, stream.bytes(key)}, now, next_use);
    }
  }
  return cache.stats();
}

}  // namespace

CacheStats simulate_on_stream(const AccessStream& stream, StreamPolicy policy, CacheCapacity capacity, uint64_t seed) {
  switch (policy) {
    case StreamPolicy::OPTIMUM: return replay(CachePolicy::BELADY, capacity, stream.flat(), seed);
    case StreamPolicy::BELADY_ONLINE: return online_belady(stream, capacity);
    case StreamPolicy::LRU: return replay(CachePolicy::LRU, capacity, stream.flat(), seed);
    case StreamPolicy::RANDOM: return replay(CachePolicy::RANDOM, capacity, stream.flat(), seed);
  }
  return {};
}

}  // namespace lookahead::moe::serving
