// The torch-free part of train/router.h: option parsing.
#include "train/router.h"

#include <cmath>
#include <cstdlib>

#include "common/error.h"

namespace lookahead::train {

double parse_normalizer(const std::string& text, int64_t embedding_dim, int64_t n_head) {
  if (text == "released") return 1.0;
  if (text == "paper") return std::sqrt(static_cast<double>(embedding_dim) / static_cast<double>(n_head));
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !(v > 0) || !std::isfinite(v))
    fail("--normalizer: expected 'released', 'paper' or a number > 0 (got '{}')", text);
  return v;
}

}  // namespace lookahead::train
