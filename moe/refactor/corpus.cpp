#include "moe/refactor/corpus.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/error.h"

namespace lookahead::moe {

namespace fs = std::filesystem;

std::vector<CorpusDomain> open_corpus(const std::string& dir, const std::string& split,
                                      const std::vector<std::string>& only) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) fail("corpus '{}' is not a directory (build one with data/build_corpus.py)", dir);
  std::vector<std::string> names = only;
  if (names.empty()) {
    for (const auto& entry : fs::directory_iterator(dir))
      if (entry.is_directory() && fs::exists(entry.path() / (split + ".txt"))) names.push_back(entry.path().filename());
    std::sort(names.begin(), names.end());
    if (names.empty()) fail("corpus '{}' has no domain directories with a '{}.txt' split", dir, split);
  }
  std::vector<CorpusDomain> domains;
  for (const auto& name : names) {
    fs::path path = fs::path(dir) / name / (split + ".txt");
    if (!fs::exists(path)) fail("corpus '{}': domain '{}' has no '{}' split ({} is missing)", dir, name, split, path.string());
    if (fs::file_size(path) == 0) fail("corpus '{}': domain '{}' is empty ({})", dir, name, path.string());
    domains.push_back({name, path.string()});
  }
  return domains;
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read '{}'", path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace lookahead::moe
