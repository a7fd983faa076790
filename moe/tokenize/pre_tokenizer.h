#pragma once
// Pre-tokenization for byte-level BPE: the text is cut into words by a sequence of regexes before
// merges run, so no token crosses a word boundary.
//
// Contract: split() applies the regexes in order, each one to every piece the previous one
// produced (as llama.cpp's unicode_regex_split does): a piece becomes its matches and the
// unmatched text between them, so the concatenation of all words is always the input, byte for
// byte (also for invalid UTF-8, whose bytes never match and stay in the gaps). Regexes are PCRE2
// in UTF + UCP mode (\p{L}, \p{N}, \s are Unicode-aware), JIT-compiled when available.
// A PreTokenizer is immutable after construction and split() is safe to call from many threads.
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace lookahead::moe {

class PreTokenizer {
 public:
  // Throws lookahead::Error naming the regex if one does not compile.
  explicit PreTokenizer(std::vector<std::string> regexes);
  ~PreTokenizer();
  PreTokenizer(const PreTokenizer&) = delete;
  PreTokenizer& operator=(const PreTokenizer&) = delete;

  // The regexes llama.cpp uses for a tokenizer.ggml.pre value ("gpt-2", "smollm", "llama-bpe",
  // "qwen2", ...). Unknown names throw lookahead::Error; the empty name means "default".
  static std::vector<std::string> regexes_for(const std::string& pre);
  // Whether llama.cpp sets ignore_merges for this pre type (whole word looked up first).
  static bool ignores_merges(const std::string& pre);

  void split(std::string_view text, std::vector<std::string_view>& words) const;
  const std::vector<std::string>& regexes() const { return sources_; }

 private:
  struct Compiled;
  std::vector<std::string> sources_;
  std::vector<std::unique_ptr<Compiled>> compiled_;
};

}  // namespace lookahead::moe
