#include "moe/tokenize/sentencepiece.h"

#include <algorithm>
#include <cstdio>
#include <queue>

#include "common/error.h"
#include "moe/tokenize/chat_template.h"

namespace lookahead::moe {

namespace {

const std::string kSpace = "\xE2\x96\x81";  // U+2581 LOWER ONE EIGHTH BLOCK, SentencePiece's space

size_t utf8_length(unsigned char c) {
  if (c < 0xC0) return 1;
  if (c < 0xE0) return 2;
  if (c < 0xF0) return 3;
  return 4;
}

struct Piece {
  size_t offset;
  size_t length;  // 0 once merged into its left neighbour
  int32_t prev;
  int32_t next;
};

struct Bigram {
  float score;
  int32_t left;
  int32_t right;
  size_t length;  // bytes of the merged text, to detect pairs made stale by other merges
};

// llama.cpp's llm_bigram_spm::comparator: highest score first, then leftmost.
struct LowerPriority {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

}  // namespace

SentencePieceTokenizer::SentencePieceTokenizer(Vocabulary vocab, const std::string& source)
    : vocab_(std::move(vocab)) {
  vocab_.index(source);
  static const char* hex = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) {
    const char name[7] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>', 0};
    int32_t id = vocab_.find(name);
    if (id < 0) id = vocab_.find(std::string(1, static_cast<char>(b)));
    byte_token_[b] = id >= 0 ? id : vocab_.unk;
  }
  decoded_.resize(vocab_.tokens.size());
  for (int32_t id = 0; id < vocab_.size(); ++id) {
    const std::string& text = vocab_.tokens[id];
    switch (vocab_.types[id]) {
      case TokenType::NORMAL: {
        std::string& out = decoded_[id];
        for (size_t at = 0; at < text.size();) {
          if (text.compare(at, kSpace.size(), kSpace) == 0) {
            out += ' ';
            at += kSpace.size();
          } else {
            out += text[at++];
          }
        }
        break;
      }
      case TokenType::BYTE: {
        unsigned value = 0;
        if (text.size() == 6 && std::sscanf(text.c_str(), "<0x%2X>", &value) == 1)
          decoded_[id] = std::string(1, static_cast<char>(value));
        else
          fail("{}: byte token {} is '{}', expected <0xXX>", source, id, text);
        break;
      }
      case TokenType::CONTROL:
      case TokenType::UNKNOWN:
      case TokenType::USER_DEFINED:
        decoded_[id] = text;
        break;
      default:  // UNUSED / UNDEFINED print nothing, as in llama.cpp
        break;
    }
  }
}

void SentencePieceTokenizer::encode_fragment(const std::string& text, std::vector<int32_t>& out) const {
  std::vector<Piece> pieces;
  pieces.reserve(text.size());
  for (size_t at = 0; at < text.size();) {
    size_t n = std::min(text.size() - at, utf8_length(static_cast<unsigned char>(text[at])));
    int32_t index = static_cast<int32_t>(pieces.size());
    pieces.push_back({at, n, index - 1, at + n == text.size() ? -1 : index + 1});
    at += n;
  }
  std::priority_queue<Bigram, std::vector<Bigram>, LowerPriority> queue;
  auto try_pair = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    size_t length = pieces[left].length + pieces[right].length;
    int32_t id = vocab_.find(std::string_view(text).substr(pieces[left].offset, length));
    if (id < 0) return;
    queue.push({vocab_.scores[id], left, right, length});
  };
  for (int32_t i = 1; i < static_cast<int32_t>(pieces.size()); ++i) try_pair(i - 1, i);

  while (!queue.empty()) {
    Bigram b = queue.top();
    queue.pop();
    Piece& left = pieces[b.left];
    Piece& right = pieces[b.right];
    if (left.length == 0 || right.length == 0 || left.length + right.length != b.length) continue;
    left.length += right.length;
    right.length = 0;
    left.next = right.next;
    if (right.next >= 0) pieces[right.next].prev = b.left;
    try_pair(left.prev, b.left);
    try_pair(b.left, left.next);
  }

  for (int32_t i = pieces.empty() ? -1 : 0; i >= 0; i = pieces[i].next) {
    std::string_view piece = std::string_view(text).substr(pieces[i].offset, pieces[i].length);
    int32_t id = vocab_.find(piece);
    if (id >= 0) {
      out.push_back(id);
      continue;
    }
    // Every merge produced a token, so only single characters can be missing: byte fallback.
    for (unsigned char c : piece)
      if (byte_token_[c] >= 0) out.push_back(byte_token_[c]);
  }
}

std::vector<int32_t> SentencePieceTokenizer::encode(std::string_view text, bool add_special,
                                                    bool parse_special) const {
  std::vector<int32_t> out;
  if (add_special && vocab_.add_bos) out.push_back(vocab_.bos);
  bool after_special = true;  // the text start counts as following a special token
  std::string escaped;
  for (const auto& fragment : split_special_tokens(vocab_, text, parse_special)) {
    if (fragment.token >= 0) {
      out.push_back(fragment.token);
      after_special = true;
      continue;
    }
    escaped.clear();
    if (vocab_.add_space_prefix && after_special) escaped = kSpace;
    for (char c : fragment.text) {
      if (c == ' ') escaped += kSpace;
      else escaped += c;
    }
    encode_fragment(escaped, out);
    after_special = false;
  }
  return out;
}

std::string SentencePieceTokenizer::token_bytes(int32_t id) const {
  if (id < 0 || id >= vocab_.size()) fail("token id {} is outside the vocabulary of {}", id, vocab_.size());
  return decoded_[id];
}

std::string SentencePieceTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) {
    std::string piece = token_bytes(ids[i]);
    if (i == 0 && vocab_.add_space_prefix && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
    out += piece;
  }
  return out;
}

bool SentencePieceTokenizer::is_end_of_generation(int32_t id) const {
  const auto& eog = vocab_.end_of_generation;
  return std::find(eog.begin(), eog.end(), id) != eog.end();
}

std::string SentencePieceTokenizer::apply_chat_template(const std::vector<ChatMessage>& messages,
                                                        bool add_generation_prompt) const {
  return ChatTemplate(vocab_.chat_template, /*sentencepiece=*/true, vocab_)
      .apply(messages, add_generation_prompt);
}

}  // namespace lookahead::moe
