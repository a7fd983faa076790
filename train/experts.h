#pragma once
// Read-ME expert fine-tuning (paper section 3.3, second stage; issue #4 item 7) with libtorch, for
// `lookahead-train experts`. Torch-free header; the model lives in experts_torch.cpp.
//
// The Read-ME directory's backbone runs in libtorch (RMSNorm, RoPE rotate_half, grouped-query
// causal attention, SwiGLU FFN; Hugging Face tensor names). The FFN is the masked dense FFN: the
// dense gate/up/down (from mlp.* when present, else assembled from the experts' rows, which share
// weights) with each token's activation a = silu(gate h) * (up h) multiplied by its expert's
// neuron mask, so a token uses exactly expert e's neurons and experts keep sharing weights. The
// router is frozen: every window is routed once (from position 0, like the backbone) and its
// top-1 experts are used in every layer. Loss: next-token cross-entropy. Trainable: the FFN, and
// with train_attention also q/k/v/o and the two norms per layer; embeddings, final norm and
// lm_head stay frozen. AdamW (decay on matrices only), warm-up then cosine decay.
//
// Output: a new Read-ME directory: every file but model.safetensors copied; model.safetensors has
// the input's tensors in the input's order and dtypes, the trained ones re-exported (per-expert
// copies cut from the trained dense FFN, the dense FFN itself when the input has it), everything
// else byte-identical. Written under "<out>.tmp.<pid>" and renamed; `out` must not exist.
//
// Contract: same inputs, options, seed and thread count -> byte-identical model.safetensors. Bad
// input throws lookahead::Error naming the file, tensor or option; nothing is left at `out`.
#include <cstdint>
#include <string>
#include <vector>

namespace lookahead::train {

struct ExpertTrainOptions {
  std::string model;            // Read-ME directory
  std::string data;             // tokens (+ seq_start) safetensors, see token_data.h
  std::string out;              // new Read-ME directory
  int64_t steps = 100;
  double lr = 5e-5;             // paper Table 2, expert stage
  double weight_decay = 0.01;
  int64_t batch = 4;
  int64_t seq_len = 128;
  uint64_t seed = 0;
  int64_t warmup = 0;
  bool train_attention = false;
  double holdout = 0.1;         // fraction of sequences kept out of training for the eval loss
  int64_t eval_windows = 16;    // at most this many held-out windows of seq_len
  int threads = 1;
  bool progress = true;
};

struct ExpertTrainResult {
  int64_t trainable_parameters = 0;
  std::vector<float> loss;                  // per step
  double loss_first = 0, loss_last = 0;     // mean over the first / last 10% of steps
  int64_t eval_tokens = 0;                  // predicted held-out tokens (0: no held-out data)
  double eval_loss_before = 0, eval_loss_after = 0;
  std::vector<double> expert_share;         // share of training tokens routed to each expert
  std::vector<std::string> experts;         // expert names
  double seconds = 0, ms_per_step = 0;
};

ExpertTrainResult finetune_experts(const ExpertTrainOptions& options);

// Logits [T][V] of a Read-ME directory on `tokens` (from position 0) in libtorch: router-routed,
// masked dense FFN. `experts` receives the routing. For agreement tests with the engine.
std::vector<float> readme_logits(const std::string& dir, const std::vector<int32_t>& tokens,
                                 std::vector<int32_t>* experts = nullptr, int threads = 1);

}  // namespace lookahead::train
