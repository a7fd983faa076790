#pragma once
// GGUF (v2 and v3) reader, memory-mapped. Spec: ggml/docs/gguf.md.
//
// Layout: magic "GGUF", u32 version, u64 tensor_count, u64 kv_count, kv pairs, tensor infos
// (name, n_dims, dims[] innermost first, ggml type, offset relative to the data section), padding
// to `general.alignment` (default 32), then tensor data.
//
// Contract: GgufFile validates everything it exposes: every tensor's type is supported
// (tensor_type.h), its byte range lies inside the file, and strings/arrays fit in the header.
// Any violation throws lookahead::Error naming the file and the offending key or tensor. Tensor data
// pointers point into the mapping and live as long as the GgufFile.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "moe/format/mapped_file.h"
#include "moe/kernels/tensor_type.h"

namespace lookahead::moe {

// GGUF metadata value types (the numbering of the spec).
enum class GgufValueType : uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};

struct GgufArray;
// A metadata value. Integers of every width are held as int64_t/uint64_t, floats as double, so
// callers ask for the kind they need (get_int etc.) and width mismatches are not errors.
struct GgufValue {
  GgufValueType type = GgufValueType::UINT32;
  std::variant<uint64_t, int64_t, double, bool, std::string, std::shared_ptr<GgufArray>> value;
};
struct GgufArray {
  GgufValueType element_type = GgufValueType::UINT8;
  std::vector<GgufValue> values;  // for element_type STRING/numeric
};

struct TensorView {
  std::string name;
  TensorType type = TensorType::F32;
  std::vector<int64_t> shape;  // GGML order: shape[0] is the innermost (row length)
  const uint8_t* data = nullptr;
  uint64_t bytes = 0;
  uint64_t file_offset = 0;  // absolute offset of the data in the file
  int64_t elements() const {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
  }
  int64_t rows() const {  // product of all dimensions but the first (safe for empty tensors)
    int64_t n = 1;
    for (size_t i = 1; i < shape.size(); ++i) n *= shape[i];
    return n;
  }
};

class GgufFile {
 public:
  // Opens, maps and validates `path`. Throws lookahead::Error on any malformed content.
  explicit GgufFile(const std::string& path);
  // Parses an in-memory image (fuzzing, tests). `name` stands for the path in error messages;
  // `data` must outlive the GgufFile (tensor views point into it).
  GgufFile(std::string name, const uint8_t* data, size_t size);

  const std::string& path() const { return path_; }
  // The whole file image (mapping or caller's buffer).
  const uint8_t* image() const { return data_; }
  size_t image_size() const { return size_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }

  const std::map<std::string, GgufValue>& metadata() const { return metadata_; }
  bool has(const std::string& key) const { return metadata_.count(key) != 0; }
  // Typed getters: throw lookahead::Error naming the key if missing or of the wrong kind.
  int64_t get_int(const std::string& key) const;
  double get_float(const std::string& key) const;
  bool get_bool(const std::string& key) const;
  const std::string& get_string(const std::string& key) const;
  std::vector<std::string> get_string_array(const std::string& key) const;
  std::vector<double> get_float_array(const std::string& key) const;
  std::vector<int64_t> get_int_array(const std::string& key) const;
  // Optional forms: nullopt when the key is absent (still an error if present with a wrong kind).
  std::optional<int64_t> find_int(const std::string& key) const;
  std::optional<double> find_float(const std::string& key) const;
  std::optional<std::string> find_string(const std::string& key) const;

  const std::vector<TensorView>& tensors() const { return tensors_; }
  const TensorView* find_tensor(const std::string& name) const;
  // Throws lookahead::Error naming the tensor if absent.
  const TensorView& tensor(const std::string& name) const;

 private:
  void parse();

  std::unique_ptr<MappedFile> file_;  // null for an in-memory image
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::map<std::string, GgufValue> metadata_;
  std::vector<TensorView> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

}  // namespace lookahead::moe
