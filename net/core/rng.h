#pragma once
// The simulator's small deterministic random numbers. Runs must repeat exactly for a seed, on every
// platform, so they use these instead of <random>'s implementation-defined distributions.
#include <cstdint>

namespace lookahead::net {

inline uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// xorshift64*: a few instructions per draw, one generator per flow (so flows do not perturb each
// other's draws).
struct Rng {
  uint64_t state;
  explicit Rng(uint64_t seed = 1) : state(splitmix64(seed) | 1) {}
  uint64_t next() {
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return state * 0x2545f4914f6cdd1dull;
  }
  double uniform() { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0); }
};

}  // namespace lookahead::net
