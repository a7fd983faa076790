#include "moe/checkpoint/convert.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>

#include "common/error.h"
#include "moe/format/gguf.h"
#include "moe/format/gguf_writer.h"
#include "moe/checkpoint/hf_checkpoint.h"
#include "moe/checkpoint/gguf_tokenizer_keys.h"
#include "moe/kernels/quantize.h"

namespace lookahead::moe {

std::optional<TensorType> parse_convert_type(const std::string& name) {
  std::string n = name;
  for (auto& c : n) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (n == "keep") return std::nullopt;
  if (n == "f32") return TensorType::F32;
  if (n == "f16") return TensorType::F16;
  if (n == "bf16") return TensorType::BF16;
  if (n == "q8_0") return TensorType::Q8_0;
  if (n == "q4_0") return TensorType::Q4_0;
  if (n == "q4_1") return TensorType::Q4_1;
  fail("--type '{}' is not one of f32, f16, bf16, q8_0, q4_0, q4_1, keep", name);
}

uint32_t llama_file_type(TensorType type) {
  switch (type) {
    case TensorType::F32: return 0;   // LLAMA_FTYPE_ALL_F32
    case TensorType::F16: return 1;   // LLAMA_FTYPE_MOSTLY_F16
    case TensorType::Q4_0: return 2;  // LLAMA_FTYPE_MOSTLY_Q4_0
    case TensorType::Q4_1: return 3;  // LLAMA_FTYPE_MOSTLY_Q4_1
    case TensorType::Q8_0: return 7;  // LLAMA_FTYPE_MOSTLY_Q8_0
    case TensorType::BF16: return 32; // LLAMA_FTYPE_MOSTLY_BF16
    case TensorType::I32: break;      // never a weight type
  }
  return 0;
}

std::vector<int64_t> hf_to_gguf_rope_rows(int64_t rows, int64_t n_head) {
  LOOKAHEAD_CHECK(n_head > 0 && rows % (2 * n_head) == 0);
  const int64_t hd = rows / n_head, half = hd / 2;
  std::vector<int64_t> source(static_cast<size_t>(rows));
  for (int64_t h = 0; h < n_head; ++h)
    for (int64_t k = 0; k < half; ++k)
      for (int64_t j = 0; j < 2; ++j) source[static_cast<size_t>(h * hd + 2 * k + j)] = h * hd + j * half + k;
  return source;
}

namespace {

struct Plan {
  const TensorView* src;
  std::string name;
  TensorType type;
  std::vector<int64_t> source_rows;  // empty = identity
};

TensorType output_type(const TensorView& t, const std::optional<TensorType>& target, size_t& fallbacks) {
  if (t.shape.size() < 2) return TensorType::F32;  // norms: llama.cpp keeps them in f32
  if (!target) return t.type;
  const auto& tr = traits(*target);
  if (t.shape[0] % tr.block_size != 0) {
    ++fallbacks;
    return TensorType::F16;
  }
  return *target;
}

// Fills dst with the tensor converted to `plan.type`, rows reordered by plan.source_rows.
void produce(const Plan& plan, uint8_t* dst) {
  const TensorView& t = *plan.src;
  if (t.type == plan.type && plan.source_rows.empty()) {
    std::memcpy(dst, t.data, t.bytes);
    return;
  }
  const int64_t n = t.shape[0], rows = t.rows();
  const int64_t src_row = row_bytes(t.type, n), dst_row = row_bytes(plan.type, n);
#pragma omp parallel
  {
    std::vector<float> row(static_cast<size_t>(n));
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t s = plan.source_rows.empty() ? r : plan.source_rows[static_cast<size_t>(r)];
      if (t.type == plan.type) {
        std::memcpy(dst + r * dst_row, t.data + s * src_row, static_cast<size_t>(src_row));
      } else {
        dequantize_row(t.type, t.data + s * src_row, row.data(), n);
        quantize_row(plan.type, row.data(), dst + r * dst_row, n);
      }
    }
  }
}

std::string lower_name(TensorType t) {
  std::string s(tensor_type_name(t));
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The type most weight bytes are in (for general.file_type).
TensorType dominant_type(const std::vector<Plan>& plans) {
  std::map<TensorType, int64_t> elements;
  for (const auto& p : plans)
    if (p.src->shape.size() >= 2) elements[p.type] += p.src->elements();
  TensorType best = TensorType::F32;
  int64_t most = -1;
  for (const auto& [type, n] : elements)
    if (n > most) {
      best = type;
      most = n;
    }
  return best;
}

void write_llama_hparams(GgufWriter& w, const HfCheckpoint& src) {
  const LlamaHparams& hp = src.hparams();
  std::string name = std::filesystem::path(src.path()).lexically_normal().filename().string();
  if (name.empty()) name = std::filesystem::path(src.path()).lexically_normal().parent_path().filename().string();
  w.set("general.architecture", gguf_string("llama"));
  w.set("general.name", gguf_string(name));
  w.set("llama.vocab_size", gguf_u32(static_cast<uint32_t>(hp.n_vocab)));
  w.set("llama.context_length", gguf_u32(static_cast<uint32_t>(hp.n_ctx_train)));
  w.set("llama.embedding_length", gguf_u32(static_cast<uint32_t>(hp.n_embd)));
  w.set("llama.block_count", gguf_u32(static_cast<uint32_t>(hp.n_layer)));
  w.set("llama.feed_forward_length", gguf_u32(static_cast<uint32_t>(hp.n_ff)));
  w.set("llama.rope.dimension_count", gguf_u32(static_cast<uint32_t>(hp.head_dim)));
  w.set("llama.attention.head_count", gguf_u32(static_cast<uint32_t>(hp.n_head)));
  w.set("llama.attention.head_count_kv", gguf_u32(static_cast<uint32_t>(hp.n_head_kv)));
  if (hp.head_dim * hp.n_head != hp.n_embd) {
    w.set("llama.attention.key_length", gguf_u32(static_cast<uint32_t>(hp.head_dim)));
    w.set("llama.attention.value_length", gguf_u32(static_cast<uint32_t>(hp.head_dim)));
  }
  w.set("llama.rope.freq_base", gguf_f32(hp.rope_theta));
  w.set("llama.attention.layer_norm_rms_epsilon", gguf_f32(hp.rms_eps));
}

}  // namespace

ConvertSummary convert_to_gguf(const ConvertOptions& o) {
  struct stat st {};
  if (::stat(o.model.c_str(), &st) != 0) fail("{}: no such model file or directory", o.model);
  if (o.out.empty()) fail("--out: an output path is required");

  ConvertSummary summary;
  GgufWriter writer;
  std::vector<Plan> plans;
  std::unique_ptr<GgufFile> gguf;
  std::unique_ptr<HfCheckpoint> hf;

  if (S_ISDIR(st.st_mode)) {
    hf = std::make_unique<HfCheckpoint>(o.model);
    write_llama_hparams(writer, *hf);
    if (!write_hf_tokenizer(o.model, hf->hparams().n_vocab, writer))
      fmt::print(stderr, "lookahead: warning: {}: no byte-level BPE tokenizer.json; the output has no tokenizer.ggml.* keys\n",
                 o.model);
    const auto& hp = hf->hparams();
    for (const auto& t : hf->tensors()) {
      Plan p{&t, t.name, output_type(t, o.type, summary.fallbacks), {}};
      // HF keeps q/k in rotate_half order; GGUF llama expects adjacent pairs (llama.cpp permutes).
      if (t.name.ends_with(".attn_q.weight")) p.source_rows = hf_to_gguf_rope_rows(t.rows(), hp.n_head);
      if (t.name.ends_with(".attn_k.weight")) p.source_rows = hf_to_gguf_rope_rows(t.rows(), hp.n_head_kv);
      plans.push_back(std::move(p));
    }
  } else {
    gguf = std::make_unique<GgufFile>(o.model);
    auto arch = gguf->find_string("general.architecture");
    if (arch != "llama")
      fail("{}: general.architecture is '{}', expected 'llama'", o.model, arch.value_or("(missing)"));
    for (const auto& [key, value] : gguf->metadata()) {
      // The writer owns the alignment; the quantization version is re-derived below.
      if (key == "general.alignment" || key == "general.quantization_version") continue;
      writer.set(key, value);
    }
    for (const auto& t : gguf->tensors()) plans.push_back({&t, t.name, output_type(t, o.type, summary.fallbacks), {}});
  }

  bool quantized = false;
  for (const auto& p : plans) quantized = quantized || traits(p.type).block_size > 1;
  if (o.type || hf) writer.set("general.file_type", gguf_u32(llama_file_type(dominant_type(plans))));
  if (quantized) writer.set("general.quantization_version", gguf_u32(2));  // ggml's GGML_QNT_VERSION

  for (const auto& p : plans) {
    writer.add_tensor(p.name, p.type, p.src->shape, [&p](uint8_t* dst) { produce(p, dst); });
    summary.bytes += static_cast<uint64_t>(row_bytes(p.type, p.src->shape[0]) * p.src->rows());
  }
  summary.tensors = plans.size();
  writer.write(o.out, o.progress ? "convert -> " + (o.type ? lower_name(*o.type) : std::string("keep")) : "");
  return summary;
}

}  // namespace lookahead::moe
