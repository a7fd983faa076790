#pragma once
// A directory output assembled under a temporary name and moved into place only when complete,
// so a failed or interrupted write never leaves a half-made model directory at `out`.
//
// Contract: the constructor fails (lookahead::Error naming `out`) if `out` exists, unless
// `replace` (then `out` must be a directory, and is swapped for the new one only at commit()).
// It sweeps stale "<out>.tmp.<N>" of dead processes and creates "<out>.tmp.<pid>" (removing one of
// the same name). commit() renames it to `out`; if the object is destroyed without commit() (an
// error was thrown), or the process is killed by SIGINT/SIGTERM/SIGHUP, the temporary is removed
// (common/temp_output.h).
#include <filesystem>
#include <string>

#include "common/temp_output.h"

namespace lookahead {

class StagingDir {
 public:
  explicit StagingDir(const std::string& out, bool replace = false);
  ~StagingDir();
  StagingDir(const StagingDir&) = delete;
  StagingDir& operator=(const StagingDir&) = delete;

  const std::filesystem::path& path() const { return tmp_; }
  std::string file(const std::string& name) const { return (tmp_ / name).string(); }
  void commit();

 private:
  std::filesystem::path out_, tmp_;
  bool replace_ = false;
  bool committed_ = false;
  TempOutputGuard guard_;
};

}  // namespace lookahead
