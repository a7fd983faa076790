#pragma once
// Flags that bound what a command may take from the machine, the same in every
// command that has them: --threads/-t (kernel threads) and --memory-limit (common/memory_limit.h).
#include <sched.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <string>

#include "common/error.h"
#include "common/memory_limit.h"
#include "moe/kernels/matmul.h"

namespace lookahead::cli {

inline void add_memory_limit_flag(CLI::App& cmd, std::string& value) {
  cmd.add_option("--memory-limit", value,
                 "refuse work estimated to need more memory than this: auto (the memory available now), none, "
                 "or a size like 8GiB")
      ->capture_default_str();
}

inline void apply_memory_limit(const std::string& value) {
  set_memory_limit(parse_memory_limit(value, "--memory-limit"));
}

// CPUs this process may run on.
inline int usable_cores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return 1;
}

// -t/--threads: 0 = all cores; at most 4 threads per usable core (more only wait for a core, and
// each costs a stack).
inline void apply_threads(int threads) {
  const int cores = usable_cores();
  if (threads < 0) fail("--threads must be >= 0 (0 = all {} cores), got {}", cores, threads);
  if (threads > 4 * cores)
    fail("--threads {} is more than 4 per core ({} for the {} cores this process may use)", threads, 4 * cores, cores);
  if (threads > 0) moe::set_kernel_threads(threads);
}

}  // namespace lookahead::cli
