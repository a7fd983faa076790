#include "moe/model/router.h"

#include <algorithm>
#include <climits>
#include <cmath>

#include "common/error.h"
#include "moe/kernels/ops.h"
#include "moe/kernels/quantize.h"
#include "moe/model/attention.h"

namespace lookahead::moe {

void RouterConfig::validate(const std::string& where) const {
  if (n_expert < 1) fail("{}: N_cluster must be >= 1 (got {})", where, n_expert);
  if (n_vocab < 1) fail("{}: router vocabulary size must be >= 1 (got {})", where, n_vocab);
  if (n_layer != 1) fail("{}: n_layer is {}; the pre-gating router has exactly 1 layer", where, n_layer);
  if (n_head < 1) fail("{}: n_head must be >= 1 (got {})", where, n_head);
  if (d_model < 2 || d_model % n_head != 0 || head_dim() % 2 != 0)
    fail("{}: embedding_dim {} must be a multiple of n_head {} with an even head size", where, d_model, n_head);
  if (d_inter < 1) fail("{}: inter_dim must be >= 1 (got {})", where, d_inter);
  if (!(normalizer > 0) || !std::isfinite(normalizer)) fail("{}: normalizer must be > 0 (got {})", where, normalizer);
  if (max_positions < 1) fail("{}: max_position_embeddings_predictor must be >= 1 (got {})", where, max_positions);
  if (!(rope_theta > 0)) fail("{}: router RoPE theta must be > 0", where);
  if (!(rms_eps > 0)) fail("{}: router RMSNorm eps must be > 0", where);
}

nlohmann::json RouterConfig::to_json() const {
  return nlohmann::json{{"n_expert", n_expert},
                        {"vocab_size", n_vocab},
                        {"n_head", n_head},
                        {"embedding_dim", d_model},
                        {"inter_dim", d_inter},
                        {"normalizer", normalizer},
                        {"hidden_act_predictor", hidden_act()},
                        {"max_position_embeddings_predictor", max_positions},
                        {"rope_theta", rope_theta},
                        {"rms_eps", rms_eps}};
}

namespace {

int32_t int_key(const nlohmann::json& j, const char* key, int32_t fallback, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end()) return fallback;
  if (!it->is_number_integer()) fail("{}: router_config key '{}' must be an integer", where, key);
  const int64_t v = it->get<int64_t>();
  if (v < INT32_MIN || v > INT32_MAX) fail("{}: router_config key '{}' is out of range ({})", where, key, v);
  return static_cast<int32_t>(v);
}

float number_key(const nlohmann::json& j, const char* key, float fallback, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end()) return fallback;
  if (!it->is_number()) fail("{}: router_config key '{}' must be a number", where, key);
  return static_cast<float>(it->get<double>());
}

}  // namespace

void RouterConfig::update_from_json(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) fail("{}: router_config must be a JSON object", where);
  n_expert = int_key(j, "n_expert", n_expert, where);
  n_vocab = int_key(j, "vocab_size", int_key(j, "n_vocab", n_vocab, where), where);
  n_head = int_key(j, "n_head", n_head, where);
  d_model = int_key(j, "embedding_dim", d_model, where);
  d_inter = int_key(j, "inter_dim", d_inter, where);
  normalizer = number_key(j, "normalizer", normalizer, where);
  max_positions = int_key(j, "max_position_embeddings_predictor", max_positions, where);
  rope_theta = number_key(j, "rope_theta", rope_theta, where);
  rms_eps = number_key(j, "rms_eps", rms_eps, where);
  if (auto it = j.find("hidden_act_predictor"); it != j.end()) {
    if (!it->is_string()) fail("{}: router_config key 'hidden_act_predictor' must be a string", where);
    const std::string act = it->get<std::string>();
    if (act != "silu" && act != "swiglu")
      fail("{}: hidden_act_predictor must be 'silu' or 'swiglu' (got '{}')", where, act);
    swiglu = act == "swiglu";
  }
}

namespace {

struct Loader {
  const TensorLookup& lookup;
  const std::string& where;
  const std::string& prefix;

  const TensorView& get(const std::string& name, std::vector<int64_t> hf_shape) const {
    const TensorView* t = lookup(prefix + name);
    if (!t) fail("{}: missing router tensor '{}{}'", where, prefix, name);
    if (t->type != TensorType::F32 && t->type != TensorType::F16 && t->type != TensorType::BF16)
      fail("{}: router tensor '{}{}' has type {}, expected F32, F16 or BF16", where, prefix, name,
           tensor_type_name(t->type));
    std::vector<int64_t> ggml(hf_shape.rbegin(), hf_shape.rend());
    if (t->shape != ggml) {
      std::string got, want;
      for (auto it = t->shape.rbegin(); it != t->shape.rend(); ++it) got += (got.empty() ? "" : ", ") + std::to_string(*it);
      for (auto d : hf_shape) want += (want.empty() ? "" : ", ") + std::to_string(d);
      fail("{}: router tensor '{}{}' has shape [{}], expected [{}]", where, prefix, name, got, want);
    }
    return *t;
  }
  WeightMatrix matrix(const std::string& name, int64_t rows, int64_t cols) const {
    const TensorView& t = get(name, {rows, cols});
    return {t.type, t.data, rows, cols};
  }
  std::vector<float> vec(const std::string& name, int64_t n) const {
    const TensorView& t = get(name, {n});
    std::vector<float> v(static_cast<size_t>(n));
    dequantize_row(t.type, t.data, v.data(), n);
    return v;
  }
};

void add_bias(float* y, const std::vector<float>& b, int64_t n) {
  const int64_t m = static_cast<int64_t>(b.size());
  for (int64_t t = 0; t < n; ++t)
    for (int64_t i = 0; i < m; ++i) y[t * m + i] += b[static_cast<size_t>(i)];
}

}  // namespace

RouterWeights RouterWeights::load(const RouterConfig& c, const TensorLookup& lookup, const std::string& where,
                                  const std::string& prefix) {
  c.validate(where);
  const Loader L{lookup, where, prefix};
  const int64_t d = c.d_model, inter = c.d_inter, mid = c.swiglu ? 2 * inter : inter;
  RouterWeights w;
  w.embed = L.matrix("embed.weight", c.n_vocab, d);
  w.input_norm = L.vec("input_layernorm_0.weight", d);
  w.post_attention_norm = L.vec("post_attention_layernorm_0.weight", d);
  w.out_norm = L.vec("out_layernorm.weight", d);
  w.wq = L.matrix("q_proj_0.weight", d, d);
  w.wk = L.matrix("k_proj_0.weight", d, d);
  w.wv = L.matrix("v_proj_0.weight", d, d);
  w.wo = L.matrix("o_proj_0.weight", d, d);
  w.bq = L.vec("q_proj_0.bias", d);
  w.bk = L.vec("k_proj_0.bias", d);
  w.bv = L.vec("v_proj_0.bias", d);
  w.bo = L.vec("o_proj_0.bias", d);
  w.proj_1 = L.matrix("proj_1_0.weight", mid, d);
  w.b1 = L.vec("proj_1_0.bias", mid);
  w.proj_2 = L.matrix("proj_2_0.weight", d, inter);
  w.b2 = L.vec("proj_2_0.bias", d);
  w.proj_out = L.matrix("proj_out.weight", c.n_expert, d);
  w.b_out = L.vec("proj_out.bias", c.n_expert);
  return w;
}

uint64_t RouterWeights::bytes() const {
  return static_cast<uint64_t>(embed.row_stride() + wq.bytes() + wk.bytes() + wv.bytes() + wo.bytes() +
                               proj_1.bytes() + proj_2.bytes() + proj_out.bytes());
}

int32_t argmax(const float* x, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (x[i] > x[best]) best = i;
  return static_cast<int32_t>(best);
}

RouterContext::RouterContext(const RouterConfig& config, const RouterWeights& weights, int64_t positions)
    : config_(config), w_(weights) {
  if (positions < 0 || positions > config.max_positions)
    fail("router: {} positions requested, the router has {} (max_position_embeddings_predictor)", positions,
         config.max_positions);
  positions_ = positions > 0 ? positions : config.max_positions;
  const auto d = static_cast<size_t>(config.d_model), pos = static_cast<size_t>(positions_);
  k_cache_.resize(pos * d);
  v_cache_.resize(pos * d);
  scores_.resize(static_cast<size_t>(std::max(1, kernel_threads())) * pos);
  cos_sin_.resize(static_cast<size_t>(config.head_dim()));
}

const std::vector<int32_t>& RouterContext::route(const int32_t* tokens, int64_t n) {
  const RouterConfig& c = config_;
  if (n <= 0) fail("router: no tokens to route");
  if (n_past_ + n > positions_)
    fail("router context of {} positions exceeded ({} routed + {} new){}", positions_, n_past_, n,
         positions_ == c.max_positions ? "; raise max_position_embeddings_predictor" : "");
  const int64_t d = c.d_model, hd = c.head_dim(), N = c.n_expert;
  const int64_t mid = c.swiglu ? 2 * int64_t{c.d_inter} : c.d_inter;
  const auto nd = static_cast<size_t>(n * d);
  h_.resize(nd), u_.resize(nd), q_.resize(nd), k_.resize(nd), v_.resize(nd), att_.resize(nd);
  mid_.resize(static_cast<size_t>(n * mid)), mid2_.resize(static_cast<size_t>(n * c.d_inter));
  logits_.resize(static_cast<size_t>(n * N));

  for (int64_t t = 0; t < n; ++t) {
    if (tokens[t] < 0 || tokens[t] >= c.n_vocab) fail("router: token id {} out of range [0, {})", tokens[t], c.n_vocab);
    dequantize_row(w_.embed.type, w_.embed.row(tokens[t]), h_.data() + t * d, d);
  }
  // Attention block. The shared kernel divides scores by sqrt(head_dim); the router divides by
  // `normalizer`, so q is pre-scaled by sqrt(head_dim) / normalizer.
  for (int64_t t = 0; t < n; ++t) rmsnorm(h_.data() + t * d, w_.input_norm.data(), u_.data() + t * d, d, c.rms_eps);
  matmul(w_.wq, u_.data(), n, q_.data(), ws_);
  matmul(w_.wk, u_.data(), n, k_.data(), ws_);
  matmul(w_.wv, u_.data(), n, v_.data(), ws_);
  add_bias(q_.data(), w_.bq, n), add_bias(k_.data(), w_.bk, n), add_bias(v_.data(), w_.bv, n);
  const float q_scale = std::sqrt(static_cast<float>(hd)) / c.normalizer;
  for (int64_t t = 0; t < n; ++t) {
    rope_angles(n_past_ + t, hd, c.rope_theta, cos_sin_.data());
    float* q = q_.data() + t * d;
    rope(q, c.n_head, hd, cos_sin_.data(), /*neox=*/true);
    rope(k_.data() + t * d, c.n_head, hd, cos_sin_.data(), /*neox=*/true);
    for (int64_t i = 0; i < d; ++i) q[i] *= q_scale;
    std::copy_n(k_.data() + t * d, d, k_cache_.data() + (n_past_ + t) * d);
    std::copy_n(v_.data() + t * d, d, v_cache_.data() + (n_past_ + t) * d);
  }
  const AttentionShape shape{c.n_head, c.n_head, hd};
  attention(shape, q_.data(), n, n_past_, TensorType::F32, k_cache_.data(), v_cache_.data(), att_.data(),
            scores_.data(), positions_, std::max(1, kernel_threads()));
  matmul(w_.wo, att_.data(), n, u_.data(), ws_);
  add_bias(u_.data(), w_.bo, n);
  for (size_t i = 0; i < nd; ++i) h_[i] += u_[i];

  // MLP block.
  for (int64_t t = 0; t < n; ++t)
    rmsnorm(h_.data() + t * d, w_.post_attention_norm.data(), u_.data() + t * d, d, c.rms_eps);
  matmul(w_.proj_1, u_.data(), n, mid_.data(), ws_);
  add_bias(mid_.data(), w_.b1, n);
  const int64_t inter = c.d_inter;
  for (int64_t t = 0; t < n; ++t) {
    const float* m = mid_.data() + t * mid;
    float* a = mid2_.data() + t * inter;
    if (c.swiglu) swiglu(m, m + inter, a, inter);
    else
      for (int64_t i = 0; i < inter; ++i) a[i] = m[i] / (1.0f + std::exp(-m[i]));
  }
  matmul(w_.proj_2, mid2_.data(), n, u_.data(), ws_);
  add_bias(u_.data(), w_.b2, n);
  for (size_t i = 0; i < nd; ++i) h_[i] += u_[i];

  // Output head and top-1 routing.
  for (int64_t t = 0; t < n; ++t) rmsnorm(h_.data() + t * d, w_.out_norm.data(), u_.data() + t * d, d, c.rms_eps);
  matmul(w_.proj_out, u_.data(), n, logits_.data(), ws_);
  add_bias(logits_.data(), w_.b_out, n);
  experts_.resize(static_cast<size_t>(n));
  for (int64_t t = 0; t < n; ++t) experts_[static_cast<size_t>(t)] = argmax(logits_.data() + t * N, N);
  n_past_ += n;
  return experts_;
}

}  // namespace lookahead::moe
