#include "moe/checkpoint/gguf_tokenizer_keys.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/error.h"
#include "moe/format/gguf_writer.h"

namespace lookahead::moe {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::optional<json> read_json(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream text;
  text << in.rdbuf();
  try {
    return json::parse(text.str());
  } catch (const json::exception& e) {
    fail("{}: not valid JSON: {}", path.string(), e.what());
  }
}

bool is_type(const json& j, const char* type) {
  return j.is_object() && j.contains("type") && j["type"].is_string() && j["type"].get<std::string>() == type;
}

std::string pre_tokenizer_name(const json& tok) {
  if (!tok.contains("pre_tokenizer")) return "default";
  const json& pre = tok["pre_tokenizer"];
  if (is_type(pre, "ByteLevel")) return "gpt-2";  // llama.cpp's name for the plain GPT-2 pre-tokenizer
  if (is_type(pre, "Sequence") && pre.contains("pretokenizers") && pre["pretokenizers"].is_array()) {
    const json& seq = pre["pretokenizers"];
    if (seq.size() == 2 && is_type(seq[0], "Digits") && seq[0].value("individual_digits", false) &&
        is_type(seq[1], "ByteLevel"))
      return "smollm";
  }
  return "default";
}

// "<|endoftext|>" or {"content": "<|endoftext|>", ...} in tokenizer_config.json.
std::optional<std::string> token_text(const json& config, const char* field) {
  if (!config.is_object() || !config.contains(field)) return std::nullopt;
  const json& v = config[field];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return std::nullopt;
}

}  // namespace

bool write_hf_tokenizer(const std::string& dir, int32_t n_vocab, GgufWriter& w) {
  const fs::path tok_path = fs::path(dir) / "tokenizer.json";
  auto tok = read_json(tok_path);
  if (!tok) return false;
  const std::string file = tok_path.string();
  if (!tok->is_object() || !tok->contains("model") || !(*tok)["model"].is_object())
    fail("{}: missing object field 'model'", file);
  const json& model = (*tok)["model"];
  if (!is_type(model, "BPE")) return false;
  // Byte-level BPE has a ByteLevel decoder; SentencePiece-style BPE (byte_fallback) does not.
  if (!tok->contains("decoder") || !is_type((*tok)["decoder"], "ByteLevel")) return false;
  if (!model.contains("vocab") || !model["vocab"].is_object()) fail("{}: missing object field 'model.vocab'", file);

  std::vector<std::string> tokens(static_cast<size_t>(n_vocab));
  std::vector<int32_t> types(static_cast<size_t>(n_vocab), 0);
  std::map<std::string, int32_t> id_of;
  auto place = [&](const std::string& text, const json& id_json, int32_t type, const char* field) {
    if (!id_json.is_number_integer()) fail("{}: {} '{}' has a non-integer id", file, field, text);
    int64_t id = id_json.get<int64_t>();
    if (id < 0 || id >= n_vocab)
      fail("{}: {} '{}' has id {}, outside config.json vocab_size {}", file, field, text, id, n_vocab);
    tokens[static_cast<size_t>(id)] = text;
    types[static_cast<size_t>(id)] = type;
    id_of[text] = static_cast<int32_t>(id);
  };
  for (const auto& [text, id] : model["vocab"].items()) place(text, id, 1, "model.vocab token");
  if (tok->contains("added_tokens") && (*tok)["added_tokens"].is_array())
    for (const auto& added : (*tok)["added_tokens"]) {
      if (!added.is_object() || !added.contains("content") || !added["content"].is_string() || !added.contains("id"))
        fail("{}: added_tokens entries need 'id' and 'content'", file);
      place(added["content"].get<std::string>(), added["id"], added.value("special", false) ? 3 : 4, "added_tokens entry");
    }
  for (int32_t i = 0; i < n_vocab; ++i)
    if (types[static_cast<size_t>(i)] == 0) {
      tokens[static_cast<size_t>(i)] = "[PAD" + std::to_string(i) + "]";
      types[static_cast<size_t>(i)] = 5;
    }

  std::vector<std::string> merges;
  if (model.contains("merges") && model["merges"].is_array()) {
    merges.reserve(model["merges"].size());
    for (const auto& m : model["merges"]) {
      if (m.is_string()) merges.push_back(m.get<std::string>());
      else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string())
        merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
      else fail("{}: model.merges entries must be \"a b\" or [\"a\", \"b\"]", file);
    }
  }

  w.set("tokenizer.ggml.model", gguf_string("gpt2"));
  w.set("tokenizer.ggml.pre", gguf_string(pre_tokenizer_name(*tok)));
  w.set("tokenizer.ggml.tokens", gguf_string_array(tokens));
  w.set("tokenizer.ggml.token_type", gguf_i32_array(types));
  w.set("tokenizer.ggml.merges", gguf_string_array(merges));

  // Special token ids: tokenizer_config.json names them, config.json may give ids directly.
  json tconfig = read_json(fs::path(dir) / "tokenizer_config.json").value_or(json::object());
  json mconfig = read_json(fs::path(dir) / "config.json").value_or(json::object());
  const std::pair<const char*, const char*> specials[] = {
      {"bos", "bos_token"}, {"eos", "eos_token"}, {"unknown", "unk_token"}, {"padding", "pad_token"}};
  for (const auto& [gguf_key, field] : specials) {
    std::optional<int32_t> id;
    if (auto text = token_text(tconfig, field); text && id_of.count(*text)) id = id_of[*text];
    std::string id_field = std::string(field) + "_id";
    if (!id && mconfig.is_object() && mconfig.contains(id_field) && mconfig[id_field].is_number_integer()) {
      int64_t v = mconfig[id_field].get<int64_t>();
      if (v >= 0 && v < n_vocab) id = static_cast<int32_t>(v);
    }
    if (id) w.set(std::string("tokenizer.ggml.") + gguf_key + "_token_id", gguf_u32(static_cast<uint32_t>(*id)));
  }
  for (const char* flag : {"add_bos_token", "add_eos_token"})
    if (tconfig.is_object() && tconfig.contains(flag) && tconfig[flag].is_boolean())
      w.set(std::string("tokenizer.ggml.") + flag, gguf_bool(tconfig[flag].get<bool>()));
  if (tconfig.is_object() && tconfig.contains("chat_template")) {
    const json& t = tconfig["chat_template"];
    if (t.is_string()) w.set("tokenizer.chat_template", gguf_string(t.get<std::string>()));
    else if (t.is_array())
      for (const auto& named : t)
        if (named.is_object() && named.value("name", "") == "default" && named.contains("template") &&
            named["template"].is_string())
          w.set("tokenizer.chat_template", gguf_string(named["template"].get<std::string>()));
  }
  return true;
}

}  // namespace lookahead::moe
