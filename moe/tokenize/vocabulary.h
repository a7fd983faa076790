#pragma once
// The token table shared by both tokenizer algorithms, as llama.cpp reads it from GGUF
// (tokenizer.ggml.tokens / scores / token_type) or as we read it from Hugging Face files.
//
// Contract: tokens[i] is the stored text of token i (byte-level BPE vocabularies store NORMAL tokens
// in the GPT-2 byte-to-unicode alphabet; CONTROL / USER_DEFINED / UNKNOWN tokens are stored as
// raw text in every vocabulary). scores and types have one entry per token. find() returns the id
// of a text (the last id when the table has duplicates, as llama.cpp does) or -1.
// special_tokens() are the ids matched in raw text before pre-tokenization (CONTROL, UNKNOWN and
// USER_DEFINED), longest text first; the first two kinds only when parse_special is asked for.
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace lookahead::moe {

// Numbering of GGUF's tokenizer.ggml.token_type (= llama.cpp's llama_token_type).
enum class TokenType : int32_t {
  UNDEFINED = 0, NORMAL = 1, UNKNOWN = 2, CONTROL = 3, USER_DEFINED = 4, UNUSED = 5, BYTE = 6,
};

struct Vocabulary {
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<TokenType> types;
  int32_t bos = -1;
  int32_t eos = -1;
  int32_t unk = -1;
  bool add_bos = false;
  bool add_space_prefix = false;     // SentencePiece: a space before the text (and after specials)
  std::vector<int32_t> end_of_generation;
  std::string chat_template;         // Jinja source from the model, may be empty

  // Builds the text->id index and the special-token list; checks sizes and special ids.
  // `source` names the file for error messages.
  void index(const std::string& source);

  int32_t find(std::string_view text) const {
    auto it = ids_.find(text);  // heterogeneous lookup: no string is built per query
    return it == ids_.end() ? -1 : it->second;
  }
  int32_t size() const { return static_cast<int32_t>(tokens.size()); }
  bool is_special(int32_t id) const {
    auto t = types[static_cast<size_t>(id)];
    return t == TokenType::CONTROL || t == TokenType::UNKNOWN || t == TokenType::USER_DEFINED;
  }
  const std::vector<int32_t>& special_tokens() const { return special_; }

 private:
  struct TextHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, int32_t, TextHash, std::equal_to<>> ids_;
  std::vector<int32_t> special_;
};

// A piece of input after special tokens have been cut out: either raw text or one special token.
struct TextFragment {
  std::string_view text;
  int32_t token = -1;  // >= 0: a special token; text is empty
};

// Splits `text` at occurrences of the vocabulary's special tokens, longest first, the way
// llama.cpp's tokenizer_st_partition does. CONTROL and UNKNOWN tokens only with parse_special;
// USER_DEFINED tokens always.
std::vector<TextFragment> split_special_tokens(const Vocabulary& vocab, std::string_view text,
                                               bool parse_special);

}  // namespace lookahead::moe
