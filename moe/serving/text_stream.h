#pragma once
// Turns a stream of token byte strings into text that is safe to send to a client: whole UTF-8
// characters only, with stop strings cut out.
//
// Contract:
//   - push(bytes) appends one token's bytes and returns the text that is now final. It holds back
//     (a) an incomplete UTF-8 sequence at the end, and (b) the longest suffix that is a proper
//     prefix of some stop string, until later bytes decide them.
//   - When the accumulated text contains a stop string, push() returns the text before the
//     earliest match and stopped() becomes true; the stop string and anything after it are dropped.
//   - finish() returns what is still held back (a partial stop string is text after all; an
//     incomplete UTF-8 tail is dropped: it can never become a character).
//   - Bytes that are not valid UTF-8 (other than an incomplete tail) pass through; JSON output
//     replaces them with U+FFFD.
#include <string>
#include <string_view>
#include <vector>

namespace lookahead::moe::serving {

class TextStream {
 public:
  explicit TextStream(std::vector<std::string> stop = {});
  std::string push(std::string_view bytes);
  std::string finish();
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stop_;
  std::string pending_;
  bool stopped_ = false;
};

// Length of the longest suffix of `text` that starts an incomplete UTF-8 sequence (0..3).
size_t incomplete_utf8_tail(std::string_view text);

}  // namespace lookahead::moe::serving
