#pragma once
// safetensors reader, memory-mapped, and sharded checkpoints. Spec: huggingface/safetensors README.
//
// Layout: u64 little-endian header length N, N bytes of UTF-8 JSON
//   {"<name>": {"dtype": "F16", "shape": [rows, cols], "data_offsets": [begin, end]}, ...,
//    "__metadata__": {"<key>": "<string>"}}
// then the data section; offsets are relative to its start, tensors are row-major (C order).
//
// Quantized tensors (a lookahead extension; the file stays valid safetensors that any reader can
// open): GGML blocks (tensor_type.h) stored as dtype U8 with row-major shape [..., rows, row
// bytes], and declared in __metadata__[kGgmlTypesKey] = JSON object {"<tensor>": "Q8_0" | "Q4_0" |
// "Q4_1"}. This keeps the blocks byte-identical to GGUF's, so kernels use them in place and one
// Read-ME (layer, expert) slab stays one contiguous read.
//
// Contract:
//   - Every tensor is validated: dtype is F32, F16, BF16 or I32 (others are rejected by name), or
//     U8 for exactly the tensors kGgmlTypesKey declares (row bytes a positive multiple of the
//     block size; the TensorView then has the declared type and shape[0] = values per row),
//     prod(shape) * dtype size == end - begin, the range lies inside the data section, and no two
//     ranges overlap; a declared tensor the file lacks is an error. Any violation throws
//     lookahead::Error naming the file and tensor.
//   - Tensors are exposed as TensorView (gguf.h) with the shape REVERSED into GGML order: a
//     row-major [out, in] tensor becomes shape {in, out}, shape[0] = row length. The bytes are the
//     same; data points into the mapping and lives as long as the file object.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "moe/format/gguf.h"
#include "moe/format/mapped_file.h"

namespace lookahead::moe {

inline constexpr const char* kGgmlTypesKey = "ggml_types";

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  // Parses an in-memory image (fuzzing, tests). `name` stands for the path in error messages;
  // `data` must outlive the object.
  SafetensorsFile(std::string name, const uint8_t* data, size_t size);

  const std::string& path() const { return path_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }  // __metadata__
  const std::vector<TensorView>& tensors() const { return tensors_; }
  const TensorView* find_tensor(const std::string& name) const;

 private:
  void parse();

  std::unique_ptr<MappedFile> file_;  // null for an in-memory image
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::map<std::string, std::string> metadata_;
  std::vector<TensorView> tensors_;
  std::map<std::string, size_t> index_;
};

// All tensors of a checkpoint directory: `model.safetensors.index.json` ({"weight_map":
// {tensor: shard file}}) when present, else the single `model.safetensors`.
//
// Contract: every tensor named in weight_map exists in its shard; a tensor present in two shards
// or a shard path leaving the directory is an error; tensors a shard holds but weight_map does not
// name are ignored (as transformers does). Errors name the index or shard file.
class SafetensorsCheckpoint {
 public:
  explicit SafetensorsCheckpoint(const std::string& dir);

  const std::string& dir() const { return dir_; }
  // Tensor names in a stable (sorted) order.
  const std::map<std::string, const TensorView*>& tensors() const { return tensors_; }
  const TensorView* find_tensor(const std::string& name) const;
  // The file a tensor came from (for error messages); empty if unknown.
  std::string file_of(const std::string& name) const;
  const std::vector<std::unique_ptr<SafetensorsFile>>& shards() const { return shards_; }

 private:
  std::string dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> shards_;
  std::map<std::string, const TensorView*> tensors_;
  std::map<std::string, size_t> shard_of_;
};

}  // namespace lookahead::moe
