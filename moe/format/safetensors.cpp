#include "moe/format/safetensors.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <limits>
#include <optional>
#include <nlohmann/json.hpp>

#include "common/error.h"

namespace lookahead::moe {

namespace {

using nlohmann::json;

// The header of a real checkpoint is well under a megabyte; the spec caps it at 100 MB.
constexpr uint64_t kMaxHeaderBytes = 100u << 20;
// A valid header nests three levels ({name: {shape: [..]}}); deeper input is rejected before
// parsing so hostile files cannot make the JSON parser or destructor recurse deeply.
constexpr int kMaxJsonDepth = 8;

int json_depth(std::string_view text) {
  int depth = 0, max_depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      max_depth = std::max(max_depth, ++depth);
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return max_depth;
}

struct Dtype {
  const char* name;
  TensorType type;
  uint64_t size;
};
constexpr Dtype kDtypes[] = {{"F32", TensorType::F32, 4}, {"F16", TensorType::F16, 2}, {"BF16", TensorType::BF16, 2}, {"I32", TensorType::I32, 4}};

// The quantized tensors a file declares (metadata key kGgmlTypesKey, see safetensors.h): tensor
// name -> GGML block type.
std::map<std::string, TensorType> parse_ggml_types(const std::string& path, const std::string& text) {
  std::map<std::string, TensorType> types;
  if (json_depth(text) > 1) fail("{}: __metadata__ '{}' must be a flat JSON object", path, kGgmlTypesKey);
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    fail("{}: __metadata__ '{}' is not valid JSON: {}", path, kGgmlTypesKey, e.what());
  }
  if (!j.is_object()) fail("{}: __metadata__ '{}' must be a JSON object {{tensor: type}}", path, kGgmlTypesKey);
  for (auto& [tensor, type] : j.items()) {
    if (!type.is_string()) fail("{}: __metadata__ '{}': the type of '{}' is not a string", path, kGgmlTypesKey, tensor);
    const std::string name = type.get<std::string>();
    std::optional<TensorType> found;
    for (TensorType t : {TensorType::Q8_0, TensorType::Q4_0, TensorType::Q4_1})
      if (name == tensor_type_name(t)) found = t;
    if (!found)
      fail("{}: __metadata__ '{}': tensor '{}' has type '{}'; quantized types are Q8_0, Q4_0 and Q4_1", path,
           kGgmlTypesKey, tensor, name);
    types[tensor] = *found;
  }
  return types;
}

}  // namespace

SafetensorsFile::SafetensorsFile(const std::string& path) : file_(std::make_unique<MappedFile>(path)) {
  path_ = file_->path();
  data_ = file_->data();
  size_ = file_->size();
  parse();
}

SafetensorsFile::SafetensorsFile(std::string name, const uint8_t* data, size_t size)
    : path_(std::move(name)), data_(data), size_(size) {
  parse();
}

void SafetensorsFile::parse() {
  const std::string& path = path_;
  if (size_ < 8) fail("{}: truncated safetensors file ({} bytes; the header length alone is 8)", path, size_);
  uint64_t header_len;
  std::memcpy(&header_len, data_, 8);
  if (header_len > kMaxHeaderBytes) fail("{}: safetensors header length {} exceeds the 100 MB limit", path, header_len);
  if (header_len > size_ - 8)
    fail("{}: truncated safetensors file: header of {} bytes but only {} bytes follow", path, header_len, size_ - 8);
  std::string_view text(reinterpret_cast<const char*>(data_ + 8), header_len);
  if (json_depth(text) > kMaxJsonDepth) fail("{}: safetensors header JSON is nested too deeply", path);
  json header;
  try {
    header = json::parse(text);
  } catch (const json::exception& e) {
    fail("{}: safetensors header is not valid JSON: {}", path, e.what());
  }
  if (!header.is_object()) fail("{}: safetensors header is not a JSON object", path);

  const uint8_t* section = data_ + 8 + header_len;
  const uint64_t section_size = size_ - 8 - header_len;
  struct Range {
    uint64_t begin, end;
    size_t index;
  };
  std::vector<Range> ranges;
  if (auto meta = header.find("__metadata__"); meta != header.end()) {
    if (!meta->is_object()) fail("{}: __metadata__ is not an object", path);
    for (auto& [k, v] : meta->items()) {
      if (!v.is_string()) fail("{}: __metadata__ '{}' is not a string", path, k);
      metadata_[k] = v.get<std::string>();
    }
  }
  std::map<std::string, TensorType> quantized;
  if (auto it = metadata_.find(kGgmlTypesKey); it != metadata_.end()) quantized = parse_ggml_types(path, it->second);
  for (auto& [name, entry] : header.items()) {
    if (name == "__metadata__") continue;
    if (!entry.is_object()) fail("{}: tensor '{}': entry is not an object", path, name);
    auto dtype_it = entry.find("dtype");
    if (dtype_it == entry.end() || !dtype_it->is_string()) fail("{}: tensor '{}': missing string field 'dtype'", path, name);
    std::string dtype_name = dtype_it->get<std::string>();
    const auto quant = quantized.find(name);
    const bool is_quantized = quant != quantized.end();
    const Dtype* dtype = nullptr;
    for (const auto& d : kDtypes)
      if (dtype_name == d.name) dtype = &d;
    constexpr Dtype kBlockBytes{"U8", TensorType::Q8_0, 1};  // `type` is replaced by the declared one
    if (is_quantized) {
      if (dtype_name != "U8")
        fail("{}: tensor '{}' is declared {} in __metadata__ '{}' but stored as {} (quantized blocks are stored as U8)",
             path, name, tensor_type_name(quant->second), kGgmlTypesKey, dtype_name);
      dtype = &kBlockBytes;
    } else if (dtype_name == "U8") {
      fail("{}: tensor '{}' has dtype U8, which lookahead reads only as quantized blocks declared in __metadata__ '{}'",
           path, name, kGgmlTypesKey);
    }
    if (!dtype)
      fail("{}: tensor '{}' has dtype {}, which lookahead does not support (F32, F16, BF16, I32; U8 for declared "
           "quantized tensors)",
           path, name, dtype_name);

    auto shape_it = entry.find("shape");
    if (shape_it == entry.end() || !shape_it->is_array()) fail("{}: tensor '{}': missing array field 'shape'", path, name);
    if (shape_it->size() > 4) fail("{}: tensor '{}' has {} dimensions (at most 4 supported)", path, name, shape_it->size());
    std::vector<int64_t> shape;  // GGML order: reversed
    uint64_t elements = 1;
    for (const auto& d : *shape_it) {
      if (!d.is_number_unsigned()) fail("{}: tensor '{}': shape entries must be non-negative integers", path, name);
      uint64_t dim = d.get<uint64_t>();
      if (dim > (uint64_t{1} << 40)) fail("{}: tensor '{}': dimension {} is too large", path, name, dim);
      if (dim != 0 && elements > (uint64_t{1} << 60) / dim) fail("{}: tensor '{}' is too large", path, name);
      elements *= dim;
      shape.insert(shape.begin(), static_cast<int64_t>(dim));
    }

    auto off_it = entry.find("data_offsets");
    if (off_it == entry.end() || !off_it->is_array() || off_it->size() != 2 || !(*off_it)[0].is_number_unsigned() ||
        !(*off_it)[1].is_number_unsigned())
      fail("{}: tensor '{}': 'data_offsets' must be [begin, end] of non-negative integers", path, name);
    uint64_t begin = (*off_it)[0].get<uint64_t>(), end = (*off_it)[1].get<uint64_t>();
    if (begin > end) fail("{}: tensor '{}': data_offsets begin {} > end {}", path, name, begin, end);
    if (end > section_size)
      fail("{}: tensor '{}' data [{}, {}) lies past the end of the data section ({} bytes)", path, name, begin, end,
           section_size);
    uint64_t bytes = elements * dtype->size;
    if (bytes != end - begin)
      fail("{}: tensor '{}': shape [{}] x {} needs {} bytes but data_offsets span {}", path, name,
           fmt::join(shape.rbegin(), shape.rend(), ", "), dtype->name, bytes, end - begin);

    TensorView view;
    view.name = name;
    view.type = dtype->type;
    if (is_quantized) {
      // Stored [..., rows, row bytes]: each row is whole blocks; in GGML order the first dimension
      // becomes the row's value count.
      const TensorTypeTraits& t = traits(quant->second);
      if (shape.empty() || shape[0] == 0 || shape[0] % t.type_size != 0)
        fail("{}: tensor '{}' ({}): the last dimension must be a positive multiple of the {}-byte block, got [{}]",
             path, name, t.name, t.type_size, fmt::join(shape.rbegin(), shape.rend(), ", "));
      view.type = t.type;
      shape[0] = shape[0] / t.type_size * t.block_size;
    }
    view.shape = std::move(shape);
    view.bytes = bytes;
    view.file_offset = 8 + header_len + begin;
    view.data = section + begin;
    ranges.push_back({begin, end, tensors_.size()});
    index_[name] = tensors_.size();
    tensors_.push_back(std::move(view));
  }

  for (const auto& [name, type] : quantized)
    if (!index_.count(name))
      fail("{}: __metadata__ '{}' declares tensor '{}' ({}), which the file does not hold", path, kGgmlTypesKey, name,
           tensor_type_name(type));

  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  for (size_t i = 1; i < ranges.size(); ++i) {
    const auto& prev = ranges[i - 1];
    const auto& cur = ranges[i];
    // Empty tensors occupy no bytes, so they cannot overlap anything.
    if (cur.begin < prev.end && cur.begin != cur.end)
      fail("{}: tensors '{}' and '{}' overlap in the data section", path, tensors_[prev.index].name,
           tensors_[cur.index].name);
  }
}

const TensorView* SafetensorsFile::find_tensor(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

SafetensorsCheckpoint::SafetensorsCheckpoint(const std::string& dir) : dir_(dir) {
  namespace fs = std::filesystem;
  fs::path root(dir);
  fs::path index_path = root / "model.safetensors.index.json";
  fs::path single_path = root / "model.safetensors";
  std::error_code ec;
  if (fs::exists(index_path, ec)) {
    MappedFile index_file(index_path.string());
    json index;
    std::string_view text(reinterpret_cast<const char*>(index_file.data()), index_file.size());
    if (json_depth(text) > kMaxJsonDepth) fail("{}: JSON is nested too deeply", index_path.string());
    try {
      index = json::parse(text);
    } catch (const json::exception& e) {
      fail("{}: not valid JSON: {}", index_path.string(), e.what());
    }
    if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
      fail("{}: missing object field 'weight_map'", index_path.string());
    std::map<std::string, size_t> shard_index;  // shard file name -> shards_ position
    for (auto& [tensor, shard] : index["weight_map"].items()) {
      if (!shard.is_string()) fail("{}: weight_map['{}'] is not a string", index_path.string(), tensor);
      std::string file = shard.get<std::string>();
      fs::path rel(file);
      if (file.empty() || rel.is_absolute() || file.find("..") != std::string::npos)
        fail("{}: weight_map['{}'] = '{}' is not a file inside the checkpoint directory", index_path.string(), tensor,
             file);
      auto it = shard_index.find(file);
      if (it == shard_index.end()) {
        shards_.push_back(std::make_unique<SafetensorsFile>((root / rel).string()));
        it = shard_index.emplace(file, shards_.size() - 1).first;
      }
      const TensorView* view = shards_[it->second]->find_tensor(tensor);
      if (!view)
        fail("{}: weight_map names tensor '{}' in '{}', but that shard does not hold it", index_path.string(), tensor,
             shards_[it->second]->path());
      tensors_[tensor] = view;
      shard_of_[tensor] = it->second;
    }
    // A tensor stored twice is ambiguous even if weight_map picks one copy.
    std::map<std::string, size_t> seen;
    for (size_t s = 0; s < shards_.size(); ++s)
      for (const auto& t : shards_[s]->tensors()) {
        auto [it, inserted] = seen.emplace(t.name, s);
        if (!inserted)
          fail("{}: tensor '{}' appears in both '{}' and '{}'", index_path.string(), t.name, shards_[it->second]->path(),
               shards_[s]->path());
      }
  } else if (fs::exists(single_path, ec)) {
    shards_.push_back(std::make_unique<SafetensorsFile>(single_path.string()));
    for (const auto& t : shards_[0]->tensors()) {
      tensors_[t.name] = &t;
      shard_of_[t.name] = 0;
    }
  } else {
    fail("{}: no model.safetensors or model.safetensors.index.json in the checkpoint directory", dir);
  }
}

const TensorView* SafetensorsCheckpoint::find_tensor(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : it->second;
}

std::string SafetensorsCheckpoint::file_of(const std::string& name) const {
  auto it = shard_of_.find(name);
  return it == shard_of_.end() ? std::string() : shards_[it->second]->path();
}

}  // namespace lookahead::moe
