#pragma once
// Weight types, numbered as in GGML/GGUF so files round-trip. Quantized types store blocks of
// `block_size` values in `type_size` bytes:
//   Q8_0: {f16 d; int8 q[32]}            x = d * q
//   Q4_0: {f16 d; uint8 qs[16]}          x = d * (nibble - 8), low nibbles are values 0..15, high 16..31
//   Q4_1: {f16 d; f16 m; uint8 qs[16]}   x = d * nibble + m, same nibble layout
#include <cstdint>
#include <optional>
#include <string_view>

namespace lookahead::moe {

enum class TensorType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q8_0 = 8,
  I32 = 26,   // index tensors (Read-ME expert neuron lists, token ids); never a weight
  BF16 = 30,
};

struct TensorTypeTraits {
  TensorType type;
  std::string_view name;
  int64_t block_size;  // values per block
  int64_t type_size;   // bytes per block
};

// Traits of a supported type, or nullopt for a GGML type this engine does not handle.
std::optional<TensorTypeTraits> tensor_type_traits(uint32_t ggml_type);
const TensorTypeTraits& traits(TensorType type);
std::string_view tensor_type_name(TensorType type);
// Name of any GGML type id (including unsupported ones), for error messages.
std::string_view ggml_type_name(uint32_t ggml_type);
// True for the types a weight matrix or norm vector may have (everything but I32).
bool is_weight_type(TensorType type);
// Bytes for a row of `n` values; n must be a multiple of the block size.
int64_t row_bytes(TensorType type, int64_t n);

}  // namespace lookahead::moe
