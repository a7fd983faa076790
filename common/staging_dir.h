#pragma once
// A directory output assembled under a temporary name and moved into place only when complete,
// so a failed or interrupted write never leaves a half-made model directory at `out`.
//
// Contract: the constructor fails (lookahead::Error naming `out`) if `out` exists, and creates
// "<out>.tmp.<pid>" (removing a stale one of the same name). commit() renames it to `out`; if the
// object is destroyed without commit() (an error was thrown), the temporary is removed.
#include <filesystem>
#include <string>

namespace lookahead {

class StagingDir {
 public:
  explicit StagingDir(const std::string& out);
  ~StagingDir();
  StagingDir(const StagingDir&) = delete;
  StagingDir& operator=(const StagingDir&) = delete;

  const std::filesystem::path& path() const { return tmp_; }
  std::string file(const std::string& name) const { return (tmp_ / name).string(); }
  void commit();

 private:
  std::filesystem::path out_, tmp_;
  bool committed_ = false;
};

}  // namespace lookahead
