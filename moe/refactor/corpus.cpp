#include "moe/refactor/corpus.h"

#include "moe/tokenize/tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/error.h"
#include "moe/format/safetensors_writer.h"

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

int64_t write_corpus_tokens(const Tokenizer& tokenizer, const std::vector<CorpusDomain>& domains, int64_t tokens_per_domain,
                            int64_t ctx, const std::string& out) {
  if (tokens_per_domain < 1) fail("--tokens-per-domain must be positive (got {})", tokens_per_domain);
  const std::vector<int32_t> prefix = tokenizer.encode("", true, false);
  if (ctx - static_cast<int64_t>(prefix.size()) < 2) fail("--ctx {} leaves no room for text", ctx);
  std::vector<std::vector<std::vector<int32_t>>> windows(domains.size());  // [domain][window]
  size_t most = 0;
  for (size_t d = 0; d < domains.size(); ++d) {
    const std::vector<int32_t> ids = tokenize_prefix(tokenizer, read_text_file(domains[d].path), tokens_per_domain);
    if (ids.empty()) fail("corpus domain '{}' ({}) has no tokens", domains[d].name, domains[d].path);
    for_each_window(ids, prefix, ctx, tokens_per_domain,
                    [&](const std::vector<int32_t>& window, int64_t) { windows[d].push_back(window); });
    most = std::max(most, windows[d].size());
  }
  // Domains interleaved window by window, so any tail of the sequences (the trainer's held-out
  // part) holds every domain.
  std::vector<int32_t> tokens, seq_start{0}, domain;
  for (size_t i = 0; i < most; ++i)
    for (size_t d = 0; d < domains.size(); ++d) {
      if (i >= windows[d].size()) continue;
      tokens.insert(tokens.end(), windows[d][i].begin(), windows[d][i].end());
      domain.insert(domain.end(), windows[d][i].size(), static_cast<int32_t>(d));
      seq_start.push_back(static_cast<int32_t>(tokens.size()));
      if (tokens.size() > static_cast<size_t>(INT32_MAX / 2)) fail("{}: too many tokens", out);
    }
  SafetensorsWriter w;
  w.set_metadata("format", "pt");
  std::string names;
  for (const auto& d : domains) names += (names.empty() ? "" : ",") + d.name;
  w.set_metadata("domains", names);
  const auto n = static_cast<int64_t>(tokens.size());
  w.add_tensor("tokens", TensorType::I32, {n}, tokens.data());
  w.add_tensor("seq_start", TensorType::I32, {static_cast<int64_t>(seq_start.size())}, seq_start.data());
  w.add_tensor("domain", TensorType::I32, {n}, domain.data());
  w.write(out);
  return n;
}

}  // namespace lookahead::moe
