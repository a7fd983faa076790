#include "moe/format/gguf_writer.h"

#include <cstring>
#include <set>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/progress.h"

namespace lookahead::moe {

namespace {

constexpr uint32_t kVersion = 3;
constexpr size_t kMaxName = 64;  // llama.cpp's GGML_MAX_NAME, including the terminating NUL
const char* const kAlignmentKey = "general.alignment";

template <typename T>
void put(std::string& out, T v) {
  char buf[sizeof(T)];
  std::memcpy(buf, &v, sizeof(T));
  out.append(buf, sizeof(T));
}

void put_string(std::string& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out.append(s);
}

uint64_t as_u64(const GgufValue& v, const std::string& key) {
  if (auto* u = std::get_if<uint64_t>(&v.value)) return *u;
  if (auto* s = std::get_if<int64_t>(&v.value)) return static_cast<uint64_t>(*s);
  if (auto* b = std::get_if<bool>(&v.value)) return *b ? 1 : 0;
  fail("GGUF writer: metadata '{}' is declared an integer but holds another kind", key);
}

double as_double(const GgufValue& v, const std::string& key) {
  if (auto* d = std::get_if<double>(&v.value)) return *d;
  if (auto* u = std::get_if<uint64_t>(&v.value)) return static_cast<double>(*u);
  if (auto* s = std::get_if<int64_t>(&v.value)) return static_cast<double>(*s);
  fail("GGUF writer: metadata '{}' is declared a float but holds another kind", key);
}

void put_value(std::string& out, const GgufValue& v, const std::string& key, int depth) {
  switch (v.type) {
    case GgufValueType::UINT8: put<uint8_t>(out, static_cast<uint8_t>(as_u64(v, key))); break;
    case GgufValueType::INT8: put<int8_t>(out, static_cast<int8_t>(as_u64(v, key))); break;
    case GgufValueType::UINT16: put<uint16_t>(out, static_cast<uint16_t>(as_u64(v, key))); break;
    case GgufValueType::INT16: put<int16_t>(out, static_cast<int16_t>(as_u64(v, key))); break;
    case GgufValueType::UINT32: put<uint32_t>(out, static_cast<uint32_t>(as_u64(v, key))); break;
    case GgufValueType::INT32: put<int32_t>(out, static_cast<int32_t>(as_u64(v, key))); break;
    case GgufValueType::UINT64: put<uint64_t>(out, as_u64(v, key)); break;
    case GgufValueType::INT64: put<int64_t>(out, static_cast<int64_t>(as_u64(v, key))); break;
    case GgufValueType::FLOAT32: put<float>(out, static_cast<float>(as_double(v, key))); break;
    case GgufValueType::FLOAT64: put<double>(out, as_double(v, key)); break;
    case GgufValueType::BOOL: {
      auto* b = std::get_if<bool>(&v.value);
      if (!b) fail("GGUF writer: metadata '{}' is declared a bool but holds another kind", key);
      put<uint8_t>(out, *b ? 1 : 0);
      break;
    }
    case GgufValueType::STRING: {
      auto* s = std::get_if<std::string>(&v.value);
      if (!s) fail("GGUF writer: metadata '{}' is declared a string but holds another kind", key);
      put_string(out, *s);
      break;
    }
    case GgufValueType::ARRAY: {
      auto* a = std::get_if<std::shared_ptr<GgufArray>>(&v.value);
      if (!a || !*a) fail("GGUF writer: metadata '{}' is declared an array but holds another kind", key);
      if (depth > 4) fail("GGUF writer: metadata '{}': arrays nested too deeply", key);
      put<uint32_t>(out, static_cast<uint32_t>((*a)->element_type));
      put<uint64_t>(out, (*a)->values.size());
      for (const auto& e : (*a)->values) {
        if (e.type != (*a)->element_type)
          fail("GGUF writer: metadata '{}': array element of type {} in an array of type {}", key,
               static_cast<uint32_t>(e.type), static_cast<uint32_t>((*a)->element_type));
        put_value(out, e, key, depth + 1);
      }
      break;
    }
    default: fail("GGUF writer: metadata '{}' has unknown value type {}", key, static_cast<uint32_t>(v.type));
  }
}

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

template <typename T>
GgufValue scalar(GgufValueType type, T v) {
  GgufValue out;
  out.type = type;
  out.value = v;
  return out;
}

}  // namespace

GgufValue gguf_u32(uint32_t v) { return scalar(GgufValueType::UINT32, uint64_t{v}); }
GgufValue gguf_i32(int32_t v) { return scalar(GgufValueType::INT32, int64_t{v}); }
GgufValue gguf_u64(uint64_t v) { return scalar(GgufValueType::UINT64, v); }
GgufValue gguf_f32(float v) { return scalar(GgufValueType::FLOAT32, double{v}); }
GgufValue gguf_bool(bool v) { return scalar(GgufValueType::BOOL, v); }
GgufValue gguf_string(std::string v) { return scalar(GgufValueType::STRING, std::move(v)); }

namespace {
template <typename T, typename F>
GgufValue make_array(GgufValueType element_type, const std::vector<T>& values, F element) {
  auto a = std::make_shared<GgufArray>();
  a->element_type = element_type;
  a->values.reserve(values.size());
  for (const auto& v : values) a->values.push_back(element(v));
  return scalar(GgufValueType::ARRAY, std::move(a));
}
}  // namespace

GgufValue gguf_string_array(const std::vector<std::string>& values) {
  return make_array(GgufValueType::STRING, values, [](const std::string& s) { return gguf_string(s); });
}
GgufValue gguf_f32_array(const std::vector<float>& values) {
  return make_array(GgufValueType::FLOAT32, values, [](float v) { return gguf_f32(v); });
}
GgufValue gguf_i32_array(const std::vector<int32_t>& values) {
  return make_array(GgufValueType::INT32, values, [](int32_t v) { return gguf_i32(v); });
}

GgufWriter::GgufWriter(uint64_t alignment) : alignment_(alignment) {
  if (alignment == 0 || (alignment & (alignment - 1)) != 0 || alignment > (1u << 20))
    fail("GGUF writer: alignment {} is not a power of two", alignment);
  metadata_.emplace_back(kAlignmentKey, gguf_u32(static_cast<uint32_t>(alignment)));
}

void GgufWriter::set(const std::string& key, GgufValue value) {
  if (key.empty()) fail("GGUF writer: empty metadata key");
  if (key == kAlignmentKey) {
    uint64_t a = as_u64(value, key);
    if (value.type == GgufValueType::ARRAY || value.type == GgufValueType::STRING || a == 0 || (a & (a - 1)) != 0 ||
        a > (1u << 20))
      fail("GGUF writer: general.alignment must be a power of two");
    alignment_ = a;
    value = gguf_u32(static_cast<uint32_t>(a));
  }
  for (auto& [k, v] : metadata_)
    if (k == key) {
      v = std::move(value);
      return;
    }
  metadata_.emplace_back(key, std::move(value));
}

bool GgufWriter::has(const std::string& key) const {
  for (const auto& kv : metadata_)
    if (kv.first == key) return true;
  return false;
}

uint64_t GgufWriter::check_tensor(const std::string& name, TensorType type, const std::vector<int64_t>& shape) const {
  if (name.empty() || name.size() >= kMaxName)
    fail("GGUF writer: tensor name '{}' must be 1..{} bytes", name, kMaxName - 1);
  for (const auto& t : tensors_)
    if (t.name == name) fail("GGUF writer: duplicate tensor '{}'", name);
  if (shape.empty() || shape.size() > 4) fail("GGUF writer: tensor '{}' has {} dimensions (1..4)", name, shape.size());
  uint64_t elements = 1;
  for (auto d : shape) {
    if (d <= 0 || d > (int64_t{1} << 40)) fail("GGUF writer: tensor '{}' has dimension {}", name, d);
    elements *= static_cast<uint64_t>(d);
    if (elements > (uint64_t{1} << 60)) fail("GGUF writer: tensor '{}' is too large", name);
  }
  const auto& t = traits(type);
  if (shape[0] % t.block_size != 0)
    fail("GGUF writer: tensor '{}' row length {} is not a multiple of the {} block size {}", name, shape[0], t.name,
         t.block_size);
  return elements / static_cast<uint64_t>(t.block_size) * static_cast<uint64_t>(t.type_size);
}

void GgufWriter::add_tensor(const std::string& name, TensorType type, std::vector<int64_t> shape, const void* data,
                            uint64_t bytes) {
  uint64_t expected = check_tensor(name, type, shape);
  if (bytes != expected)
    fail("GGUF writer: tensor '{}' has {} bytes, but its shape and type need {}", name, bytes, expected);
  tensors_.push_back({name, type, std::move(shape), bytes, data, nullptr});
}

void GgufWriter::add_tensor(const std::string& name, TensorType type, std::vector<int64_t> shape,
                            std::function<void(uint8_t* dst)> produce) {
  uint64_t bytes = check_tensor(name, type, shape);
  tensors_.push_back({name, type, std::move(shape), bytes, nullptr, std::move(produce)});
}

void GgufWriter::write(const std::string& path, const std::string& progress_label) const {
  std::string header;
  header.append("GGUF", 4);
  put<uint32_t>(header, kVersion);
  put<uint64_t>(header, tensors_.size());
  put<uint64_t>(header, metadata_.size());
  for (const auto& [key, value] : metadata_) {
    put_string(header, key);
    put<uint32_t>(header, static_cast<uint32_t>(value.type));
    put_value(header, value, key, 0);
  }
  uint64_t offset = 0, total = 0;
  for (const auto& t : tensors_) {
    put_string(header, t.name);
    put<uint32_t>(header, static_cast<uint32_t>(t.shape.size()));
    for (auto d : t.shape) put<uint64_t>(header, static_cast<uint64_t>(d));
    put<uint32_t>(header, static_cast<uint32_t>(t.type));
    put<uint64_t>(header, offset);
    offset = align_up(offset + t.bytes, alignment_);
    total += t.bytes;
  }
  header.resize(align_up(header.size(), alignment_), '\0');

  AtomicFile file(path);
  file.write(header);
  ProgressBar progress(progress_label, total, !progress_label.empty());
  std::vector<uint8_t> buffer;
  const std::string zeros(alignment_, '\0');
  for (const auto& t : tensors_) {
    const void* data = t.data;
    if (t.produce) {
      buffer.assign(t.bytes, 0);
      t.produce(buffer.data());
      data = buffer.data();
    }
    file.write(data, t.bytes);
    uint64_t pad = align_up(t.bytes, alignment_) - t.bytes;
    file.write(zeros.data(), pad);
    progress.advance(t.bytes);
  }
  progress.finish();
  file.commit();
}

}  // namespace lookahead::moe
