#include "common/temp_dir.h"

namespace lookahead {

namespace fs = std::filesystem;

TempDir::TempDir(const std::string& name) : path_(fs::temp_directory_path() / name) {
  fs::remove_all(path_);
  fs::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

}  // namespace lookahead
