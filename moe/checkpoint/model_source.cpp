// ModelSource for GGUF files, and open_model()'s dispatch between GGUF files and HF directories.
#include "moe/checkpoint/model_source.h"

#include <sys/stat.h>

#include <mutex>

#include "common/error.h"
#include "moe/checkpoint/hf_checkpoint.h"

namespace lookahead::moe {

const TensorView& ModelSource::tensor(const std::string& gguf_name) const {
  const TensorView* t = find_tensor(gguf_name);
  if (!t) fail("{}: missing tensor '{}'", path(), gguf_name);
  return *t;
}

namespace {

class GgufModelSource : public ModelSource {
 public:
  explicit GgufModelSource(const std::string& path) : file_(path) { read_hparams(); }

  const std::string& path() const override { return file_.path(); }
  const LlamaHparams& hparams() const override { return hp_; }
  const TensorView* find_tensor(const std::string& name) const override { return file_.find_tensor(name); }
  // Built on first use, so commands that take token ids work on files without a vocabulary.
  const Tokenizer& tokenizer() const override {
    std::call_once(tokenizer_once_, [this] { tokenizer_ = Tokenizer::from_gguf(file_); });
    if (!tokenizer_) fail("{}: no tokenizer available", path());
    return *tokenizer_;
  }

 private:
  int32_t get_i32(const std::string& key) const {
    const int64_t v = file_.get_int(key);
    if (v <= 0 || v > (int64_t{1} << 30)) fail("{}: metadata '{}' = {} is out of range", path(), key, v);
    return static_cast<int32_t>(v);
  }

  void read_hparams() {
    const std::string arch = file_.get_string("general.architecture");
    if (arch != "llama")
      fail("{}: general.architecture is '{}', expected 'llama' (Llama-family models only)", path(), arch);
    const std::string p = arch + ".";
    hp_.n_embd = get_i32(p + "embedding_length");
    hp_.n_layer = get_i32(p + "block_count");
    hp_.n_head = get_i32(p + "attention.head_count");
    hp_.n_head_kv = file_.has(p + "attention.head_count_kv") ? get_i32(p + "attention.head_count_kv") : hp_.n_head;
    hp_.n_ff = get_i32(p + "feed_forward_length");
    hp_.n_ctx_train = get_i32(p + "context_length");
    hp_.rope_theta = static_cast<float>(file_.find_float(p + "rope.freq_base").value_or(10000.0));
    hp_.rms_eps = static_cast<float>(file_.find_float(p + "attention.layer_norm_rms_epsilon").value_or(1e-5));
    hp_.rope_neox = false;  // GGUF llama: q/k permuted by the converter for adjacent-pair RoPE
    if (hp_.n_head % hp_.n_head_kv != 0)
      fail("{}: {}attention.head_count {} is not a multiple of head_count_kv {}", path(), p, hp_.n_head, hp_.n_head_kv);
    hp_.head_dim = file_.has(p + "attention.key_length") ? get_i32(p + "attention.key_length") : hp_.n_embd / hp_.n_head;
    if (file_.has(p + "rope.dimension_count") && get_i32(p + "rope.dimension_count") != hp_.head_dim)
      fail("{}: {}rope.dimension_count differs from the head size {} (partial RoPE is not supported)", path(), p,
           hp_.head_dim);
    if (hp_.head_dim % 2 != 0) fail("{}: head size {} is odd; RoPE needs pairs", path(), hp_.head_dim);

    const TensorView& embd = tensor("token_embd.weight");
    hp_.n_vocab = static_cast<int32_t>(embd.rows());
    if (file_.has(p + "vocab_size") && get_i32(p + "vocab_size") != hp_.n_vocab)
      fail("{}: {}vocab_size {} disagrees with token_embd.weight rows {}", path(), p, get_i32(p + "vocab_size"),
           hp_.n_vocab);
    hp_.tied_embeddings = file_.find_tensor("output.weight") == nullptr;

    const int64_t d = hp_.n_embd, q_dim = int64_t{hp_.n_head} * hp_.head_dim,
                  kv_dim = int64_t{hp_.n_head_kv} * hp_.head_dim;
    expect_shape("token_embd.weight", {d, hp_.n_vocab});
    expect_shape("output_norm.weight", {d});
    if (!hp_.tied_embeddings) expect_shape("output.weight", {d, hp_.n_vocab});
    for (int l = 0; l < hp_.n_layer; ++l) {
      const std::string b = "blk." + std::to_string(l) + ".";
      expect_shape(b + "attn_norm.weight", {d});
      expect_shape(b + "attn_q.weight", {d, q_dim});
      expect_shape(b + "attn_k.weight", {d, kv_dim});
      expect_shape(b + "attn_v.weight", {d, kv_dim});
      expect_shape(b + "attn_output.weight", {q_dim, d});
      expect_shape(b + "ffn_norm.weight", {d});
      expect_shape(b + "ffn_gate.weight", {d, hp_.n_ff});
      expect_shape(b + "ffn_up.weight", {d, hp_.n_ff});
      expect_shape(b + "ffn_down.weight", {hp_.n_ff, d});
    }
  }

  void expect_shape(const std::string& name, std::vector<int64_t> shape) const {
    const TensorView& t = tensor(name);
    if (t.shape != shape)
      fail("{}: tensor '{}' has shape [{}], expected [{}] from the hyperparameters", path(), name,
           fmt::join(t.shape, ", "), fmt::join(shape, ", "));
    if (traits(t.type).block_size > 1 && shape[0] % traits(t.type).block_size != 0)
      fail("{}: tensor '{}' rows of {} values do not fill {} blocks", path(), name, shape[0], tensor_type_name(t.type));
  }

  GgufFile file_;
  LlamaHparams hp_;
  mutable std::once_flag tokenizer_once_;
  mutable std::unique_ptr<Tokenizer> tokenizer_;
};

}  // namespace

std::unique_ptr<ModelSource> open_model(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) fail("{}: no such model file or directory", path);
  if (S_ISDIR(st.st_mode)) return open_hf_checkpoint(path);
  return std::make_unique<GgufModelSource>(path);
}

}  // namespace lookahead::moe
