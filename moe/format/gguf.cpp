#include "moe/format/gguf.h"

#include <cstring>
#include <limits>

#include "common/error.h"

namespace lookahead::moe {

namespace {

// Bounds-checked cursor over the mapped header.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size, const std::string& path) : data_(data), size_(size), path_(path) {}

  template <typename T>
  T read(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string read_string(const char* what) {
    uint64_t n = read<uint64_t>(what);
    need(n, what);
    std::string s(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return s;
  }
  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }

  void need(uint64_t n, const char* what) const {
    if (n > size_ - pos_)
      fail("{}: truncated GGUF header while reading {} at offset {} (file is {} bytes)", path_, what, pos_, size_);
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& path_;
};

GgufValue read_value(Reader& r, GgufValueType type, const std::string& key, const std::string& path, int depth);

GgufValue read_scalar(Reader& r, GgufValueType type, const std::string& key, const std::string& path) {
  GgufValue v;
  v.type = type;
  switch (type) {
    case GgufValueType::UINT8: v.value = uint64_t{r.read<uint8_t>(key.c_str())}; break;
    case GgufValueType::INT8: v.value = int64_t{r.read<int8_t>(key.c_str())}; break;
    case GgufValueType::UINT16: v.value = uint64_t{r.read<uint16_t>(key.c_str())}; break;
    case GgufValueType::INT16: v.value = int64_t{r.read<int16_t>(key.c_str())}; break;
    case GgufValueType::UINT32: v.value = uint64_t{r.read<uint32_t>(key.c_str())}; break;
    case GgufValueType::INT32: v.value = int64_t{r.read<int32_t>(key.c_str())}; break;
    case GgufValueType::UINT64: v.value = r.read<uint64_t>(key.c_str()); break;
    case GgufValueType::INT64: v.value = r.read<int64_t>(key.c_str()); break;
    case GgufValueType::FLOAT32: v.value = double{r.read<float>(key.c_str())}; break;
    case GgufValueType::FLOAT64: v.value = r.read<double>(key.c_str()); break;
    case GgufValueType::BOOL: {
      uint8_t b = r.read<uint8_t>(key.c_str());
      if (b > 1) fail("{}: metadata '{}': bool value {} is not 0 or 1", path, key, b);
      v.value = b == 1;
      break;
    }
    case GgufValueType::STRING: v.value = r.read_string(key.c_str()); break;
    default: fail("{}: metadata '{}': unknown value type {}", path, key, static_cast<uint32_t>(type));
  }
  return v;
}

GgufValue read_value(Reader& r, GgufValueType type, const std::string& key, const std::string& path, int depth) {
  if (type != GgufValueType::ARRAY) return read_scalar(r, type, key, path);
  if (depth > 4) fail("{}: metadata '{}': arrays nested too deeply", path, key);
  auto element_type = static_cast<GgufValueType>(r.read<uint32_t>(key.c_str()));
  uint64_t count = r.read<uint64_t>(key.c_str());
  // Every element takes at least one byte: reject counts the header cannot hold before allocating.
  if (count > r.remaining()) fail("{}: metadata '{}': array of {} elements exceeds the file", path, key, count);
  auto array = std::make_shared<GgufArray>();
  array->element_type = element_type;
  array->values.reserve(count);
  for (uint64_t i = 0; i < count; ++i) array->values.push_back(read_value(r, element_type, key, path, depth + 1));
  GgufValue v;
  v.type = GgufValueType::ARRAY;
  v.value = std::move(array);
  return v;
}

}  // namespace

GgufFile::GgufFile(const std::string& path) : file_(std::make_unique<MappedFile>(path)) {
  path_ = file_->path();
  data_ = file_->data();
  size_ = file_->size();
  parse();
}

GgufFile::GgufFile(std::string name, const uint8_t* data, size_t size) : path_(std::move(name)), data_(data), size_(size) {
  parse();
}

void GgufFile::parse() {
  const std::string& path = path_;
  Reader r(data_, size_, path_);
  if (size_ < 4 || std::memcmp(data_, "GGUF", 4) != 0)
    fail("{}: not a GGUF file (wrong magic; expected 'GGUF')", path);
  r.read<uint32_t>("magic");
  version_ = r.read<uint32_t>("version");
  if (version_ != 2 && version_ != 3) fail("{}: unsupported GGUF version {} (expected 2 or 3)", path, version_);
  uint64_t tensor_count = r.read<uint64_t>("tensor count");
  uint64_t kv_count = r.read<uint64_t>("metadata count");
  if (kv_count > r.remaining() / 12) fail("{}: truncated or corrupt GGUF: metadata count {} exceeds the file", path, kv_count);
  if (tensor_count > r.remaining() / 24) fail("{}: truncated or corrupt GGUF: tensor count {} exceeds the file", path, tensor_count);

  for (uint64_t i = 0; i < kv_count; ++i) {
    std::string key = r.read_string("metadata key");
    auto type = static_cast<GgufValueType>(r.read<uint32_t>(key.c_str()));
    if (metadata_.count(key)) fail("{}: duplicate metadata key '{}'", path, key);
    metadata_[key] = read_value(r, type, key, path, 0);
  }
  if (auto a = find_int("general.alignment")) {
    if (*a <= 0 || (*a & (*a - 1)) != 0 || *a > (1 << 20))
      fail("{}: general.alignment {} is not a power of two", path, *a);
    alignment_ = static_cast<uint64_t>(*a);
  }

  struct RawInfo {
    std::string name;
    std::vector<int64_t> shape;
    uint32_t type;
    uint64_t offset;
  };
  std::vector<RawInfo> infos;
  infos.reserve(tensor_count);
  for (uint64_t i = 0; i < tensor_count; ++i) {
    RawInfo info;
    info.name = r.read_string("tensor name");
    uint32_t n_dims = r.read<uint32_t>(info.name.c_str());
    if (n_dims == 0 || n_dims > 4) fail("{}: tensor '{}' has {} dimensions (expected 1..4)", path, info.name, n_dims);
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t dim = r.read<uint64_t>(info.name.c_str());
      if (dim == 0 || dim > (uint64_t{1} << 40)) fail("{}: tensor '{}' has dimension {} = {}", path, info.name, d, dim);
      info.shape.push_back(static_cast<int64_t>(dim));
    }
    info.type = r.read<uint32_t>(info.name.c_str());
    info.offset = r.read<uint64_t>(info.name.c_str());
    infos.push_back(std::move(info));
  }
  data_offset_ = (r.pos() + alignment_ - 1) / alignment_ * alignment_;

  for (auto& info : infos) {
    auto t = tensor_type_traits(info.type);
    if (!t)
      fail("{}: tensor '{}' has type {} ({}), which lookahead does not support (F32, F16, BF16, Q8_0, Q4_0, Q4_1)",
           path, info.name, ggml_type_name(info.type), info.type);
    // Overflow-safe element count and byte size.
    uint64_t elements = 1;
    for (auto d : info.shape) {
      if (elements > std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(d))
        fail("{}: tensor '{}' is too large", path, info.name);
      elements *= static_cast<uint64_t>(d);
    }
    if (info.shape[0] % t->block_size != 0)
      fail("{}: tensor '{}' row length {} is not a multiple of the {} block size {}", path, info.name, info.shape[0],
           t->name, t->block_size);
    // Bounded so bytes cannot wrap around (a wrapped size would pass the end-of-file check).
    if (elements > (uint64_t{1} << 60)) fail("{}: tensor '{}' is too large ({} elements)", path, info.name, elements);
    uint64_t bytes = elements / t->block_size * t->type_size;
    if (info.offset % alignment_ != 0)
      fail("{}: tensor '{}' data offset {} is not aligned to {}", path, info.name, info.offset, alignment_);
    if (data_offset_ > size_ || info.offset > size_ - data_offset_ || bytes > size_ - data_offset_ - info.offset)
      fail("{}: tensor '{}' data ({} bytes at offset {}) lies past the end of the file ({} bytes)", path, info.name,
           bytes, data_offset_ + info.offset, size_);
    TensorView view;
    view.name = info.name;
    view.type = t->type;
    view.shape = info.shape;
    view.file_offset = data_offset_ + info.offset;
    view.data = data_ + view.file_offset;
    view.bytes = bytes;
    if (tensor_index_.count(view.name)) fail("{}: duplicate tensor '{}'", path, view.name);
    tensor_index_[view.name] = tensors_.size();
    tensors_.push_back(std::move(view));
  }
}

namespace {
const char* kind_of(GgufValueType t) {
  switch (t) {
    case GgufValueType::STRING: return "string";
    case GgufValueType::ARRAY: return "array";
    case GgufValueType::BOOL: return "bool";
    case GgufValueType::FLOAT32:
    case GgufValueType::FLOAT64: return "float";
    default: return "integer";
  }
}
}  // namespace

std::optional<int64_t> GgufFile::find_int(const std::string& key) const {
  auto it = metadata_.find(key);
  if (it == metadata_.end()) return std::nullopt;
  if (auto* u = std::get_if<uint64_t>(&it->second.value)) {
    if (*u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) fail("{}: metadata '{}' is out of range", path(), key);
    return static_cast<int64_t>(*u);
  }
  if (auto* s = std::get_if<int64_t>(&it->second.value)) return *s;
  fail("{}: metadata '{}' is a {}, expected an integer", path(), key, kind_of(it->second.type));
}

std::optional<double> GgufFile::find_float(const std::string& key) const {
  auto it = metadata_.find(key);
  if (it == metadata_.end()) return std::nullopt;
  if (auto* d = std::get_if<double>(&it->second.value)) return *d;
  if (auto* u = std::get_if<uint64_t>(&it->second.value)) return static_cast<double>(*u);
  if (auto* s = std::get_if<int64_t>(&it->second.value)) return static_cast<double>(*s);
  fail("{}: metadata '{}' is a {}, expected a number", path(), key, kind_of(it->second.type));
}

std::optional<std::string> GgufFile::find_string(const std::string& key) const {
  auto it = metadata_.find(key);
  if (it == metadata_.end()) return std::nullopt;
  if (auto* s = std::get_if<std::string>(&it->second.value)) return *s;
  fail("{}: metadata '{}' is a {}, expected a string", path(), key, kind_of(it->second.type));
}

int64_t GgufFile::get_int(const std::string& key) const {
  if (auto v = find_int(key)) return *v;
  fail("{}: missing metadata key '{}'", path(), key);
}

double GgufFile::get_float(const std::string& key) const {
  if (auto v = find_float(key)) return *v;
  fail("{}: missing metadata key '{}'", path(), key);
}

bool GgufFile::get_bool(const std::string& key) const {
  auto it = metadata_.find(key);
  if (it == metadata_.end()) fail("{}: missing metadata key '{}'", path(), key);
  if (auto* b = std::get_if<bool>(&it->second.value)) return *b;
  fail("{}: metadata '{}' is a {}, expected a bool", path(), key, kind_of(it->second.type));
}

const std::string& GgufFile::get_string(const std::string& key) const {
  auto it = metadata_.find(key);
  if (it == metadata_.end()) fail("{}: missing metadata key '{}'", path(), key);
  if (auto* s = std::get_if<std::string>(&it->second.value)) return *s;
  fail("{}: metadata '{}' is a {}, expected a string", path(), key, kind_of(it->second.type));
}

namespace {
const GgufArray& array_of(const GgufFile& f, const std::string& key) {
  auto it = f.metadata().find(key);
  if (it == f.metadata().end()) fail("{}: missing metadata key '{}'", f.path(), key);
  auto* a = std::get_if<std::shared_ptr<GgufArray>>(&it->second.value);
  if (!a) fail("{}: metadata '{}' is a {}, expected an array", f.path(), key, kind_of(it->second.type));
  return **a;
}
}  // namespace

std::vector<std::string> GgufFile::get_string_array(const std::string& key) const {
  const auto& a = array_of(*this, key);
  std::vector<std::string> out;
  out.reserve(a.values.size());
  for (const auto& v : a.values) {
    auto* s = std::get_if<std::string>(&v.value);
    if (!s) fail("{}: metadata '{}' is an array of {}, expected strings", path(), key, kind_of(v.type));
    out.push_back(*s);
  }
  return out;
}

std::vector<double> GgufFile::get_float_array(const std::string& key) const {
  const auto& a = array_of(*this, key);
  std::vector<double> out;
  out.reserve(a.values.size());
  for (const auto& v : a.values) {
    if (auto* d = std::get_if<double>(&v.value)) out.push_back(*d);
    else if (auto* u = std::get_if<uint64_t>(&v.value)) out.push_back(static_cast<double>(*u));
    else if (auto* s = std::get_if<int64_t>(&v.value)) out.push_back(static_cast<double>(*s));
    else fail("{}: metadata '{}' is an array of {}, expected numbers", path(), key, kind_of(v.type));
  }
  return out;
}

std::vector<int64_t> GgufFile::get_int_array(const std::string& key) const {
  const auto& a = array_of(*this, key);
  std::vector<int64_t> out;
  out.reserve(a.values.size());
  for (const auto& v : a.values) {
    if (auto* u = std::get_if<uint64_t>(&v.value)) out.push_back(static_cast<int64_t>(*u));
    else if (auto* s = std::get_if<int64_t>(&v.value)) out.push_back(*s);
    else fail("{}: metadata '{}' is an array of {}, expected integers", path(), key, kind_of(v.type));
  }
  return out;
}

const TensorView* GgufFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const TensorView& GgufFile::tensor(const std::string& name) const {
  if (auto* t = find_tensor(name)) return *t;
  fail("{}: missing tensor '{}'", path(), name);
}

}  // namespace lookahead::moe
