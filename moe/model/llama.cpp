#include "moe/model/llama.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>

#include "common/error.h"
#include "moe/kernels/fp16.h"
#include "moe/kernels/ops.h"
#include "moe/kernels/quantize.h"
#include "moe/kernels/thread_pool.h"
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
  // A NaN or non-positive epsilon or RoPE base turns every activation into NaN: refuse the model.
  if (!(hp_.rms_eps > 0) || !std::isfinite(hp_.rms_eps))
    fail("{}: the RMSNorm epsilon (layer_norm_rms_epsilon / rms_norm_eps) must be a positive number, got {}",
         source.path(), hp_.rms_eps);
  if (!(hp_.rope_theta > 0) || !std::isfinite(hp_.rope_theta))
    fail("{}: the RoPE base (rope.freq_base / rope_theta) must be a positive number, got {}", source.path(),
         hp_.rope_theta);
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
  int64_t total = w_.output.bytes() + w_.token_embd.row_stride();
  for (const auto& l : w_.layers)
    total += l.wq.bytes() + l.wk.bytes() + l.wv.bytes() + l.wo.bytes() +
             (l.w_gate.data ? l.w_gate.bytes() + l.w_up.bytes() + l.w_down.bytes() : 0);
  return static_cast<uint64_t>(total);
}

KvCache::KvCache(const LlamaHparams& hp, int64_t n_ctx, TensorType kv_type) : n_ctx_(n_ctx), type_(kv_type) {
  if (n_ctx <= 0) fail("context size must be positive (got {})", n_ctx);
  if (kv_type != TensorType::F32 && kv_type != TensorType::F16)
    fail("KV cache type must be F32 or F16 (got {})", tensor_type_name(kv_type));
  row_bytes_ = int64_t{hp.n_head_kv} * hp.head_dim * (kv_type == TensorType::F16 ? 2 : 4);
  const size_t bytes = static_cast<size_t>(hp.n_layer) * static_cast<size_t>(n_ctx * row_bytes_);
  k_.resize(bytes);
  v_.resize(bytes);
}

void KvCache::truncate(int64_t pos) { n_past_ = std::clamp<int64_t>(pos, 0, n_past_); }

void KvCache::copy_prefix(const KvCache& from, int64_t n) {
  if (from.type_ != type_ || from.row_bytes_ != row_bytes_ || from.k_.size() / from.n_ctx_ != k_.size() / n_ctx_)
    fail("KV prefix copy: the two caches have different layouts");
  if (n < 0 || n > from.n_past_ || n > n_ctx_)
    fail("KV prefix copy: {} positions, but the source holds {} and this cache has room for {}", n, from.n_past_, n_ctx_);
  const auto layers = static_cast<int>(k_.size() / static_cast<size_t>(n_ctx_ * row_bytes_));
  const auto bytes = static_cast<size_t>(n * row_bytes_);
  for (int l = 0; l < layers; ++l) {
    std::memcpy(k_.data() + offset(l, 0), from.k_.data() + from.offset(l, 0), bytes);
    std::memcpy(v_.data() + offset(l, 0), from.v_.data() + from.offset(l, 0), bytes);
  }
  n_past_ = n;
}

BatchForward::BatchForward(const LlamaModel& model, int64_t n_batch, int64_t max_ctx)
    : model_(model), n_batch_(n_batch), max_ctx_(max_ctx) {
  const LlamaHparams& hp = model.hparams();
  if (n_batch <= 0) fail("batch size must be positive (got {})", n_batch);
  if (max_ctx <= 0) fail("context size must be positive (got {})", max_ctx);
  n_threads_ = std::max(1, kernel_threads());
  const int64_t kv_dim = int64_t{hp.n_head_kv} * hp.head_dim, q_dim = int64_t{hp.n_head} * hp.head_dim;
  const auto nb = static_cast<size_t>(n_batch);
  x_.resize(nb * static_cast<size_t>(hp.n_embd));
  h_.resize(nb * static_cast<size_t>(std::max<int64_t>(hp.n_embd, q_dim)));
  q_.resize(nb * static_cast<size_t>(q_dim));
  att_.resize(nb * static_cast<size_t>(std::max<int64_t>(hp.n_embd, q_dim)));  // also the expert FFN output
  k_.resize(nb * static_cast<size_t>(kv_dim));
  v_.resize(nb * static_cast<size_t>(kv_dim));
  gate_.resize(nb * static_cast<size_t>(hp.n_ff));
  up_.resize(nb * static_cast<size_t>(hp.n_ff));
  scores_.resize(static_cast<size_t>(n_threads_) * static_cast<size_t>(max_ctx));
  cos_sin_.resize(static_cast<size_t>(hp.head_dim));
  gathered_.resize(nb * static_cast<size_t>(hp.n_embd));
  tokens_.reserve(nb);
  experts_.reserve(nb);
}

const float* BatchForward::forward(const BatchSegment* segs, size_t n_segs, float* logits) {
  // The kernels' workers may spin between this pass's regions (moe/kernels/thread_pool.h).
  KernelPool::ForwardScope hot_workers;
  const LlamaHparams& hp = model_.hparams();
  const LlamaWeights& w = model_.weights();
  const int64_t d = hp.n_embd, hd = hp.head_dim;
  const AttentionShape shape{hp.n_head, hp.n_head_kv, hd};
  const int64_t q_dim = shape.q_dim(), kv_dim = shape.kv_dim();

  // Check the whole batch before touching any cache, and gather its tokens and experts.
  int64_t n = 0, n_out = 0;
  bool routed = false;
  tokens_.clear();
  experts_.clear();
  for (size_t s = 0; s < n_segs; ++s) {
    const BatchSegment& g = segs[s];
    if (!g.cache || !g.tokens || g.n <= 0) fail("forward: segment {} has no tokens", s);
    if (g.cache->n_past() + g.n > g.cache->n_ctx())
      fail("context of {} tokens exceeded: {} tokens in the cache + {} new", g.cache->n_ctx(), g.cache->n_past(), g.n);
    if (g.cache->n_ctx() > max_ctx_) fail("forward: a sequence's context ({}) exceeds the batch's ({})", g.cache->n_ctx(), max_ctx_);
    if (s == 0) routed = g.experts != nullptr;
    if ((g.experts != nullptr) != routed) fail("forward: segments must be all routed or all dense");
    for (int64_t i = 0; i < g.n; ++i) {
      if (g.tokens[i] < 0 || g.tokens[i] >= hp.n_vocab) fail("token id {} out of range [0, {})", g.tokens[i], hp.n_vocab);
      if (routed) {
        if (!expert_weights_) fail("forward: routed tokens but no expert weights");
        const int32_t e = g.experts[i];
        if (e != kDenseFfn && (e < 0 || e >= expert_weights_->n_expert()))
          fail("forward: expert {} of a token is not one of the model's {}", e, expert_weights_->n_expert());
      }
    }
    n += g.n;
    n_out += g.n - (g.logits_from < 0 ? g.n - 1 : std::min(g.logits_from, g.n));
  }
  if (n == 0) fail("forward: no tokens");
  if (n > n_batch_) fail("forward: {} tokens exceed the batch size {}", n, n_batch_);
  for (size_t s = 0; s < n_segs; ++s) {
    tokens_.insert(tokens_.end(), segs[s].tokens, segs[s].tokens + segs[s].n);
    if (routed) experts_.insert(experts_.end(), segs[s].experts, segs[s].experts + segs[s].n);
  }

  // x[n][d] = token embeddings (one row dequantized per token).
  for (int64_t t = 0; t < n; ++t)
    dequantize_row(w.token_embd.type, w.token_embd.row(tokens_[static_cast<size_t>(t)]), x_.data() + t * d, d);

  if (routed) group_by_expert(experts_.data(), n);
  for (int l = 0; l < hp.n_layer; ++l) {
    const LlamaLayer& L = w.layers[static_cast<size_t>(l)];
    // Attention block: projections over the whole batch, attention per sequence.
    for (int64_t t = 0; t < n; ++t) rmsnorm(x_.data() + t * d, L.attn_norm.data(), h_.data() + t * d, d, hp.rms_eps);
    // q[n][H*hd], k[n][Hkv*hd], v[n][Hkv*hd]
    matmul_parts({{&L.wq, q_.data()}, {&L.wk, k_.data()}, {&L.wv, v_.data()}}, h_.data(), n, ws_);
    int64_t t0 = 0;
    for (size_t s = 0; s < n_segs; ++s) {
      KvCache& cache = *segs[s].cache;
      const int64_t pos0 = cache.n_past(), m = segs[s].n;
      for (int64_t t = t0; t < t0 + m; ++t) {
        rope_angles(pos0 + t - t0, hd, hp.rope_theta, cos_sin_.data());
        rope(q_.data() + t * q_dim, hp.n_head, hd, cos_sin_.data(), hp.rope_neox);
        rope(k_.data() + t * kv_dim, hp.n_head_kv, hd, cos_sin_.data(), hp.rope_neox);
        quantize_row(cache.type(), k_.data() + t * kv_dim, cache.k_row(l, pos0 + t - t0), kv_dim);
        quantize_row(cache.type(), v_.data() + t * kv_dim, cache.v_row(l, pos0 + t - t0), kv_dim);
      }
      attention(shape, q_.data() + t0 * q_dim, m, pos0, cache.type(), cache.k_row(l, 0), cache.v_row(l, 0),
                att_.data() + t0 * q_dim, scores_.data(), max_ctx_, n_threads_);
      t0 += m;
    }
    matmul(L.wo, att_.data(), n, h_.data(), ws_);  // [n][d]
    for (int64_t i = 0; i < n * d; ++i) x_[static_cast<size_t>(i)] += h_[static_cast<size_t>(i)];

    // FFN block (SwiGLU): the dense FFN, or each token's Read-ME expert.
    for (int64_t t = 0; t < n; ++t) rmsnorm(x_.data() + t * d, L.ffn_norm.data(), h_.data() + t * d, d, hp.rms_eps);
    ffn_block(l, n, routed);
  }
  for (size_t s = 0; s < n_segs; ++s) segs[s].cache->n_past_ += segs[s].n;

  // Output: the wanted rows of every segment, in order.
  if (!logits) {
    const size_t need = static_cast<size_t>(n_out) * static_cast<size_t>(hp.n_vocab);
    if (logits_.size() < need) logits_.resize(need);
    logits = logits_.data();
  }
  if (n_out == 0) return logits;
  int64_t row = 0, t0 = 0;
  for (size_t s = 0; s < n_segs; ++s) {
    const int64_t m = segs[s].n, from = segs[s].logits_from < 0 ? m - 1 : std::min(segs[s].logits_from, m);
    for (int64_t t = t0 + from; t < t0 + m; ++t, ++row)
      rmsnorm(x_.data() + t * d, w.output_norm.data(), h_.data() + row * d, d, hp.rms_eps);
    t0 += m;
  }
  matmul(w.output, h_.data(), n_out, logits, ws_);
  return logits;
}

LlamaContext::LlamaContext(const LlamaModel& model, const ContextOptions& options)
    : model_(model),
      opt_(options),
      cache_(model.hparams(), options.n_ctx, options.kv_type),
      batch_(model, std::clamp<int64_t>(options.n_batch, 1, std::max<int64_t>(options.n_ctx, 1)), options.n_ctx) {
  opt_.n_batch = batch_.n_batch();
  logits_.resize(static_cast<size_t>(model.hparams().n_vocab));
}

void LlamaContext::truncate(int64_t pos) {
  cache_.truncate(pos);
  if (router_) router_->truncate(cache_.n_past());
}

void LlamaContext::set_routing(TokenRouter* router, const ExpertWeights* experts) {
  if ((router == nullptr) != (experts == nullptr)) fail("Read-ME routing needs both a router and expert weights");
  router_ = router;
  expert_weights_ = experts;
  batch_.set_experts(experts);
  if (router_) router_->truncate(cache_.n_past());
}

const float* LlamaContext::forward(const int32_t* tokens, int64_t n_tokens, int64_t logits_from) {
  const LlamaHparams& hp = model_.hparams();
  if (n_tokens <= 0) fail("forward: no tokens");
  if (cache_.n_past() + n_tokens > opt_.n_ctx)
    fail("context of {} tokens exceeded: {} tokens in the cache + {} new", opt_.n_ctx, cache_.n_past(), n_tokens);
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
    router_->route(tokens, n_tokens, cache_.n_past(), experts_.data());
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
    BatchSegment seg{&cache_, tokens + c0, n, experts_.empty() ? nullptr : experts_.data() + c0,
                     std::min(std::max<int64_t>(logits_from - c0, 0), n)};
    batch_.forward(&seg, 1, logits_.data() + std::max<int64_t>(c0 - logits_from, 0) * hp.n_vocab);
  }
  return logits_.data();
}

void BatchForward::ffn_rows(int l, const float* in, int64_t m, float* out, int32_t expert) {
  const LlamaHparams& hp = model_.hparams();
  const int64_t ff = hp.n_ff;
  if (expert != kDenseFfn) {
    // Read-ME expert: F_e(x) = W_down_e (SiLU(W_gate_e x) * W_up_e x), S_e of the n_ff neurons.
    const ExpertFfn& E = expert_weights_->expert(l, expert);
    const int64_t s = E.size();
    matmul_parts({{&E.gate, gate_.data()}, {&E.up, up_.data()}}, in, m, ws_);  // [m][S_e] each
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
  matmul_parts({{&L.w_gate, gate_.data(), ids, n_ids}, {&L.w_up, up_.data(), ids, n_ids}}, in, m, ws_);  // [m][D] each
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

void BatchForward::group_by_expert(const int32_t* experts, int64_t n) {
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

void BatchForward::ffn_block(int l, int64_t n, bool routed) {
  const int64_t d = model_.hparams().n_embd;
  if (!routed) {
    ffn_rows(l, h_.data(), n, h_.data(), kDenseFfn);  // h is read fully before the output is written
    for (int64_t i = 0; i < n * d; ++i) x_[static_cast<size_t>(i)] += h_[static_cast<size_t>(i)];
    return;
  }
  // Tokens are grouped by expert once per batch (group_by_expert); every layer reuses the groups.
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
