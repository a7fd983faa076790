#pragma once
// Read-ME expert training (paper section 3.3, second stage) with
// libtorch, for `lookahead-train experts`. Torch-free header; the model lives in experts_torch.cpp.
//
// The Read-ME directory's backbone runs in libtorch (RMSNorm, RoPE rotate_half, grouped-query
// causal attention, SwiGLU FFN; Hugging Face tensor names). The student's FFN is the experts' own
// tensors: each token goes through its expert's gate_e/up_e/down_e (tokens gathered by expert,
// computed, scattered back), so experts are trained as separate weights even where they started
// as copies of the same dense rows, and a down_proj refitted by `moe refactor` is used as stored.
// The router is frozen: every window is routed once (from position 0, like the backbone) and its
// top-1 experts are used in every layer.
//
// Loss: with teacher "none", next-token cross-entropy (CE). With teacher "dense", the teacher is
// the same directory's backbone with its dense FFN (mlp.*) and the original, frozen attention,
// run on the fly under no_grad: loss = kl_weight * KL(teacher || student) + (1 - kl_weight) * CE,
// both per predicted token, temperature 1. The held-out evaluation reports CE and, whenever the
// directory has a dense FFN (whatever the teacher), the KL to it.
//
// Trainable: every expert's gate/up/down, and with train_attention also q/k/v/o and the two norms
// per layer; embeddings, final norm, lm_head and the dense FFN stay frozen. AdamW (decay on
// matrices only; an expert no token reached in a step is not updated), warm-up then cosine decay.
//
// Checkpoints: every checkpoint_every steps (and at stop_after) the trainable tensors, the AdamW
// state, the step, the loss history and the window sampler's state go to "<out>.ckpt" (written
// under a temporary name and renamed). With resume, training continues from that file and gives
// the same model.safetensors, byte for byte, as an uninterrupted run; the options that shape the
// run must match the checkpoint's (else an error naming the option). The checkpoint is removed
// once the output directory is written.
//
// Curve: with `curve`, a CSV "step,train_tokens,train_loss,heldout_ce,heldout_kl,seconds" gets a
// row at step 0, every eval_every steps and at the last step (train_loss: mean over the steps
// since the previous row; heldout_kl empty without a dense FFN; seconds: training time, carried
// across resumes). On resume, rows after the checkpoint's step are dropped.
//
// Output: a new Read-ME directory: every file but model.safetensors copied; model.safetensors has
// the input's tensors in the input's order and dtypes, the trained ones re-exported (each expert's
// own gate/up/down; attention and norms when trained), everything else byte-identical. Written
// under "<out>.tmp.<pid>" and renamed; `out` must not exist.
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
  std::string teacher = "none"; // "none" (LM loss only) or "dense" (distil from the dense FFN)
  double kl_weight = 1.0;       // weight of KL(teacher || student); CE gets 1 - kl_weight
  std::string teacher_model;    // teacher "dense" from this directory's attention + mlp.* ("": the student's own)
  double holdout = 0.1;         // fraction of sequences kept out of training for the eval loss
  int64_t eval_windows = 16;    // at most this many held-out windows of seq_len
  int64_t eval_every = 0;       // held-out evaluation every N steps (0: before and after only)
  std::string curve;            // CSV of the held-out curve ("" : none)
  int64_t checkpoint_every = 0; // checkpoint every N steps (0: none, except at stop_after)
  bool resume = false;          // continue from "<out>.ckpt"
  int64_t stop_after = 0;       // stop after this step with a checkpoint, no output (0: run to the end)
  int threads = 1;
  bool progress = true;
};

struct CurvePoint {
  int64_t step = 0, train_tokens = 0;
  double train_loss = 0;        // NaN at step 0
  double heldout_ce = 0;
  double heldout_kl = 0;        // NaN without a dense FFN
  double seconds = 0;
};

struct ExpertTrainResult {
  int64_t trainable_parameters = 0;
  bool distilled = false;                   // teacher "dense"
  int64_t resumed_from = 0;                 // step the run resumed at (0: fresh)
  bool stopped = false;                     // stopped at stop_after: checkpoint written, no output
  std::vector<float> loss;                  // per step (from step 0, across resumes)
  double loss_first = 0, loss_last = 0;     // mean over the first / last 10% of steps
  int64_t eval_tokens = 0;                  // predicted held-out tokens (0: no held-out data)
  double eval_loss_before = 0, eval_loss_after = 0;  // held-out CE
  double eval_kl_before = 0, eval_kl_after = 0;      // held-out KL to the dense model (NaN: none)
  std::vector<CurvePoint> curve;            // the rows this run computed
  std::vector<double> expert_share;         // share of training tokens routed to each expert
  std::vector<std::string> experts;         // expert names
  int64_t train_tokens = 0;                 // tokens fed (across resumes)
  double seconds = 0, ms_per_step = 0, tokens_per_second = 0;  // this run's training steps
};

ExpertTrainResult finetune_experts(const ExpertTrainOptions& options);

// Logits [T][V] of a Read-ME directory on `tokens` (from position 0) in libtorch: router-routed
// through the experts' own tensors, or with `dense` the dense FFN (the teacher; an error without
// mlp.*). `experts` receives the routing. For agreement tests with the engine.
std::vector<float> readme_logits(const std::string& dir, const std::vector<int32_t>& tokens,
                                 std::vector<int32_t>* experts = nullptr, int threads = 1, bool dense = false);

}  // namespace lookahead::train
