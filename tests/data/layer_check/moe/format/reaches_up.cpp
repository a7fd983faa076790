// A file of the format layer that reaches up into the model layer: the layer check must refuse it.
#include "moe/kernels/dot.h"
#include "moe/model/llama.h"
