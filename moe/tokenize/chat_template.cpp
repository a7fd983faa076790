#include "moe/tokenize/chat_template.h"

#include "common/error.h"

namespace lookahead::moe {

namespace {

// Jinja string literals may spell a newline as "\n"; the GGUF may also hold a real newline.
std::string unescape_jinja(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      char c = s[++i];
      out += c == 'n' ? '\n' : c == 't' ? '\t' : c;
    } else {
      out += s[i];
    }
  }
  return out;
}

// SmolLM2-style templates write the default system turn as a literal:
//   {% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n...<|im_end|>\n' }}
std::string find_default_system(const std::string& source) {
  if (source.find("!= 'system'") == std::string::npos &&
      source.find("!= \"system\"") == std::string::npos)
    return {};
  for (std::string_view head : {"<|im_start|>system\\n", "<|im_start|>system\n"}) {
    size_t at = source.find(head);
    if (at == std::string::npos) continue;
    size_t begin = at + head.size();
    size_t end = source.find("<|im_end|>", begin);
    if (end == std::string::npos) return {};
    std::string_view body(source.data() + begin, end - begin);
    // Only a literal text, not a Jinja expression (e.g. "' + message['content'] + '").
    if (body.find('\'') != std::string_view::npos || body.find('{') != std::string_view::npos) return {};
    return unescape_jinja(body);
  }
  return {};
}

std::string_view strip(std::string_view s) {
  const char* space = " \t\n\r\f\v";
  size_t b = s.find_first_not_of(space);
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(space);
  return s.substr(b, e - b + 1);
}

}  // namespace

ChatTemplate::ChatTemplate(const std::string& jinja_source, bool sentencepiece, const Vocabulary& vocab) {
  if (jinja_source.find("<|im_start|>") != std::string::npos) {
    format_ = ChatFormat::CHATML;
  } else if (jinja_source.find("[INST]") != std::string::npos) {
    format_ = ChatFormat::LLAMA2;
  } else {
    format_ = sentencepiece ? ChatFormat::LLAMA2 : ChatFormat::CHATML;
  }
  if (format_ == ChatFormat::CHATML) default_system_ = find_default_system(jinja_source);
  if (vocab.bos >= 0) bos_text_ = vocab.tokens[vocab.bos];
  if (vocab.eos >= 0) eos_text_ = vocab.tokens[vocab.eos];
}

std::string ChatTemplate::apply(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const {
  for (size_t i = 0; i < messages.size(); ++i) {
    const auto& role = messages[i].role;
    if (role != "system" && role != "user" && role != "assistant")
      fail("chat message {}: role '{}' is not one of system, user, assistant", i, role);
  }
  std::string out;
  if (format_ == ChatFormat::CHATML) {
    if (!messages.empty() && messages[0].role != "system" && !default_system_.empty())
      out += "<|im_start|>system\n" + default_system_ + "<|im_end|>\n";
    for (const auto& m : messages) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
    if (add_generation_prompt) out += "<|im_start|>assistant\n";
    return out;
  }
  // Llama-2: the system prompt is folded into the first user turn.
  size_t first = 0;
  std::string system;
  bool has_system = !messages.empty() && messages[0].role == "system";
  if (has_system) {
    system = messages[0].content;
    first = 1;
  }
  for (size_t i = first; i < messages.size(); ++i) {
    const auto& m = messages[i];
    if (m.role == "system") fail("chat message {}: Llama-2 allows a system message only first", i);
    std::string content = m.content;
    if (i == first && has_system) content = "<<SYS>>\n" + system + "\n<</SYS>>\n\n" + m.content;
    // The first BOS is left to encode(add_special = true), as llama.cpp's llama2 template does.
    if (m.role == "user") out += (out.empty() ? "" : bos_text_) + "[INST] " + std::string(strip(content)) + " [/INST]";
    else out += " " + std::string(strip(content)) + " " + eos_text_;
  }
  return out;
}

}  // namespace lookahead::moe
