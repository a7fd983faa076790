#include "common/atomic_file.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "common/error.h"

namespace lookahead {

namespace {

std::string dir_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return "";
  return path.substr(0, slash + 1);
}

// Follows a chain of symbolic links whose last target does not exist yet; returns that target.
std::string follow_dangling_links(const std::string& path) {
  std::string p = path;
  for (int hops = 0; hops < 40; ++hops) {
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) return p;
    char buf[PATH_MAX];
    const ssize_t n = ::readlink(p.c_str(), buf, sizeof buf - 1);
    if (n < 0) fail("cannot write '{}': {}", path, std::strerror(errno));
    const std::string link(buf, static_cast<size_t>(n));
    p = (!link.empty() && link[0] == '/') ? link : dir_of(p) + link;
  }
  fail("cannot write '{}': too many levels of symbolic links", path);
}

const char* kind_of(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

}  // namespace

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  if (path_.empty()) fail("output path is empty");
  struct stat st {};
  int fd = -1;
  if (::stat(path_.c_str(), &st) == 0) {  // follows symlinks, /proc/self/fd/N included
    if (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode)) {
      // A device or a pipe: write through. Opening a FIFO waits for its reader, as `cat > fifo` does.
      target_ = path_;
      fd = ::open(path_.c_str(), O_WRONLY | O_CLOEXEC);
      if (fd < 0) fail("cannot write '{}': {}", path_, std::strerror(errno));
      file_ = ::fdopen(fd, "wb");
      if (!file_) {
        ::close(fd);
        fail("cannot write '{}': {}", path_, std::strerror(errno));
      }
      return;
    }
    if (!S_ISREG(st.st_mode))
      fail("cannot write '{}': it is {}; expected a file path", path_, kind_of(st.st_mode));
    char real[PATH_MAX];
    if (!::realpath(path_.c_str(), real)) fail("cannot write '{}': {}", path_, std::strerror(errno));
    target_ = real;
  } else if (errno == ENOENT) {
    target_ = follow_dangling_links(path_);
    st.st_mode = 0;
  } else {
    fail("cannot write '{}': {}", path_, std::strerror(errno));
  }

  sweep_stale_temp_outputs(target_);
  temp_path_ = temp_output_path(target_);
  guard_.watch(temp_path_);
  fd = ::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) {
    const int err = errno;
    guard_.release();
    fail("cannot create '{}': {}", temp_path_, std::strerror(err));
  }
  if (S_ISREG(st.st_mode)) (void)::fchmod(fd, st.st_mode & 07777);  // keep the replaced file's permissions
  file_ = ::fdopen(fd, "wb");
  if (!file_) {
    const int err = errno;
    ::close(fd);
    std::remove(temp_path_.c_str());
    guard_.release();
    fail("cannot create '{}': {}", temp_path_, std::strerror(err));
  }
}

AtomicFile::~AtomicFile() {
  if (file_) {
    std::fclose(file_);
    if (!temp_path_.empty()) std::remove(temp_path_.c_str());
  }
  guard_.release();
}

void AtomicFile::write(const void* data, size_t bytes) {
  if (!file_) fail("write to '{}' after commit", path_);
  if (bytes && std::fwrite(data, 1, bytes, file_) != bytes) fail("cannot write '{}': {}", path_, std::strerror(errno));
  written_ += bytes;
}

void AtomicFile::commit() {
  if (!file_) return;
  int err = 0;
  if (std::fflush(file_) != 0 || std::ferror(file_)) err = errno ? errno : EIO;
  // fsync only means something for a file we are about to rename into place.
  if (!err && !temp_path_.empty() && ::fsync(fileno(file_)) != 0) err = errno;
  if (std::fclose(file_) != 0 && !err) err = errno;
  file_ = nullptr;
  if (temp_path_.empty()) {
    if (err) fail("cannot write '{}': {}", path_, std::strerror(err));
    return;
  }
  if (!err && std::rename(temp_path_.c_str(), target_.c_str()) != 0) err = errno;
  if (err) {
    std::remove(temp_path_.c_str());
    guard_.release();
    fail("cannot write '{}': {}", path_, std::strerror(err));
  }
  guard_.release();
}

void write_file_atomic(const std::string& path, std::string_view contents) {
  AtomicFile file(path);
  file.write(contents);
  file.commit();
}

}  // namespace lookahead
