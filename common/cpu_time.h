#pragma once
// CPU time consumed by the calling thread, in seconds (CLOCK_THREAD_CPUTIME_ID): the cost of work
// without the time other processes held the core.
#include <time.h>

namespace lookahead {

inline double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

}  // namespace lookahead
