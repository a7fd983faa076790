// libFuzzer target: Hugging Face tokenizer.json (and, on the same bytes, a SentencePiece
// tokenizer.model). Any input must either load or throw lookahead::Error; a crash, sanitizer
// report, leak or hang is a bug. A tokenizer that loads must also encode text (its own input
// included) and decode it back without crashing.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/error.h"
#include "moe/tokenize/hf_tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lookahead::moe;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  try {
    auto tokenizer = tokenizer_from_hf_json(input, "", "fuzz/tokenizer.json");
    for (std::string_view text : {std::string_view("Hello, world! 123 <|endoftext|> \xC3\xA9\xFF"), input.substr(0, 256)}) {
      for (bool special : {false, true}) {
        auto ids = tokenizer->encode(text, special, special);
        for (int32_t id : ids)
          if (id < 0 || id >= tokenizer->vocab_size()) __builtin_trap();
        volatile size_t sink = tokenizer->decode(ids).size();
        (void)sink;
      }
    }
    volatile size_t sink = tokenizer->apply_chat_template({{"user", "hi"}}, true).size();
    (void)sink;
  } catch (const lookahead::Error&) {
  }
  try {
    Vocabulary vocab = sentencepiece_model_vocabulary(input, "fuzz/tokenizer.model");
    volatile size_t sink = vocab.tokens.size();
    (void)sink;
  } catch (const lookahead::Error&) {
  }
  return 0;
}
