#pragma once
// A read-only memory-mapped file. Model weights are used in place from the mapping, so loading a
// model costs address space, not RAM, until pages are touched.
#include <cstddef>
#include <cstdint>
#include <string>

namespace lookahead::moe {

class MappedFile {
 public:
  // Throws lookahead::Error naming the path if it cannot be opened or mapped.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace lookahead::moe
