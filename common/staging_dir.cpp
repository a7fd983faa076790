#include "common/staging_dir.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/error.h"

namespace lookahead {

namespace fs = std::filesystem;

StagingDir::StagingDir(const std::string& out, bool replace)
    : out_(out), tmp_(temp_output_path(out)), replace_(replace) {
  if (out.empty()) fail("output directory path is empty");
  std::error_code ec;
  const fs::file_status st = fs::symlink_status(out_, ec);
  if (fs::exists(st)) {
    if (!replace) fail("{}: already exists; choose a new output directory or remove it", out);
    if (!fs::is_directory(st)) fail("{}: exists and is not a directory; refusing to replace it", out);
  }
  sweep_stale_temp_outputs(out);
  guard_.watch(tmp_.string());
  fs::remove_all(tmp_, ec);
  if (!fs::create_directories(tmp_, ec) || ec) fail("{}: cannot create: {}", tmp_.string(), ec.message());
}

StagingDir::~StagingDir() {
  if (!committed_) {
    std::error_code ec;
    fs::remove_all(tmp_, ec);
  }
}

void StagingDir::commit() {
  std::error_code ec;
  if (replace_ && fs::exists(fs::symlink_status(out_, ec))) {
    // Swap the finished directory with the old one in one step, then remove the old one (now at
    // the temporary name, so an interruption here leaves the new model in place).
    if (::renameat2(AT_FDCWD, tmp_.c_str(), AT_FDCWD, out_.c_str(), RENAME_EXCHANGE) != 0) {
      if (errno != EINVAL && errno != ENOSYS)
        fail("{}: cannot move the finished directory into place: {}", out_.string(), std::strerror(errno));
      // A file system without the exchange: move the old one aside first (not swept: a kill
      // between the two renames leaves both, the old one at "<out>.old.<pid>").
      const fs::path old = out_.string() + ".old." + std::to_string(::getpid());
      fs::rename(out_, old, ec);
      if (ec) fail("{}: cannot move the existing directory aside: {}", out_.string(), ec.message());
      fs::rename(tmp_, out_, ec);
      if (ec) fail("{}: cannot move the finished directory into place: {}", out_.string(), ec.message());
      committed_ = true;
      guard_.release();
      fs::remove_all(old, ec);
      return;
    }
    committed_ = true;
    fs::remove_all(tmp_, ec);
    guard_.release();
    return;
  }
  fs::rename(tmp_, out_, ec);
  if (ec) fail("{}: cannot move the finished directory into place: {}", out_.string(), ec.message());
  committed_ = true;
  guard_.release();
}

}  // namespace lookahead
