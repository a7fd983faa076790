#pragma once
// Model conversion to a llama-architecture GGUF that llama.cpp loads: from a GGUF file (any
// supported tensor types) or a Hugging Face checkpoint directory, to one weight type.
//
// Contract:
//   - Output weight type: `type` for every tensor with 2+ dimensions; 1-D tensors (norms) are
//     always F32; a quantized type whose block size does not divide a row length falls back to
//     F16 for that tensor (llama.cpp's converter does the same). nullopt ("keep") keeps each
//     tensor's type.
//   - Values: each row is dequantized to f32 (moe/kernels/quantize.h) and quantized to the target
//     type, so the result is bit-identical to quantizing the dequantized source with ggml.
//     Tensors whose type does not change are copied byte for byte.
//   - From a GGUF source every metadata key is copied (general.file_type and
//     general.quantization_version are updated for the new type). From an HF directory the llama.*
//     hyperparameters are written, q/k rows are permuted from HF's rotate_half layout to GGUF's
//     adjacent-pair layout exactly as llama.cpp's convert_hf_to_gguf.py `permute` does, and the
//     tokenizer.ggml.* keys are written from tokenizer.json when it is a byte-level BPE.
//   - The output is written atomically (no partial file on error); a progress bar is shown on a TTY.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "moe/kernels/tensor_type.h"

namespace lookahead::moe {

struct ConvertOptions {
  std::string model;                // .gguf file or HF checkpoint directory
  std::string out;                  // output .gguf path
  std::optional<TensorType> type;   // nullopt = keep each tensor's type
  bool progress = true;
};

struct ConvertSummary {
  size_t tensors = 0;
  uint64_t bytes = 0;       // tensor data bytes written
  size_t fallbacks = 0;     // tensors written as F16 because the row length did not fit the block size
};

ConvertSummary convert_to_gguf(const ConvertOptions& options);

// Parses "f32", "f16", "bf16", "q8_0", "q4_0", "q4_1" (case-insensitive) or "keep" (nullopt).
// Throws lookahead::Error naming --type otherwise.
std::optional<TensorType> parse_convert_type(const std::string& name);

// llama.cpp's LLAMA_FTYPE for a file whose weights are `type` (general.file_type).
uint32_t llama_file_type(TensorType type);

// Row permutation from HF rotate_half q/k layout to GGUF: row h*hd + 2k + j of the result is row
// h*hd + j*hd/2 + k of the source (hd = rows / n_head). Returns the source row of each result row.
std::vector<int64_t> hf_to_gguf_rope_rows(int64_t rows, int64_t n_head);

}  // namespace lookahead::moe
