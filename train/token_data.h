#pragma once
// Token sequences for causal-LM training (`lookahead-train experts --data`): a safetensors file with
// `tokens` I32 [T] and optionally `seq_start` I32 [S+1] (sequence s is tokens [seq_start[s],
// seq_start[s+1])); without seq_start the tokens are one sequence. router_targets.safetensors has
// both, so the router's training data serves here too.
//
// Contract: load_token_data() throws lookahead::Error naming the file and tensor for a missing or
// mistyped tensor, a seq_start that does not run from 0 to T non-decreasing, or a token id outside
// [0, n_vocab).
#include <cstdint>
#include <string>
#include <vector>

namespace lookahead::train {

struct TokenData {
  std::string path;
  std::vector<int32_t> tokens;
  std::vector<int32_t> seq_start;
  int64_t n_sequences() const { return static_cast<int64_t>(seq_start.size()) - 1; }
};

TokenData load_token_data(const std::string& path, int64_t n_vocab);

}  // namespace lookahead::train
