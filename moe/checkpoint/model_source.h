#pragma once
// Where a model's weights and hyperparameters come from: a GGUF file or a Hugging Face checkpoint
// directory. The forward pass only sees this interface.
//
// Contract:
//   - Tensors are addressed by their GGUF names (token_embd.weight, blk.N.attn_q.weight,
//     blk.N.ffn_gate.weight, output_norm.weight, output.weight, ...). A Hugging Face source maps its
//     names onto these. Shapes are in GGML order (shape[0] = row length = input dimension).
//   - rope_neox tells which rotary pairing the q/k weights expect: false = GGUF llama convention
//     (adjacent pairs, llama.cpp's convert permutes q/k), true = Hugging Face rotate_half pairing.
//   - open_model() validates the hyperparameters against the tensors' shapes and throws
//     lookahead::Error naming the file and field on any mismatch or missing tensor.
#include <memory>
#include <string>

#include "moe/format/gguf.h"
#include "moe/tokenize/tokenizer.h"

namespace lookahead::moe {

struct LlamaHparams {
  int32_t n_vocab = 0;
  int32_t n_embd = 0;     // d
  int32_t n_layer = 0;    // L
  int32_t n_head = 0;
  int32_t n_head_kv = 0;  // grouped-query attention: n_head % n_head_kv == 0
  int32_t head_dim = 0;   // usually n_embd / n_head
  int32_t n_ff = 0;       // FFN inner size D
  int32_t n_ctx_train = 0;
  float rope_theta = 10000.0f;
  float rms_eps = 1e-5f;
  bool rope_neox = false;
  bool tied_embeddings = false;  // no output.weight: the output projection is token_embd
};

class ModelSource {
 public:
  virtual ~ModelSource() = default;
  virtual const std::string& path() const = 0;
  virtual const LlamaHparams& hparams() const = 0;
  virtual const TensorView* find_tensor(const std::string& gguf_name) const = 0;
  // Throws lookahead::Error naming the model path and tensor when absent.
  const TensorView& tensor(const std::string& gguf_name) const;
  virtual const Tokenizer& tokenizer() const = 0;
};

// A `.gguf` file or a Hugging Face checkpoint directory.
std::unique_ptr<ModelSource> open_model(const std::string& path);

}  // namespace lookahead::moe
