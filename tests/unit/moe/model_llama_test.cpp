// The Llama forward pass on a tiny random model: against a naive f64 reference written from the
// equations, batched prefill == token-by-token decode, the FFN hook (observe + neuron subset),
// tied embeddings and context overflow.
#include <gtest/gtest.h>

#include <cmath>
#include <deque>
#include <memory>
#include <map>
#include <random>
#include <tuple>
#include <vector>

#include "common/error.h"
#include "moe/kernels/quantize.h"
#include "moe/model/llama.h"

using namespace lookahead::moe;

namespace {

// An in-memory ModelSource with random weights of one matrix type.
class TinySource : public ModelSource {
 public:
  TinySource(TensorType type, bool tied, uint64_t seed) {
    hp_.n_vocab = 40;
    hp_.n_embd = 64;
    hp_.n_layer = 2;
    hp_.n_head = 4;
    hp_.n_head_kv = 2;
    hp_.head_dim = 16;
    hp_.n_ff = 96;
    hp_.n_ctx_train = 64;
    hp_.rope_theta = 10000.0f;
    hp_.rms_eps = 1e-5f;
    hp_.tied_embeddings = tied;
    rng_.seed(seed);
    const int64_t d = hp_.n_embd, qd = hp_.n_head * hp_.head_dim, kvd = hp_.n_head_kv * hp_.head_dim;
    add("token_embd.weight", type, {d, hp_.n_vocab}, 1.0f);
    add("output_norm.weight", TensorType::F32, {d}, 0.2f, 1.0f);
    if (!tied) add("output.weight", type, {d, hp_.n_vocab}, 0.2f);
    for (int l = 0; l < hp_.n_layer; ++l) {
      const std::string b = "blk." + std::to_string(l) + ".";
      add(b + "attn_norm.weight", TensorType::F32, {d}, 0.2f, 1.0f);
      add(b + "attn_q.weight", type, {d, qd}, 0.3f);
      add(b + "attn_k.weight", type, {d, kvd}, 0.3f);
      add(b + "attn_v.weight", type, {d, kvd}, 0.3f);
      add(b + "attn_output.weight", type, {qd, d}, 0.2f);
      add(b + "ffn_norm.weight", TensorType::F32, {d}, 0.2f, 1.0f);
      add(b + "ffn_gate.weight", type, {d, hp_.n_ff}, 0.3f);
      add(b + "ffn_up.weight", type, {d, hp_.n_ff}, 0.3f);
      add(b + "ffn_down.weight", type, {hp_.n_ff, d}, 0.2f);
    }
  }
  const std::string& path() const override { return path_; }
  const LlamaHparams& hparams() const override { return hp_; }
  const TensorView* find_tensor(const std::string& name) const override {
    auto it = views_.find(name);
    return it == views_.end() ? nullptr : &it->second;
  }
  const Tokenizer& tokenizer() const override { lookahead::fail("no tokenizer"); }
  // The weights as the kernels see them (dequantized), row-major [rows][cols].
  std::vector<float> dense(const std::string& name) const {
    const TensorView& t = views_.at(name);
    std::vector<float> out(static_cast<size_t>(t.elements()));
    dequantize_row(t.type, t.data, out.data(), t.elements());
    return out;
  }
  LlamaHparams hp_;

 private:
  void add(const std::string& name, TensorType type, std::vector<int64_t> shape, float scale, float offset = 0.0f) {
    int64_t n = 1;
    for (auto s : shape) n *= s;
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> f(static_cast<size_t>(n));
    for (auto& v : f) v = offset + scale * normal(rng_);
    auto& bytes = storage_[name];
    bytes.resize(static_cast<size_t>(row_bytes(type, n)));
    quantize_row(type, f.data(), bytes.data(), n);
    TensorView v;
    v.name = name;
    v.type = type;
    v.shape = shape;
    v.data = bytes.data();
    v.bytes = bytes.size();
    views_[name] = v;
  }
  std::string path_ = "<tiny>";
  std::mt19937_64 rng_;
  std::map<std::string, std::vector<uint8_t>> storage_;
  std::map<std::string, TensorView> views_;
};

// y[r] = sum_c W[r][c] x[c]
std::vector<double> matvec(const std::vector<float>& w, const std::vector<double>& x, int64_t rows) {
  const int64_t cols = static_cast<int64_t>(x.size());
  std::vector<double> y(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) y[r] += double{w[r * cols + c]} * x[c];
  return y;
}

std::vector<double> rmsnorm_ref(const std::vector<double>& x, const std::vector<float>& w, double eps) {
  double ss = 0;
  for (double v : x) ss += v * v;
  const double s = 1.0 / std::sqrt(ss / static_cast<double>(x.size()) + eps);
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * s * w[i];
  return y;
}

void rope_ref(std::vector<double>& v, int64_t n_heads, int64_t hd, int64_t pos, double theta) {
  for (int64_t h = 0; h < n_heads; ++h)
    for (int64_t i = 0; i < hd / 2; ++i) {
      const double a = pos * std::pow(theta, -2.0 * i / hd);
      double& x0 = v[h * hd + 2 * i];
      double& x1 = v[h * hd + 2 * i + 1];
      const double r0 = x0 * std::cos(a) - x1 * std::sin(a), r1 = x0 * std::sin(a) + x1 * std::cos(a);
      x0 = r0;
      x1 = r1;
    }
}

// The whole model, token by token, in f64 from the equations; returns logits of every position.
// `keep` (optional) = neurons kept per layer, the rest zeroed.
std::vector<std::vector<double>> reference_forward(const TinySource& src, const std::vector<int32_t>& tokens,
                                                   const std::vector<int32_t>* keep = nullptr) {
  const LlamaHparams& hp = src.hp_;
  const int64_t d = hp.n_embd, hd = hp.head_dim, qd = hp.n_head * hd, kvd = hp.n_head_kv * hd;
  const auto embd = src.dense("token_embd.weight");
  const auto out_w = hp.tied_embeddings ? embd : src.dense("output.weight");
  std::vector<std::vector<std::vector<double>>> K(static_cast<size_t>(hp.n_layer)), V(K.size());
  std::vector<std::vector<double>> all_logits;
  for (size_t t = 0; t < tokens.size(); ++t) {
    std::vector<double> x(embd.begin() + tokens[t] * d, embd.begin() + (tokens[t] + 1) * d);
    for (int l = 0; l < hp.n_layer; ++l) {
      const std::string b = "blk." + std::to_string(l) + ".";
      auto h = rmsnorm_ref(x, src.dense(b + "attn_norm.weight"), hp.rms_eps);
      auto q = matvec(src.dense(b + "attn_q.weight"), h, qd);
      auto k = matvec(src.dense(b + "attn_k.weight"), h, kvd);
      auto v = matvec(src.dense(b + "attn_v.weight"), h, kvd);
      rope_ref(q, hp.n_head, hd, static_cast<int64_t>(t), hp.rope_theta);
      rope_ref(k, hp.n_head_kv, hd, static_cast<int64_t>(t), hp.rope_theta);
      K[l].push_back(k);
      V[l].push_back(v);
      std::vector<double> att(static_cast<size_t>(qd));
      for (int64_t hh = 0; hh < hp.n_head; ++hh) {
        const int64_t g = hh / (hp.n_head / hp.n_head_kv);
        std::vector<double> s(t + 1);
        double max = -1e300, sum = 0;
        for (size_t p = 0; p <= t; ++p) {
          for (int64_t i = 0; i < hd; ++i) s[p] += q[hh * hd + i] * K[l][p][g * hd + i];
          s[p] /= std::sqrt(double(hd));
          max = std::max(max, s[p]);
        }
        for (auto& e : s) sum += e = std::exp(e - max);
        for (size_t p = 0; p <= t; ++p)
          for (int64_t i = 0; i < hd; ++i) att[hh * hd + i] += s[p] / sum * V[l][p][g * hd + i];
      }
      auto o = matvec(src.dense(b + "attn_output.weight"), att, d);
      for (int64_t i = 0; i < d; ++i) x[i] += o[i];
      h = rmsnorm_ref(x, src.dense(b + "ffn_norm.weight"), hp.rms_eps);
      auto gate = matvec(src.dense(b + "ffn_gate.weight"), h, hp.n_ff);
      auto up = matvec(src.dense(b + "ffn_up.weight"), h, hp.n_ff);
      std::vector<double> a(static_cast<size_t>(hp.n_ff));
      for (int64_t i = 0; i < hp.n_ff; ++i) a[i] = gate[i] / (1 + std::exp(-gate[i])) * up[i];
      if (keep) {
        std::vector<double> masked(a.size(), 0.0);
        for (int32_t i : *keep) masked[i] = a[i];
        a = masked;
      }
      auto down = matvec(src.dense(b + "ffn_down.weight"), a, d);
      for (int64_t i = 0; i < d; ++i) x[i] += down[i];
    }
    all_logits.push_back(matvec(out_w, rmsnorm_ref(x, src.dense("output_norm.weight"), hp.rms_eps), hp.n_vocab));
  }
  return all_logits;
}

const std::vector<int32_t> kTokens = {3, 17, 5, 39, 0, 22, 8};

}  // namespace

TEST(ModelLlama, MatchesNaiveReferenceF32AndQuantized) {
  for (TensorType type : {TensorType::F32, TensorType::F16, TensorType::Q8_0, TensorType::Q4_1}) {
    for (bool tied : {false, true}) {
      TinySource src(type, tied, 5);
      LlamaModel model(src);
      LlamaContext ctx(model, {32, 512, TensorType::F32});
      const int64_t n = static_cast<int64_t>(kTokens.size());
      const float* logits = ctx.forward(kTokens.data(), n, 0);
      const auto ref = reference_forward(src, kTokens);
      for (int64_t t = 0; t < n; ++t) {
        // F32/F16 weights: f32 rounding only. Quantized: the 8-bit activations (llama.cpp's method)
        // cost a few percent of the logits' scale; a wrong equation would be off by O(1) of it.
        double scale = 0;
        for (double x : ref[t]) scale = std::max(scale, std::fabs(x));
        const double tol = type == TensorType::F32 || type == TensorType::F16 ? 1e-3 : 0.08 * scale;
        for (int32_t v = 0; v < src.hp_.n_vocab; ++v)
          ASSERT_NEAR(logits[t * src.hp_.n_vocab + v], ref[t][v], tol)
              << tensor_type_name(type) << " tied " << tied << " pos " << t << " vocab " << v;
      }
    }
  }
}

TEST(ModelLlama, BatchedPrefillEqualsTokenByTokenDecode) {
  // F32 weights: the paths differ only in f32 summation order. Quantized weights: a last-bit
  // difference can flip one 8-bit activation rounding, which moves logits by ~1e-2.
  for (auto [wtype, kv, tol] : {std::tuple{TensorType::F32, TensorType::F32, 1e-4},
                                std::tuple{TensorType::F32, TensorType::F16, 1e-4},
                                std::tuple{TensorType::Q4_0, TensorType::F32, 5e-2}}) {
  TinySource src(wtype, false, 9);
  LlamaModel model(src);
  {
    LlamaContext batched(model, {32, 512, kv}), stepped(model, {32, 512, kv}), chunked(model, {32, 3, kv});
    const int64_t n = static_cast<int64_t>(kTokens.size()), V = src.hp_.n_vocab;
    const float* lb = batched.forward(kTokens.data(), n, 0);
    std::vector<float> b(lb, lb + n * V);
    const float* lc = chunked.forward(kTokens.data(), n, 2);  // 3-token chunks, logits from token 2
    std::vector<float> c(lc, lc + (n - 2) * V);
    for (int64_t t = 0; t < n; ++t) {
      const float* ls = stepped.forward(&kTokens[static_cast<size_t>(t)], 1);
      for (int64_t v = 0; v < V; ++v) {
        ASSERT_NEAR(b[t * V + v], ls[v], tol) << "pos " << t << " " << tensor_type_name(wtype);
        if (t >= 2) {
          ASSERT_NEAR(c[(t - 2) * V + v], ls[v], tol) << "pos " << t;
        }
      }
    }
    EXPECT_EQ(stepped.n_past(), n);
  }
  }
}

namespace {
class RecordingHook : public FfnHook {
 public:
  const std::vector<int32_t>* active_neurons(int) override { return keep.empty() ? nullptr : &keep; }
  void on_ffn_activation(int layer, const float* a, int64_t n_tokens, int64_t n_ff) override {
    calls.push_back(layer);
    last.assign(a, a + n_tokens * n_ff);
  }
  std::vector<int32_t> keep;
  std::vector<int> calls;
  std::vector<float> last;
};
}  // namespace

TEST(ModelLlama, FfnHookObservesAndRestrictsNeurons) {
  TinySource src(TensorType::F32, false, 2);
  LlamaModel model(src);
  const int64_t n = static_cast<int64_t>(kTokens.size()), V = src.hp_.n_vocab;
  RecordingHook hook;
  LlamaContext ctx(model, {32, 512, TensorType::F32});
  ctx.set_ffn_hook(&hook);
  const float* full = ctx.forward(kTokens.data(), n, 0);
  const auto ref = reference_forward(src, kTokens);
  EXPECT_NEAR(full[V + 3], ref[1][3], 1e-3);
  EXPECT_EQ(hook.calls, (std::vector<int>{0, 1}));
  EXPECT_EQ(hook.last.size(), static_cast<size_t>(n * src.hp_.n_ff));

  hook.keep = {1, 2, 10, 50, 95};
  hook.calls.clear();
  ctx.truncate(0);
  const float* part = ctx.forward(kTokens.data(), n, 0);
  const auto ref_part = reference_forward(src, kTokens, &hook.keep);
  for (int64_t t = 0; t < n; ++t)
    for (int32_t v = 0; v < V; ++v) ASSERT_NEAR(part[t * V + v], ref_part[t][v], 1e-3);
  for (int64_t i = 0; i < src.hp_.n_ff; ++i) {
    const bool kept = i == 1 || i == 2 || i == 10 || i == 50 || i == 95;
    if (!kept) {
      ASSERT_EQ(hook.last[static_cast<size_t>(i)], 0.0f);
    }
  }
}

TEST(ModelLlama, ContextOverflowAndBadTokensAreErrors) {
  TinySource src(TensorType::F32, true, 1);
  LlamaModel model(src);
  LlamaContext ctx(model, {4, 512, TensorType::F32});
  EXPECT_THROW(ctx.forward(kTokens.data(), 5), lookahead::Error);
  ctx.forward(kTokens.data(), 4);
  EXPECT_THROW(ctx.forward(kTokens.data(), 1), lookahead::Error);
  ctx.truncate(0);
  const int32_t bad = 40;
  EXPECT_THROW(ctx.forward(&bad, 1), lookahead::Error);
}

namespace {

// Read-ME experts cut from the tiny model's dense FFN: expert e keeps neurons i with i % 3 != e
// (overlapping subsets of different sizes), gate/up rows and down columns copied out.
class SlicedExperts : public ExpertWeights {
 public:
  explicit SlicedExperts(const TinySource& src) {
    const int64_t d = src.hp_.n_embd, ff = src.hp_.n_ff;
    for (int l = 0; l < src.hp_.n_layer; ++l) {
      const std::string b = "blk." + std::to_string(l) + ".";
      const auto gate = src.dense(b + "ffn_gate.weight"), up = src.dense(b + "ffn_up.weight"),
                 down = src.dense(b + "ffn_down.weight");
      for (int32_t e = 0; e < 3; ++e) {
        std::vector<int64_t> keep;
        for (int64_t i = 0; i < ff; ++i)
          if (i % 3 != e || (e == 2 && i < 30)) keep.push_back(i);
        const int64_t s = static_cast<int64_t>(keep.size());
        auto& g = store_.emplace_back(), &u = store_.emplace_back(), &dn = store_.emplace_back();
        for (int64_t i : keep) {
          g.insert(g.end(), gate.begin() + i * d, gate.begin() + (i + 1) * d);
          u.insert(u.end(), up.begin() + i * d, up.begin() + (i + 1) * d);
        }
        for (int64_t r = 0; r < d; ++r)
          for (int64_t i : keep) dn.push_back(down[static_cast<size_t>(r * ff + i)]);
        auto m = [](const std::vector<float>& v, int64_t rows, int64_t cols) {
          return WeightMatrix{TensorType::F32, reinterpret_cast<const uint8_t*>(v.data()), rows, cols};
        };
        ffn_[{l, e}] = ExpertFfn{m(g, s, d), m(u, s, d), m(dn, d, s)};
      }
    }
  }
  int32_t n_expert() const override { return 3; }
  const ExpertFfn& expert(int layer, int32_t e) const override {
    calls.emplace_back(layer, e);
    return ffn_.at({layer, e});
  }
  mutable std::vector<std::pair<int, int32_t>> calls;

 private:
  std::deque<std::vector<float>> store_;  // stable addresses
  std::map<std::pair<int, int32_t>, ExpertFfn> ffn_;
};

// A router that replays a fixed expert list by position (so a sequence's experts do not depend on
// how its tokens are batched).
class FixedRouter : public TokenRouter {
 public:
  explicit FixedRouter(std::vector<int32_t> experts) : experts_(std::move(experts)) {}
  void route(const int32_t*, int64_t n, int64_t pos0, int32_t* out) override {
    for (int64_t i = 0; i < n; ++i) out[i] = experts_.at(static_cast<size_t>(pos0 + i));
  }
  std::string name() const override { return "fixed"; }

 private:
  std::vector<int32_t> experts_;
};

std::vector<int32_t> expert_list(int64_t n, int salt) {
  std::vector<int32_t> e;
  for (int64_t i = 0; i < n; ++i) e.push_back(static_cast<int32_t>((i * 7 + salt) % 3));
  return e;
}

}  // namespace

// Continuous batching's forward pass: three sequences of different lengths prefilled in one batch,
// then decoded together (and with a prefill joining mid-way), give each sequence's logits as when it
// runs alone; with Read-ME routing each expert's FFN runs once per layer over its tokens from every
// sequence.
TEST(ModelLlama, BatchOfSeveralSequencesEqualsEachAlone) {
  TinySource src(TensorType::F32, false, 4);
  LlamaModel model(src);
  SlicedExperts experts(src);
  const int64_t V = src.hp_.n_vocab;
  const std::vector<std::vector<int32_t>> prompts = {{3, 7, 1, 30, 2}, {5, 5, 9, 12, 0, 39, 8, 1, 4}, {11, 2, 6}};
  const std::vector<int32_t> decode = {6, 20, 33};
  for (bool routed : {false, true}) {
    // Alone: each sequence in its own context.
    std::vector<std::vector<float>> alone_prefill, alone_decode;
    std::vector<FixedRouter> routers;
    for (size_t s = 0; s < prompts.size(); ++s) routers.emplace_back(expert_list(32, static_cast<int>(s)));
    for (size_t s = 0; s < prompts.size(); ++s) {
      LlamaContext ctx(model, {32, 512, TensorType::F32});
      if (routed) ctx.set_routing(&routers[s], &experts);
      const float* l = ctx.forward(prompts[s].data(), static_cast<int64_t>(prompts[s].size()));
      alone_prefill.emplace_back(l, l + V);
      l = ctx.forward(&decode[s], 1);
      alone_decode.emplace_back(l, l + V);
    }
    // Together: sequences 0 and 1 prefill in one batch; then 0 and 1 decode while 2 prefills.
    BatchForward batch(model, 64, 32);
    batch.set_experts(routed ? &experts : nullptr);
    std::vector<std::unique_ptr<KvCache>> caches;
    std::vector<std::vector<int32_t>> routes;
    for (size_t s = 0; s < prompts.size(); ++s) {
      caches.push_back(std::make_unique<KvCache>(src.hp_, 32, TensorType::F32));
      routes.push_back(expert_list(32, static_cast<int>(s)));
    }
    auto seg = [&](size_t s, const int32_t* tokens, int64_t n) {
      return BatchSegment{caches[s].get(), tokens, n, routed ? routes[s].data() + caches[s]->n_past() : nullptr, -1};
    };
    std::vector<BatchSegment> first = {seg(0, prompts[0].data(), 5), seg(1, prompts[1].data(), 9)};
    experts.calls.clear();
    const float* l = batch.forward(first.data(), first.size());
    if (routed) {
      // Once per (layer, expert): the batch's tokens are grouped by expert across sequences.
      EXPECT_EQ(experts.calls.size(), static_cast<size_t>(src.hp_.n_layer * 3));
    }
    for (size_t s = 0; s < 2; ++s)
      for (int64_t v = 0; v < V; ++v) ASSERT_NEAR(l[static_cast<int64_t>(s) * V + v], alone_prefill[s][v], 1e-4) << s;
    std::vector<BatchSegment> second = {seg(0, &decode[0], 1), seg(2, prompts[2].data(), 3), seg(1, &decode[1], 1)};
    l = batch.forward(second.data(), second.size());
    for (int64_t v = 0; v < V; ++v) {
      ASSERT_NEAR(l[v], alone_decode[0][v], 1e-4) << "routed " << routed;
      ASSERT_NEAR(l[V + v], alone_prefill[2][v], 1e-4) << "routed " << routed;
      ASSERT_NEAR(l[2 * V + v], alone_decode[1][v], 1e-4) << "routed " << routed;
    }
    EXPECT_EQ(caches[0]->n_past(), 6);
    EXPECT_EQ(caches[1]->n_past(), 10);
    EXPECT_EQ(caches[2]->n_past(), 3);
  }
}

TEST(ModelLlama, BadBatchesAreErrorsAndLeaveCachesUntouched) {
  TinySource src(TensorType::F32, false, 4);
  LlamaModel model(src);
  SlicedExperts experts(src);
  BatchForward batch(model, 8, 16);
  KvCache a(src.hp_, 16, TensorType::F32), b(src.hp_, 4, TensorType::F32);
  const std::vector<int32_t> tokens = {1, 2, 3, 4, 5, 6, 7, 8, 9}, routes(9, 0);
  std::vector<BatchSegment> too_many = {{&a, tokens.data(), 5, nullptr, -1}, {&b, tokens.data(), 4, nullptr, -1}};
  EXPECT_THROW(batch.forward(too_many.data(), too_many.size()), lookahead::Error);  // 9 > n_batch 8
  std::vector<BatchSegment> overflow = {{&a, tokens.data(), 2, nullptr, -1}, {&b, tokens.data(), 5, nullptr, -1}};
  EXPECT_THROW(batch.forward(overflow.data(), overflow.size()), lookahead::Error);  // b holds 4
  std::vector<BatchSegment> mixed = {{&a, tokens.data(), 2, routes.data(), -1}, {&b, tokens.data(), 2, nullptr, -1}};
  batch.set_experts(&experts);
  EXPECT_THROW(batch.forward(mixed.data(), mixed.size()), lookahead::Error);
  const std::vector<int32_t> bad_expert = {0, 3};
  std::vector<BatchSegment> out_of_range = {{&a, tokens.data(), 2, bad_expert.data(), -1}};
  EXPECT_THROW(batch.forward(out_of_range.data(), 1), lookahead::Error);
  EXPECT_EQ(a.n_past(), 0);
  EXPECT_EQ(b.n_past(), 0);
  std::vector<BatchSegment> none = {{&a, tokens.data(), 3, nullptr, 3}};  // no logit rows wanted
  batch.forward(none.data(), 1);
  EXPECT_EQ(a.n_past(), 3);
}
