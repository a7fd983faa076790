#include "common/atomic_file.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/error.h"

namespace lookahead {

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  temp_path_ = path_ + ".tmp." + std::to_string(::getpid());
  file_ = std::fopen(temp_path_.c_str(), "wb");
  if (!file_) fail("cannot create '{}': {}", temp_path_, std::strerror(errno));
}

AtomicFile::~AtomicFile() {
  if (file_) {
    std::fclose(file_);
    std::remove(temp_path_.c_str());
  }
}

void AtomicFile::write(const void* data, size_t bytes) {
  if (!file_) fail("write to '{}' after commit", path_);
  if (bytes && std::fwrite(data, 1, bytes, file_) != bytes) fail("cannot write '{}': {}", temp_path_, std::strerror(errno));
  written_ += bytes;
}

void AtomicFile::commit() {
  if (!file_) return;
  bool ok = std::fflush(file_) == 0 && ::fsync(fileno(file_)) == 0;
  ok = (std::fclose(file_) == 0) && ok;
  file_ = nullptr;
  if (!ok || std::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    int err = errno;
    std::remove(temp_path_.c_str());
    fail("cannot write '{}': {}", path_, std::strerror(err));
  }
}

void write_file_atomic(const std::string& path, std::string_view contents) {
  AtomicFile file(path);
  file.write(contents);
  file.commit();
}

}  // namespace lookahead
