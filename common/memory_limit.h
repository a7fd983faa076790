#pragma once
// Refusing work that cannot fit in memory before allocating it.
//
// Contract:
//   - memory_limit() is the number of bytes a command may plan to use: the value given to
//     set_memory_limit() (the --memory-limit flag), else the memory available when first asked
//     (MemAvailable of /proc/meminfo, capped by the cgroup v2 memory.max minus memory.current);
//     0 means no limit (--memory-limit none, or nothing could be read).
//   - require_memory(estimate, what) throws lookahead::Error when the estimate exceeds the limit:
//     "<what> needs about 26.1 GiB of memory, more than the limit of 7.5 GiB (the memory available
//     now); --memory-limit SIZE|none overrides". Estimates are doubles: products of counts may
//     exceed 64 bits (4-billion-flow all-to-alls).
//   - parse_memory_limit accepts "auto" (available memory), "none", or bytes with an optional unit
//     (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB); anything else throws naming the flag.
#include <cstdint>
#include <string>

namespace lookahead {

uint64_t available_memory_bytes();  // 0 when unknown

struct MemoryLimit {
  bool automatic = true;  // "auto": available memory
  uint64_t bytes = 0;     // when not automatic; 0 = none
};
MemoryLimit parse_memory_limit(const std::string& text, const std::string& flag);
void set_memory_limit(const MemoryLimit& limit);
uint64_t memory_limit();

void require_memory(double estimate_bytes, const std::string& what);

std::string format_bytes(double bytes);  // "26.1 GiB", "512.0 MiB", "900 B"

}  // namespace lookahead
