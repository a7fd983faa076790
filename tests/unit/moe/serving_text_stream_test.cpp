// Streaming text for `moe serve`: whole UTF-8 characters only, stop strings cut out even when they
// span tokens, and nothing that could still become a stop string sent early.
#include <gtest/gtest.h>

#include "moe/serving/text_stream.h"

namespace lookahead::moe::serving {
namespace {

TEST(ServeTextStream, HoldsBackIncompleteUtf8) {
  EXPECT_EQ(incomplete_utf8_tail("abc"), 0u);
  EXPECT_EQ(incomplete_utf8_tail("a\xC3"), 1u);              // é's lead byte
  EXPECT_EQ(incomplete_utf8_tail("a\xC3\xA9"), 0u);          // é
  EXPECT_EQ(incomplete_utf8_tail("\xE4\xB8"), 2u);           // 世 without its last byte
  EXPECT_EQ(incomplete_utf8_tail("\xF0\x9F\x98"), 3u);       // 😀 without its last byte
  EXPECT_EQ(incomplete_utf8_tail("\xF0\x9F\x98\x80"), 0u);
  TextStream s;
  EXPECT_EQ(s.push("x\xE4"), "x");
  EXPECT_EQ(s.push("\xB8"), "");
  EXPECT_EQ(s.push("\x96y"), "\xE4\xB8\x96y");
  EXPECT_EQ(s.push("\xF0\x9F"), "");
  EXPECT_EQ(s.finish(), "");  // can never become a character
}

TEST(ServeTextStream, StopStringAcrossTokens) {
  TextStream s({"###", "\n\n"});
  EXPECT_EQ(s.push("Hello #"), "Hello ");  // '#' may start "###"
  EXPECT_EQ(s.push("#"), "");
  EXPECT_FALSE(s.stopped());
  EXPECT_EQ(s.push("# after"), "");
  EXPECT_TRUE(s.stopped());
  EXPECT_EQ(s.push("more"), "");
  EXPECT_EQ(s.finish(), "");
}

TEST(ServeTextStream, PartialStopThatDoesNotCompleteIsText) {
  TextStream s({"END"});
  EXPECT_EQ(s.push("the EN"), "the ");
  EXPECT_EQ(s.push("D"), "");
  EXPECT_TRUE(s.stopped());

  TextStream t({"END"});
  EXPECT_EQ(t.push("the EN"), "the ");
  EXPECT_EQ(t.push("ough"), "ENough");
  EXPECT_EQ(t.push("E"), "");
  EXPECT_EQ(t.finish(), "E");  // a held-back prefix is text after all
  EXPECT_FALSE(t.stopped());
}

TEST(ServeTextStream, EarliestMatchWinsAndTextBeforeItIsKept) {
  TextStream s({"b", "abc"});
  EXPECT_EQ(s.push("xxabcd"), "xx");  // "abc" at 2 comes before "b" at 3
  EXPECT_TRUE(s.stopped());
}

TEST(ServeTextStream, OutputConcatenatesToTheInputWithoutStops) {
  TextStream s({"zzz"});
  const std::string pieces[] = {"Hel", "lo, ", "z", "z", "y", "\xE4", "\xB8\x96", "!"};
  std::string out, in;
  for (const auto& p : pieces) {
    in += p;
    out += s.push(p);
  }
  out += s.finish();
  EXPECT_EQ(out, in);
}

}  // namespace
}  // namespace lookahead::moe::serving
