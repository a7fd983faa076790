#include "common/staging_dir.h"

#include <unistd.h>

#include "common/error.h"

namespace lookahead {

namespace fs = std::filesystem;

StagingDir::StagingDir(const std::string& out) : out_(out), tmp_(out + ".tmp." + std::to_string(::getpid())) {
  std::error_code ec;
  if (fs::exists(out_, ec)) fail("{}: already exists; choose a new output directory or remove it", out);
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
  fs::rename(tmp_, out_, ec);
  if (ec) fail("{}: cannot move the finished directory into place: {}", out_.string(), ec.message());
  committed_ = true;
}

}  // namespace lookahead
