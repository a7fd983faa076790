#include "moe/tokenize/vocabulary.h"

#include <algorithm>

#include "common/error.h"

namespace lookahead::moe {

void Vocabulary::index(const std::string& source) {
  if (tokens.empty()) fail("{}: tokenizer vocabulary is empty", source);
  if (scores.empty()) scores.assign(tokens.size(), 0.0f);
  if (types.empty()) types.assign(tokens.size(), TokenType::NORMAL);
  if (scores.size() != tokens.size())
    fail("{}: tokenizer has {} scores for {} tokens", source, scores.size(), tokens.size());
  if (types.size() != tokens.size())
    fail("{}: tokenizer has {} token types for {} tokens", source, types.size(), tokens.size());
  const int32_t n = size();
  auto check_id = [&](int32_t& id, const char* what) {
    if (id >= n) fail("{}: {} token id {} is outside the vocabulary of {}", source, what, id, n);
    if (id < 0) id = -1;
  };
  check_id(bos, "bos");
  check_id(eos, "eos");
  check_id(unk, "unknown");
  if (add_bos && bos < 0) fail("{}: add_bos_token is set but there is no bos token id", source);

  ids_.clear();
  ids_.reserve(tokens.size() * 2);
  special_.clear();
  for (int32_t id = 0; id < n; ++id) {
    auto type = static_cast<int32_t>(types[id]);
    if (type < 0 || type > 6) fail("{}: token {} has unknown token type {}", source, id, type);
    ids_[tokens[id]] = id;  // later duplicates win, as in llama.cpp's token_to_id
    if (is_special(id) && !tokens[id].empty()) special_.push_back(id);
  }
  std::stable_sort(special_.begin(), special_.end(), [&](int32_t a, int32_t b) {
    return tokens[a].size() > tokens[b].size();
  });

  // End of generation: eos plus the end-of-turn tokens llama.cpp recognises by name.
  end_of_generation.clear();
  if (eos >= 0) end_of_generation.push_back(eos);
  for (const char* name : {"<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|eom_id|>", "<|end|>",
                           "<end_of_turn>", "<|end_of_text|>", "<EOT>"}) {
    int32_t id = find(name);
    if (id >= 0 && std::find(end_of_generation.begin(), end_of_generation.end(), id) ==
                       end_of_generation.end())
      end_of_generation.push_back(id);
  }
}

std::vector<TextFragment> split_special_tokens(const Vocabulary& vocab, std::string_view text,
                                               bool parse_special) {
  std::vector<TextFragment> fragments;
  if (text.empty()) return fragments;
  fragments.push_back({text, -1});
  std::vector<TextFragment> next;
  for (int32_t id : vocab.special_tokens()) {
    auto type = vocab.types[id];
    if (!parse_special && (type == TokenType::CONTROL || type == TokenType::UNKNOWN)) continue;
    const std::string& special = vocab.tokens[id];
    bool found = false;
    for (const auto& f : fragments) {
      if (f.token < 0 && f.text.find(special) != std::string_view::npos) {
        found = true;
        break;
      }
    }
    if (!found) continue;
    next.clear();
    for (const auto& f : fragments) {
      if (f.token >= 0) {
        next.push_back(f);
        continue;
      }
      std::string_view rest = f.text;
      for (size_t at; (at = rest.find(special)) != std::string_view::npos;) {
        if (at > 0) next.push_back({rest.substr(0, at), -1});
        next.push_back({{}, id});
        rest.remove_prefix(at + special.size());
      }
      if (!rest.empty()) next.push_back({rest, -1});
    }
    fragments.swap(next);
  }
  return fragments;
}

}  // namespace lookahead::moe
