#pragma once
// The router's hyper-parameters as the trainer sees them, and their JSON form (`router_config` in
// router_targets.safetensors and router.safetensors metadata; keys from docs/readme-model.md and
// the released export).
//
// Contract: from_json() reads the keys present and keeps the defaults for the others; validate()
// throws lookahead::Error naming `where` and the field when a value is impossible (heads not
// dividing the width, odd head size, normalizer <= 0, ...). to_json() writes every key.
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace lookahead::train {

struct RouterConfig {
  int64_t n_vocab = 0;
  int64_t n_expert = 0;                   // N_cluster
  int64_t n_head = 4;                     // paper Table 1
  int64_t embedding_dim = 512;            // d_r
  int64_t inter_dim = 512;                // MLP inner size
  double normalizer = 1.0;                // scores q.k / normalizer (released code: 1)
  std::string hidden_act = "silu";        // hidden_act_predictor: "silu" (released) | "swiglu" (paper)
  int64_t max_positions = 2048;           // max_position_embeddings_predictor
  double rope_theta = 10000.0;
  double rms_eps = 1e-6;

  int64_t head_dim() const { return embedding_dim / n_head; }
  // Rows of proj_1: inter_dim for silu, 2 * inter_dim (gate rows, then up rows) for swiglu.
  int64_t proj_1_rows() const { return hidden_act == "swiglu" ? 2 * inter_dim : inter_dim; }

  void validate(const std::string& where) const;
  nlohmann::json to_json() const;
  // Overrides the fields whose keys `j` carries.
  void update_from_json(const nlohmann::json& j, const std::string& where);
};

// --normalizer: "released" (1), "paper" (sqrt(d_r / n_head)) or a positive number.
double parse_normalizer(const std::string& text, int64_t embedding_dim, int64_t n_head);

}  // namespace lookahead::train
