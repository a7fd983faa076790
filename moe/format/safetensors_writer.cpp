#include "moe/format/safetensors_writer.h"

#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/progress.h"

namespace lookahead::moe {

namespace {

bool is_block_type(TensorType type) { return traits(type).block_size > 1; }

const char* dtype_name(TensorType type) {
  switch (type) {
    case TensorType::F32: return "F32";
    case TensorType::F16: return "F16";
    case TensorType::BF16: return "BF16";
    case TensorType::I32: return "I32";
    case TensorType::Q8_0:
    case TensorType::Q4_0:
    case TensorType::Q4_1: return "U8";  // GGML blocks, declared in __metadata__ (safetensors.h)
  }
  fail("safetensors writer: type {} cannot be stored in safetensors", tensor_type_name(type));
}

// The shape as stored: a block type's last dimension becomes its row's byte count.
std::vector<int64_t> stored_shape(TensorType type, std::vector<int64_t> shape) {
  if (is_block_type(type)) shape.back() = row_bytes(type, shape.back());
  return shape;
}

}  // namespace

void SafetensorsWriter::set_metadata(const std::string& key, const std::string& value) {
  if (key == kGgmlTypesKey)
    fail("safetensors writer: __metadata__ '{}' is written from the quantized tensors, not set by hand", key);
  metadata_[key] = value;
}

void SafetensorsWriter::add(Entry e) {
  if (e.name.empty() || e.name == "__metadata__") fail("safetensors writer: invalid tensor name '{}'", e.name);
  if (index_.count(e.name)) fail("safetensors writer: tensor '{}' added twice", e.name);
  dtype_name(e.type);
  uint64_t elements = 1;
  for (int64_t d : e.shape) {
    if (d < 0) fail("safetensors writer: tensor '{}' has a negative dimension", e.name);
    elements *= static_cast<uint64_t>(d);
  }
  const TensorTypeTraits& t = traits(e.type);
  if (t.block_size > 1 && (e.shape.empty() || e.shape.back() == 0 || e.shape.back() % t.block_size != 0))
    fail("safetensors writer: tensor '{}' ({}) needs rows of a positive multiple of {} values, got shape [{}]", e.name,
         t.name, t.block_size, fmt::join(e.shape, ", "));
  e.bytes = elements / static_cast<uint64_t>(t.block_size) * static_cast<uint64_t>(t.type_size);
  index_[e.name] = tensors_.size();
  tensors_.push_back(std::move(e));
}

void SafetensorsWriter::add_tensor(const std::string& name, TensorType type, std::vector<int64_t> shape,
                                   const void* data) {
  add({name, type, std::move(shape), 0, data, {}});
}

void SafetensorsWriter::add_tensor(const std::string& name, TensorType type, std::vector<int64_t> shape,
                                   std::function<void(uint8_t* dst)> produce) {
  add({name, type, std::move(shape), 0, nullptr, std::move(produce)});
}

std::string SafetensorsWriter::header() const {
  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  std::map<std::string, std::string> metadata = metadata_;
  nlohmann::json block_types = nlohmann::json::object();  // sorted by name: deterministic
  for (const Entry& e : tensors_)
    if (is_block_type(e.type)) block_types[e.name] = std::string(tensor_type_name(e.type));
  if (!block_types.empty()) metadata[kGgmlTypesKey] = block_types.dump();
  if (!metadata.empty()) {
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    h["__metadata__"] = m;
  }
  uint64_t offset = 0;
  for (const Entry& e : tensors_) {
    h[e.name] = {{"dtype", dtype_name(e.type)},
                 {"shape", stored_shape(e.type, e.shape)},
                 {"data_offsets", {offset, offset + e.bytes}}};
    offset += e.bytes;
  }
  std::string text = h.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // data section starts 8-aligned
  return text;
}

uint64_t SafetensorsWriter::file_size() const {
  uint64_t total = 8 + header().size();
  for (const Entry& e : tensors_) total += e.bytes;
  return total;
}

void SafetensorsWriter::write(const std::string& path, const std::string& progress_label) const {
  const std::string text = header();
  AtomicFile out(path);
  const uint64_t n = text.size();
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(n >> (8 * i));
  out.write(len, 8);
  out.write(text);
  ProgressBar progress(progress_label, tensors_.size(), !progress_label.empty());
  std::vector<uint8_t> buffer;
  for (const Entry& e : tensors_) {
    if (e.produce) {
      buffer.assign(static_cast<size_t>(e.bytes), 0);
      e.produce(buffer.data());
      out.write(buffer.data(), buffer.size());
    } else {
      out.write(e.data, static_cast<size_t>(e.bytes));
    }
    progress.advance(1);
  }
  progress.finish();
  out.commit();
}

}  // namespace lookahead::moe
