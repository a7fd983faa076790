#pragma once
// A GPT training iteration's network traffic as jobs (jobs.h): data-parallel training as PyTorch
// DDP runs it, the workload the singlepath paper's evaluation adds to its all-reduce grid
// (GPT 117M, 7B, 13B). Every rank holds the whole model and its own micro-batch:
//
//   forward (compute only) -> backward, layer by layer from the output down -> each gradient
//   bucket all-reduced across the ranks as soon as its last gradient is ready
//
// Model of time (no GPU is simulated; this places the collectives in time):
//   - compute rate: `tflops` x `mfu` per rank; forward = 2 x params x tokens flops, backward twice
//     that, spread over the layers in proportion to their parameters (Kaplan et al.'s 6N rule).
//   - gradients become ready in backward order: the output head (untied models), the blocks from
//     the last to the first, then the token embedding.
//   - buckets (DDP's bucket_cap_mb, default 25 MiB): parameters in backward order fill a bucket
//     until it reaches `bucket_bytes`; a parameter tensor is never split (one block = one unit, as
//     DDP keeps a tensor whole). A bucket's all-reduce may start when its last gradient is ready
//     and, as NCCL runs collectives in order on one stream, only after the previous bucket's.
//   - the iteration ends when the last bucket's all-reduce completes (the makespan `net repro
//     --jobs` reports); the optimizer step is not modelled. Communication hidden under the backward
//     pass shows as a makespan equal to forward + backward + the last bucket's all-reduce.
//
// Contract: gpt_iteration throws lookahead::Error naming the field on bad input (unknown model,
// ranks < 2, layers < 1 or above the model's, non-positive tokens, rates or bucket size,
// gradient bytes not 2 or 4).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "net/workload/jobs.h"

namespace lookahead::net {

struct GptModel {
  std::string name;
  int layers = 0;
  int64_t d_model = 0;
  int64_t ffn = 0;        // MLP inner width
  int64_t vocab = 0;
  bool gated_mlp = false;  // Llama's SwiGLU (3 matrices) instead of GPT-2's 2
  bool tied_embeddings = false;
  int64_t block_params() const;  // one transformer block (attention + MLP; norms and biases omitted)
  int64_t params() const;        // every block + embeddings (+ the output head when untied)
};

// "gpt-117m" (GPT-2 small: 12 x 768, tied, 124M with embeddings), "llama-7b" (32 x 4096, ffn 11008),
// "llama-13b" (40 x 5120, ffn 13824). Throws naming the known names.
GptModel gpt_model(std::string_view name);
std::vector<std::string> gpt_model_names();

struct GptIterationSpec {
  GptModel model;
  int layers = 0;                  // blocks kept (0 = the model's): a shorter model, same widths
  int ranks = 0;                   // data-parallel ranks, hosts first_host.. first_host + ranks - 1
  int first_host = 0;
  int64_t tokens_per_rank = 2048;  // micro-batch tokens per rank per iteration
  double tflops = 312;             // per-rank peak (A100 BF16 dense)
  double mfu = 0.4;                // achieved fraction of it
  uint64_t bucket_bytes = 25ull << 20;
  int grad_bytes = 2;              // bytes per gradient element (BF16/FP16: 2, FP32: 4)
  collective::Algorithm algorithm = collective::Algorithm::RING;
  uint64_t jitter_ps = 0;          // each rank enters each all-reduce up to this much late (seeded)
};

struct GptBucket {
  uint64_t bytes = 0;
  double ready_us = 0;  // when its last gradient is ready
  std::string first, last;  // the parameter tensors it spans, in backward order ("head", "block11", ...)
};

struct GptIteration {
  int64_t params = 0;  // of the (possibly shortened) model
  double forward_us = 0, backward_us = 0;
  std::vector<GptBucket> buckets;  // in launch order
  std::vector<Job> jobs;           // one all-reduce per bucket, named "bucket0", "bucket1", ...
};

GptIteration gpt_iteration(const GptIterationSpec& spec);

}  // namespace lookahead::net
