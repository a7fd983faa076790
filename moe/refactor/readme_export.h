#pragma once
// Writes a Read-ME model directory (docs/readme-model.md) from a dense model, its expert neuron
// sets and a trained router: `lookahead moe refactor`'s last step.
//
// Contract:
//   - Backbone tensors get Hugging Face names and layout (q/k rows of a GGUF source are permuted
//     back to rotate_half order), every weight in `dtype` (F32/F16/BF16, or a GGML block type Q8_0/Q4_0/Q4_1
//     stored as docs/readme-model.md "Quantized weights" says; experts must then be whole blocks), norms in F32.
//   - Expert e of layer l holds rows S_e of the dense gate/up and columns S_e of down, written
//     adjacently (gate, up, down) so one (layer, expert) is one contiguous read; its neuron list is
//     stored beside it; with options.down, its down_proj is the refit matrix instead of the dense
//     columns. The dense FFN is written too unless `dense_ffn` is false.
//   - Every exported value must be finite: NaN or Inf anywhere is an error naming the tensor.
//   - Router tensors are the `cluster_predictor.*` tensors `router` returns, converted to F32.
//   - The tokenizer travels with the model: tokenizer.json / tokenizer.model (and their configs)
//     copied from an HF source, or tokenizer.gguf (the source's tokenizer.* keys) from a GGUF one.
//   - Atomic: the directory is assembled under "<out>.tmp.<pid>" and renamed to `out` at the end;
//     `out` must not exist. On any error nothing is left behind.
#include <string>
#include <vector>

#include "moe/checkpoint/model_source.h"
#include "moe/kernels/tensor_type.h"
#include "moe/model/readme_model.h"
#include "moe/refactor/expert_extraction.h"

namespace lookahead::moe {

class SafetensorsWriter;

// Refit down projections (ffn_reconstruction.h): [layer][expert] -> V [d][S_e] row-major.
using ExpertDownProjs = std::vector<std::vector<std::vector<float>>>;
// Trained gate or up projections: [layer][expert] -> [S_e][d] row-major.
using ExpertRowProjs = std::vector<std::vector<std::vector<float>>>;

struct ReadMeExportOptions {
  TensorType dtype = TensorType::F16;
  bool dense_ffn = true;
  bool progress = true;
  // nullptr: expert e's down_proj is the dense columns W_down[:, S_e]; otherwise these matrices.
  const ExpertDownProjs* down = nullptr;
  // nullptr: expert e's gate/up are the dense rows S_e; otherwise these matrices (trained experts).
  const ExpertRowProjs* gate = nullptr;
  const ExpertRowProjs* up = nullptr;
  std::string reconstruction = "none";  // recorded in the file's metadata (readme.reconstruction)
  std::vector<std::pair<std::string, std::string>> metadata;  // more safetensors metadata to record
};

// config.json of a Read-ME model: the dense LlamaForCausalLM config of `hp` plus `config`'s Read-ME
// keys (shared with `moe synth`, moe/serving/synth_model.h).
std::string readme_config_json(const LlamaHparams& hp, const Tokenizer* tok, TensorType dtype,
                               const ReadMeConfig& config);
// config.json of a dense LlamaForCausalLM shaped `hp`.
std::string dense_config_json(const LlamaHparams& hp, const Tokenizer* tok, TensorType dtype);
// Adds the dense tensor `gguf_name` of `source` to `w` under its Hugging Face name, converted to
// `dtype` (vectors stay F32; q/k rows of a GGUF source permuted back to rotate_half order).
void add_hf_tensor(SafetensorsWriter& w, const ModelSource& source, const std::string& gguf_name, TensorType dtype);
// Copies `source`'s tokenizer into `dir` (tokenizer.json/.model and configs from an HF directory,
// tokenizer.gguf from a GGUF file); throws lookahead::Error if it has none.
void write_readme_tokenizer(const ModelSource& source, const std::string& dir);

// Throws lookahead::Error (prefixed with `what`) unless every weight row of a model shaped `hp`
// (hidden size, FFN size, attention width) is whole blocks of `dtype`; float types always pass.
void check_whole_block_rows(const LlamaHparams& hp, TensorType dtype, const std::string& what);

void write_readme_model(const ModelSource& dense, const ExpertSets& sets, const ReadMeConfig& config,
                        const TensorLookup& router, const std::string& out, const ReadMeExportOptions& options);

// `lookahead moe convert` of a Read-ME directory: the same model (experts as stored, trained ones
// included; router; neuron lists; the dense FFN when present; the tokenizer; the input's readme.*
// metadata) re-exported with every weight in `dtype`. For a GGML block type (Q8_0/Q4_0/Q4_1) each
// expert whose size is not whole blocks is padded up to them with neurons whose gate/up rows and
// down columns are zero, so they add exactly nothing; their ids are the lowest dense neurons the
// expert lacks (lists stay sorted). Same atomicity and finiteness contract as write_readme_model.
// Returns the number of padding neurons added over all layers and experts.
int64_t convert_readme_model(const std::string& in, const std::string& out, TensorType dtype, bool progress);

}  // namespace lookahead::moe
