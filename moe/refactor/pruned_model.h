#pragma once
// The paper's comparison at our scale: a dense model with the same active FFN parameters as a
// Read-ME model, made by pruning every layer's FFN to one fixed width by the same activation
// statistic (no routing), so Read-ME can be compared with it token for token.
//
// Neurons: per layer, the `width` neurons with the largest token-weighted mean |a_j| pooled over all
// calibration domains (ties to the lower index), sorted. With reconstruction, the down projection is
// refit by the same least squares as the experts (ffn_reconstruction.h) on the pooled Gram of all
// domains' calibration tokens.
//
// Output: a plain Hugging Face Llama checkpoint directory (config.json with intermediate_size =
// width, model.safetensors with HF names, the tokenizer) that every `moe` command opens as a dense
// model. Written under "<out>.tmp.<pid>" and renamed; `out` must not exist; nothing is left on error.
#include <cstdint>
#include <string>
#include <vector>

#include "moe/checkpoint/model_source.h"
#include "moe/kernels/tensor_type.h"
#include "moe/refactor/activation_stats.h"

namespace lookahead::moe {

// [layer] sorted neuron ids: the top `width` by pooled statistic.
std::vector<std::vector<int32_t>> pruned_neurons(const ActivationStats& stats, int32_t width);

struct PrunedExportOptions {
  TensorType dtype = TensorType::F16;
  // [layer] refit down projections [d][width] row-major; nullptr = the dense columns.
  const std::vector<std::vector<float>>* down = nullptr;
  bool progress = true;
};

void write_pruned_model(const ModelSource& dense, const std::vector<std::vector<int32_t>>& neurons,
                        const std::string& out, const PrunedExportOptions& options);

}  // namespace lookahead::moe
