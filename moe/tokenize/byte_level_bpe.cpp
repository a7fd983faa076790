#include "moe/tokenize/byte_level_bpe.h"

#include <algorithm>
#include <array>

#include "common/error.h"
#include "moe/tokenize/chat_template.h"

namespace lookahead::moe {

namespace {

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// GPT-2 keeps printable Latin-1 bytes as themselves and moves the other 68 bytes to U+0100...
const std::array<std::string, 256>& byte_table() {
  static const std::array<std::string, 256> table = [] {
    std::array<std::string, 256> t;
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      append_utf8(t[b], printable ? b : next++);
    }
    return t;
  }();
  return table;
}

size_t utf8_length(unsigned char c) {
  if (c < 0xC0) return 1;
  if (c < 0xE0) return 2;
  if (c < 0xF0) return 3;
  return 4;
}

struct Symbol {
  int32_t symbol;
  int32_t prev;
  int32_t next;
};

struct Bigram {
  int32_t rank;
  int32_t left;
  int32_t right;
  int32_t right_symbol;  // to detect a pair made stale by an earlier merge of its right side
};

// Heap order: lowest rank first, then leftmost (llama.cpp's llm_bigram_bpe::comparator).
bool lower_priority(const Bigram& a, const Bigram& b) {
  return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
}

struct Scratch {
  std::vector<Symbol> symbols;
  std::vector<Bigram> heap;
  std::vector<std::string_view> words;
  std::string encoded;
};

int parse_byte_token(const std::string& text) {
  // "<0xXX>" as SentencePiece and some BPE vocabularies name raw bytes.
  if (text.size() != 6 || text.compare(0, 3, "<0x") != 0 || text[5] != '>') return -1;
  int value = 0;
  for (int i = 3; i < 5; ++i) {
    char c = text[i];
    int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10
              : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (digit < 0) return -1;
    value = value * 16 + digit;
  }
  return value;
}

}  // namespace

const std::string& byte_to_unicode(uint8_t byte) { return byte_table()[byte]; }

int unicode_to_byte(std::string_view utf8) {
  static const std::unordered_map<std::string, int> reverse = [] {
    std::unordered_map<std::string, int> r;
    for (int b = 0; b < 256; ++b) r[byte_table()[b]] = b;
    return r;
  }();
  auto it = reverse.find(std::string(utf8));
  return it == reverse.end() ? -1 : it->second;
}

int32_t BytePairTokenizer::symbol_of(const std::string& text, bool create) {
  int32_t id = vocab_.find(text);
  if (id >= 0) return id;
  auto it = extra_symbols_.find(text);
  if (it != extra_symbols_.end()) return it->second;
  if (!create) return -1;
  int32_t symbol = vocab_.size() + static_cast<int32_t>(extra_texts_.size());
  extra_symbols_.emplace(text, symbol);
  extra_texts_.push_back(text);
  return symbol;
}

BytePairTokenizer::BytePairTokenizer(Vocabulary vocab,
                                     const std::vector<std::pair<std::string, std::string>>& merges,
                                     std::vector<std::string> regexes, bool ignore_merges,
                                     const std::string& source)
    : vocab_(std::move(vocab)), pre_tokenizer_(std::move(regexes)), ignore_merges_(ignore_merges) {
  vocab_.index(source);
  merges_.reserve(merges.size() * 2);
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [left, right] = merges[rank];
    if (left.empty() || right.empty())
      fail("{}: merge {} ('{} {}') has an empty side", source, rank, left, right);
    int32_t l = symbol_of(left, true);
    int32_t r = symbol_of(right, true);
    int32_t m = symbol_of(left + right, true);
    uint64_t key = (static_cast<uint64_t>(static_cast<uint32_t>(l)) << 32) | static_cast<uint32_t>(r);
    merges_.emplace(key, Merge{static_cast<int32_t>(rank), m});  // first (best) rank wins
  }
  for (int b = 0; b < 256; ++b) byte_symbol_[b] = symbol_of(byte_table()[b], false);

  decoded_.resize(vocab_.tokens.size());
  for (int32_t id = 0; id < vocab_.size(); ++id) {
    const std::string& text = vocab_.tokens[id];
    std::string& out = decoded_[id];
    if (vocab_.is_special(id)) {
      out = text;
      continue;
    }
    if (vocab_.types[id] == TokenType::BYTE) {
      int b = parse_byte_token(text);
      if (b >= 0) {
        out = std::string(1, static_cast<char>(b));
        continue;
      }
    }
    for (size_t i = 0; i < text.size();) {
      size_t n = std::min(text.size() - i, utf8_length(static_cast<unsigned char>(text[i])));
      int b = unicode_to_byte(std::string_view(text).substr(i, n));
      if (b >= 0) out += static_cast<char>(b);
      else out.append(text, i, n);  // not in the byte alphabet: keep the character itself
      i += n;
    }
  }
}

void BytePairTokenizer::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  thread_local Scratch scratch;
  if (ignore_merges_) {
    scratch.encoded.clear();
    for (unsigned char c : word) scratch.encoded += byte_table()[c];
    int32_t id = vocab_.find(scratch.encoded);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }
  auto& symbols = scratch.symbols;
  auto& heap = scratch.heap;
  symbols.resize(word.size());
  heap.clear();
  const int32_t n = static_cast<int32_t>(word.size());
  for (int32_t i = 0; i < n; ++i)
    symbols[i] = {byte_symbol_[static_cast<unsigned char>(word[i])], i - 1, i + 1 < n ? i + 1 : -1};

  auto try_pair = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    int32_t l = symbols[left].symbol, r = symbols[right].symbol;
    if (l < 0 || r < 0) return;
    auto it = merges_.find((static_cast<uint64_t>(static_cast<uint32_t>(l)) << 32) | static_cast<uint32_t>(r));
    if (it == merges_.end()) return;
    heap.push_back({it->second.rank, left, right, r});
    std::push_heap(heap.begin(), heap.end(), lower_priority);
  };
  for (int32_t i = 1; i < n; ++i) try_pair(i - 1, i);

  constexpr int32_t kDead = -2;
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), lower_priority);
    Bigram b = heap.back();
    heap.pop_back();
    Symbol& left = symbols[b.left];
    Symbol& right = symbols[b.right];
    if (left.symbol == kDead || right.symbol != b.right_symbol) continue;
    auto it = merges_.find((static_cast<uint64_t>(static_cast<uint32_t>(left.symbol)) << 32) |
                           static_cast<uint32_t>(right.symbol));
    left.symbol = it->second.result;
    right.symbol = kDead;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = b.left;
    try_pair(left.prev, b.left);
    try_pair(b.left, left.next);
  }

  for (int32_t i = 0; i >= 0 && i < n; i = symbols[i].next) {
    int32_t s = symbols[i].symbol;
    if (s >= 0 && s < vocab_.size()) {
      out.push_back(s);
      continue;
    }
    // Not a token: llama.cpp emits the single-character tokens of the symbol's text.
    std::string text = s >= 0 ? extra_texts_[s - vocab_.size()]
                              : byte_table()[static_cast<unsigned char>(word[i])];
    for (char c : text) {
      int32_t id = vocab_.find(std::string(1, c));
      if (id >= 0) out.push_back(id);
    }
  }
}

std::vector<int32_t> BytePairTokenizer::encode(std::string_view text, bool add_special,
                                               bool parse_special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 2);
  if (add_special && vocab_.add_bos) out.push_back(vocab_.bos);
  std::vector<std::string_view> words;
  for (const auto& fragment : split_special_tokens(vocab_, text, parse_special)) {
    if (fragment.token >= 0) {
      out.push_back(fragment.token);
      continue;
    }
    pre_tokenizer_.split(fragment.text, words);
    for (auto word : words) encode_word(word, out);
  }
  return out;
}

std::string BytePairTokenizer::token_bytes(int32_t id) const {
  if (id < 0 || id >= vocab_.size()) fail("token id {} is outside the vocabulary of {}", id, vocab_.size());
  return decoded_[id];
}

bool BytePairTokenizer::is_end_of_generation(int32_t id) const {
  const auto& eog = vocab_.end_of_generation;
  return std::find(eog.begin(), eog.end(), id) != eog.end();
}

std::string BytePairTokenizer::apply_chat_template(const std::vector<ChatMessage>& messages,
                                                   bool add_generation_prompt) const {
  return ChatTemplate(vocab_.chat_template, /*sentencepiece=*/false, vocab_)
      .apply(messages, add_generation_prompt);
}

}  // namespace lookahead::moe
