#include "moe/refactor/pruned_model.h"

#include <algorithm>
#include <numeric>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/staging_dir.h"
#include "moe/checkpoint/hf_checkpoint.h"
#include "moe/format/safetensors_writer.h"
#include "moe/kernels/quantize.h"
#include "moe/refactor/readme_export.h"

namespace lookahead::moe {

std::vector<std::vector<int32_t>> pruned_neurons(const ActivationStats& stats, int32_t width) {
  if (width < 1 || width > stats.n_ff) fail("pruned width {} must lie in [1, {}]", width, stats.n_ff);
  int64_t total = 0;
  for (int64_t t : stats.tokens) total += t;
  if (total <= 0) fail("activation statistics of {} hold no tokens", stats.model);
  std::vector<std::vector<int32_t>> out(static_cast<size_t>(stats.n_layer));
  std::vector<double> pooled(static_cast<size_t>(stats.n_ff));
  std::vector<int32_t> order(static_cast<size_t>(stats.n_ff));
  for (int l = 0; l < stats.n_layer; ++l) {
    std::fill(pooled.begin(), pooled.end(), 0.0);
    for (size_t d = 0; d < stats.domains.size(); ++d) {
      const float* row = stats.row(d, l);
      const double wgt = static_cast<double>(stats.tokens[d]) / static_cast<double>(total);
      for (int32_t j = 0; j < stats.n_ff; ++j) pooled[static_cast<size_t>(j)] += wgt * row[j];
    }
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int32_t a, int32_t b) { return pooled[static_cast<size_t>(a)] > pooled[static_cast<size_t>(b)]; });
    std::vector<int32_t>& keep = out[static_cast<size_t>(l)];
    keep.assign(order.begin(), order.begin() + width);
    std::sort(keep.begin(), keep.end());
  }
  return out;
}

void write_pruned_model(const ModelSource& dense, const std::vector<std::vector<int32_t>>& neurons,
                        const std::string& out, const PrunedExportOptions& options) {
  LlamaHparams hp = dense.hparams();
  const TensorType dtype = options.dtype;
  if (static_cast<int32_t>(neurons.size()) != hp.n_layer)
    fail("pruned export: neuron sets for {} layers, the model has {}", neurons.size(), hp.n_layer);
  const auto width = static_cast<int64_t>(neurons.at(0).size());
  for (const auto& layer : neurons)
    if (static_cast<int64_t>(layer.size()) != width) fail("pruned export: every layer must keep the same number of neurons");
  if (options.down && static_cast<int32_t>(options.down->size()) != hp.n_layer)
    fail("pruned export: refit down projections for {} layers, the model has {}", options.down->size(), hp.n_layer);
  const int64_t d = hp.n_embd;
  hp.n_ff = static_cast<int32_t>(width);
  check_whole_block_rows(hp, dtype, "pruned export");

  StagingDir tmp(out);
  const Tokenizer* tok = nullptr;
  try {
    tok = &dense.tokenizer();
  } catch (const Error&) {
    tok = nullptr;  // write_readme_tokenizer names what is missing
  }
  write_file_atomic(tmp.file("config.json"), dense_config_json(hp, tok, dtype));
  write_readme_tokenizer(dense, tmp.path().string());

  SafetensorsWriter w;
  w.set_metadata("format", "pt");
  w.set_metadata("lookahead.pruned_from", dense.path());
  w.set_metadata("lookahead.reconstruction", options.down ? "lsq" : "none");
  add_hf_tensor(w, dense, "token_embd.weight", dtype);
  for (int l = 0; l < hp.n_layer; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    for (const char* n : {"attn_norm.weight", "attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight",
                          "ffn_norm.weight"})
      add_hf_tensor(w, dense, b + n, dtype);
    const std::vector<int32_t>* ids = &neurons[static_cast<size_t>(l)];
    for (const char* proj : {"gate", "up"}) {
      const TensorView* m = &dense.tensor(b + "ffn_" + proj + ".weight");
      const std::string name = "model.layers." + std::to_string(l) + ".mlp." + proj + "_proj.weight";
      w.add_tensor(name, dtype, {width, d}, [m, ids, dtype, d](uint8_t* dst) {
        std::vector<float> row(static_cast<size_t>(d));
        for (size_t i = 0; i < ids->size(); ++i) {
          dequantize_row(m->type, m->data + (*ids)[i] * row_bytes(m->type, d), row.data(), d);
          quantize_row(dtype, row.data(), dst + static_cast<int64_t>(i) * row_bytes(dtype, d), d);
        }
      });
    }
    const TensorView* down = &dense.tensor(b + "ffn_down.weight");
    const std::vector<float>* refit = options.down ? &(*options.down)[static_cast<size_t>(l)] : nullptr;
    if (refit && static_cast<int64_t>(refit->size()) != d * width)
      fail("pruned export: refit down projection of layer {} has {} values, expected {} x {}", l, refit->size(), d, width);
    const std::string down_name = "model.layers." + std::to_string(l) + ".mlp.down_proj.weight";
    w.add_tensor(down_name, dtype, {d, width}, [down, ids, dtype, width, refit, down_name](uint8_t* dst) {
      const int64_t ff = down->shape.at(0);
      std::vector<float> row(static_cast<size_t>(ff)), picked(static_cast<size_t>(width));
      for (int64_t r = 0; r < down->rows(); ++r) {
        if (refit) {
          std::copy_n(refit->data() + r * width, width, picked.data());
        } else {
          dequantize_row(down->type, down->data + r * row_bytes(down->type, ff), row.data(), ff);
          for (int64_t i = 0; i < width; ++i) picked[static_cast<size_t>(i)] = row[static_cast<size_t>((*ids)[static_cast<size_t>(i)])];
        }
        for (float v : picked)
          if (!std::isfinite(v)) fail("pruned export: tensor '{}' holds a non-finite value", down_name);
        quantize_row(dtype, picked.data(), dst + r * row_bytes(dtype, width), width);
      }
    });
  }
  add_hf_tensor(w, dense, "output_norm.weight", dtype);
  if (!hp.tied_embeddings) add_hf_tensor(w, dense, "output.weight", dtype);
  w.write(tmp.file("model.safetensors"), options.progress ? "writing pruned model" : "");
  tmp.commit();
}

}  // namespace lookahead::moe
