#pragma once
// Tokenizers: byte-level BPE (GPT-2 style, e.g. SmolLM2, Llama-3) and SentencePiece (Llama-2).
//
// Contract:
//   - encode() is what llama.cpp's llama_tokenize does for the same vocabulary: with
//     add_special, the BOS token is prepended when the vocabulary asks for it
//     (tokenizer.ggml.add_bos_token, or the SentencePiece default); with parse_special, special
//     tokens written in the text (e.g. "<|im_start|>") become their ids, otherwise they are text.
//   - decode(encode(x)) == x for any valid UTF-8 x (byte-level BPE; SentencePiece up to its
//     leading-space convention).
//   - token_bytes(id) is the exact byte string of one token (may be a partial UTF-8 sequence), for
//     streaming output; special/control tokens give their text form.
//   - Construction from malformed vocabulary data throws lookahead::Error naming the field.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace lookahead::moe {

class GgufFile;

struct ChatMessage {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // From the tokenizer.ggml.* keys of a GGUF file (model "gpt2" or "llama").
  static std::unique_ptr<Tokenizer> from_gguf(const GgufFile& file);
  // From a Hugging Face checkpoint directory: tokenizer.json (BPE) or tokenizer.model (SentencePiece).
  static std::unique_ptr<Tokenizer> from_hf_dir(const std::string& dir);

  virtual std::vector<int32_t> encode(std::string_view text, bool add_special, bool parse_special) const = 0;
  virtual std::string token_bytes(int32_t id) const = 0;
  // Concatenated token_bytes; SentencePiece also drops the space its prefix added (as
  // llama.cpp's detokenize does), so decode(encode(x, false, false)) == x.
  virtual std::string decode(const std::vector<int32_t>& ids) const;

  virtual int32_t vocab_size() const = 0;
  virtual int32_t bos() const = 0;  // -1 if none
  virtual int32_t eos() const = 0;
  // End-of-generation tokens: eos, and e.g. <|im_end|> / <|endoftext|> for ChatML models.
  virtual bool is_end_of_generation(int32_t id) const = 0;

  // Renders a conversation with the model's chat template: ChatML (SmolLM2, Qwen) or Llama-2
  // [INST]; chosen from tokenizer.chat_template when present, else from the vocabulary type.
  virtual std::string apply_chat_template(const std::vector<ChatMessage>& messages,
                                          bool add_generation_prompt) const = 0;
};

}  // namespace lookahead::moe
