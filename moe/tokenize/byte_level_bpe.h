#pragma once
// Byte-level BPE (GPT-2, SmolLM2, Llama-3, Qwen2), as llama.cpp's llm_tokenizer_bpe does it.
//
// Contract: encode() cuts special tokens out first (split_special_tokens), pre-tokenizes each text
// fragment into words with the vocabulary's regexes, maps each word's bytes to the GPT-2
// byte-to-unicode alphabet and applies merges lowest rank first (ties: leftmost). Merge results
// that are not tokens fall back to single-character tokens, as in llama.cpp. token_bytes() maps
// NORMAL tokens back to raw bytes, so decode(encode(x)) == x for every x, valid UTF-8 or not, made
// of bytes the vocabulary has tokens for (a byte without one is dropped, as llama.cpp drops it;
// SmolLM2 lacks e.g. 0x04 and 0xF5-0xFF).
// Immutable after construction; encode() may be called from many threads at once.
#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "moe/tokenize/pre_tokenizer.h"
#include "moe/tokenize/tokenizer.h"
#include "moe/tokenize/vocabulary.h"

namespace lookahead::moe {

// GPT-2's reversible byte -> printable-unicode mapping (bytes_to_unicode in GPT-2's encoder.py).
const std::string& byte_to_unicode(uint8_t byte);
// The byte a single mapped character stands for, or -1 if `utf8` is not one of the 256 characters.
int unicode_to_byte(std::string_view utf8);

class BytePairTokenizer final : public Tokenizer {
 public:
  // merges: pairs of token texts in rank order (first = highest priority). regexes: the
  // pre-tokenizer (PreTokenizer::regexes_for). ignore_merges: a word that is itself a token is
  // emitted whole (Llama-3). Throws lookahead::Error naming `source` on inconsistent data.
  BytePairTokenizer(Vocabulary vocab, const std::vector<std::pair<std::string, std::string>>& merges,
                    std::vector<std::string> regexes, bool ignore_merges, const std::string& source);

  std::vector<int32_t> encode(std::string_view text, bool add_special, bool parse_special) const override;
  std::string token_bytes(int32_t id) const override;
  int32_t vocab_size() const override { return vocab_.size(); }
  int32_t bos() const override { return vocab_.bos; }
  int32_t eos() const override { return vocab_.eos; }
  bool is_end_of_generation(int32_t id) const override;
  std::string apply_chat_template(const std::vector<ChatMessage>& messages,
                                  bool add_generation_prompt) const override;

  const Vocabulary& vocabulary() const { return vocab_; }

 private:
  struct Merge {
    int32_t rank;
    int32_t result;  // symbol id of the merged text
  };
  // Symbols are token ids, extended past the vocabulary by merge results that are not tokens.
  int32_t symbol_of(const std::string& text, bool create);
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;

  Vocabulary vocab_;
  PreTokenizer pre_tokenizer_;
  bool ignore_merges_ = false;
  std::unordered_map<std::string, int32_t> extra_symbols_;
  std::vector<std::string> extra_texts_;
  std::unordered_map<uint64_t, Merge> merges_;  // key: left symbol << 32 | right symbol
  int32_t byte_symbol_[256];                    // symbol of each byte's mapped character
  std::vector<std::string> decoded_;            // token_bytes for every token, precomputed
};

}  // namespace lookahead::moe
