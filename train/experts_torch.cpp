// Read-ME expert fine-tuning in libtorch: the Llama backbone with a masked dense FFN, the frozen
// router, the training loop and the re-export (contract in train/experts.h).
#include "train/torch_headers.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <random>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/progress.h"
#include "moe/format/hf_checkpoint.h"
#include "moe/format/safetensors.h"
#include "moe/format/safetensors_writer.h"
#include "moe/kernels/quantize.h"
#include "moe/model/readme_model.h"
#include "train/experts.h"
#include "train/router_module.h"
#include "train/token_data.h"
#include "train/torch_ops.h"

namespace lookahead::train {

namespace {

namespace fs = std::filesystem;

std::string layer_name(int64_t l, const std::string& rest) { return "model.layers." + std::to_string(l) + "." + rest; }

// A whole tensor widened to an F32 torch tensor of its row-major shape.
torch::Tensor to_f32(const moe::TensorView& t) {
  std::vector<int64_t> shape(t.shape.rbegin(), t.shape.rend());
  auto out = torch::empty(shape);
  moe::dequantize_row(t.type, t.data, out.data_ptr<float>(), out.numel());
  return out;
}

// The Read-ME model as libtorch tensors: backbone, dense FFN, neuron masks and router.
struct ReadMeTorch {
  std::unique_ptr<moe::ReadMeModel> source;
  moe::LlamaHparams hp;
  int64_t n_expert = 0;
  torch::Tensor embed, out_norm, lm_head;  // lm_head undefined when tied
  struct Layer {
    torch::Tensor attn_norm, wq, wk, wv, wo, ffn_norm, gate, up, down;  // [out][in]
    torch::Tensor masks;                                                 // [N][D], 1 where expert e has neuron j
  };
  std::vector<Layer> layers;
  std::shared_ptr<RouterModule> router;

  explicit ReadMeTorch(const std::string& dir) {
    source = std::make_unique<moe::ReadMeModel>(dir);
    const auto& src = source->source();
    hp = src.hparams();
    n_expert = source->n_expert();
    auto raw = [&](const std::string& name) -> const moe::TensorView& {
      const moe::TensorView* t = src.raw_tensor(name);
      if (!t) fail("{}: missing tensor '{}'", dir, name);
      return *t;
    };
    embed = to_f32(raw("model.embed_tokens.weight"));
    out_norm = to_f32(raw("model.norm.weight"));
    if (!hp.tied_embeddings) lm_head = to_f32(raw("lm_head.weight"));
    const int64_t d = hp.n_embd, ff = hp.n_ff;
    for (int64_t l = 0; l < hp.n_layer; ++l) {
      Layer y;
      y.attn_norm = to_f32(raw(layer_name(l, "input_layernorm.weight")));
      y.ffn_norm = to_f32(raw(layer_name(l, "post_attention_layernorm.weight")));
      y.wq = to_f32(raw(layer_name(l, "self_attn.q_proj.weight")));
      y.wk = to_f32(raw(layer_name(l, "self_attn.k_proj.weight")));
      y.wv = to_f32(raw(layer_name(l, "self_attn.v_proj.weight")));
      y.wo = to_f32(raw(layer_name(l, "self_attn.o_proj.weight")));
      y.masks = torch::zeros({n_expert, ff});
      const bool dense = src.raw_tensor(layer_name(l, "mlp.gate_proj.weight")) != nullptr;
      if (dense) {
        y.gate = to_f32(raw(layer_name(l, "mlp.gate_proj.weight")));
        y.up = to_f32(raw(layer_name(l, "mlp.up_proj.weight")));
        y.down = to_f32(raw(layer_name(l, "mlp.down_proj.weight")));
      } else {
        // Experts share the dense rows they were cut from: rebuild the dense FFN from them
        // (neurons in no expert stay zero; no token ever uses them).
        y.gate = torch::zeros({ff, d});
        y.up = torch::zeros({ff, d});
        y.down = torch::zeros({d, ff});
      }
      for (int32_t e = 0; e < n_expert; ++e) {
        const auto& ids = source->neurons(static_cast<int>(l), e);
        auto index = torch::tensor(std::vector<int64_t>(ids.begin(), ids.end()), torch::kInt64);
        y.masks[e].index_fill_(0, index, 1.0);
        if (!dense) {
          y.gate.index_copy_(0, index, to_f32(raw(moe::expert_tensor_name(static_cast<int>(l), "gate", e))));
          y.up.index_copy_(0, index, to_f32(raw(moe::expert_tensor_name(static_cast<int>(l), "up", e))));
          y.down.index_copy_(1, index, to_f32(raw(moe::expert_tensor_name(static_cast<int>(l), "down", e))));
        }
      }
      layers.push_back(std::move(y));
    }
    const auto& rc = source->config().router;
    RouterConfig c;
    c.n_vocab = rc.n_vocab;
    c.n_expert = rc.n_expert;
    c.n_head = rc.n_head;
    c.embedding_dim = rc.d_model;
    c.inter_dim = rc.d_inter;
    c.normalizer = rc.normalizer;
    c.hidden_act = rc.swiglu ? "swiglu" : "silu";
    c.max_positions = rc.max_positions;
    c.rope_theta = rc.rope_theta;
    c.rms_eps = rc.rms_eps;
    router = std::make_shared<RouterModule>(c);
    load_router_weights(*router, [&](const std::string& name) { return src.raw_tensor(name); }, dir);
  }

  // Top-1 experts [B][T] of windows fed from position 0 (the frozen router).
  torch::Tensor route(const torch::Tensor& tokens) const {
    torch::NoGradGuard no_grad;
    return router->forward(tokens).argmax(-1);
  }

  // tokens, experts [B][T] -> logits [B][T][V].
  torch::Tensor forward(const torch::Tensor& tokens, const torch::Tensor& experts) const {
    const int64_t b = tokens.size(0), t = tokens.size(1), d = hp.n_embd, hd = hp.head_dim;
    const int64_t nh = hp.n_head, nkv = hp.n_head_kv;
    auto x = embed.index_select(0, tokens.reshape({-1})).reshape({b, t, d});
    auto [cos, sin] = rope_tables(t, hd, hp.rope_theta);
    const auto flat_experts = experts.reshape({-1});
    for (const Layer& y : layers) {
      auto h = rms_norm(x, y.attn_norm, hp.rms_eps);
      auto q = apply_rope(torch::nn::functional::linear(h, y.wq).reshape({b, t, nh, hd}).transpose(1, 2), cos, sin);
      auto k = apply_rope(torch::nn::functional::linear(h, y.wk).reshape({b, t, nkv, hd}).transpose(1, 2), cos, sin);
      auto v = torch::nn::functional::linear(h, y.wv).reshape({b, t, nkv, hd}).transpose(1, 2);
      if (nkv != nh) {  // grouped-query attention: query head i reads kv head i / (nh / nkv)
        k = k.repeat_interleave(nh / nkv, 1);
        v = v.repeat_interleave(nh / nkv, 1);
      }
      auto att = causal_attention(q, k, v, std::sqrt(static_cast<double>(hd))).transpose(1, 2).reshape({b, t, nh * hd});
      x = x + torch::nn::functional::linear(att, y.wo);
      h = rms_norm(x, y.ffn_norm, hp.rms_eps);
      auto a = torch::silu(torch::nn::functional::linear(h, y.gate)) * torch::nn::functional::linear(h, y.up);
      a = a * y.masks.index_select(0, flat_experts).reshape({b, t, hp.n_ff});  // the token's expert only
      x = x + torch::nn::functional::linear(a, y.down);
    }
    x = rms_norm(x, out_norm, hp.rms_eps);
    return torch::nn::functional::linear(x, lm_head.defined() ? lm_head : embed);
  }

  // (name, tensor) of every trainable tensor.
  std::vector<std::pair<std::string, torch::Tensor>> trainable(bool attention) {
    std::vector<std::pair<std::string, torch::Tensor>> out;
    for (int64_t l = 0; l < static_cast<int64_t>(layers.size()); ++l) {
      Layer& y = layers[static_cast<size_t>(l)];
      out.emplace_back(layer_name(l, "mlp.gate_proj.weight"), y.gate);
      out.emplace_back(layer_name(l, "mlp.up_proj.weight"), y.up);
      out.emplace_back(layer_name(l, "mlp.down_proj.weight"), y.down);
      if (attention) {
        out.emplace_back(layer_name(l, "self_attn.q_proj.weight"), y.wq);
        out.emplace_back(layer_name(l, "self_attn.k_proj.weight"), y.wk);
        out.emplace_back(layer_name(l, "self_attn.v_proj.weight"), y.wv);
        out.emplace_back(layer_name(l, "self_attn.o_proj.weight"), y.wo);
        out.emplace_back(layer_name(l, "input_layernorm.weight"), y.attn_norm);
        out.emplace_back(layer_name(l, "post_attention_layernorm.weight"), y.ffn_norm);
      }
    }
    return out;
  }
};

struct Window {
  int64_t begin = 0, len = 0;
};

// Next-token cross-entropy summed over real positions, and their count.
std::pair<torch::Tensor, int64_t> lm_loss_sum(const ReadMeTorch& m, const std::vector<int32_t>& tokens,
                                              const std::vector<Window>& windows, int64_t seq_len,
                                              std::vector<int64_t>* expert_counts = nullptr) {
  const auto b = static_cast<int64_t>(windows.size());
  auto ids = torch::zeros({b, seq_len}, torch::kInt64);
  auto target = torch::full({b, seq_len}, -100, torch::kInt64);  // -100: ignored
  auto id = ids.accessor<int64_t, 2>();
  auto tg = target.accessor<int64_t, 2>();
  int64_t count = 0;
  for (int64_t i = 0; i < b; ++i) {
    const Window& w = windows[static_cast<size_t>(i)];
    for (int64_t t = 0; t < w.len; ++t) id[i][t] = tokens[static_cast<size_t>(w.begin + t)];
    for (int64_t t = 0; t + 1 < w.len; ++t, ++count) tg[i][t] = tokens[static_cast<size_t>(w.begin + t + 1)];
  }
  auto experts = m.route(ids);
  if (expert_counts) {
    auto e = experts.accessor<int64_t, 2>();
    for (int64_t i = 0; i < b; ++i)
      for (int64_t t = 0; t < windows[static_cast<size_t>(i)].len; ++t) (*expert_counts)[static_cast<size_t>(e[i][t])] += 1;
  }
  auto logits = m.forward(ids, experts);
  auto loss = torch::nn::functional::cross_entropy(
      logits.reshape({-1, logits.size(-1)}), target.reshape({-1}),
      torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100).reduction(torch::kSum));
  return {loss, count};
}

double eval_loss(const ReadMeTorch& m, const std::vector<int32_t>& tokens, const std::vector<Window>& windows, int64_t seq_len,
                 int64_t batch, int64_t* count_out) {
  torch::NoGradGuard no_grad;
  double sum = 0;
  int64_t count = 0;
  for (size_t i = 0; i < windows.size(); i += static_cast<size_t>(batch)) {
    std::vector<Window> part(windows.begin() + static_cast<std::ptrdiff_t>(i),
                             windows.begin() + static_cast<std::ptrdiff_t>(std::min(windows.size(), i + static_cast<size_t>(batch))));
    auto [loss, n] = lm_loss_sum(m, tokens, part, seq_len);
    sum += loss.item<double>();
    count += n;
  }
  *count_out = count;
  return count ? sum / static_cast<double>(count) : 0.0;
}

// Removes a directory on scope exit unless released.
struct TempDir {
  fs::path path;
  bool keep = false;
  ~TempDir() {
    if (!keep) {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  }
};

// Writes the fine-tuned directory: overrides (HF name -> F32 tensor) replace those tensors.
void write_finetuned(const std::string& dir, const std::string& out, const std::map<std::string, torch::Tensor>& overrides,
                     const nlohmann::json& provenance) {
  std::error_code ec;
  if (fs::exists(out, ec)) fail("{}: already exists; choose a new output directory or remove it", out);
  const fs::path in_file = fs::path(dir) / "model.safetensors";
  if (!fs::exists(in_file, ec))
    fail("{}: no model.safetensors (sharded Read-ME directories are not supported by the fine-tuner)", dir);
  moe::SafetensorsFile in(in_file.string());

  TempDir tmp{fs::path(out + ".tmp." + std::to_string(::getpid()))};
  fs::remove_all(tmp.path, ec);
  if (!fs::create_directories(tmp.path, ec) || ec) fail("{}: cannot create: {}", tmp.path.string(), ec.message());
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (!entry.is_regular_file() || entry.path().filename() == "model.safetensors") continue;
    fs::copy_file(entry.path(), tmp.path / entry.path().filename(), ec);
    if (ec) fail("{}: cannot copy to {}: {}", entry.path().string(), tmp.path.string(), ec.message());
  }

  std::vector<const moe::TensorView*> order;
  for (const auto& t : in.tensors()) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->file_offset < b->file_offset; });
  moe::SafetensorsWriter w;
  for (const auto& [k, v] : in.metadata()) w.set_metadata(k, v);
  w.set_metadata("readme.finetune", provenance.dump());
  for (const moe::TensorView* t : order) {
    std::vector<int64_t> shape(t->shape.rbegin(), t->shape.rend());
    auto it = overrides.find(t->name);
    if (it == overrides.end()) {
      w.add_tensor(t->name, t->type, shape, t->data);
      continue;
    }
    const torch::Tensor& v = it->second;
    if (v.sizes().vec() != shape) fail("{}: internal: trained tensor '{}' changed shape", dir, t->name);
    const moe::TensorType type = t->type;
    w.add_tensor(t->name, type, shape, [v, type](uint8_t* dst) { moe::quantize_row(type, v.data_ptr<float>(), dst, v.numel()); });
  }
  w.write((tmp.path / "model.safetensors").string(), "write");
  fs::rename(tmp.path, out, ec);
  if (ec) fail("{}: cannot rename {} to it: {}", out, tmp.path.string(), ec.message());
  tmp.keep = true;
}

double cosine_lr(const ExpertTrainOptions& o, int64_t step) {
  if (step < o.warmup) return o.lr * static_cast<double>(step + 1) / static_cast<double>(o.warmup);
  const double span = static_cast<double>(std::max<int64_t>(1, o.steps - o.warmup));
  return o.lr * 0.5 * (1.0 + std::cos(M_PI * static_cast<double>(step - o.warmup) / span));
}

ExpertTrainResult finetune_impl(const ExpertTrainOptions& o) {
  if (o.steps <= 0) fail("--steps must be > 0 (got {})", o.steps);
  if (o.batch <= 0) fail("--batch must be > 0 (got {})", o.batch);
  if (o.seq_len < 2) fail("--seq-len must be >= 2 (got {})", o.seq_len);
  if (o.warmup < 0 || o.warmup >= o.steps) fail("--warmup must be in [0, steps) (got {})", o.warmup);
  if (!(o.lr > 0)) fail("--lr must be > 0 (got {})", o.lr);
  if (!(o.weight_decay >= 0)) fail("--weight-decay must be >= 0 (got {})", o.weight_decay);
  if (!(o.holdout >= 0 && o.holdout < 1)) fail("--holdout must be in [0, 1) (got {})", o.holdout);
  if (o.eval_windows < 0) fail("--eval-windows must be >= 0 (got {})", o.eval_windows);
  if (o.threads <= 0) fail("--threads must be > 0 (got {})", o.threads);
  if (o.out.empty()) fail("--out is required");
  std::error_code ec;
  if (fs::exists(o.out, ec)) fail("{}: already exists; choose a new output directory or remove it", o.out);

  torch::set_num_threads(o.threads);
  torch::manual_seed(o.seed);
  ReadMeTorch m(o.model);
  if (o.seq_len > m.router->c.max_positions)
    fail("--seq-len {} exceeds the router's context of {} positions", o.seq_len, m.router->c.max_positions);
  const TokenData data = load_token_data(o.data, m.hp.n_vocab);

  // Held-out sequences (the last ones) for the eval loss; training samples windows from the rest.
  const int64_t n_seq = data.n_sequences();
  int64_t n_eval_seq = o.holdout > 0 && n_seq >= 2 ? std::max<int64_t>(1, std::llround(o.holdout * static_cast<double>(n_seq))) : 0;
  n_eval_seq = std::min(n_eval_seq, n_seq - 1);
  const int64_t n_train_seq = n_seq - n_eval_seq;
  const int64_t train_end = data.seq_start[static_cast<size_t>(n_train_seq)];
  if (train_end < 2) fail("{}: the training sequences hold fewer than 2 tokens", o.data);
  std::vector<Window> eval;
  for (int64_t s = n_train_seq; s < n_seq && static_cast<int64_t>(eval.size()) < o.eval_windows; ++s)
    for (int64_t p = data.seq_start[static_cast<size_t>(s)];
         p + 1 < data.seq_start[static_cast<size_t>(s + 1)] && static_cast<int64_t>(eval.size()) < o.eval_windows; p += o.seq_len)
      eval.push_back({p, std::min<int64_t>(o.seq_len, data.seq_start[static_cast<size_t>(s + 1)] - p)});

  ExpertTrainResult r;
  for (int32_t e = 0; e < m.n_expert; ++e) r.experts.push_back(m.source->config().experts[static_cast<size_t>(e)]);
  r.eval_loss_before = eval_loss(m, data.tokens, eval, o.seq_len, o.batch, &r.eval_tokens);

  auto trainable = m.trainable(o.train_attention);
  std::vector<torch::Tensor> decay, no_decay;
  for (auto& [name, t] : trainable) {
    t.set_requires_grad(true);
    r.trainable_parameters += t.numel();
    (t.dim() >= 2 ? decay : no_decay).push_back(t);
  }
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(o.lr).weight_decay(o.weight_decay)));
  if (!no_decay.empty())
    groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(o.lr).weight_decay(0.0)));
  torch::optim::AdamW opt(std::move(groups), torch::optim::AdamWOptions(o.lr));

  std::mt19937_64 rng(o.seed);
  std::uniform_int_distribution<int64_t> pick_token(0, train_end - 1);
  auto draw = [&] {
    const int64_t tok = pick_token(rng);
    const int64_t s = std::upper_bound(data.seq_start.begin(), data.seq_start.end(), tok) - data.seq_start.begin() - 1;
    const int64_t begin = data.seq_start[static_cast<size_t>(s)], end = data.seq_start[static_cast<size_t>(s + 1)];
    const int64_t start = std::uniform_int_distribution<int64_t>(begin, std::max(begin, end - o.seq_len))(rng);
    return Window{start, std::min(o.seq_len, end - start)};
  };

  std::vector<int64_t> expert_counts(static_cast<size_t>(m.n_expert), 0);
  ProgressBar bar("experts", static_cast<uint64_t>(o.steps), o.progress);
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<Window> windows(static_cast<size_t>(o.batch));
  for (int64_t step = 0; step < o.steps; ++step) {
    for (auto& w : windows) w = draw();
    for (auto& group : opt.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(cosine_lr(o, step));
    opt.zero_grad();
    auto [sum, count] = lm_loss_sum(m, data.tokens, windows, o.seq_len, &expert_counts);
    if (count == 0) continue;  // only one-token windows drawn: nothing to predict
    auto loss = sum / static_cast<double>(count);
    loss.backward();
    opt.step();
    const float value = loss.item<float>();
    if (!std::isfinite(value)) fail("expert fine-tuning diverged: loss {} at step {} (lower --lr?)", value, step);
    r.loss.push_back(value);
    bar.advance();
  }
  bar.finish();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.ms_per_step = 1000.0 * r.seconds / static_cast<double>(o.steps);
  if (!r.loss.empty()) {
    const size_t tenth = std::max<size_t>(1, r.loss.size() / 10);
    for (size_t i = 0; i < tenth; ++i) {
      r.loss_first += r.loss[i] / static_cast<double>(tenth);
      r.loss_last += r.loss[r.loss.size() - tenth + i] / static_cast<double>(tenth);
    }
  }
  int64_t total = 0;
  for (auto c : expert_counts) total += c;
  for (auto c : expert_counts) r.expert_share.push_back(total ? static_cast<double>(c) / static_cast<double>(total) : 0.0);
  int64_t eval_count = 0;
  r.eval_loss_after = eval_loss(m, data.tokens, eval, o.seq_len, o.batch, &eval_count);

  // Re-export: the dense FFN where the input has it, each expert's rows/columns cut from it, and
  // the attention tensors when they were trained.
  std::map<std::string, torch::Tensor> overrides;
  const auto& src = m.source->source();
  for (auto& [name, t] : trainable) {
    if (src.raw_tensor(name)) overrides[name] = t.detach().contiguous();
  }
  for (int64_t l = 0; l < m.hp.n_layer; ++l) {
    const auto& y = m.layers[static_cast<size_t>(l)];
    for (int32_t e = 0; e < m.n_expert; ++e) {
      const auto& ids = m.source->neurons(static_cast<int>(l), e);
      auto index = torch::tensor(std::vector<int64_t>(ids.begin(), ids.end()), torch::kInt64);
      overrides[moe::expert_tensor_name(static_cast<int>(l), "gate", e)] = y.gate.detach().index_select(0, index).contiguous();
      overrides[moe::expert_tensor_name(static_cast<int>(l), "up", e)] = y.up.detach().index_select(0, index).contiguous();
      overrides[moe::expert_tensor_name(static_cast<int>(l), "down", e)] = y.down.detach().index_select(1, index).contiguous();
    }
  }
  nlohmann::json provenance = {{"steps", o.steps},          {"lr", o.lr},           {"weight_decay", o.weight_decay},
                               {"batch", o.batch},          {"seq_len", o.seq_len}, {"seed", o.seed},
                               {"warmup", o.warmup},        {"threads", o.threads}, {"train_attention", o.train_attention},
                               {"data", fs::path(o.data).filename().string()}};
  write_finetuned(o.model, o.out, overrides, provenance);
  return r;
}

}  // namespace

ExpertTrainResult finetune_experts(const ExpertTrainOptions& options) {
  return torch_boundary("expert fine-tuning", [&] { return finetune_impl(options); });
}

std::vector<float> readme_logits(const std::string& dir, const std::vector<int32_t>& tokens, std::vector<int32_t>* experts,
                                 int threads) {
  return torch_boundary("Read-ME logits", [&] {
    torch::set_num_threads(threads);
    torch::NoGradGuard no_grad;
    ReadMeTorch m(dir);
    if (tokens.empty()) fail("Read-ME logits: no tokens");
    auto ids = torch::empty({1, static_cast<int64_t>(tokens.size())}, torch::kInt64);
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (tokens[i] < 0 || tokens[i] >= m.hp.n_vocab) fail("token {} is outside the vocabulary [0, {})", tokens[i], m.hp.n_vocab);
      ids[0][static_cast<int64_t>(i)] = tokens[i];
    }
    auto e = m.route(ids);
    if (experts) {
      experts->clear();
      for (size_t i = 0; i < tokens.size(); ++i) experts->push_back(static_cast<int32_t>(e[0][static_cast<int64_t>(i)].item<int64_t>()));
    }
    auto z = m.forward(ids, e)[0].contiguous();
    return std::vector<float>(z.data_ptr<float>(), z.data_ptr<float>() + z.numel());
  });
}

}  // namespace lookahead::train
