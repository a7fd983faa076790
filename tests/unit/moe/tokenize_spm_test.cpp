// SentencePiece (llama.cpp's llm_tokenizer_spm algorithm) on a small hand-made vocabulary.
#include <gtest/gtest.h>

#include <cstdio>

#include "common/error.h"
#include "moe/tokenize/sentencepiece.h"

namespace lookahead::moe {
namespace {

const std::string kSp = "\xE2\x96\x81";  // U+2581

struct TinySpm {
  Vocabulary vocab;
  TinySpm() {
    add("<unk>", 0, TokenType::UNKNOWN);
    add("<s>", 0, TokenType::CONTROL);
    add("</s>", 0, TokenType::CONTROL);
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof(name), "<0x%02X>", b);
      add(name, 0, TokenType::BYTE);
    }
    vocab.unk = 0, vocab.bos = 1, vocab.eos = 2;
    vocab.add_bos = true;
    vocab.add_space_prefix = true;
  }
  int32_t add(const std::string& text, float score, TokenType type = TokenType::NORMAL) {
    vocab.tokens.push_back(text);
    vocab.scores.push_back(score);
    vocab.types.push_back(type);
    return static_cast<int32_t>(vocab.tokens.size() - 1);
  }
  int32_t byte(uint8_t b) const { return 3 + b; }
};

TEST(TokenizeSpm, HighestScoringPairMergesFirst) {
  for (float sph_score : {-6.0f, -3.5f}) {
    TinySpm t;
    int32_t sp = t.add(kSp, -1);
    for (const char* c : {"h", "e", "l", "o"}) t.add(c, -2);
    t.add("ll", -3);
    t.add("he", -4);
    int32_t llo = t.add("llo", -5);
    int32_t hello = t.add("hello", -7);
    int32_t sph = t.add(kSp + "h", sph_score);
    int32_t e = t.vocab.size() - 8;
    SentencePieceTokenizer tok(t.vocab, "tiny");
    auto ids = tok.encode("hello", false, false);
    if (sph_score < -4) {
      // "he" (-4) beats "▁h" (-6): ▁ | he | llo, then "hello" forms.
      EXPECT_EQ(ids, (std::vector<int32_t>{sp, hello}));
    } else {
      // "▁h" (-3.5) beats "he" (-4) and takes the h: ▁h | e | llo.
      EXPECT_EQ(ids, (std::vector<int32_t>{sph, e, llo}));
    }
    EXPECT_EQ(tok.decode(ids), "hello");
    EXPECT_EQ(tok.encode("hello", true, false).front(), 1);
  }
}

TEST(TokenizeSpm, UnknownCharactersFallBackToBytes) {
  TinySpm t;
  int32_t sp = t.add(kSp, -1);
  int32_t a = t.add("a", -2);
  SentencePieceTokenizer tok(t.vocab, "tiny");
  // "é" is not a piece: its UTF-8 bytes C3 A9 become <0xC3> <0xA9>.
  EXPECT_EQ(tok.encode("a\xC3\xA9", false, false), (std::vector<int32_t>{sp, a, t.byte(0xC3), t.byte(0xA9)}));
  EXPECT_EQ(tok.decode(tok.encode("a\xC3\xA9 a", false, false)), "a\xC3\xA9 a");
  EXPECT_EQ(tok.token_bytes(t.byte(0x41)), "A");
}

TEST(TokenizeSpm, SpacePrefixFollowsSpecialTokens) {
  TinySpm t;
  int32_t sp = t.add(kSp, -1);
  int32_t a = t.add("a", -2);
  int32_t spa = t.add(kSp + "a", -1.5f);
  SentencePieceTokenizer tok(t.vocab, "tiny");
  EXPECT_EQ(tok.encode("a", false, false), (std::vector<int32_t>{spa}));
  EXPECT_EQ(tok.encode("a<s>a", false, true), (std::vector<int32_t>{spa, 1, spa}));
  EXPECT_EQ(tok.encode(" a", false, false), (std::vector<int32_t>{sp, spa}));
  EXPECT_EQ(tok.decode({sp, spa}), " a");  // one added space dropped, the text's own kept
  t.vocab.add_space_prefix = false;
  SentencePieceTokenizer plain(t.vocab, "tiny");
  EXPECT_EQ(plain.encode("a", false, false), (std::vector<int32_t>{a}));
  EXPECT_EQ(plain.encode("", true, false), (std::vector<int32_t>{1}));
}

TEST(TokenizeSpm, MalformedVocabularyIsAnError) {
  TinySpm t;
  t.vocab.tokens[3] = "<0xZZ>";
  EXPECT_THROW(SentencePieceTokenizer(t.vocab, "tiny"), Error);
  TinySpm u;
  u.vocab.types.pop_back();
  EXPECT_THROW(SentencePieceTokenizer(u.vocab, "tiny"), Error);
}

}  // namespace
}  // namespace lookahead::moe
