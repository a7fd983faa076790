#include "moe/model/llama.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>

#include "common/error.h"
#include "moe/kernels/fp16.h"
#include "moe/kernels/ops.h"
#include "moe/kernels/quantize.h"
#include "moe/model/attention.h"

namespace lookahead::moe {

namespace {

WeightMatrix matrix(const ModelSource& src, const std::string& name) {
  const TensorView& t = src.tensor(name);
  if (!is_weight_type(t.type)) fail("{}: tensor '{}' has type {}, not a weight type", src.path(), name, tensor_type_name(t.type));
  return {t.type, t.data, t.rows(), t.shape.at(0)};
}

std::vector<float> vector_f32(const ModelSource& src, const std::string& name) {
  const TensorView& t = src.tensor(name);
  if (!is_weight_type(t.type)) fail("{}: tensor '{}' has type {}, not a weight type", src.path(), name, tensor_type_name(t.type));
  std::vector<float> v(static_cast<size_t>(t.elements()));
  dequantize_row(t.type, t.data, v.data(), t.elements());
  return v;
}

}  // namespace

LlamaModel::LlamaModel(const ModelSource& source) : source_(source), hp_(source.hparams()) {
  w_.token_embd = matrix(source, "token_embd.weight");
  w_.output_norm = vector_f32(source, "output_norm.weight");
  w_.output = hp_.tied_embeddings ? w_.token_embd : matrix(source, "output.weight");
  const bool experts_only = !source.find_tensor("blk.0.ffn_gate.weight");
  for (int l = 0; l < hp_.n_layer; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    LlamaLayer layer;
    layer.attn_norm = vector_f32(source, b + "attn_norm.weight");
    layer.wq = matrix(source, b + "attn_q.weight");
    layer.wk = matrix(source, b + "attn_k.weight");
    layer.wv = matrix(source, b + "attn_v.weight");
    layer.wo = matrix(source, b + "attn_output.weight");
    layer.ffn_norm = vector_f32(source, b + "ffn_norm.weight");
    // An experts-only Read-ME export has no dense FFN at all; otherwise every layer needs one.
    if (!(experts_only && !source.find_tensor(b + "ffn_gate.weight"))) {
      layer.w_gate = matrix(source, b + "ffn_gate.weight");
      layer.w_up = matrix(source, b + "ffn_up.weight");
      layer.w_down = matrix(source, b + "ffn_down.weight");
    }
    w_.layers.push_back(std::move(layer));
  }
}

uint64_t LlamaModel::weight_bytes_per_token() const {
  auto bytes = [](const WeightMatrix& m) { return static_cast<uint64_t>(m.rows * m.row_stride()); };
  uint64_t total = bytes(w_.output) + static_cast<uint64_t>(w_.token_embd.row_stride());
  for (const auto& l : w_.layers)
    total += bytes(l.wq) + bytes(l.wk) + bytes(l.wv) + bytes(l.wo) +
             (l.w_gate.data ? bytes(l.w_gate) + bytes(l.w_up) + bytes(l.w_down) : 0);
  return total;
}

LlamaContext::LlamaContext(const LlamaModel& model, const ContextOptions& options) : model_(model), opt_(options) {
  const LlamaHparams& hp = model.hparams();
  if (opt_.n_ctx <= 0) fail("context size must be positive (got {})", opt_.n_ctx);
  if (opt_.kv_type != TensorType::F32 && opt_.kv_type != TensorType::F16)
    fail("KV cache type must be F32 or F16 (got {})", tensor_type_name(opt_.kv_type));
  opt_.n_batch = std::clamp<int64_t>(opt_.n_batch, 1, opt_.n_ctx);
  n_threads_ = std::max(1, kernel_threads());
  const int64_t kv_dim = int64_t{hp.n_head_kv} * hp.head_dim, q_dim = int64_t{hp.n_head} * hp.head_dim;
  const size_t elem = opt_.kv_type == TensorType::F16 ? 2 : 4;
  const size_t cache_bytes = static_cast<size_t>(hp.n_layer) * static_cast<size_t>(opt_.n_ctx * kv_dim) * elem;
  k_cache_.resize(cache_bytes);
  v_cache_.resize(cache_bytes);
  const auto nb = static_cast<size_t>(opt_.n_batch);
  x_.resize(nb * static_cast<size_t>(hp.n_embd));
  h_.resize(nb * static_cast<size_t>(std::max<int64_t>(hp.n_embd, q_dim)));
  q_.resize(nb * static_cast<size_t>(q_dim));
  att_.resize(nb * static_cast<size_t>(std::max<int64_t>(hp.n_embd, q_dim)));  // also the expert FFN output
  k_.resize(nb * static_cast<size_t>(kv_dim));
  v_.resize(nb * static_cast<size_t>(kv_dim));
  gate_.resize(nb * static_cast<size_t>(hp.n_ff));
  up_.resize(nb * static_cast<size_t>(hp.n_ff));
  scores_.resize(static_cast<size_t>(n_threads_) * static_cast<size_t>(opt_.n_ctx));
  cos_sin_.resize(static_cast<size_t>(hp.head_dim));
  gathered_.resize(nb * static_cast<size_t>(hp.n_embd));
  logits_.resize(static_cast<size_t>(hp.n_vocab));
}

void LlamaContext::truncate(int64_t pos) {
  n_past_ = std::clamp<int64_t>(pos, 0, n_past_);
  if (router_) router_->truncate(n_past_);
}

void LlamaContext::set_routing(TokenRouter* router, const ExpertWeights* experts) {
  if ((router == nullptr) != (experts == nullptr)) fail("Read-ME routing needs both a router and expert weights");
  router_ = router;
  expert_weights_ = experts;
  if (router_) router_->truncate(n_past_);
}

uint8_t* LlamaContext::cache_row(std::vector<uint8_t>& cache, int layer, int64_t pos) {
  const LlamaHparams& hp = model_.hparams();
  const int64_t kv_dim = int64_t{hp.n_head_kv} * hp.head_dim;
  const int64_t elem = opt_.kv_type == TensorType::F16 ? 2 : 4;
  return cache.data() + ((int64_t{layer} * opt_.n_ctx + pos) * kv_dim) * elem;
}

const float* LlamaContext::forward(const int32_t* tokens, int64_t n_tokens, int64_t logits_from) {
  const LlamaHparams& hp = model_.hparams();
  if (n_tokens <= 0) fail("forward: no tokens");
  if (n_past_ + n_tokens > opt_.n_ctx)
    fail("context of {} tokens exceeded: {} tokens in the cache + {} new", opt_.n_ctx, n_past_, n_tokens);
  for (int64_t i = 0; i < n_tokens; ++i)
    if (tokens[i] < 0 || tokens[i] >= hp.n_vocab) fail("token id {} out of range [0, {})", tokens[i], hp.n_vocab);
  if (logits_from < 0) logits_from = n_tokens - 1;
  logits_from = std::min(logits_from, n_tokens);
  const size_t need = static_cast<size_t>(n_tokens - logits_from) * static_cast<size_t>(hp.n_vocab);
  if (logits_.size() < need) logits_.resize(need);  // only prefill asking for many rows grows it
  // Read-ME: route every token before the backbone sees it.
  experts_.clear();
  if (router_) {
    experts_.resize(static_cast<size_t>(n_tokens));
    const auto t0 = std::chrono::steady_clock::now();
    router_->route(tokens, n_tokens, n_past_, experts_.data());
    router_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (int64_t i = 0; i < n_tokens; ++i) {
      const int32_t e = experts_[static_cast<size_t>(i)];
      if (e != kDenseFfn && (e < 0 || e >= expert_weights_->n_expert()))
        fail("router '{}' chose expert {} of {}", router_->name(), e, expert_weights_->n_expert());
    }
  }
  for (int64_t c0 = 0; c0 < n_tokens; c0 += opt_.n_batch) {
    const int64_t n = std::min(opt_.n_batch, n_tokens - c0);
    // Logit rows wanted inside this chunk: tokens [max(logits_from, c0), c0 + n).
    const int64_t from = std::max<int64_t>(logits_from - c0, 0);
    float* out = logits_.data() + std::max<int64_t>(c0 - logits_from, 0) * hp.n_vocab;
    forward_chunk(tokens + c0, n, std::min(from, n), out, experts_.empty() ? nullptr : experts_.data() + c0);
  }
  return logits_.data();
}

void LlamaContext::forward_chunk(const int32_t* tokens, int64_t n, int64_t logits_from, float* logits,
                                 const int32_t* experts) {
  const LlamaHparams& hp = model_.hparams();
  const LlamaWeights& w = model_.weights();
  const int64_t d = hp.n_embd, hd = hp.head_dim;
  const AttentionShape shape{hp.n_head, hp.n_head_kv, hd};
  const int64_t q_dim = shape.q_dim(), kv_dim = shape.kv_dim();
  const int64_t pos0 = n_past_;

  // x[n][d] = token embeddings (one row dequantized per token).
  for (int64_t t = 0; t < n; ++t)
    dequantize_row(w.token_embd.type, w.token_embd.row(tokens[t]), x_.data() + t * d, d);

  if (experts) group_by_expert(experts, n);
  for (int l = 0; l < hp.n_layer; ++l) {
    const LlamaLayer& L = w.layers[static_cast<size_t>(l)];
    // Attention block.
    for (int64_t t = 0; t < n; ++t) rmsnorm(x_.data() + t * d, L.attn_norm.data(), h_.data() + t * d, d, hp.rms_eps);
    matmul(L.wq, h_.data(), n, q_.data(), ws_);   // q[n][H*hd]
    matmul(L.wk, h_.data(), n, k_.data(), ws_);   // k[n][Hkv*hd]
    matmul(L.wv, h_.data(), n, v_.data(), ws_);   // v[n][Hkv*hd]
    for (int64_t t = 0; t < n; ++t) {
      rope_angles(pos0 + t, hd, hp.rope_theta, cos_sin_.data());
      rope(q_.data() + t * q_dim, hp.n_head, hd, cos_sin_.data(), hp.rope_neox);
      rope(k_.data() + t * kv_dim, hp.n_head_kv, hd, cos_sin_.data(), hp.rope_neox);
      quantize_row(opt_.kv_type, k_.data() + t * kv_dim, cache_row(k_cache_, l, pos0 + t), kv_dim);
      quantize_row(opt_.kv_type, v_.data() + t * kv_dim, cache_row(v_cache_, l, pos0 + t), kv_dim);
    }
    attention(shape, q_.data(), n, pos0, opt_.kv_type, cache_row(k_cache_, l, 0), cache_row(v_cache_, l, 0),
              att_.data(), scores_.data(), opt_.n_ctx, n_threads_);
    matmul(L.wo, att_.data(), n, h_.data(), ws_);  // [n][d]
    for (int64_t i = 0; i < n * d; ++i) x_[static_cast<size_t>(i)] += h_[static_cast<size_t>(i)];

    // FFN block (SwiGLU): the dense FFN, or each token's Read-ME expert.
    for (int64_t t = 0; t < n; ++t) rmsnorm(x_.data() + t * d, L.ffn_norm.data(), h_.data() + t * d, d, hp.rms_eps);
    ffn_block(l, n, experts);
  }
  n_past_ += n;

  // Output: logits[n - logits_from][vocab] for the requested tokens.
  const int64_t n_out = n - logits_from;
  if (n_out <= 0) return;
  for (int64_t t = 0; t < n_out; ++t)
    rmsnorm(x_.data() + (logits_from + t) * d, w.output_norm.data(), h_.data() + t * d, d, hp.rms_eps);
  matmul(w.output, h_.data(), n_out, logits, ws_);
}

void LlamaContext::ffn_rows(int l, const float* in, int64_t m, float* out, int32_t expert) {
  const LlamaHparams& hp = model_.hparams();
  const int64_t ff = hp.n_ff;
  if (expert != kDenseFfn) {
    // Read-ME expert: F_e(x) = W_down_e (SiLU(W_gate_e x) * W_up_e x), S_e of the n_ff neurons.
    const ExpertFfn& E = expert_weights_->expert(l, expert);
    const int64_t s = E.size();
    matmul(E.gate, in, m, gate_.data(), ws_);  // [m][S_e]
    matmul(E.up, in, m, up_.data(), ws_);
    swiglu(gate_.data(), up_.data(), gate_.data(), m * s);
    matmul(E.down, gate_.data(), m, out, ws_);  // [m][d]
    return;
  }
  const LlamaLayer& L = model_.weights().layers[static_cast<size_t>(l)];
  if (!L.w_gate.data)
    fail("{}: this Read-ME model has no dense FFN; route every token to an expert", model_.source().path());
  // Dense SwiGLU, optionally restricted to the hook's neuron subset.
  const std::vector<int32_t>* active = hook_ ? hook_->active_neurons(l) : nullptr;
  const int32_t* ids = active ? active->data() : nullptr;
  const int64_t n_ids = active ? static_cast<int64_t>(active->size()) : 0;
  matmul(L.w_gate, in, m, gate_.data(), ws_, ids, n_ids);  // gate[m][D]
  matmul(L.w_up, in, m, up_.data(), ws_, ids, n_ids);      // up[m][D]
  if (active) {
    // a = 0 outside the active set; gate_ holds a afterwards.
    for (int64_t t = 0; t < m; ++t) {
      float* g = gate_.data() + t * ff;
      const float* u = up_.data() + t * ff;
      for (int32_t i : *active) g[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
      // Zero the rest: walk the sorted index list.
      int64_t next = 0;
      for (int32_t i : *active) {
        std::fill(g + next, g + i, 0.0f);
        next = i + 1;
      }
      std::fill(g + next, g + ff, 0.0f);
    }
  } else {
    swiglu(gate_.data(), up_.data(), gate_.data(), m * ff);  // a[m][D]
  }
  if (hook_) hook_->on_ffn_activation(l, gate_.data(), m, ff);
  matmul(L.w_down, gate_.data(), m, out, ws_);  // [m][d]
}

void LlamaContext::group_by_expert(const int32_t* experts, int64_t n) {
  // Stable counting sort; group 0 = kDenseFfn, group e + 1 = expert e. Each expert's FFN is then
  // one matrix multiply over its tokens, in every layer (the routing is the same for all layers).
  const int32_t n_expert = expert_weights_->n_expert();
  group_start_.assign(static_cast<size_t>(n_expert) + 2, 0);
  for (int64_t t = 0; t < n; ++t) ++group_start_[static_cast<size_t>(experts[t] + 2)];
  for (size_t g = 1; g < group_start_.size(); ++g) group_start_[g] += group_start_[g - 1];
  group_fill_.assign(group_start_.begin(), group_start_.end());
  expert_order_.resize(static_cast<size_t>(n));
  for (int64_t t = 0; t < n; ++t)
    expert_order_[static_cast<size_t>(group_fill_[static_cast<size_t>(experts[t] + 1)]++)] = static_cast<int32_t>(t);
}

void LlamaContext::ffn_block(int l, int64_t n, const int32_t* experts) {
  const int64_t d = model_.hparams().n_embd;
  if (!experts) {
    ffn_rows(l, h_.data(), n, h_.data(), kDenseFfn);  // h is read fully before the output is written
    for (int64_t i = 0; i < n * d; ++i) x_[static_cast<size_t>(i)] += h_[static_cast<size_t>(i)];
    return;
  }
  // Tokens are grouped by expert once per chunk (group_by_expert); every layer reuses the groups.
  const int32_t n_expert = expert_weights_->n_expert();
  float* in = gathered_.data();
  float* out = att_.data();  // the attention output is consumed already: reuse it as [m][d]
  for (int32_t e = kDenseFfn; e < n_expert; ++e) {
    const int64_t b = group_start_[static_cast<size_t>(e + 1)], m = group_start_[static_cast<size_t>(e + 2)] - b;
    if (m == 0) continue;
    const int32_t* idx = expert_order_.data() + b;
    for (int64_t i = 0; i < m; ++i) std::copy_n(h_.data() + int64_t{idx[i]} * d, d, in + i * d);
    ffn_rows(l, in, m, out, e);
    for (int64_t i = 0; i < m; ++i) {
      float* x = x_.data() + int64_t{idx[i]} * d;
      const float* y = out + i * d;
      for (int64_t j = 0; j < d; ++j) x[j] += y[j];
    }
  }
}

}  // namespace lookahead::moe
