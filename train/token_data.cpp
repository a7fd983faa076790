#include "train/token_data.h"

#include <cstring>

#include "common/error.h"
#include "moe/format/safetensors.h"

namespace lookahead::train {

namespace {

std::vector<int32_t> i32_vector(const moe::SafetensorsFile& f, const std::string& name, bool required) {
  const moe::TensorView* t = f.find_tensor(name);
  if (!t) {
    if (required) fail("{}: missing tensor '{}' (I32 token ids)", f.path(), name);
    return {};
  }
  if (t->type != moe::TensorType::I32 || t->shape.size() != 1)
    fail("{}: tensor '{}' must be a one-dimensional I32 tensor (got {} with {} dimensions)", f.path(), name,
         moe::tensor_type_name(t->type), t->shape.size());
  std::vector<int32_t> v(static_cast<size_t>(t->elements()));
  if (!v.empty()) std::memcpy(v.data(), t->data, v.size() * sizeof(int32_t));
  return v;
}

}  // namespace

TokenData load_token_data(const std::string& path, int64_t n_vocab) {
  moe::SafetensorsFile f(path);
  TokenData d;
  d.path = path;
  d.tokens = i32_vector(f, "tokens", true);
  if (d.tokens.size() < 2) fail("{}: tensor 'tokens' needs at least 2 tokens (got {})", path, d.tokens.size());
  d.seq_start = i32_vector(f, "seq_start", false);
  const auto n = static_cast<int64_t>(d.tokens.size());
  if (d.seq_start.empty()) d.seq_start = {0, static_cast<int32_t>(n)};
  if (d.seq_start.size() < 2 || d.seq_start.front() != 0 || d.seq_start.back() != n)
    fail("{}: tensor 'seq_start' must run from 0 to {} (the token count)", path, n);
  for (size_t s = 1; s < d.seq_start.size(); ++s)
    if (d.seq_start[s] < d.seq_start[s - 1]) fail("{}: tensor 'seq_start' decreases at entry {}", path, s);
  for (int64_t t = 0; t < n; ++t)
    if (d.tokens[t] < 0 || d.tokens[t] >= n_vocab)
      fail("{}: tokens[{}] = {} is outside the model's vocabulary [0, {})", path, t, d.tokens[t], n_vocab);
  return d;
}

}  // namespace lookahead::train
