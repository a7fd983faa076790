// Read-ME expert training in libtorch: the Llama backbone with per-expert FFNs (the student) and
// with the dense FFN (the teacher), the frozen router, the loss (LM and distillation), the training
// loop with checkpoints and the held-out curve, and the re-export (contract in train/experts.h).
#include "train/torch_headers.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <random>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/staging_dir.h"
#include "moe/checkpoint/hf_checkpoint.h"
#include "moe/format/safetensors.h"
#include "moe/format/safetensors_writer.h"
#include "moe/kernels/quantize.h"
#include "moe/model/loaded_model.h"
#include "moe/model/readme_model.h"
#include "train/experts.h"
#include "train/router_module.h"
#include "train/token_data.h"
#include "train/torch_ops.h"

namespace lookahead::train {

namespace {

namespace fs = std::filesystem;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string layer_name(int64_t l, const std::string& rest) { return "model.layers." + std::to_string(l) + "." + rest; }

// A whole tensor widened to an F32 torch tensor of its row-major shape.
torch::Tensor to_f32(const moe::TensorView& t) {
  std::vector<int64_t> shape(t.shape.rbegin(), t.shape.rend());
  auto out = torch::empty(shape);
  moe::dequantize_row(t.type, t.data, out.data_ptr<float>(), out.numel());
  return out;
}

// SwiGLU FFN weights: gate, up [S][d], down [d][S].
struct Ffn {
  torch::Tensor gate, up, down;
  torch::Tensor operator()(const torch::Tensor& h) const {
    namespace F = torch::nn::functional;
    return F::linear(torch::silu(F::linear(h, gate)) * F::linear(h, up), down);
  }
};

// Attention block weights and the layer's two norms.
struct Attention {
  torch::Tensor attn_norm, wq, wk, wv, wo, ffn_norm;  // [out][in]; norms [d]
  Attention clone() const { return {attn_norm.clone(), wq.clone(), wk.clone(), wv.clone(), wo.clone(), ffn_norm.clone()}; }
};

// A window batch's routing: top-1 experts and the flat positions grouped by expert.
struct Routing {
  torch::Tensor experts;       // [B][T] int64
  torch::Tensor order;         // [B*T] flat positions, expert 0's first (ascending within an expert)
  torch::Tensor inverse;       // [B*T] position of each flat position in `order`
  std::vector<int64_t> count;  // tokens per expert
};

// The student and its teacher as libtorch tensors: backbone, per-expert FFNs, the dense FFN (the
// teacher's, when there is one) and the router.
//
// The student is a Read-ME directory (experts + router), or a plain dense Hugging Face directory
// (the same-active-size baseline of `moe prune`): then its own FFN (mlp.*) is the one "expert"
// every token goes through, with no router. The teacher is the student directory's own dense FFN
// and attention, or, with `teacher_dir`, another directory's (the unpruned parent for a pruned
// baseline), which must share the student's shape, embeddings and output head.
struct ReadMeTorch {
  std::unique_ptr<moe::ReadMeModel> readme;    // Read-ME student (null for a dense student)
  std::unique_ptr<moe::HfCheckpoint> plain;    // dense student (null for a Read-ME student)
  std::unique_ptr<moe::HfCheckpoint> teacher;  // teacher_dir (null: the student's directory)
  moe::LlamaHparams hp;
  int64_t n_expert = 0;
  std::vector<std::string> expert_names;
  bool has_dense = false;
  torch::Tensor embed, out_norm, lm_head;  // lm_head undefined when tied
  struct Layer {
    Attention attn;          // the student's (trained with train_attention)
    Attention teacher_attn;  // the teacher's: the same tensors, or frozen copies (freeze_teacher_attention)
    Ffn dense;               // the teacher's FFN (undefined without one)
    std::vector<Ffn> experts;
  };
  std::vector<Layer> layers;
  std::shared_ptr<RouterModule> router;  // null for a dense student: every token takes expert 0

  explicit ReadMeTorch(const std::string& dir, const std::string& teacher_dir = "") {
    if (moe::is_readme_dir(dir)) {
      readme = std::make_unique<moe::ReadMeModel>(dir);
      n_expert = readme->n_expert();
      expert_names = readme->config().experts;
    } else {
      plain = std::make_unique<moe::HfCheckpoint>(dir);
      n_expert = 1;
      expert_names = {"dense"};
    }
    const moe::HfCheckpoint& src = readme ? readme->source() : *plain;
    hp = src.hparams();
    auto raw_of = [](const moe::HfCheckpoint& c, const std::string& d, const std::string& name) -> const moe::TensorView& {
      const moe::TensorView* t = c.raw_tensor(name);
      if (!t) fail("{}: missing tensor '{}'", d, name);
      return *t;
    };
    auto raw = [&](const std::string& name) -> const moe::TensorView& { return raw_of(src, dir, name); };
    embed = to_f32(raw("model.embed_tokens.weight"));
    out_norm = to_f32(raw("model.norm.weight"));
    if (!hp.tied_embeddings) lm_head = to_f32(raw("lm_head.weight"));
    if (!teacher_dir.empty()) {
      teacher = std::make_unique<moe::HfCheckpoint>(teacher_dir);
      check_teacher_matches(dir, teacher_dir);
    }
    const moe::HfCheckpoint& tsrc = teacher ? *teacher : src;
    const std::string& tdir = teacher ? teacher_dir : dir;
    // A dense student's own mlp.* is the student; only a separate teacher has a dense FFN then.
    has_dense = (teacher || readme) && tsrc.raw_tensor(layer_name(0, "mlp.gate_proj.weight")) != nullptr;
    auto attention_of = [&](const moe::HfCheckpoint& c, const std::string& d, int64_t l) {
      Attention a;
      a.attn_norm = to_f32(raw_of(c, d, layer_name(l, "input_layernorm.weight")));
      a.ffn_norm = to_f32(raw_of(c, d, layer_name(l, "post_attention_layernorm.weight")));
      a.wq = to_f32(raw_of(c, d, layer_name(l, "self_attn.q_proj.weight")));
      a.wk = to_f32(raw_of(c, d, layer_name(l, "self_attn.k_proj.weight")));
      a.wv = to_f32(raw_of(c, d, layer_name(l, "self_attn.v_proj.weight")));
      a.wo = to_f32(raw_of(c, d, layer_name(l, "self_attn.o_proj.weight")));
      return a;
    };
    for (int64_t l = 0; l < hp.n_layer; ++l) {
      Layer y;
      y.attn = attention_of(src, dir, l);
      y.teacher_attn = teacher ? attention_of(*teacher, teacher_dir, l) : y.attn;
      if (has_dense) {  // every layer then (a missing one is an error naming it)
        y.dense.gate = to_f32(raw_of(tsrc, tdir, layer_name(l, "mlp.gate_proj.weight")));
        y.dense.up = to_f32(raw_of(tsrc, tdir, layer_name(l, "mlp.up_proj.weight")));
        y.dense.down = to_f32(raw_of(tsrc, tdir, layer_name(l, "mlp.down_proj.weight")));
      }
      for (int32_t e = 0; e < n_expert; ++e)
        y.experts.push_back({to_f32(raw(ffn_tensor_name(l, "gate", e))), to_f32(raw(ffn_tensor_name(l, "up", e))),
                             to_f32(raw(ffn_tensor_name(l, "down", e)))});
      layers.push_back(std::move(y));
    }
    if (!readme) return;
    router = std::make_shared<RouterModule>(readme->config().router);
    load_router_weights(*router, [&](const std::string& name) { return src.raw_tensor(name); }, dir);
  }

  // The student's FFN tensor `part` (gate, up, down) of expert e in layer l: the expert's own, or
  // a dense student's mlp.*.
  std::string ffn_tensor_name(int64_t l, const char* part, int32_t e) const {
    if (readme) return moe::expert_tensor_name(static_cast<int>(l), part, e);
    return layer_name(l, std::string("mlp.") + part + "_proj.weight");
  }

  // A separate teacher must be the student's parent: the same backbone shape, and the same
  // embeddings and output head (they are shared, not the teacher's own, in forward()).
  void check_teacher_matches(const std::string& dir, const std::string& teacher_dir) const {
    const moe::LlamaHparams& t = teacher->hparams();
    if (t.n_layer != hp.n_layer || t.n_embd != hp.n_embd || t.n_head != hp.n_head || t.n_head_kv != hp.n_head_kv ||
        t.n_vocab != hp.n_vocab || t.head_dim != hp.head_dim || t.tied_embeddings != hp.tied_embeddings)
      fail("--teacher-model {}: its shape (layers {}, d {}, heads {}/{}, vocab {}) differs from the student {} (layers {}, d {}, "
           "heads {}/{}, vocab {})",
           teacher_dir, t.n_layer, t.n_embd, t.n_head, t.n_head_kv, t.n_vocab, dir, hp.n_layer, hp.n_embd, hp.n_head,
           hp.n_head_kv, hp.n_vocab);
    auto same = [&](const std::string& name, const torch::Tensor& mine) {
      const moe::TensorView* v = teacher->raw_tensor(name);
      if (!v) fail("--teacher-model {}: missing tensor '{}'", teacher_dir, name);
      if (!torch::equal(to_f32(*v), mine))
        fail("--teacher-model {}: '{}' differs from the student's ({}): the teacher must be the model the student was cut from",
             teacher_dir, name, dir);
    };
    same("model.embed_tokens.weight", embed);
    same("model.norm.weight", out_norm);
    if (lm_head.defined()) same("lm_head.weight", lm_head);
  }

  // The teacher keeps the original attention while the student's trains: copies made before any
  // update.
  void freeze_teacher_attention() {
    for (Layer& y : layers) y.teacher_attn = y.attn.clone();
  }

  // Top-1 experts of windows fed from position 0 (the frozen router), grouped for the expert FFNs.
  Routing route(const torch::Tensor& tokens) const {
    torch::NoGradGuard no_grad;
    Routing r;
    r.experts = router ? router->forward(tokens).argmax(-1).contiguous() : torch::zeros_like(tokens, torch::kInt64);
    const int64_t n = r.experts.numel();
    const int64_t* e = r.experts.data_ptr<int64_t>();
    r.count.assign(static_cast<size_t>(n_expert), 0);
    for (int64_t i = 0; i < n; ++i) r.count[static_cast<size_t>(e[i])] += 1;
    std::vector<int64_t> next(static_cast<size_t>(n_expert), 0);
    for (int64_t k = 1; k < n_expert; ++k) next[static_cast<size_t>(k)] = next[static_cast<size_t>(k - 1)] + r.count[static_cast<size_t>(k - 1)];
    r.order = torch::empty({n}, torch::kInt64);
    r.inverse = torch::empty({n}, torch::kInt64);
    int64_t* order = r.order.data_ptr<int64_t>();
    int64_t* inverse = r.inverse.data_ptr<int64_t>();
    for (int64_t i = 0; i < n; ++i) {
      const int64_t slot = next[static_cast<size_t>(e[i])]++;
      order[slot] = i;
      inverse[i] = slot;
    }
    return r;
  }

  // tokens [B][T] -> logits [B][T][V]. With `routing`: the student (each token through its
  // expert's FFN, the student's attention); without: the teacher (dense FFN, teacher attention).
  torch::Tensor forward(const torch::Tensor& tokens, const Routing* routing) const {
    namespace F = torch::nn::functional;
    const int64_t b = tokens.size(0), t = tokens.size(1), d = hp.n_embd, hd = hp.head_dim;
    const int64_t nh = hp.n_head, nkv = hp.n_head_kv;
    auto x = embed.index_select(0, tokens.reshape({-1})).reshape({b, t, d});
    auto [cos, sin] = rope_tables(t, hd, hp.rope_theta);
    for (const Layer& y : layers) {
      const Attention& w = routing ? y.attn : y.teacher_attn;
      auto h = rms_norm(x, w.attn_norm, hp.rms_eps);
      auto q = apply_rope(F::linear(h, w.wq).reshape({b, t, nh, hd}).transpose(1, 2), cos, sin);
      auto k = apply_rope(F::linear(h, w.wk).reshape({b, t, nkv, hd}).transpose(1, 2), cos, sin);
      auto v = F::linear(h, w.wv).reshape({b, t, nkv, hd}).transpose(1, 2);
      if (nkv != nh) {  // grouped-query attention: query head i reads kv head i / (nh / nkv)
        k = k.repeat_interleave(nh / nkv, 1);
        v = v.repeat_interleave(nh / nkv, 1);
      }
      auto att = causal_attention(q, k, v, std::sqrt(static_cast<double>(hd))).transpose(1, 2).reshape({b, t, nh * hd});
      x = x + F::linear(att, w.wo);
      h = rms_norm(x, w.ffn_norm, hp.rms_eps);
      if (!routing) {
        x = x + y.dense(h);
        continue;
      }
      // Gather the tokens by expert, run each expert on its contiguous slice, scatter back.
      auto grouped = h.reshape({b * t, d}).index_select(0, routing->order);
      std::vector<torch::Tensor> parts;
      int64_t offset = 0;
      for (int64_t e = 0; e < n_expert; ++e) {
        const int64_t n = routing->count[static_cast<size_t>(e)];
        if (n == 0) continue;
        parts.push_back(y.experts[static_cast<size_t>(e)](grouped.narrow(0, offset, n)));
        offset += n;
      }
      x = x + torch::cat(parts, 0).index_select(0, routing->inverse).reshape({b, t, d});
    }
    x = rms_norm(x, out_norm, hp.rms_eps);
    return F::linear(x, lm_head.defined() ? lm_head : embed);
  }

  // (name, tensor) of every trainable tensor, in a fixed order.
  std::vector<std::pair<std::string, torch::Tensor>> trainable(bool attention) {
    std::vector<std::pair<std::string, torch::Tensor>> out;
    for (int64_t l = 0; l < static_cast<int64_t>(layers.size()); ++l) {
      Layer& y = layers[static_cast<size_t>(l)];
      for (int32_t e = 0; e < n_expert; ++e) {
        Ffn& f = y.experts[static_cast<size_t>(e)];
        out.emplace_back(ffn_tensor_name(l, "gate", e), f.gate);
        out.emplace_back(ffn_tensor_name(l, "up", e), f.up);
        out.emplace_back(ffn_tensor_name(l, "down", e), f.down);
      }
      if (attention) {
        out.emplace_back(layer_name(l, "self_attn.q_proj.weight"), y.attn.wq);
        out.emplace_back(layer_name(l, "self_attn.k_proj.weight"), y.attn.wk);
        out.emplace_back(layer_name(l, "self_attn.v_proj.weight"), y.attn.wv);
        out.emplace_back(layer_name(l, "self_attn.o_proj.weight"), y.attn.wo);
        out.emplace_back(layer_name(l, "input_layernorm.weight"), y.attn.attn_norm);
        out.emplace_back(layer_name(l, "post_attention_layernorm.weight"), y.attn.ffn_norm);
      }
    }
    return out;
  }
};

struct Window {
  int64_t begin = 0, len = 0;
};

// Token windows as a batch: ids [B][T] (padded with 0), targets [B][T] (-100: none), and the flat
// positions that predict a token.
struct Batch {
  torch::Tensor ids, target, predicted;
  int64_t count = 0;  // predicted tokens
  int64_t fed = 0;    // real tokens
};

Batch make_batch(const std::vector<int32_t>& tokens, const std::vector<Window>& windows, int64_t seq_len) {
  const auto b = static_cast<int64_t>(windows.size());
  Batch out;
  out.ids = torch::zeros({b, seq_len}, torch::kInt64);
  out.target = torch::full({b, seq_len}, -100, torch::kInt64);
  auto id = out.ids.accessor<int64_t, 2>();
  auto tg = out.target.accessor<int64_t, 2>();
  std::vector<int64_t> predicted;
  for (int64_t i = 0; i < b; ++i) {
    const Window& w = windows[static_cast<size_t>(i)];
    out.fed += w.len;
    for (int64_t t = 0; t < w.len; ++t) id[i][t] = tokens[static_cast<size_t>(w.begin + t)];
    for (int64_t t = 0; t + 1 < w.len; ++t) {
      tg[i][t] = tokens[static_cast<size_t>(w.begin + t + 1)];
      predicted.push_back(i * seq_len + t);
    }
  }
  out.count = static_cast<int64_t>(predicted.size());
  out.predicted = torch::tensor(predicted, torch::kInt64);
  return out;
}

// Summed next-token CE and (with `kl`) summed KL(teacher || student) over a batch's predicted
// positions. `expert_counts` gets each expert's real tokens.
struct LossSums {
  torch::Tensor ce, kl;  // kl undefined without `kl`
};

LossSums loss_sums(const ReadMeTorch& m, const Batch& batch, const std::vector<Window>& windows, bool kl,
                   std::vector<int64_t>* expert_counts = nullptr) {
  namespace F = torch::nn::functional;
  const Routing routing = m.route(batch.ids);
  if (expert_counts) {
    auto e = routing.experts.accessor<int64_t, 2>();
    for (size_t i = 0; i < windows.size(); ++i)
      for (int64_t t = 0; t < windows[i].len; ++t) (*expert_counts)[static_cast<size_t>(e[static_cast<int64_t>(i)][t])] += 1;
  }
  const int64_t v = m.hp.n_vocab;
  torch::Tensor teacher_logp;
  if (kl) {  // first, with the teacher's frozen weights, outside the graph
    torch::NoGradGuard no_grad;
    teacher_logp = torch::log_softmax(m.forward(batch.ids, nullptr).reshape({-1, v}).index_select(0, batch.predicted), -1);
  }
  auto logits = m.forward(batch.ids, &routing).reshape({-1, v});
  LossSums out;
  out.ce = F::cross_entropy(logits, batch.target.reshape({-1}), F::CrossEntropyFuncOptions().ignore_index(-100).reduction(torch::kSum));
  if (kl) {
    auto student_logp = torch::log_softmax(logits.index_select(0, batch.predicted), -1);
    out.kl = (teacher_logp.exp() * (teacher_logp - student_logp)).sum();
  }
  return out;
}

// Held-out mean CE and KL to the dense model (NaN without one) per predicted token.
struct EvalLoss {
  double ce = 0, kl = kNaN;
  int64_t count = 0;
};

EvalLoss evaluate(const ReadMeTorch& m, const std::vector<int32_t>& tokens, const std::vector<Window>& windows, int64_t seq_len,
                  int64_t batch) {
  torch::NoGradGuard no_grad;
  double ce = 0, kl = 0;
  EvalLoss out;
  for (size_t i = 0; i < windows.size(); i += static_cast<size_t>(batch)) {
    std::vector<Window> part(windows.begin() + static_cast<std::ptrdiff_t>(i),
                             windows.begin() + static_cast<std::ptrdiff_t>(std::min(windows.size(), i + static_cast<size_t>(batch))));
    const Batch b = make_batch(tokens, part, seq_len);
    if (b.count == 0) continue;
    auto sums = loss_sums(m, b, part, m.has_dense);
    ce += sums.ce.item<double>();
    if (m.has_dense) kl += sums.kl.item<double>();
    out.count += b.count;
  }
  if (out.count > 0) {
    out.ce = ce / static_cast<double>(out.count);
    if (m.has_dense) out.kl = kl / static_cast<double>(out.count);
  }
  return out;
}

// Writes the fine-tuned directory: overrides (HF name -> F32 tensor) replace those tensors.
void write_finetuned(const std::string& dir, const std::string& out, const std::map<std::string, torch::Tensor>& overrides,
                     const nlohmann::json& provenance) {
  StagingDir tmp(out);  // fails if `out` exists; removed unless committed
  std::error_code ec;
  const fs::path in_file = fs::path(dir) / "model.safetensors";
  if (!fs::exists(in_file, ec))
    fail("{}: no model.safetensors (sharded Read-ME directories are not supported by the fine-tuner)", dir);
  moe::SafetensorsFile in(in_file.string());

  for (const auto& entry : fs::directory_iterator(dir)) {
    if (!entry.is_regular_file() || entry.path().filename() == "model.safetensors") continue;
    fs::copy_file(entry.path(), tmp.path() / entry.path().filename(), ec);
    if (ec) fail("{}: cannot copy to {}: {}", entry.path().string(), tmp.path().string(), ec.message());
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
  w.write(tmp.file("model.safetensors"), "write");
  tmp.commit();
}

double cosine_lr(const ExpertTrainOptions& o, int64_t step) {
  if (step < o.warmup) return o.lr * static_cast<double>(step + 1) / static_cast<double>(o.warmup);
  const double span = static_cast<double>(std::max<int64_t>(1, o.steps - o.warmup));
  return o.lr * 0.5 * (1.0 + std::cos(M_PI * static_cast<double>(step - o.warmup) / span));
}

// ---- checkpoints ------------------------------------------------------------------------------

// Everything a resumed run needs besides the trainable tensors and the optimizer.
struct TrainState {
  int64_t step = 0;  // steps done
  std::mt19937_64 rng;
  std::vector<float> loss;
  std::vector<int64_t> expert_counts;
  int64_t train_tokens = 0;
  double seconds = 0;                     // training wall time of the runs before this one
  EvalLoss before;                        // held-out loss at step 0
  double row_loss_sum = 0;                // training loss since the last curve row
  int64_t row_loss_steps = 0;
};

// The options a resumed run must share with the checkpoint (threads may differ; the result is
// then not byte-identical).
nlohmann::json run_fingerprint(const ExpertTrainOptions& o) {
  auto path = [](const std::string& p) { return fs::absolute(p).lexically_normal().string(); };
  nlohmann::json f = {{"model", path(o.model)},      {"data", path(o.data)},         {"steps", o.steps},
          {"lr", o.lr},                  {"weight-decay", o.weight_decay}, {"batch", o.batch},
          {"seq-len", o.seq_len},        {"seed", o.seed},               {"warmup", o.warmup},
          {"train-attention", o.train_attention}, {"teacher", o.teacher}, {"kl-weight", o.kl_weight},
          {"holdout", o.holdout},        {"eval-windows", o.eval_windows}};
  if (!o.teacher_model.empty()) f["teacher-model"] = path(o.teacher_model);  // absent otherwise: older checkpoints resume
  return f;
}

nlohmann::json nan_to_null(double x) { return std::isnan(x) ? nlohmann::json(nullptr) : nlohmann::json(x); }
double null_to_nan(const nlohmann::json& j) { return j.is_null() ? kNaN : j.get<double>(); }

void save_checkpoint(const std::string& path, const nlohmann::json& fingerprint, const TrainState& s,
                     const std::vector<std::pair<std::string, torch::Tensor>>& trainable, const torch::optim::AdamW& opt) {
  torch::serialize::OutputArchive a;
  std::ostringstream rng;
  rng << s.rng;
  nlohmann::json names = nlohmann::json::array();
  for (const auto& [name, t] : trainable) names.push_back(name);
  const nlohmann::json meta = {{"format", "lookahead-train experts checkpoint 1"},
                               {"options", fingerprint},
                               {"step", s.step},
                               {"rng", rng.str()},
                               {"expert_counts", s.expert_counts},
                               {"train_tokens", s.train_tokens},
                               {"seconds", s.seconds},
                               {"eval_before", {{"ce", s.before.ce}, {"kl", nan_to_null(s.before.kl)}, {"count", s.before.count}}},
                               {"row_loss_sum", s.row_loss_sum},
                               {"row_loss_steps", s.row_loss_steps},
                               {"tensors", names}};
  a.write("meta", c10::IValue(meta.dump()));
  a.write("loss", torch::tensor(s.loss.empty() ? std::vector<float>{} : s.loss, torch::kFloat32), /*is_buffer=*/true);
  for (size_t i = 0; i < trainable.size(); ++i) a.write("param/" + std::to_string(i), trainable[i].second.detach(), /*is_buffer=*/true);
  torch::serialize::OutputArchive optimizer(a.compilation_unit());
  opt.save(optimizer);
  a.write("optimizer", optimizer);
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  try {
    a.save_to(tmp);
  } catch (const c10::Error& e) {
    std::error_code ec;
    fs::remove(tmp, ec);
    fail("{}: cannot write the checkpoint: {}", tmp, e.what_without_backtrace());
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    fail("{}: cannot rename {} to it: {}", path, tmp, ec.message());
  }
}

void load_checkpoint(const std::string& path, const nlohmann::json& fingerprint, TrainState& s,
                     const std::vector<std::pair<std::string, torch::Tensor>>& trainable, torch::optim::AdamW& opt) {
  torch::serialize::InputArchive a;
  nlohmann::json meta;
  try {
    a.load_from(path);
    c10::IValue v;
    a.read("meta", v);
    meta = nlohmann::json::parse(v.toStringRef());
  } catch (const std::exception& e) {
    std::string msg = e.what();
    if (auto nl = msg.find('\n'); nl != std::string::npos) msg.resize(nl);
    fail("{}: not a lookahead-train experts checkpoint: {}", path, msg);
  }
  if (meta.value("format", "") != "lookahead-train experts checkpoint 1") fail("{}: not a lookahead-train experts checkpoint", path);
  const auto& saved = meta.at("options");
  for (const auto& [key, value] : fingerprint.items())
    if (!saved.contains(key) || saved.at(key).dump() != value.dump())
      fail("{}: --resume with different options: the checkpoint has --{} {}, this run {}", path, key,
           saved.contains(key) ? saved.at(key).dump() : "(none)", value.dump());
  std::vector<std::string> names = meta.at("tensors").get<std::vector<std::string>>();
  if (names.size() != trainable.size()) fail("{}: the checkpoint holds {} trainable tensors, this model {}", path, names.size(), trainable.size());
  for (size_t i = 0; i < trainable.size(); ++i) {
    if (names[i] != trainable[i].first) fail("{}: trainable tensor {} is '{}' in the checkpoint, '{}' here", path, i, names[i], trainable[i].first);
    torch::Tensor t;
    a.read("param/" + std::to_string(i), t, /*is_buffer=*/true);
    if (!t.sizes().equals(trainable[i].second.sizes())) fail("{}: tensor '{}' has another shape than the model's", path, names[i]);
    torch::NoGradGuard no_grad;
    trainable[i].second.copy_(t);
  }
  torch::serialize::InputArchive optimizer;
  a.read("optimizer", optimizer);
  opt.load(optimizer);
  torch::Tensor loss;
  a.read("loss", loss, /*is_buffer=*/true);
  s.loss.assign(loss.data_ptr<float>(), loss.data_ptr<float>() + loss.numel());
  s.step = meta.at("step").get<int64_t>();
  std::istringstream rng(meta.at("rng").get<std::string>());
  rng >> s.rng;
  if (!rng) fail("{}: unreadable sampler state", path);
  const auto counts = meta.at("expert_counts").get<std::vector<int64_t>>();
  if (counts.size() != s.expert_counts.size()) fail("{}: the checkpoint has {} experts, the model {}", path, counts.size(), s.expert_counts.size());
  s.expert_counts = counts;
  s.train_tokens = meta.at("train_tokens").get<int64_t>();
  s.seconds = meta.at("seconds").get<double>();
  s.before.ce = meta.at("eval_before").at("ce").get<double>();
  s.before.kl = null_to_nan(meta.at("eval_before").at("kl"));
  s.before.count = meta.at("eval_before").at("count").get<int64_t>();
  s.row_loss_sum = meta.at("row_loss_sum").get<double>();
  s.row_loss_steps = meta.at("row_loss_steps").get<int64_t>();
}

// ---- the held-out curve (CSV) -----------------------------------------------------------------

constexpr const char* kCurveHeader = "step,train_tokens,train_loss,heldout_ce,heldout_kl,seconds";

std::string curve_row(const CurvePoint& p) {
  auto num = [](double x) { return std::isnan(x) ? std::string() : fmt::format("{:.6f}", x); };
  return fmt::format("{},{},{},{},{},{:.1f}", p.step, p.train_tokens, num(p.train_loss), num(p.heldout_ce), num(p.heldout_kl),
                     p.seconds);
}

// A new curve file with its header; on resume, the existing rows up to `step` (later ones belong to
// steps the checkpoint does not have).
void start_curve(const std::string& path, bool resume, int64_t step) {
  std::vector<std::string> lines{kCurveHeader};
  if (resume) {
    std::ifstream in(path);
    std::string line;
    bool header = true;
    while (std::getline(in, line)) {
      if (std::exchange(header, false) || line.empty()) continue;
      if (std::stoll(line.substr(0, line.find(','))) <= step) lines.push_back(line);
    }
  }
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::trunc);
    for (const auto& l : lines) out << l << '\n';
    if (!out) fail("{}: cannot write the curve", tmp);
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) fail("{}: cannot rename {} to it: {}", path, tmp, ec.message());
}

void append_curve(const std::string& path, const CurvePoint& p) {
  std::ofstream out(path, std::ios::app);
  out << curve_row(p) << '\n';
  if (!out) fail("{}: cannot append to the curve", path);
}

// ---- the progress line ------------------------------------------------------------------------

std::string duration_text(double s) {
  const auto t = static_cast<int64_t>(std::max(0.0, s));
  if (t >= 3600) return fmt::format("{}h{:02}m", t / 3600, t % 3600 / 60);
  if (t >= 60) return fmt::format("{}m{:02}s", t / 60, t % 60);
  return fmt::format("{}s", t);
}

// "experts step 12/100  loss 3.412  2.1k tok/s  ETA 5m03s" on stderr, on a terminal only.
class StepLine {
 public:
  explicit StepLine(bool enabled) : active_(enabled && isatty(STDERR_FILENO) == 1) {}
  ~StepLine() { finish(); }
  void draw(int64_t step, int64_t steps, double loss, double tokens_per_s, double eta_s, const std::string& note = "") {
    if (!active_) return;
    std::fprintf(stderr, "\r\033[Kexperts step %lld/%lld  loss %.4f  %.0f tok/s  ETA %s%s", static_cast<long long>(step),
                 static_cast<long long>(steps), loss, tokens_per_s, duration_text(eta_s).c_str(), note.c_str());
    std::fflush(stderr);
  }
  void finish() {
    if (!active_) return;
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
    active_ = false;
  }

 private:
  bool active_;
};

// ---- training ---------------------------------------------------------------------------------

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
  if (o.teacher != "none" && o.teacher != "dense") fail("--teacher must be none or dense (got '{}')", o.teacher);
  if (!(o.kl_weight >= 0 && o.kl_weight <= 1)) fail("--kl-weight must be in [0, 1] (got {})", o.kl_weight);
  if (o.eval_every < 0) fail("--eval-every must be >= 0 (got {})", o.eval_every);
  if (o.checkpoint_every < 0) fail("--checkpoint-every must be >= 0 (got {})", o.checkpoint_every);
  if (o.stop_after < 0 || o.stop_after >= o.steps) fail("--stop-after must be in [0, steps) (got {})", o.stop_after);
  if (o.out.empty()) fail("--out is required");
  std::error_code ec;
  if (fs::exists(o.out, ec)) fail("{}: already exists; choose a new output directory or remove it", o.out);
  const std::string ckpt = o.out + ".ckpt";
  if (o.resume && !fs::exists(ckpt, ec)) fail("{}: no checkpoint to resume from (--resume)", ckpt);
  if (!o.resume && fs::exists(ckpt, ec))
    fail("{}: a checkpoint of an earlier run exists; pass --resume to continue it, or remove it", ckpt);

  torch::set_num_threads(o.threads);
  torch::manual_seed(o.seed);
  if (!o.teacher_model.empty() && o.teacher != "dense") fail("--teacher-model needs --teacher dense");
  ReadMeTorch m(o.model, o.teacher_model);
  const bool distil = o.teacher == "dense";
  if (distil && !m.has_dense) {
    if (!m.readme && o.teacher_model.empty())
      fail("--teacher dense: {} is a dense model (no Read-ME experts): name its unpruned parent with --teacher-model", o.model);
    fail("--teacher dense: {} has no dense FFN (model.layers.0.mlp.gate_proj.weight); refactor it with the dense FFN kept "
         "(the default of `lookahead moe refactor`) or use --teacher none",
         o.teacher_model.empty() ? o.model : o.teacher_model);
  }
  if (m.router && o.seq_len > m.router->c.max_positions)
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
  r.distilled = distil;
  r.experts = m.expert_names;

  if (o.train_attention && m.has_dense) m.freeze_teacher_attention();
  auto trainable = m.trainable(o.train_attention);
  std::vector<torch::Tensor> decay, no_decay, params;
  for (auto& [name, t] : trainable) {
    t.set_requires_grad(true);
    r.trainable_parameters += t.numel();
    params.push_back(t);
    (t.dim() >= 2 ? decay : no_decay).push_back(t);
  }
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(o.lr).weight_decay(o.weight_decay)));
  if (!no_decay.empty())
    groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(o.lr).weight_decay(0.0)));
  torch::optim::AdamW opt(std::move(groups), torch::optim::AdamWOptions(o.lr));

  const nlohmann::json fingerprint = run_fingerprint(o);
  TrainState s;
  s.rng.seed(o.seed);
  s.expert_counts.assign(static_cast<size_t>(m.n_expert), 0);
  if (o.resume) {
    load_checkpoint(ckpt, fingerprint, s, trainable, opt);
    r.resumed_from = s.step;
  } else {
    s.before = evaluate(m, data.tokens, eval, o.seq_len, o.batch);
  }
  r.eval_loss_before = s.before.ce;
  r.eval_kl_before = s.before.kl;
  r.eval_tokens = s.before.count;
  if (!o.curve.empty()) {
    start_curve(o.curve, o.resume, s.step);
    if (!o.resume) {
      CurvePoint p{0, 0, kNaN, s.before.ce, s.before.kl, 0.0};
      append_curve(o.curve, p);
      r.curve.push_back(p);
    }
  }

  std::uniform_int_distribution<int64_t> pick_token(0, train_end - 1);
  auto draw = [&] {
    const int64_t tok = pick_token(s.rng);
    const int64_t q = std::upper_bound(data.seq_start.begin(), data.seq_start.end(), tok) - data.seq_start.begin() - 1;
    const int64_t begin = data.seq_start[static_cast<size_t>(q)], end = data.seq_start[static_cast<size_t>(q + 1)];
    const int64_t start = std::uniform_int_distribution<int64_t>(begin, std::max(begin, end - o.seq_len))(s.rng);
    return Window{start, std::min(o.seq_len, end - start)};
  };

  const int64_t last = o.stop_after > 0 ? o.stop_after : o.steps;
  const int64_t first = s.step;
  if (first > last) fail("{}: the checkpoint is at step {}, past --stop-after {}", ckpt, first, last);
  StepLine line(o.progress);
  const auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  double train_seconds = 0;  // this run's optimizer steps, without evaluations and checkpoints
  int64_t run_tokens = 0;
  EvalLoss after;
  bool have_after = false;
  std::vector<Window> windows(static_cast<size_t>(o.batch));
  while (s.step < last) {
    const auto ts = std::chrono::steady_clock::now();
    for (auto& w : windows) w = draw();
    for (auto& group : opt.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(cosine_lr(o, s.step));
    for (auto& p : params) p.mutable_grad() = torch::Tensor();  // none: an expert no token reached is not updated
    const Batch batch = make_batch(data.tokens, windows, o.seq_len);
    if (batch.count > 0) {  // else only one-token windows were drawn: nothing to predict
      auto sums = loss_sums(m, batch, windows, distil, &s.expert_counts);
      auto loss = distil ? (o.kl_weight * sums.kl + (1.0 - o.kl_weight) * sums.ce) / static_cast<double>(batch.count)
                         : sums.ce / static_cast<double>(batch.count);
      loss.backward();
      opt.step();
      const float value = loss.item<float>();
      if (!std::isfinite(value)) fail("expert training diverged: loss {} at step {} (lower --lr?)", value, s.step);
      s.loss.push_back(value);
      s.row_loss_sum += value;
      s.row_loss_steps += 1;
    }
    s.train_tokens += batch.fed;
    run_tokens += batch.fed;
    s.step += 1;
    train_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - ts).count();
    const double tok_s = train_seconds > 0 ? static_cast<double>(run_tokens) / train_seconds : 0.0;
    const double eta = static_cast<double>(last - s.step) * train_seconds / static_cast<double>(s.step - first);
    line.draw(s.step, o.steps, s.loss.empty() ? 0.0 : s.loss.back(), tok_s, eta);

    if (s.step == o.steps || (o.eval_every > 0 && s.step % o.eval_every == 0)) {
      line.draw(s.step, o.steps, s.loss.empty() ? 0.0 : s.loss.back(), tok_s, eta, "  (held-out eval)");
      const EvalLoss e = evaluate(m, data.tokens, eval, o.seq_len, o.batch);
      if (s.step == o.steps) {
        after = e;
        have_after = true;
      }
      CurvePoint p{s.step, s.train_tokens, s.row_loss_steps ? s.row_loss_sum / static_cast<double>(s.row_loss_steps) : kNaN,
                   e.ce, e.kl, s.seconds + elapsed()};
      s.row_loss_sum = 0;
      s.row_loss_steps = 0;
      r.curve.push_back(p);
      if (!o.curve.empty()) append_curve(o.curve, p);
    }
    const bool stop_here = s.step == o.stop_after;
    if (stop_here || (o.checkpoint_every > 0 && s.step % o.checkpoint_every == 0 && s.step < o.steps)) {
      line.draw(s.step, o.steps, s.loss.empty() ? 0.0 : s.loss.back(), tok_s, eta, "  (checkpoint)");
      TrainState saved = s;
      saved.seconds = s.seconds + elapsed();
      save_checkpoint(ckpt, fingerprint, saved, trainable, opt);
    }
  }
  line.finish();

  r.seconds = train_seconds;
  r.ms_per_step = s.step > first ? 1000.0 * train_seconds / static_cast<double>(s.step - first) : 0.0;
  r.tokens_per_second = train_seconds > 0 ? static_cast<double>(run_tokens) / train_seconds : 0.0;
  r.train_tokens = s.train_tokens;
  r.loss = s.loss;
  if (!r.loss.empty()) {
    const size_t tenth = std::max<size_t>(1, r.loss.size() / 10);
    for (size_t i = 0; i < tenth; ++i) {
      r.loss_first += r.loss[i] / static_cast<double>(tenth);
      r.loss_last += r.loss[r.loss.size() - tenth + i] / static_cast<double>(tenth);
    }
  }
  int64_t total = 0;
  for (auto c : s.expert_counts) total += c;
  for (auto c : s.expert_counts) r.expert_share.push_back(total ? static_cast<double>(c) / static_cast<double>(total) : 0.0);
  if (s.step < o.steps) {  // stopped at --stop-after: the checkpoint holds the run
    r.stopped = true;
    r.eval_loss_after = kNaN;
    r.eval_kl_after = kNaN;
    return r;
  }
  if (!have_after) after = evaluate(m, data.tokens, eval, o.seq_len, o.batch);
  r.eval_loss_after = after.ce;
  r.eval_kl_after = after.kl;

  // Re-export: each expert's own tensors, and the attention tensors when they were trained.
  std::map<std::string, torch::Tensor> overrides;
  for (auto& [name, t] : trainable) overrides[name] = t.detach().contiguous();
  nlohmann::json provenance = {{"steps", o.steps},          {"lr", o.lr},           {"weight_decay", o.weight_decay},
                               {"batch", o.batch},          {"seq_len", o.seq_len}, {"seed", o.seed},
                               {"warmup", o.warmup},        {"threads", o.threads}, {"train_attention", o.train_attention},
                               {"teacher", o.teacher},      {"data", fs::path(o.data).filename().string()}};
  if (!o.teacher_model.empty()) provenance["teacher_model"] = fs::path(o.teacher_model).filename().string();
  if (distil) provenance["kl_weight"] = o.kl_weight;
  write_finetuned(o.model, o.out, overrides, provenance);
  fs::remove(ckpt, ec);
  return r;
}

}  // namespace

ExpertTrainResult finetune_experts(const ExpertTrainOptions& options) {
  return torch_boundary("expert training", [&] { return finetune_impl(options); });
}

std::vector<float> readme_logits(const std::string& dir, const std::vector<int32_t>& tokens, std::vector<int32_t>* experts,
                                 int threads, bool dense) {
  return torch_boundary("Read-ME logits", [&] {
    torch::set_num_threads(threads);
    torch::NoGradGuard no_grad;
    ReadMeTorch m(dir);
    if (tokens.empty()) fail("Read-ME logits: no tokens");
    if (dense && !m.has_dense) fail("{}: no dense FFN (mlp.*) to compute dense logits with", dir);
    auto ids = torch::empty({1, static_cast<int64_t>(tokens.size())}, torch::kInt64);
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (tokens[i] < 0 || tokens[i] >= m.hp.n_vocab) fail("token {} is outside the vocabulary [0, {})", tokens[i], m.hp.n_vocab);
      ids[0][static_cast<int64_t>(i)] = tokens[i];
    }
    const Routing routing = m.route(ids);
    if (experts) {
      experts->clear();
      for (size_t i = 0; i < tokens.size(); ++i) experts->push_back(static_cast<int32_t>(routing.experts[0][static_cast<int64_t>(i)].item<int64_t>()));
    }
    auto z = m.forward(ids, dense ? nullptr : &routing)[0].contiguous();
    return std::vector<float>(z.data_ptr<float>(), z.data_ptr<float>() + z.numel());
  });
}

}  // namespace lookahead::train
