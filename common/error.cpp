#include "common/error.h"

#include <cstdio>
#include <cstdlib>

namespace lookahead {

void check_failed(const char* condition, const char* file, int line) {
  std::fprintf(stderr, "lookahead: internal error: check '%s' failed at %s:%d\n", condition, file, line);
  std::abort();
}

}  // namespace lookahead
