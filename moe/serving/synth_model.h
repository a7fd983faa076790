#pragma once
// Synthetic Read-ME models (`lookahead moe synth`): a Read-ME model directory
// (docs/readme-model.md, the format `moe refactor` exports) with random weights at a named shape,
// for serving experiments whose expert weights exceed the RAM budget.
//
// Contract:
//   - Shapes: llama2-7b, llama3-8b, smollm2-135m, smollm2-360m (their published configs) and tiny
//     (d 64, for tests); `layers` > 0 overrides the layer count. Unknown names throw, listing them.
//   - Weights: a random dense FFN per layer, uniform with std 1/sqrt(fan_in) (so activations stay
//     finite through any number of layers); expert e of layer l holds a random sorted subset of
//     round(keep * n_ff) of that layer's neurons (rows of gate/up, columns of down), so experts
//     overlap as refactored ones do. Attention and router weights the same way; norms 1; router
//     biases 0; embeddings std 1/sqrt(d). No dense FFN tensors (an experts-only export: `--route
//     dense` is refused). Every value is a function of (seed, tensor, row), so a seed gives the
//     same model, and the first layers of a model do not depend on `layers`.
//   - Vocabulary: the commands need a tokenizer, so `tokenizer` (a GGUF file or HF directory)
//     travels with the model as the export does it, and the vocabulary size becomes the
//     tokenizer's (the shape's own vocabulary is used only without a tokenizer, for tests that
//     never tokenize).
//   - dtype: F32, F16, BF16, or a GGML block type (Q8_0, Q4_0, Q4_1) stored as the format's
//     quantized safetensors tensors (docs/readme-model.md); norms, neuron lists and the router stay
//     F32/I32. With a block type each expert holds round(keep * n_ff) neurons rounded to whole
//     32-value blocks (expert_neurons()).
//   - Streaming: tensors are produced one at a time while the file is written (memory for one
//     tensor; a 7B-shape model never sits in RAM). Atomic: assembled under "<out>.tmp.<pid>" and
//     renamed; an existing `out` is an error unless `force` (then replaced only once the new one
//     is complete).
#include <cstdint>
#include <string>
#include <vector>

#include "moe/checkpoint/model_source.h"
#include "moe/kernels/tensor_type.h"
#include "moe/model/router.h"

namespace lookahead::moe::serving {

// The named shape's hyperparameters; throws lookahead::Error naming the known shapes.
LlamaHparams synth_shape(const std::string& name);
std::vector<std::string> synth_shape_names();

struct SynthOptions {
  std::string shape = "tiny";
  int32_t experts = 4;
  TensorType dtype = TensorType::BF16;
  int32_t layers = 0;       // 0: the shape's
  uint64_t seed = 0;
  double keep = 0.5;        // fraction of n_ff each expert holds (the paper's 50%)
  std::string tokenizer;    // GGUF file or HF directory; empty: no tokenizer (tests only)
  bool force = false;
  bool progress = false;
};

// The router config synth writes for a shape (paper width 512 for the big shapes, small for tiny).
RouterConfig synth_router_config(const LlamaHparams& hp, int32_t experts);

// Neurons per expert: round(keep * n_ff), to the nearest whole block for a block type (at most n_ff).
int32_t expert_neurons(double keep, int32_t n_ff, TensorType dtype);

// Throws lookahead::Error naming the flag for a bad shape, expert count, layer count, keep or dtype
// (write_synth_model checks the same first; the CLI calls it before looking for a tokenizer).
void check_synth_options(const SynthOptions& options);

void write_synth_model(const SynthOptions& options, const std::string& out);

}  // namespace lookahead::moe::serving
