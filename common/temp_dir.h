#pragma once
// A scratch directory that lives as long as the object: <system temp directory>/<name>, emptied
// when made and removed (with everything in it) when destroyed. For work files that are never an
// output; an output directory assembled in place is common/staging_dir.h.
#include <filesystem>
#include <string>

namespace lookahead {

class TempDir {
 public:
  // Throws std::filesystem::filesystem_error when the directory cannot be made.
  explicit TempDir(const std::string& name);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace lookahead
