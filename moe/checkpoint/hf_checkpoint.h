#pragma once
// Hugging Face checkpoint directory as a ModelSource: config.json, model.safetensors (or a sharded
// model.safetensors.index.json), dtypes F32/F16/BF16, tokenizer.json or tokenizer.model.
//
// Name mapping (HF -> GGUF): model.embed_tokens -> token_embd, model.norm -> output_norm,
// lm_head -> output, model.layers.N.{self_attn.{q,k,v,o}_proj -> blk.N.attn_{q,k,v,output},
// mlp.{gate,up,down}_proj -> blk.N.ffn_{gate,up,down}, input_layernorm -> blk.N.attn_norm,
// post_attention_layernorm -> blk.N.ffn_norm}, each with ".weight". Shapes come in GGML order
// (safetensors.h reverses them); q/k keep HF's rotate_half pairing, so rope_neox = true.
//
// Contract:
//   - config.json must describe a LlamaForCausalLM or MistralForCausalLM without biases or RoPE
//     scaling; every expected tensor must exist with the shape config.json implies, and every
//     tensor in the checkpoint must have a GGUF counterpart. Violations throw lookahead::Error
//     naming the directory, the file, the tensor and the config.json field.
//   - The tokenizer is loaded on first use (Tokenizer::from_hf_dir); a directory with neither
//     tokenizer.json nor tokenizer.model gives an error naming both.
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "moe/checkpoint/model_source.h"
#include "moe/format/safetensors.h"

namespace lookahead::moe {

class HfCheckpoint : public ModelSource {
 public:
  explicit HfCheckpoint(const std::string& dir);

  const std::string& path() const override { return dir_; }
  const LlamaHparams& hparams() const override { return hp_; }
  const TensorView* find_tensor(const std::string& gguf_name) const override;
  const Tokenizer& tokenizer() const override;

  // Every tensor under its GGUF name (TensorView::name is the GGUF name), in GGUF file order:
  // token_embd, blk.0..., output_norm, output.
  const std::vector<TensorView>& tensors() const { return tensors_; }
  // The HF name a GGUF-named tensor came from.
  const std::string& hf_name(const std::string& gguf_name) const;
  // A checkpoint tensor by its Hugging Face name (Read-ME experts and router included).
  const TensorView* raw_tensor(const std::string& hf_name) const;
  // The safetensors file holding a tensor (by Hugging Face name); empty if unknown.
  std::string file_of(const std::string& hf_name) const;
  // config.json has the Read-ME keys (N_cluster): experts and router tensors are allowed, the dense
  // FFN is optional.
  bool is_readme() const { return readme_; }
  // config.json's "architectures"[0], e.g. "LlamaForCausalLM".
  const std::string& architecture() const { return architecture_; }

 private:
  std::string dir_;
  std::string architecture_;
  bool readme_ = false;
  LlamaHparams hp_;
  std::unique_ptr<SafetensorsCheckpoint> weights_;
  std::vector<TensorView> tensors_;
  std::vector<std::string> hf_names_;
  std::map<std::string, size_t> index_;
  mutable std::once_flag tokenizer_once_;
  mutable std::unique_ptr<Tokenizer> tokenizer_;
};

// The same as std::make_unique<HfCheckpoint>(dir); open_model() calls it for directories.
std::unique_ptr<ModelSource> open_hf_checkpoint(const std::string& dir);

// GGUF name of an HF tensor name, or "" when it has none.
std::string gguf_name_of_hf(const std::string& hf_name);
// The inverse: "" for a name with no Hugging Face counterpart.
std::string hf_name_of_gguf(const std::string& gguf_name);

}  // namespace lookahead::moe
