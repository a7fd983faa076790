#pragma once
// Writing output files without ever leaving a half-written one behind.
//
// Contract (what happens at the output path):
//   - A regular file, or nothing: the data goes to "<target>.tmp.<pid>" beside it, which commit()
//     flushes, fsyncs and renames over <target> (an existing file keeps its permission bits). If
//     the object is destroyed without commit() (an error was thrown), or the process is killed by
//     SIGINT/SIGTERM/SIGHUP, the temporary is removed and <target> is untouched. Stale temporaries
//     of dead processes beside <target> are swept first (common/temp_output.h).
//   - A symbolic link: <target> is what the link points to (followed to the end); the link stays.
//   - A character device or FIFO (/dev/null, /dev/stdout, a named pipe): written through in place,
//     never replaced; no atomicity is possible there.
//   - A directory, block device or socket: refused with an error naming the path.
// Errors (cannot create, short write, ENOSPC at any point up to and including commit()) throw
// lookahead::Error naming the path and the reason.
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "common/temp_output.h"

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

  // True when the output is a device or FIFO written in place (no temporary, no rename).
  bool writes_through() const { return temp_path_.empty(); }

 private:
  std::string path_;       // as given, for messages
  std::string target_;     // where the data ends up (symlinks followed)
  std::string temp_path_;  // empty when writing through
  std::FILE* file_ = nullptr;
  uint64_t written_ = 0;
  TempOutputGuard guard_;
};

// Writes a whole file atomically.
void write_file_atomic(const std::string& path, std::string_view contents);

}  // namespace lookahead
