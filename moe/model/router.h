#pragma once
// The Read-ME pre-gating router (paper section 3.2; contract in docs/readme-model.md): one causal
// transformer layer over token ids only, N outputs, top-1 hard routing used by every backbone
// layer. Because it never reads backbone hidden states it runs before the backbone, and because it
// is causal a KV cache makes routing one token cost O(position).
//
//   h = embed[x]
//   h += o_proj(attention(rope(q_proj u), rope(k_proj u), v_proj u) / normalizer),  u = rmsnorm(h)
//   h += mlp(rmsnorm(h))          silu: proj_2(silu(proj_1 x));  swiglu: proj_2(silu(g) * u)
//   logits = proj_out(rmsnorm(h))
//
// Contract:
//   - RouterWeights borrows tensor views (F32/F16/BF16) from a file that must outlive it; shapes are
//     validated against RouterConfig and errors name the tensor.
//   - RouterContext owns the KV cache (max_positions) and scratch; route() appends tokens and
//     returns their experts; logits() of the last call stay valid until the next one. A sequence
//     longer than max_positions throws lookahead::Error.
//   - Deterministic: ties in argmax go to the lowest expert index.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "moe/format/gguf.h"
#include "moe/kernels/matmul.h"

namespace lookahead::moe {

struct RouterConfig {
  int32_t n_expert = 0;          // N_cluster
  int32_t n_vocab = 0;
  int32_t n_layer = 1;           // n_layer (only 1 is supported, as in the paper)
  int32_t n_head = 4;            // n_head
  int32_t d_model = 512;         // embedding_dim (d_r)
  int32_t d_inter = 1024;        // inter_dim
  float normalizer = 1.0f;       // scores q.k / normalizer (released code: 1)
  bool swiglu = false;           // hidden_act_predictor: "silu" (false) or "swiglu" (true)
  int32_t max_positions = 4096;  // max_position_embeddings_predictor
  float rope_theta = 10000.0f;
  float rms_eps = 1e-6f;
  int32_t head_dim() const { return d_model / n_head; }
  // Rows of proj_1: d_inter for silu, 2 * d_inter (gate rows, then up rows) for swiglu.
  int32_t proj_1_rows() const { return swiglu ? 2 * d_inter : d_inter; }
  const char* hidden_act() const { return swiglu ? "swiglu" : "silu"; }
  // Throws lookahead::Error naming `where` and the field when a value is impossible.
  void validate(const std::string& where) const;

  // The `router_config` JSON that `moe refactor` writes into router_targets.safetensors and
  // lookahead-train into router.safetensors (keys from docs/readme-model.md and the released
  // export). to_json() writes every key (n_vocab as vocab_size); update_from_json() overrides the
  // fields whose keys `j` carries and throws naming `where` and the key on a wrong type or an
  // unknown activation. (A Read-ME directory's config.json has its own keys: ReadMeConfig.)
  nlohmann::json to_json() const;
  void update_from_json(const nlohmann::json& j, const std::string& where);
};

// Named tensor lookup (a safetensors file or checkpoint); returns nullptr when absent.
using TensorLookup = std::function<const TensorView*(const std::string& name)>;

struct RouterWeights {
  WeightMatrix embed;                          // [V][d_r]
  std::vector<float> input_norm, post_attention_norm, out_norm;  // [d_r]
  WeightMatrix wq, wk, wv, wo;                 // [d_r][d_r]
  std::vector<float> bq, bk, bv, bo;           // [d_r]
  WeightMatrix proj_1, proj_2, proj_out;       // [inter or 2 inter][d_r], [d_r][inter], [N][d_r]
  std::vector<float> b1, b2, b_out;

  // Loads `prefix` + the export names (e.g. prefix "cluster_predictor.").
  static RouterWeights load(const RouterConfig& config, const TensorLookup& lookup, const std::string& where,
                            const std::string& prefix = "cluster_predictor.");
  uint64_t bytes() const;  // weights read per routed token (one embedding row + all matrices)
};

class RouterContext {
 public:
  // `positions` (0 = the config's max_positions, at most that) sizes the KV cache: a serving
  // engine gives each request prompt + max_tokens, not the router's whole window.
  RouterContext(const RouterConfig& config, const RouterWeights& weights, int64_t positions = 0);

  // Routes tokens at positions n_past().. and appends them to the cache; returns experts[n].
  const std::vector<int32_t>& route(const int32_t* tokens, int64_t n);
  // Logits [n][N] of the last route() call.
  const std::vector<float>& logits() const { return logits_; }
  int64_t n_past() const { return n_past_; }
  // Forget positions from `pos` on (0 = new sequence); the cache before it stays valid.
  void truncate(int64_t pos) { n_past_ = pos < 0 ? 0 : (pos < n_past_ ? pos : n_past_); }
  const RouterConfig& config() const { return config_; }

 private:
  const RouterConfig config_;
  const RouterWeights& w_;
  int64_t n_past_ = 0;
  int64_t positions_ = 0;                 // KV cache capacity
  std::vector<float> k_cache_, v_cache_;  // [positions_][d_r]
  std::vector<float> h_, u_, q_, k_, v_, att_, mid_, mid2_, scores_, cos_sin_, logits_;
  std::vector<int32_t> experts_;
  MatmulWorkspace ws_;
};

// argmax with ties to the lowest index.
int32_t argmax(const float* x, int64_t n);

}  // namespace lookahead::moe
