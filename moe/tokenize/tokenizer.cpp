// Tokenizer factories for GGUF files and the shared decode().
#include "moe/tokenize/tokenizer.h"

#include "common/error.h"
#include "moe/format/gguf.h"
#include "moe/tokenize/byte_level_bpe.h"
#include "moe/tokenize/hf_tokenizer.h"
#include "moe/tokenize/pre_tokenizer.h"
#include "moe/tokenize/sentencepiece.h"

namespace lookahead::moe {

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  for (int32_t id : ids) out += token_bytes(id);
  return out;
}

std::unique_ptr<Tokenizer> Tokenizer::from_gguf(const GgufFile& file) {
  const std::string& path = file.path();
  auto model = file.find_string("tokenizer.ggml.model");
  if (!model) fail("{}: no tokenizer (key tokenizer.ggml.model is missing)", path);
  const bool sentencepiece = *model == "llama";
  if (!sentencepiece && *model != "gpt2")
    fail("{}: tokenizer.ggml.model '{}' is not supported (expected 'gpt2' or 'llama')", path, *model);

  Vocabulary vocab;
  vocab.tokens = file.get_string_array("tokenizer.ggml.tokens");
  if (file.has("tokenizer.ggml.scores")) {
    for (double s : file.get_float_array("tokenizer.ggml.scores")) vocab.scores.push_back(static_cast<float>(s));
  }
  if (file.has("tokenizer.ggml.token_type")) {
    for (int64_t t : file.get_int_array("tokenizer.ggml.token_type")) {
      if (t < 0 || t > 6) fail("{}: tokenizer.ggml.token_type has unknown type {}", path, t);
      vocab.types.push_back(static_cast<TokenType>(t));
    }
  }
  // Defaults as in llama.cpp's llama_vocab::load, then the file's keys override them.
  std::string pre = file.find_string("tokenizer.ggml.pre").value_or("default");
  if (sentencepiece) {
    vocab.bos = 1, vocab.eos = 2, vocab.unk = 0;
    vocab.add_bos = true;
    vocab.add_space_prefix = true;
  } else {
    for (auto name : {"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0",
                      "lfm2", "tekken", "chameleon"})
      if (pre == name) vocab.add_bos = true;
  }
  auto id_key = [&](const char* key, int32_t& id) {
    if (auto v = file.find_int(key)) id = static_cast<int32_t>(*v);
  };
  id_key("tokenizer.ggml.bos_token_id", vocab.bos);
  id_key("tokenizer.ggml.eos_token_id", vocab.eos);
  id_key("tokenizer.ggml.unknown_token_id", vocab.unk);
  if (file.has("tokenizer.ggml.add_bos_token")) vocab.add_bos = file.get_bool("tokenizer.ggml.add_bos_token");
  if (file.has("tokenizer.ggml.add_space_prefix"))
    vocab.add_space_prefix = file.get_bool("tokenizer.ggml.add_space_prefix");
  vocab.chat_template = file.find_string("tokenizer.chat_template").value_or("");

  if (sentencepiece) return std::make_unique<SentencePieceTokenizer>(std::move(vocab), path);

  std::vector<std::pair<std::string, std::string>> merges;
  if (file.has("tokenizer.ggml.merges")) {
    auto lines = file.get_string_array("tokenizer.ggml.merges");
    merges.reserve(lines.size());
    for (size_t i = 0; i < lines.size(); ++i) {
      // llama.cpp splits at the first space after the first character.
      size_t at = lines[i].find(' ', 1);
      if (at == std::string::npos)
        fail("{}: tokenizer.ggml.merges[{}] '{}' is not two tokens separated by a space", path, i, lines[i]);
      merges.emplace_back(lines[i].substr(0, at), lines[i].substr(at + 1));
    }
  }
  std::vector<std::string> regexes;
  bool ignore_merges = false;
  try {
    regexes = PreTokenizer::regexes_for(pre);
    ignore_merges = PreTokenizer::ignores_merges(pre);
  } catch (const Error& e) {
    fail("{}: {}", path, e.what());
  }
  return std::make_unique<BytePairTokenizer>(std::move(vocab), merges, std::move(regexes), ignore_merges, path);
}

}  // namespace lookahead::moe
