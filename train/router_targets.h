#pragma once
// router_targets.safetensors, the router's training data (docs/readme-model.md): token sequences,
// per-token domain labels, per-(token, layer, expert) targets d and the router's initial embedding.
//
// Contract: load_router_targets() validates everything the trainer relies on and throws
// lookahead::Error naming the file and tensor: each tensor present with its dtype and shape
// (tokens I32 [T], seq_start I32 [S+1] from 0 to T non-decreasing, domain I32 [T] in [0, N),
// targets F32 [T, L, N], router_init.embed F32 [V, d_r]), token ids in [0, V). The targets stay
// memory-mapped (the file object lives as long as the RouterTargets).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace lookahead::moe {
class SafetensorsFile;
}

namespace lookahead::train {

struct RouterTargets {
  std::string path;
  int64_t n_tokens = 0, n_layer = 0, n_expert = 0, n_vocab = 0, embed_dim = 0;
  std::vector<int32_t> tokens;     // [T]
  std::vector<int32_t> seq_start;  // [S + 1]
  std::vector<int32_t> domain;     // [T]
  const float* targets = nullptr;  // [T][L][N], mapped
  const float* embed = nullptr;    // [V][d_r], mapped
  std::vector<std::string> experts;        // names from metadata (may be empty)
  nlohmann::json router_config = nlohmann::json::object();  // metadata `router_config` ({} if absent)
  std::shared_ptr<moe::SafetensorsFile> file;

  int64_t n_sequences() const { return static_cast<int64_t>(seq_start.size()) - 1; }
};

RouterTargets load_router_targets(const std::string& path);

}  // namespace lookahead::train
