#include "moe/refactor/corpus.h"

#include "moe/tokenize/tokenizer.h"

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

// Tokenizes only as much of `text` as `want` tokens need: a prefix cut at a document boundary
// (blank line), doubled until it yields enough tokens. Encoding a whole multi-MB split to use a few
// thousand tokens would dominate the run time.
std::vector<int32_t> tokenize_prefix(const Tokenizer& tokenizer, const std::string& text, int64_t want) {
  size_t limit = static_cast<size_t>(want) * 8;
  while (true) {
    if (limit >= text.size()) return tokenizer.encode(text, false, false);
    size_t cut = text.rfind("\n\n", limit);
    if (cut == std::string::npos || cut == 0) cut = text.find("\n\n", limit);
    if (cut == std::string::npos) return tokenizer.encode(text, false, false);
    std::vector<int32_t> ids = tokenizer.encode(std::string_view(text).substr(0, cut), false, false);
    if (static_cast<int64_t>(ids.size()) >= want) return ids;
    limit *= 2;
  }
}

int64_t for_each_window(const std::vector<int32_t>& ids, const std::vector<int32_t>& prefix, int64_t ctx,
                        int64_t max_text_tokens,
                        const std::function<void(const std::vector<int32_t>& window, int64_t text_tokens)>& visit) {
  const int64_t text_per_window = ctx - static_cast<int64_t>(prefix.size());
  LOOKAHEAD_CHECK(text_per_window > 0);
  std::vector<int32_t> window;
  int64_t used = 0;
  for (size_t pos = 0; pos < ids.size() && used < max_text_tokens; pos += static_cast<size_t>(text_per_window)) {
    const int64_t n = std::min<int64_t>({text_per_window, static_cast<int64_t>(ids.size() - pos), max_text_tokens - used});
    window.assign(prefix.begin(), prefix.end());
    window.insert(window.end(), ids.begin() + static_cast<int64_t>(pos), ids.begin() + static_cast<int64_t>(pos) + n);
    used += n;
    visit(window, n);
  }
  return used;
}

}  // namespace lookahead::moe
