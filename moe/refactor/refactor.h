#pragma once
// `lookahead moe refactor` end to end (Read-ME section 3): activation statistics on each domain's
// calibration split -> expert neuron sets -> router training targets on the training split ->
// least-squares reconstruction of each expert's down_proj (ffn_reconstruction.h) -> router training
// (libtorch, in a separate program: the engine never links it) -> a Read-ME model directory
// (docs/readme-model.md).
//
// Contract: options are validated before any work (keep in (0, 1], domains present and non-empty,
// the model has an FFN of the expected shape); the output directory appears only when everything
// succeeded. Intermediate files (stats.gguf, router_targets.safetensors, router.safetensors) live
// in `work_dir`, so a re-run with the same work dir reuses the statistics it finds (router targets depend on the expert
// sets and are always recomputed).
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "moe/kernels/tensor_type.h"
#include "moe/model/router.h"

namespace lookahead::moe {

struct RefactorOptions {
  std::string model, corpus, out, work_dir;
  std::vector<std::string> domains;   // empty = every domain of the corpus
  double keep = 0.5;
  int64_t ctx = 512;
  int64_t stats_tokens = 8192;        // per domain, calibration split
  int64_t router_tokens = 16384;      // per domain, training split
  int64_t router_ctx = 256;
  RouterConfig router;                // n_expert / n_vocab are filled in
  TensorType dtype = TensorType::F16;
  bool dense_ffn = true;
  bool progress = true;
  // Expert reconstruction (ffn_reconstruction.h): "lsq" refits every expert's down_proj by ridge
  // least squares to the dense FFN's output on its domain's calibration tokens; "none" keeps the
  // dense columns (the paper's cut).
  std::string reconstruct = "lsq";
  double ridge = -1;                    // < 0: chosen per (layer, expert) among auto_ridges() on validation tokens
  int64_t reconstruct_tokens = 16384;   // per domain, calibration split: fit tokens
  int64_t validation_tokens = 4096;     // per domain, the calibration tokens right after them
  // Which neurons an expert (or the pruned FFN) keeps: "activation" = the largest mean |a_j| (the
  // paper's rule, expert_extraction.h); "output" = the same number of neurons chosen on the fit
  // tokens' Gram to least increase the FFN output error after the refit (select_neurons_output).
  std::string select = "activation";
  double select_damp = 1e-2;            // lambda = damp * mean diagonal of G during selection
  int64_t select_block = 16;            // neurons removed per selection step
  // Share of every expert's selection/fit objective taken from all domains' calibration tokens
  // (0 = its own domain only), so experts also fit the other text the router sends them.
  double general_mix = 0;
};

// Trains the router: reads `targets_path`, writes `router_path` (cluster_predictor.* tensors).
using RouterTrainer = std::function<void(const std::string& targets_path, const std::string& router_path)>;

struct RefactorSummary {
  std::vector<std::string> experts;
  std::vector<double> permanent_share;  // per layer
  std::vector<double> expert_share;     // per expert: mean S_e / n_ff
  // Per expert, mean over layers of the relative FFN output error on its calibration tokens
  // (ffn_reconstruction.h): of the cut dense columns, and of the refit (empty without --reconstruct lsq).
  std::vector<double> error_cut, error_fit;
  // The same on the validation tokens, and the median chosen ridge, per expert.
  std::vector<double> validation_error_cut, validation_error_fit, ridge;
  double reconstruct_seconds = 0;       // wall time of the reconstruction step
  int64_t stats_tokens = 0, router_tokens = 0;
};

RefactorSummary refactor_to_readme(const RefactorOptions& options, const RouterTrainer& train_router);

// `lookahead moe prune`: the dense model of the same active FFN size (pruned_model.h), from the
// same statistics as `moe refactor` (WORK/stats.gguf is shared when both get the same --work), with
// the same reconstruction. width <= 0: the mean size of the experts `moe refactor` would extract
// with options.keep and options.dtype, rounded to the nearest neuron (whole blocks when quantized).
// options.router, options.router_tokens and options.router_ctx are unused.
struct PruneSummary {
  int32_t width = 0;
  double error_cut = 0, error_fit = 0;  // mean over layers (error_fit only with lsq)
  double validation_error_cut = 0, validation_error_fit = 0, ridge = 0;  // validation errors, median ridge
  int64_t stats_tokens = 0;
};
PruneSummary prune_to_dense(const RefactorOptions& options, int32_t width);

}  // namespace lookahead::moe
