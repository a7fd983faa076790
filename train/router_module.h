#pragma once
// The pre-gating router as a torch::nn::Module (torch-only header: included by train/*_torch.cpp).
// Parameters are registered under the export names (docs/readme-model.md) in file order, so
// named_parameters() gives "embed.weight", "q_proj_0.weight", ... and the file is a plain dump
// under kRouterPrefix.
#include <algorithm>

#include <fmt/ranges.h>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "moe/format/gguf.h"
#include "moe/kernels/quantize.h"
#include "train/router.h"
#include "train/torch_ops.h"

namespace lookahead::train {

inline constexpr const char* kRouterPrefix = "cluster_predictor.";

// One named leaf ("q_proj_0" with .weight and .bias), so named_parameters() yields the export names.
struct Leaf : torch::nn::Module {
  torch::Tensor weight, bias;
  explicit Leaf(std::vector<int64_t> weight_shape, int64_t bias_size = 0) {
    weight = register_parameter("weight", torch::zeros(weight_shape));
    if (bias_size > 0) bias = register_parameter("bias", torch::zeros({bias_size}));
  }
  torch::Tensor linear(const torch::Tensor& x) const { return torch::nn::functional::linear(x, weight, bias); }
};

struct RouterModule : torch::nn::Module {
  RouterConfig c;
  std::shared_ptr<Leaf> embed, q_proj, k_proj, v_proj, o_proj, input_norm, post_attention_norm, proj_1, proj_2,
      out_norm, proj_out;

  explicit RouterModule(const RouterConfig& config) : c(config) {
    const int64_t d = c.d_model;
    // Registration order = file order (docs/readme-model.md lists the router tensors this way).
    embed = register_module("embed", std::make_shared<Leaf>(std::vector<int64_t>{c.n_vocab, d}));
    q_proj = register_module("q_proj_0", std::make_shared<Leaf>(std::vector<int64_t>{d, d}, d));
    k_proj = register_module("k_proj_0", std::make_shared<Leaf>(std::vector<int64_t>{d, d}, d));
    v_proj = register_module("v_proj_0", std::make_shared<Leaf>(std::vector<int64_t>{d, d}, d));
    o_proj = register_module("o_proj_0", std::make_shared<Leaf>(std::vector<int64_t>{d, d}, d));
    input_norm = register_module("input_layernorm_0", std::make_shared<Leaf>(std::vector<int64_t>{d}));
    post_attention_norm = register_module("post_attention_layernorm_0", std::make_shared<Leaf>(std::vector<int64_t>{d}));
    proj_1 = register_module("proj_1_0", std::make_shared<Leaf>(std::vector<int64_t>{c.proj_1_rows(), d}, c.proj_1_rows()));
    proj_2 = register_module("proj_2_0", std::make_shared<Leaf>(std::vector<int64_t>{d, c.d_inter}, d));
    out_norm = register_module("out_layernorm", std::make_shared<Leaf>(std::vector<int64_t>{d}));
    proj_out = register_module("proj_out", std::make_shared<Leaf>(std::vector<int64_t>{c.n_expert, d}, c.n_expert));
  }

  // Hugging Face Llama _init_weights: matrices N(0, 0.02), biases 0, norm weights 1; the embedding
  // from the backbone's (first d_r columns, zero-padded). Draws from the global generator in
  // registration order, so torch::manual_seed fixes the result.
  void init(const float* embed_init, int64_t embed_cols) {
    torch::NoGradGuard no_grad;
    for (auto& p : named_parameters()) {
      const std::string& name = p.key();
      auto& t = p.value();
      if (name.find("layernorm") != std::string::npos) {
        t.fill_(1.0);
      } else if (name.ends_with(".bias")) {
        t.zero_();
      } else if (name == "embed.weight") {
        auto src = torch::from_blob(const_cast<float*>(embed_init), {c.n_vocab, embed_cols});
        const int64_t cols = std::min<int64_t>(embed_cols, c.d_model);
        t.zero_();
        t.narrow(1, 0, cols).copy_(src.narrow(1, 0, cols));
      } else {
        torch::nn::init::normal_(t, 0.0, 0.02);
      }
    }
  }

  // tokens [B][T] int64 -> logits [B][T][N]; every row starts at position 0.
  torch::Tensor forward(const torch::Tensor& tokens) const {
    const int64_t b = tokens.size(0), t = tokens.size(1), d = c.d_model, nh = c.n_head, hd = c.head_dim();
    auto h = embed->weight.index_select(0, tokens.reshape({-1})).reshape({b, t, d});
    auto u = rms_norm(h, input_norm->weight, c.rms_eps);
    auto heads = [&](const torch::Tensor& x) { return x.reshape({b, t, nh, hd}).transpose(1, 2); };  // [B][H][T][hd]
    auto [cos, sin] = rope_tables(t, hd, c.rope_theta);
    auto q = apply_rope(heads(q_proj->linear(u)), cos, sin);
    auto k = apply_rope(heads(k_proj->linear(u)), cos, sin);
    auto v = heads(v_proj->linear(u));
    auto att = causal_attention(q, k, v, c.normalizer).transpose(1, 2).reshape({b, t, d});
    h = h + o_proj->linear(att);
    auto m = proj_1->linear(rms_norm(h, post_attention_norm->weight, c.rms_eps));
    if (c.swiglu) {
      m = torch::silu(m.narrow(-1, 0, c.d_inter)) * m.narrow(-1, c.d_inter, c.d_inter);
    } else {
      m = torch::silu(m);
    }
    h = h + proj_2->linear(m);
    return proj_out->linear(rms_norm(h, out_norm->weight, c.rms_eps));
  }
};


// Copies `prefix` + name for every parameter from `lookup` (F32, F16 or BF16, shape checked);
// errors name `where` and the tensor.
template <typename Lookup>
void load_router_weights(RouterModule& model, const Lookup& lookup, const std::string& where,
                         const std::string& prefix = kRouterPrefix) {
  torch::NoGradGuard no_grad;
  for (auto& p : model.named_parameters()) {
    const std::string name = prefix + p.key();
    const moe::TensorView* t = lookup(name);
    if (!t) fail("{}: missing tensor '{}'", where, name);
    std::vector<int64_t> shape(t->shape.rbegin(), t->shape.rend());
    if (shape != p.value().sizes().vec())
      fail("{}: tensor '{}' has shape [{}], the router config implies [{}]", where, name, fmt::join(shape, ", "),
           fmt::join(p.value().sizes().vec(), ", "));
    if (t->type != moe::TensorType::F32 && t->type != moe::TensorType::F16 && t->type != moe::TensorType::BF16)
      fail("{}: tensor '{}' must be F32, F16 or BF16 (got {})", where, name, moe::tensor_type_name(t->type));
    auto dst = p.value().contiguous();
    moe::dequantize_row(t->type, t->data, dst.data_ptr<float>(), dst.numel());
    p.value().copy_(dst);
  }
}

}  // namespace lookahead::train
