#pragma once
// Training the Read-ME pre-gating router with libtorch (docs/readme-model.md; paper section 3.2)
// and running the trained router, for `lookahead-train router` / `router-logits` and the tests.
// This header is torch-free: the model and loss live in router_torch.cpp.
//
// Model: one causal transformer layer over token ids (embedding, RMSNorm, q/k/v/o with bias,
// RoPE rotate_half, causal softmax attention scaled by 1/normalizer, SiLU or SwiGLU MLP with
// biases, final RMSNorm, proj_out to N logits). Parameters carry the export names, so the output
// file is the module's named_parameters() under `cluster_predictor.`.
//
// Init: embedding = router_init.embed (first d_r columns, zero-padded if d_r is wider); every other
// matrix N(0, 0.02) and biases 0 (Hugging Face Llama's _init_weights), norm weights 1.
//
// Loss per token, logits z and per-layer targets d_l (the same z for every layer):
//   sum_l 0.75 * CE(z, argmax d_l, label_smoothing 0.5) + 0.25 * soft_CE(softmax(d_l), z)
// averaged over tokens. AdamW (decay on matrices only, not on biases and norm weights), LR warm-up
// then cosine decay to 0. Batches are windows of seq_len tokens cut from the sequences at random
// offsets; each window is fed from router position 0 and shorter sequences are padded and masked.
//
// Contract: same data, options, seed and thread count -> byte-identical output file. Bad input
// (files, shapes, options) throws lookahead::Error; the output is written atomically.
#include <cstdint>
#include <string>
#include <vector>

#include "moe/model/router.h"

namespace lookahead::train {

// One router configuration for the engine and the trainer (moe/model/router.h), with its JSON form.
using moe::RouterConfig;

// --normalizer: "released" (1), "paper" (sqrt(d_r / n_head)) or a positive number.
double parse_normalizer(const std::string& text, int64_t embedding_dim, int64_t n_head);

struct RouterTrainOptions {
  std::string data;             // router_targets.safetensors
  std::string out;              // router.safetensors
  int64_t steps = 1000;
  double lr = 5e-4;
  double weight_decay = 0.01;
  int64_t batch = 16;
  int64_t seq_len = 128;
  uint64_t seed = 0;
  int64_t warmup = 0;
  // <= 0 / empty: from the data's router_config, else the defaults (heads 4, width = embedding
  // width, inter = width, released normalizer, silu MLP).
  int64_t heads = 0, width = 0, inter = 0;
  std::string normalizer;       // released | paper | <number>
  std::string mlp;              // silu | swiglu
  int threads = 1;
  bool progress = true;
};

struct RouterTrainResult {
  RouterConfig config;
  int64_t parameters = 0;
  std::vector<float> loss;       // per step
  double loss_first = 0, loss_last = 0;   // mean over the first / last 10% of steps
  int64_t eval_tokens = 0;
  double accuracy_targets = 0;   // argmax z == argmax sum_l d_l
  double accuracy_domain = 0;    // argmax z == domain label
  std::vector<std::vector<int64_t>> confusion;  // [domain][predicted expert] token counts
  double seconds = 0;            // training loop wall time
  double ms_per_step = 0;
};

RouterTrainResult train_router(const RouterTrainOptions& options);

// The loss above for plain arrays: logits [T][N], targets [T][L][N]; mean over the T tokens.
double router_loss(const std::vector<float>& logits, const std::vector<float>& targets, int64_t n_tokens,
                   int64_t n_layer, int64_t n_expert);

struct RouterLogits {
  RouterConfig config;
  std::vector<float> logits;     // [T][N]
  std::vector<int32_t> experts;  // argmax per position, ties to the lowest index
};

// Runs a trained router file (router.safetensors: cluster_predictor.* + router_config metadata)
// over `tokens` from position 0.
RouterLogits router_logits(const std::string& router_path, const std::vector<int32_t>& tokens, int threads = 1);

}  // namespace lookahead::train
