#include "moe/kernels/tensor_type.h"

#include "common/error.h"

namespace lookahead::moe {

namespace {
constexpr TensorTypeTraits kTraits[] = {
    {TensorType::F32, "F32", 1, 4},    {TensorType::F16, "F16", 1, 2},    {TensorType::Q4_0, "Q4_0", 32, 18},
    {TensorType::Q4_1, "Q4_1", 32, 20}, {TensorType::Q8_0, "Q8_0", 32, 34}, {TensorType::BF16, "BF16", 1, 2},
    {TensorType::I32, "I32", 1, 4},
};
}  // namespace

std::optional<TensorTypeTraits> tensor_type_traits(uint32_t ggml_type) {
  for (const auto& t : kTraits)
    if (static_cast<uint32_t>(t.type) == ggml_type) return t;
  return std::nullopt;
}

const TensorTypeTraits& traits(TensorType type) {
  for (const auto& t : kTraits)
    if (t.type == type) return t;
  LOOKAHEAD_CHECK(false);
}

std::string_view tensor_type_name(TensorType type) { return traits(type).name; }

std::string_view ggml_type_name(uint32_t ggml_type) {
  static constexpr std::string_view names[] = {"F32",  "F16",  "Q4_0", "Q4_1", "Q4_2(removed)", "Q4_3(removed)",
                                               "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2_K",          "Q3_K",
                                               "Q4_K", "Q5_K", "Q6_K", "Q8_K", "IQ2_XXS",       "IQ2_XS",
                                               "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S",  "IQ4_XS",
                                               "I8",   "I16",  "I32",  "I64",  "F64",           "IQ1_M",
                                               "BF16"};
  if (ggml_type < std::size(names)) return names[ggml_type];
  return "unknown";
}

bool is_weight_type(TensorType type) { return type != TensorType::I32; }

int64_t row_bytes(TensorType type, int64_t n) {
  const auto& t = traits(type);
  LOOKAHEAD_CHECK(n % t.block_size == 0);
  return n / t.block_size * t.type_size;
}

}  // namespace lookahead::moe
