#pragma once
// safetensors writer (format: huggingface/safetensors README; reader in safetensors.h).
//
//   u64 little-endian N, N bytes of JSON header (padded with spaces to a multiple of 8), data.
//   Header: {"__metadata__": {...}, "<name>": {"dtype", "shape" (row-major, outermost first),
//   "data_offsets": [begin, end]}, ...}.
//
// Contract:
//   - Tensors are packed back to back in insertion order (safetensors allows no gaps), so a caller
//     controls adjacency: the Read-ME export puts one (layer, expert)'s gate, up and down next to
//     each other, one contiguous read.
//   - dtype is F32, F16, BF16, I32, or a GGML block type (Q8_0, Q4_0, Q4_1; rows a multiple of 32
//     values), stored as U8 [..., rows, row bytes] and declared in __metadata__ (safetensors.h);
//     `shape` is the logical row-major shape in values ([out, in] for a weight). Names are unique
//     and non-empty and not "__metadata__". Violations throw lookahead::Error.
//   - write() goes through AtomicFile: on error no file is left at `path`. Producer tensors are
//     materialised one at a time, so writing needs memory for one tensor.
//   - Output is deterministic: the same tensors and metadata give byte-identical files.
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "moe/format/safetensors.h"
#include "moe/kernels/tensor_type.h"

namespace lookahead::moe {

class SafetensorsWriter {
 public:
  // kGgmlTypesKey is reserved: the writer fills it from the quantized tensors added.
  void set_metadata(const std::string& key, const std::string& value);

  // `data` must stay valid until write() returns and hold exactly prod(shape) * dtype size bytes.
  void add_tensor(const std::string& name, TensorType type, std::vector<int64_t> shape, const void* data);
  // `produce(dst)` fills the tensor's bytes at write time.
  void add_tensor(const std::string& name, TensorType type, std::vector<int64_t> shape,
                  std::function<void(uint8_t* dst)> produce);

  size_t tensor_count() const { return tensors_.size(); }
  // Total file size write() will produce.
  uint64_t file_size() const;
  void write(const std::string& path, const std::string& progress_label = "") const;

 private:
  struct Entry {
    std::string name;
    TensorType type;
    std::vector<int64_t> shape;
    uint64_t bytes = 0;
    const void* data = nullptr;
    std::function<void(uint8_t*)> produce;
  };
  void add(Entry e);
  std::string header() const;

  std::map<std::string, std::string> metadata_;
  std::vector<Entry> tensors_;
  std::map<std::string, size_t> index_;
};

}  // namespace lookahead::moe
