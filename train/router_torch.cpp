// The pre-gating router as a torch::nn::Module, its loss, the training loop and the evaluation
// (contract in train/router.h).
#include "train/torch_headers.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <random>

#include <fmt/ranges.h>

#include "common/error.h"
#include "common/progress.h"
#include "moe/format/safetensors.h"
#include "moe/format/safetensors_writer.h"
#include "train/router.h"
#include "train/router_targets.h"
#include "train/router_module.h"
#include "train/torch_ops.h"

namespace lookahead::train {

namespace {

constexpr double kLabelSmoothing = 0.5;
constexpr double kHardWeight = 0.75, kSoftWeight = 0.25;

// z [M][N], d [M][L][N] -> loss per token [M] (formula in router.h; PyTorch's label smoothing:
// (1 - eps) * nll + eps * mean over classes of -log p).
torch::Tensor loss_per_token(const torch::Tensor& z, const torch::Tensor& d) {
  auto logp = torch::log_softmax(z, -1).unsqueeze(1);                      // [M][1][N]
  auto target = d.argmax(-1, /*keepdim=*/true);                             // [M][L][1], ties -> first
  auto nll = -logp.expand(d.sizes()).gather(-1, target).squeeze(-1);         // [M][L]
  auto smooth = -logp.mean(-1);                                              // [M][1]
  auto hard = (1.0 - kLabelSmoothing) * nll + kLabelSmoothing * smooth;      // [M][L]
  auto soft = -(torch::softmax(d, -1) * logp).sum(-1);                       // [M][L]
  return (kHardWeight * hard + kSoftWeight * soft).sum(-1);
}

double cosine_lr(const RouterTrainOptions& o, int64_t step) {
  if (step < o.warmup) return o.lr * static_cast<double>(step + 1) / static_cast<double>(o.warmup);
  const double span = static_cast<double>(std::max<int64_t>(1, o.steps - o.warmup));
  return o.lr * 0.5 * (1.0 + std::cos(M_PI * static_cast<double>(step - o.warmup) / span));
}

void set_lr(torch::optim::AdamW& opt, double lr) {
  for (auto& group : opt.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
}

RouterConfig resolve_config(const RouterTrainOptions& o, const RouterTargets& data) {
  RouterConfig c;
  c.d_model = static_cast<int32_t>(data.embed_dim);
  c.d_inter = 0;
  c.update_from_json(data.router_config, data.path + ": __metadata__ router_config");
  c.n_vocab = data.n_vocab;
  c.n_expert = data.n_expert;
  if (o.width > 0) c.d_model = o.width;
  if (o.heads > 0) c.n_head = o.heads;
  if (o.inter > 0) c.d_inter = o.inter;
  if (c.d_inter <= 0) c.d_inter = c.d_model;
  if (!o.mlp.empty()) {
    if (o.mlp != "silu" && o.mlp != "swiglu") fail("--mlp: expected 'silu' or 'swiglu' (got '{}')", o.mlp);
    c.swiglu = o.mlp == "swiglu";
  }
  if (!o.normalizer.empty()) c.normalizer = parse_normalizer(o.normalizer, c.d_model, c.n_head);
  c.max_positions = static_cast<int32_t>(std::max<int64_t>(c.max_positions, o.seq_len));
  c.validate("router configuration");
  if (c.n_expert < 2) fail("router configuration: a router needs at least 2 experts to choose between (got {})", c.n_expert);
  return c;
}

// One batch of windows: tokens [B][T] int64, targets [B][T][L][N], mask [B][T] (1 = real token).
struct Batch {
  torch::Tensor tokens, targets, mask;
};

// A window [begin, begin + len) of sequence tokens, fed from router position 0.
struct Window {
  int64_t begin = 0, len = 0;
};

Batch make_batch(const RouterTargets& data, const std::vector<Window>& windows, int64_t seq_len) {
  const int64_t b = static_cast<int64_t>(windows.size()), ln = data.n_layer * data.n_expert;
  Batch batch;
  batch.tokens = torch::zeros({b, seq_len}, torch::kInt64);
  batch.targets = torch::zeros({b, seq_len, data.n_layer, data.n_expert});
  batch.mask = torch::zeros({b, seq_len});
  auto tok = batch.tokens.accessor<int64_t, 2>();
  auto mask = batch.mask.accessor<float, 2>();
  float* tgt = batch.targets.data_ptr<float>();
  for (int64_t i = 0; i < b; ++i) {
    const Window& w = windows[i];
    for (int64_t t = 0; t < w.len; ++t) {
      tok[i][t] = data.tokens[w.begin + t];
      mask[i][t] = 1.0f;
    }
    std::memcpy(tgt + i * seq_len * ln, data.targets + w.begin * ln, static_cast<size_t>(w.len * ln) * sizeof(float));
  }
  return batch;
}

torch::Tensor masked_mean_loss(const RouterModule& model, const Batch& batch) {
  auto z = model.forward(batch.tokens);                                    // [B][T][N]
  const int64_t n = z.size(-1);
  auto d = batch.targets.reshape({-1, batch.targets.size(2), n});         // [B*T][L][N]
  auto per_token = loss_per_token(z.reshape({-1, n}), d);                   // [B*T]
  auto mask = batch.mask.reshape({-1});
  return (per_token * mask).sum() / mask.sum();
}

// Every sequence cut into consecutive windows of seq_len (as in training, each from position 0).
std::vector<Window> eval_windows(const RouterTargets& data, int64_t seq_len) {
  std::vector<Window> out;
  for (int64_t s = 0; s < data.n_sequences(); ++s)
    for (int64_t p = data.seq_start[s]; p < data.seq_start[s + 1]; p += seq_len)
      out.push_back({p, std::min<int64_t>(seq_len, data.seq_start[s + 1] - p)});
  return out;
}

void evaluate(const RouterModule& model, const RouterTargets& data, int64_t seq_len, RouterTrainResult& r) {
  torch::NoGradGuard no_grad;
  const auto windows = eval_windows(data, seq_len);
  const int64_t ln = data.n_layer * data.n_expert, n = data.n_expert;
  r.confusion.assign(n, std::vector<int64_t>(n, 0));
  int64_t hit_targets = 0, hit_domain = 0, count = 0;
  std::vector<double> summed(n);
  const size_t chunk = 32;
  for (size_t w0 = 0; w0 < windows.size(); w0 += chunk) {
    std::vector<Window> part(windows.begin() + w0, windows.begin() + std::min(windows.size(), w0 + chunk));
    auto tokens = torch::zeros({static_cast<int64_t>(part.size()), seq_len}, torch::kInt64);
    auto tok = tokens.accessor<int64_t, 2>();
    for (size_t i = 0; i < part.size(); ++i)
      for (int64_t t = 0; t < part[i].len; ++t) tok[i][t] = data.tokens[part[i].begin + t];
    auto experts = model.forward(tokens).argmax(-1).contiguous();  // [B][T]
    auto e = experts.accessor<int64_t, 2>();
    for (size_t i = 0; i < part.size(); ++i) {
      for (int64_t t = 0; t < part[i].len; ++t) {
        const int64_t pos = part[i].begin + t;
        std::fill(summed.begin(), summed.end(), 0.0);
        for (int64_t l = 0; l < data.n_layer; ++l)
          for (int64_t x = 0; x < n; ++x) summed[x] += data.targets[pos * ln + l * n + x];
        const int64_t want = std::max_element(summed.begin(), summed.end()) - summed.begin();
        hit_targets += e[i][t] == want;
        hit_domain += e[i][t] == data.domain[pos];
        r.confusion[data.domain[pos]][e[i][t]] += 1;
        ++count;
      }
    }
  }
  r.eval_tokens = count;
  r.accuracy_targets = count ? static_cast<double>(hit_targets) / static_cast<double>(count) : 0.0;
  r.accuracy_domain = count ? static_cast<double>(hit_domain) / static_cast<double>(count) : 0.0;
}

void write_router(const RouterModule& model, const RouterTrainOptions& o, const RouterTargets& data) {
  moe::SafetensorsWriter writer;
  std::vector<torch::Tensor> keep;  // the writer borrows the bytes until write() returns
  for (const auto& p : model.named_parameters()) {
    keep.push_back(p.value().detach().contiguous());
    writer.add_tensor(kRouterPrefix + p.key(), moe::TensorType::F32, keep.back().sizes().vec(), keep.back().data_ptr<float>());
  }
  writer.set_metadata("router_config", model.c.to_json().dump());
  writer.set_metadata("n_expert", std::to_string(model.c.n_expert));
  if (!data.experts.empty()) {
    std::string names;
    for (size_t i = 0; i < data.experts.size(); ++i) names += (i ? "," : "") + data.experts[i];
    writer.set_metadata("experts", names);
  }
  nlohmann::json training = {{"steps", o.steps},   {"lr", o.lr},           {"weight_decay", o.weight_decay},
                             {"batch", o.batch},   {"seq_len", o.seq_len}, {"seed", o.seed},
                             {"warmup", o.warmup}, {"threads", o.threads}, {"init", "hf_llama_normal_0.02"}};
  writer.set_metadata("router_training", training.dump());
  writer.write(o.out);
}

RouterTrainResult train_router_impl(const RouterTrainOptions& o) {
  if (o.steps <= 0) fail("--steps must be > 0 (got {})", o.steps);
  if (o.batch <= 0) fail("--batch must be > 0 (got {})", o.batch);
  if (o.seq_len <= 0) fail("--seq-len must be > 0 (got {})", o.seq_len);
  if (o.warmup < 0 || o.warmup >= o.steps) fail("--warmup must be in [0, steps) (got {})", o.warmup);
  if (!(o.lr > 0)) fail("--lr must be > 0 (got {})", o.lr);
  if (!(o.weight_decay >= 0)) fail("--weight-decay must be >= 0 (got {})", o.weight_decay);
  if (o.threads <= 0) fail("--threads must be > 0 (got {})", o.threads);
  if (o.out.empty()) fail("--out is required");
  const RouterTargets data = load_router_targets(o.data);

  RouterTrainResult r;
  r.config = resolve_config(o, data);
  torch::set_num_threads(o.threads);
  torch::manual_seed(o.seed);
  RouterModule model(r.config);
  model.init(data.embed, data.embed_dim);
  std::vector<torch::Tensor> decay, no_decay;
  for (auto& p : model.parameters()) {
    r.parameters += p.numel();
    (p.dim() >= 2 ? decay : no_decay).push_back(p);
  }
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(o.lr).weight_decay(o.weight_decay)));
  groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(o.lr).weight_decay(0.0)));
  torch::optim::AdamW opt(std::move(groups), torch::optim::AdamWOptions(o.lr));

  // Windows: a token drawn uniformly (so long sequences are sampled in proportion), then a window
  // start uniform among those that fit in its sequence.
  std::mt19937_64 rng(o.seed);
  std::uniform_int_distribution<int64_t> pick_token(0, data.n_tokens - 1);
  auto draw = [&] {
    const int64_t tok = pick_token(rng);
    const int64_t s = std::upper_bound(data.seq_start.begin(), data.seq_start.end(), tok) - data.seq_start.begin() - 1;
    const int64_t begin = data.seq_start[s], end = data.seq_start[s + 1];
    const int64_t last = std::max(begin, end - o.seq_len);
    const int64_t start = std::uniform_int_distribution<int64_t>(begin, last)(rng);
    return Window{start, std::min(o.seq_len, end - start)};
  };

  ProgressBar bar("router", static_cast<uint64_t>(o.steps), o.progress);
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<Window> windows(static_cast<size_t>(o.batch));
  for (int64_t step = 0; step < o.steps; ++step) {
    for (auto& w : windows) w = draw();
    Batch batch = make_batch(data, windows, o.seq_len);
    set_lr(opt, cosine_lr(o, step));
    opt.zero_grad();
    auto loss = masked_mean_loss(model, batch);
    loss.backward();
    opt.step();
    const float value = loss.item<float>();
    if (!std::isfinite(value)) fail("router training diverged: loss {} at step {} (lower --lr?)", value, step);
    r.loss.push_back(value);
    bar.advance();
  }
  bar.finish();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.ms_per_step = 1000.0 * r.seconds / static_cast<double>(o.steps);
  const size_t tenth = std::max<size_t>(1, r.loss.size() / 10);
  for (size_t i = 0; i < tenth; ++i) {
    r.loss_first += r.loss[i] / static_cast<double>(tenth);
    r.loss_last += r.loss[r.loss.size() - tenth + i] / static_cast<double>(tenth);
  }
  evaluate(model, data, o.seq_len, r);
  write_router(model, o, data);
  return r;
}

}  // namespace

RouterTrainResult train_router(const RouterTrainOptions& options) {
  return torch_boundary("router training", [&] { return train_router_impl(options); });
}

double router_loss(const std::vector<float>& logits, const std::vector<float>& targets, int64_t n_tokens,
                   int64_t n_layer, int64_t n_expert) {
  if (static_cast<int64_t>(logits.size()) != n_tokens * n_expert ||
      static_cast<int64_t>(targets.size()) != n_tokens * n_layer * n_expert)
    fail("router_loss: logits must hold T*N = {} values and targets T*L*N = {} (got {} and {})", n_tokens * n_expert,
         n_tokens * n_layer * n_expert, logits.size(), targets.size());
  return torch_boundary("router loss", [&] {
    torch::NoGradGuard no_grad;
    auto z = torch::from_blob(const_cast<float*>(logits.data()), {n_tokens, n_expert}).to(torch::kFloat64);
    auto d = torch::from_blob(const_cast<float*>(targets.data()), {n_tokens, n_layer, n_expert}).to(torch::kFloat64);
    return loss_per_token(z, d).mean().item<double>();
  });
}

RouterLogits router_logits(const std::string& router_path, const std::vector<int32_t>& tokens, int threads) {
  return torch_boundary("router logits", [&] {
    moe::SafetensorsFile file(router_path);
    RouterLogits out;
    auto meta = file.metadata().find("router_config");
    if (meta == file.metadata().end()) fail("{}: __metadata__ has no router_config (not a lookahead-train router file?)", router_path);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(meta->second);
    } catch (const nlohmann::json::exception& e) {
      fail("{}: __metadata__ router_config is not valid JSON: {}", router_path, e.what());
    }
    out.config.update_from_json(j, router_path + ": router_config");
    if (const auto* e = file.find_tensor(std::string(kRouterPrefix) + "embed.weight"); e && e->shape.size() == 2)
      out.config.n_vocab = e->shape[1];
    out.config.validate(router_path + ": router_config");
    if (tokens.empty()) fail("--tokens: need at least one token id");
    if (static_cast<int64_t>(tokens.size()) > out.config.max_positions)
      fail("--tokens: {} tokens exceed the router's context of {} positions", tokens.size(), out.config.max_positions);
    for (size_t i = 0; i < tokens.size(); ++i)
      if (tokens[i] < 0 || tokens[i] >= out.config.n_vocab)
        fail("--tokens: token {} (position {}) is outside the router vocabulary [0, {})", tokens[i], i, out.config.n_vocab);

    torch::set_num_threads(threads);
    torch::NoGradGuard no_grad;
    RouterModule model(out.config);
    load_router_weights(model, [&](const std::string& name) { return file.find_tensor(name); }, router_path);
    auto ids = torch::empty({1, static_cast<int64_t>(tokens.size())}, torch::kInt64);
    for (size_t i = 0; i < tokens.size(); ++i) ids[0][static_cast<int64_t>(i)] = tokens[i];
    auto z = model.forward(ids)[0].contiguous();  // [T][N]
    out.logits.assign(z.data_ptr<float>(), z.data_ptr<float>() + z.numel());
    const int64_t n = out.config.n_expert;
    for (size_t i = 0; i < tokens.size(); ++i) {
      const float* row = out.logits.data() + i * n;
      out.experts.push_back(static_cast<int32_t>(std::max_element(row, row + n) - row));
    }
    return out;
  });
}

}  // namespace lookahead::train
