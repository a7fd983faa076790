// Byte-level BPE and its pre-tokenizer on small hand-made vocabularies.
#include <gtest/gtest.h>

#include <random>

#include "common/error.h"
#include "moe/tokenize/byte_level_bpe.h"
#include "moe/tokenize/pre_tokenizer.h"

namespace lookahead::moe {
namespace {

std::vector<std::string> split(const std::string& pre, const std::string& text) {
  PreTokenizer p(PreTokenizer::regexes_for(pre));
  std::vector<std::string_view> words;
  p.split(text, words);
  return {words.begin(), words.end()};
}

TEST(TokenizeByteMap, Gpt2AlphabetIsReversible) {
  EXPECT_EQ(byte_to_unicode('A'), "A");
  EXPECT_EQ(byte_to_unicode(' '), "\xC4\xA0");   // U+0120 'Ġ'
  EXPECT_EQ(byte_to_unicode('\n'), "\xC4\x8A");  // U+010A 'Ċ'
  EXPECT_EQ(byte_to_unicode(0xAD), "\xC5\x83");  // U+0143, the 68th remapped byte
  for (int b = 0; b < 256; ++b) EXPECT_EQ(unicode_to_byte(byte_to_unicode(static_cast<uint8_t>(b))), b);
  EXPECT_EQ(unicode_to_byte("\xE2\x96\x81"), -1);
}

TEST(TokenizePreTokenizer, Gpt2SplitsWordsContractionsAndSpaces) {
  EXPECT_EQ(split("gpt-2", "Hello world's  test 123"),
            (std::vector<std::string>{"Hello", " world", "'s", " ", " test", " 123"}));
  EXPECT_EQ(split("gpt-2", "naïve Привет, 世界!"),
            (std::vector<std::string>{"naïve", " Привет", ",", " 世界", "!"}));
}

TEST(TokenizePreTokenizer, SmolLMIsolatesEveryDigit) {
  EXPECT_EQ(split("smollm", "Hello world's  test 123"),
            (std::vector<std::string>{"Hello", " world", "'s", " ", " test", " ", "1", "2", "3"}));
}

TEST(TokenizePreTokenizer, Llama3GroupsDigitsByThreeAndKeepsNewlines) {
  EXPECT_EQ(split("llama-bpe", "x 12345\n\n  y"),
            (std::vector<std::string>{"x", " ", "123", "45", "\n\n", " ", " y"}));
}

TEST(TokenizePreTokenizer, WordsAlwaysConcatenateToTheInput) {
  std::mt19937 rng(7);
  for (const char* pre : {"gpt-2", "smollm", "llama-bpe", "qwen2", "default"}) {
    PreTokenizer p(PreTokenizer::regexes_for(pre));
    std::vector<std::string_view> words;
    for (int trial = 0; trial < 200; ++trial) {
      std::string text(rng() % 40, '\0');
      for (auto& c : text) c = static_cast<char>(rng() % 3 ? "ab 1\n'\xc3\xa9\xe4\xb8\x96"[rng() % 11] : rng() % 256);
      p.split(text, words);
      std::string joined;
      for (auto w : words) {
        EXPECT_FALSE(w.empty());
        joined += w;
      }
      EXPECT_EQ(joined, text) << pre;
    }
  }
}

TEST(TokenizePreTokenizer, UnknownNameAndBadRegexAreErrors) {
  EXPECT_THROW(PreTokenizer::regexes_for("no-such-pre"), Error);
  EXPECT_THROW(PreTokenizer({"(unclosed"}), Error);
}

// A vocabulary holding every byte's character, then the merge results.
struct TinyBpe {
  Vocabulary vocab;
  std::vector<std::pair<std::string, std::string>> merges;
  TinyBpe() {
    for (int b = 0; b < 256; ++b) vocab.tokens.push_back(byte_to_unicode(static_cast<uint8_t>(b)));
  }
  int32_t add(const std::string& text, TokenType type = TokenType::NORMAL) {
    vocab.tokens.push_back(text);
    vocab.types.resize(vocab.tokens.size() - 1, TokenType::NORMAL);
    vocab.types.push_back(type);
    return static_cast<int32_t>(vocab.tokens.size() - 1);
  }
  void merge(const std::string& a, const std::string& b) { merges.emplace_back(a, b); }
  BytePairTokenizer build(const std::string& pre = "gpt-2") {
    vocab.types.resize(vocab.tokens.size(), TokenType::NORMAL);
    return BytePairTokenizer(vocab, merges, PreTokenizer::regexes_for(pre), false, "tiny");
  }
};

TEST(TokenizeBpe, LowestRankMergesFirst) {
  TinyBpe t;
  int32_t ab = t.add("ab"), bc = t.add("bc"), abc = t.add("abc");
  t.merge("b", "c");
  t.merge("a", "b");
  t.merge("a", "bc");
  auto tok = t.build();
  // "bc" outranks "ab", so "abc" is built as a + bc.
  EXPECT_EQ(tok.encode("abc", false, false), (std::vector<int32_t>{abc}));
  EXPECT_EQ(tok.encode("ab", false, false), (std::vector<int32_t>{ab}));
  EXPECT_EQ(tok.encode("bcab", false, false), (std::vector<int32_t>{bc, ab}));
}

TEST(TokenizeBpe, RankOrderDecidesOverlappingPairs) {
  TinyBpe t;
  int32_t ab = t.add("ab");
  t.add("bc");
  t.merge("a", "b");
  t.merge("b", "c");
  auto tok = t.build();
  // "ab" has the better rank, so "abc" becomes ab + c, not a + bc.
  EXPECT_EQ(tok.encode("abc", false, false), (std::vector<int32_t>{ab, 'c'}));
}

TEST(TokenizeBpe, EqualRanksMergeLeftmostFirst) {
  TinyBpe t;
  int32_t aa = t.add("aa");
  t.merge("a", "a");
  auto tok = t.build();
  EXPECT_EQ(tok.encode("aaa", false, false), (std::vector<int32_t>{aa, 'a'}));
}

TEST(TokenizeBpe, MergesDoNotCrossWords) {
  TinyBpe t;
  int32_t ga = t.add("\xC4\xA0" "a");  // "Ġa" = " a"
  t.add("a\xC4\xA0");
  t.merge("a", "\xC4\xA0");
  t.merge("\xC4\xA0", "a");
  auto tok = t.build();
  EXPECT_EQ(tok.encode("a a", false, false), (std::vector<int32_t>{'a', ga}));
}

TEST(TokenizeBpe, SpecialTokensOnlyWhenParsedUserDefinedAlways) {
  TinyBpe t;
  int32_t control = t.add("<|end|>", TokenType::CONTROL);
  int32_t user = t.add("<tool>", TokenType::USER_DEFINED);
  auto tok = t.build();
  auto parsed = tok.encode("x<|end|>y", false, true);
  EXPECT_EQ(parsed, (std::vector<int32_t>{'x', control, 'y'}));
  auto literal = tok.encode("x<|end|>y", false, false);
  EXPECT_EQ(literal.size(), 9u);
  EXPECT_EQ(tok.decode(literal), "x<|end|>y");
  EXPECT_EQ(tok.encode("a<tool>b", false, false), (std::vector<int32_t>{'a', user, 'b'}));
  EXPECT_EQ(tok.token_bytes(control), "<|end|>");
  EXPECT_TRUE(tok.is_end_of_generation(control));
}

TEST(TokenizeBpe, AddSpecialPrependsBosOnlyWhenAsked) {
  TinyBpe t;
  t.vocab.bos = t.add("<s>", TokenType::CONTROL);
  auto without = t.build();
  EXPECT_EQ(without.encode("a", true, false), (std::vector<int32_t>{'a'}));
  t.vocab.add_bos = true;
  auto with = t.build();
  EXPECT_EQ(with.encode("a", true, false), (std::vector<int32_t>{t.vocab.bos, 'a'}));
  EXPECT_EQ(with.encode("a", false, false), (std::vector<int32_t>{'a'}));
  EXPECT_EQ(with.encode("", true, false), (std::vector<int32_t>{t.vocab.bos}));
}

TEST(TokenizeBpe, RandomBytesRoundTrip) {
  TinyBpe t;
  t.add("\xC4\xA0t");
  t.add("he");
  t.merge("\xC4\xA0", "t");
  t.merge("h", "e");
  auto tok = t.build("smollm");
  std::mt19937 rng(11);
  for (int trial = 0; trial < 300; ++trial) {
    std::string text(rng() % 64, '\0');
    for (auto& c : text) c = static_cast<char>(rng() % 256);
    EXPECT_EQ(tok.decode(tok.encode(text, false, false)), text);
  }
}

TEST(TokenizeBpe, InconsistentDataIsAnError) {
  TinyBpe t;
  t.merge("", "a");
  EXPECT_THROW(t.build(), Error);
  TinyBpe u;
  u.vocab.scores = {1.0f};
  EXPECT_THROW(u.build(), Error);
  TinyBpe v;
  v.vocab.bos = 100000;
  EXPECT_THROW(v.build(), Error);
  TinyBpe w;
  auto tok = w.build();
  EXPECT_THROW(tok.token_bytes(-1), Error);
  EXPECT_THROW(tok.token_bytes(256), Error);
}

}  // namespace
}  // namespace lookahead::moe

namespace lookahead::moe {
namespace {

TEST(TokenizePreTokenizer, CaseInsensitiveGroupsFromTokenizerJsonWork) {
  // Llama-3's tokenizer.json spells contractions as (?i:...); PCRE2 takes it as written.
  PreTokenizer p({"(?i:'s|'t|'re)|\\p{L}+|\\s+"});
  std::vector<std::string_view> words;
  p.split("IT'S it's", words);
  EXPECT_EQ(std::vector<std::string>(words.begin(), words.end()),
            (std::vector<std::string>{"IT", "'S", " ", "it", "'s"}));
}

}  // namespace
}  // namespace lookahead::moe
