#pragma once
// Writing output files without ever leaving a half-written one behind.
//
// Contract: AtomicFile writes to "<path>.tmp.<pid>" and renames it over <path> on commit(). If the
// object is destroyed without commit() (an error was thrown), the temporary is removed and <path>
// is untouched. Errors (cannot create, short write) throw lookahead::Error naming the path.
#include <cstdio>
#include <string>
#include <string_view>

namespace lookahead {

class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t bytes);
  void write(std::string_view text) { write(text.data(), text.size()); }
  uint64_t bytes_written() const { return written_; }
  void commit();

 private:
  std::string path_;
  std::string temp_path_;
  std::FILE* file_ = nullptr;
  uint64_t written_ = 0;
};

// Writes a whole file atomically.
void write_file_atomic(const std::string& path, std::string_view contents);

}  // namespace lookahead
