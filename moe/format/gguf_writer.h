#pragma once
// GGUF v3 writer. Spec: ggml/docs/gguf.md; the output is what gguf-py / llama.cpp write:
//   "GGUF", u32 version 3, u64 tensor_count, u64 kv_count, kv pairs (string key, u32 value type,
//   value; arrays as u32 element type + u64 count + elements), tensor infos (name, u32 n_dims,
//   u64 dims innermost first, u32 ggml type, u64 offset relative to the data section), zero
//   padding to `general.alignment`, then each tensor's data at an aligned offset, each padded to
//   the alignment.
//
// Contract:
//   - Metadata keeps insertion order; set() on an existing key replaces its value in place. Value
//     types are written exactly as given (GgufValue::type), so a file read by GgufFile and written
//     back keeps every key's type. "general.alignment" is owned by the writer: it is always
//     written as UINT32; setting it changes the alignment (must be a power of two).
//   - Tensor names are unique and shorter than 64 bytes (llama.cpp's GGML_MAX_NAME), 1..4 dims,
//     shape[0] a multiple of the type's block size. Violations throw lookahead::Error.
//   - write() goes through AtomicFile: on any error no file (and no temporary) is left at `path`.
//     Tensors added with a producer are materialised one at a time during write(), so converting
//     a model needs memory for one tensor, not the whole model.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "moe/format/gguf.h"
#include "moe/kernels/tensor_type.h"

namespace lookahead::moe {

// Value constructors for GgufWriter::set.
GgufValue gguf_u32(uint32_t v);
GgufValue gguf_i32(int32_t v);
GgufValue gguf_u64(uint64_t v);
GgufValue gguf_f32(float v);
GgufValue gguf_bool(bool v);
GgufValue gguf_string(std::string v);
GgufValue gguf_string_array(const std::vector<std::string>& values);
GgufValue gguf_f32_array(const std::vector<float>& values);
GgufValue gguf_i32_array(const std::vector<int32_t>& values);

class GgufWriter {
 public:
  explicit GgufWriter(uint64_t alignment = 32);

  void set(const std::string& key, GgufValue value);
  bool has(const std::string& key) const;

  // Bytes must stay valid until write() returns; `bytes` must equal the size implied by shape.
  void add_tensor(const std::string& name, TensorType type, std::vector<int64_t> shape, const void* data,
                  uint64_t bytes);
  // `produce(dst)` fills exactly the tensor's byte size at write time.
  void add_tensor(const std::string& name, TensorType type, std::vector<int64_t> shape,
                  std::function<void(uint8_t* dst)> produce);

  uint64_t alignment() const { return alignment_; }
  size_t tensor_count() const { return tensors_.size(); }
  // Writes the file atomically; shows a progress bar labelled `progress_label` on a TTY when
  // non-empty.
  void write(const std::string& path, const std::string& progress_label = "") const;

 private:
  struct Tensor {
    std::string name;
    TensorType type;
    std::vector<int64_t> shape;
    uint64_t bytes;
    const void* data;  // or produce
    std::function<void(uint8_t*)> produce;
  };
  uint64_t check_tensor(const std::string& name, TensorType type, const std::vector<int64_t>& shape) const;

  uint64_t alignment_;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::vector<Tensor> tensors_;
};

}  // namespace lookahead::moe
