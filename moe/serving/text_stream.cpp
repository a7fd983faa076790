#include "moe/serving/text_stream.h"

#include <algorithm>

namespace lookahead::moe::serving {

size_t incomplete_utf8_tail(std::string_view text) {
  // Walk back over at most 3 continuation bytes to the lead byte and compare the sequence length
  // the lead byte announces with what is there.
  const size_t n = text.size();
  for (size_t back = 1; back <= std::min<size_t>(4, n); ++back) {
    const auto c = static_cast<unsigned char>(text[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte
    size_t want = 1;
    if ((c & 0xE0) == 0xC0) want = 2;
    else if ((c & 0xF0) == 0xE0) want = 3;
    else if ((c & 0xF8) == 0xF0) want = 4;
    return want > back ? back : 0;
  }
  return 0;
}

TextStream::TextStream(std::vector<std::string> stop) : stop_(std::move(stop)) {
  std::erase_if(stop_, [](const std::string& s) { return s.empty(); });
}

std::string TextStream::push(std::string_view bytes) {
  if (stopped_) return {};
  pending_.append(bytes);
  // The earliest stop string match ends the text.
  size_t cut = std::string::npos;
  for (const auto& s : stop_) cut = std::min(cut, pending_.find(s));
  if (cut != std::string::npos) {
    stopped_ = true;
    std::string out = pending_.substr(0, cut);
    pending_.clear();
    return out;
  }
  size_t hold = incomplete_utf8_tail(pending_);
  for (const auto& s : stop_) {
    // Longest proper prefix of s that is a suffix of pending_.
    for (size_t len = std::min(s.size() - 1, pending_.size()); len > hold; --len) {
      if (std::string_view(pending_).substr(pending_.size() - len) == std::string_view(s).substr(0, len)) {
        hold = len;
        break;
      }
    }
  }
  std::string out = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return out;
}

std::string TextStream::finish() {
  if (stopped_) return {};
  std::string out = std::move(pending_);
  pending_.clear();
  out.resize(out.size() - incomplete_utf8_tail(out));
  return out;
}

}  // namespace lookahead::moe::serving
