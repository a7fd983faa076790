#pragma once
// SentencePiece (BPE-by-score) tokenization of a GGUF `llama` vocabulary, as llama.cpp's
// llm_tokenizer_spm does it, so results match llama.cpp and the original sentencepiece library.
//
// Contract: encode() cuts special tokens out (split_special_tokens), then for each text fragment
// prepends a space when add_space_prefix is set and the fragment starts the text or follows a
// special token, replaces ' ' by U+2581, starts from single UTF-8 characters and repeatedly
// merges the adjacent pair whose concatenation is the highest-scoring token (ties: leftmost).
// Pieces that are not tokens are re-split along the merges that built them and finally emitted as
// <0xXX> byte tokens. token_bytes() undoes U+2581 and byte tokens; decode() also drops the one
// leading space the prefix added, so decode(encode(x)) == x.
// Immutable after construction; encode() may be called from many threads at once.
#include "moe/tokenize/tokenizer.h"
#include "moe/tokenize/vocabulary.h"

namespace lookahead::moe {

class SentencePieceTokenizer final : public Tokenizer {
 public:
  // Throws lookahead::Error naming `source` on inconsistent vocabulary data.
  SentencePieceTokenizer(Vocabulary vocab, const std::string& source);

  std::vector<int32_t> encode(std::string_view text, bool add_special, bool parse_special) const override;
  std::string token_bytes(int32_t id) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;
  int32_t vocab_size() const override { return vocab_.size(); }
  int32_t bos() const override { return vocab_.bos; }
  int32_t eos() const override { return vocab_.eos; }
  bool is_end_of_generation(int32_t id) const override;
  std::string apply_chat_template(const std::vector<ChatMessage>& messages,
                                  bool add_generation_prompt) const override;

  const Vocabulary& vocabulary() const { return vocab_; }

 private:
  void encode_fragment(const std::string& text, std::vector<int32_t>& out) const;

  Vocabulary vocab_;
  int32_t byte_token_[256];
  std::vector<std::string> decoded_;
};

}  // namespace lookahead::moe
