// A file of the kernels layer that includes only itself, the standard library and common/.
#include <vector>

#include "common/error.h"
#include "moe/kernels/dot.h"
