#pragma once
// Chat templates: the two conversation formats the supported models use, recognised from the
// model's Jinja template (tokenizer.chat_template) rather than by running Jinja.
//
// Contract:
//   - ChatML (SmolLM2, Qwen): "<|im_start|>{role}\n{content}<|im_end|>\n" per message, and
//     "<|im_start|>assistant\n" as the generation prompt. If the template inserts a default
//     system message when the conversation has none (SmolLM2 does), the same text is inserted.
//   - Llama-2: "[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {answer} </s><s>[INST] ..."
//     (the Hugging Face template's text without its first "<s>", which encode() adds as BOS;
//     turns stripped of surrounding whitespace as that template does); there is no separate
//     generation prompt. The BOS/EOS texts come from the vocabulary.
//   - The format is ChatML when the template mentions <|im_start|>, Llama-2 when it mentions
//     [INST]; with no template (or an unrecognised one) SentencePiece vocabularies get Llama-2 and
//     byte-level BPE vocabularies get ChatML.
// The rendered text contains special tokens as text: encode it with parse_special = true and
// add_special = true (BOS, where the vocabulary wants one, is not in the text), which gives the
// ids of the Hugging Face template's output.
#include <string>
#include <vector>

#include "moe/tokenize/tokenizer.h"
#include "moe/tokenize/vocabulary.h"

namespace lookahead::moe {

enum class ChatFormat { CHATML, LLAMA2 };

class ChatTemplate {
 public:
  ChatTemplate(const std::string& jinja_source, bool sentencepiece, const Vocabulary& vocab);

  ChatFormat format() const { return format_; }
  const std::string& default_system() const { return default_system_; }
  // Throws lookahead::Error for a role other than system/user/assistant (Llama-2 also rejects a
  // system message anywhere but first).
  std::string apply(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const;

 private:
  ChatFormat format_ = ChatFormat::CHATML;
  std::string default_system_;  // empty: none
  std::string bos_text_ = "<s>";
  std::string eos_text_ = "</s>";
};

}  // namespace lookahead::moe
