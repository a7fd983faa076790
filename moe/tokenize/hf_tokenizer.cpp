// Tokenizer::from_hf_dir: tokenizer.json / tokenizer_config.json (nlohmann) and tokenizer.model
// (a minimal protobuf reader for SentencePiece's ModelProto, so no libprotobuf is needed).
#include "moe/tokenize/hf_tokenizer.h"

#include <nlohmann/json.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "common/error.h"
#include "moe/tokenize/byte_level_bpe.h"
#include "moe/tokenize/pre_tokenizer.h"
#include "moe/tokenize/sentencepiece.h"

namespace lookahead::moe {

namespace {

using nlohmann::json;

const char* const kByteLevelRegex =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";

const json& member(const json& object, const char* key, const std::string& where, const std::string& source) {
  if (!object.is_object()) fail("{}: {}: expected an object", source, where);
  auto it = object.find(key);
  if (it == object.end()) fail("{}: {}.{} is missing", source, where, key);
  return *it;
}

const std::string& as_string(const json& value, const std::string& where, const std::string& source) {
  if (!value.is_string()) fail("{}: {}: expected a string", source, where);
  return value.get_ref<const std::string&>();
}

// tokenizer_config.json writes special tokens as "text" or {"content": "text", ...}.
std::optional<std::string> token_text(const json& config, const char* key, const std::string& source) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object()) return as_string(member(*it, "content", key, source), std::string(key) + ".content", source);
  fail("{}: {}: expected a string or an object with content", source, key);
}

// Appends the regexes of one Hugging Face pre-tokenizer to `regexes`.
void add_pre_tokenizer(const json& pre, const std::string& where, const std::string& source,
                       std::vector<std::string>& regexes, bool& byte_level) {
  const std::string& type = as_string(member(pre, "type", where, source), where + ".type", source);
  if (type == "Sequence") {
    const json& list = member(pre, "pretokenizers", where, source);
    if (!list.is_array()) fail("{}: {}.pretokenizers: expected an array", source, where);
    for (size_t i = 0; i < list.size(); ++i)
      add_pre_tokenizer(list[i], where + ".pretokenizers[" + std::to_string(i) + "]", source, regexes, byte_level);
  } else if (type == "ByteLevel") {
    byte_level = true;
    auto prefix = pre.find("add_prefix_space");
    if (prefix != pre.end() && prefix->is_boolean() && prefix->get<bool>())
      fail("{}: {}.add_prefix_space = true is not supported", source, where);
    auto use_regex = pre.find("use_regex");
    if (use_regex == pre.end() || !use_regex->is_boolean() || use_regex->get<bool>())
      regexes.push_back(kByteLevelRegex);
  } else if (type == "Digits") {
    auto individual = pre.find("individual_digits");
    bool one = individual != pre.end() && individual->is_boolean() && individual->get<bool>();
    regexes.push_back(one ? "\\p{N}" : "\\p{N}+");
  } else if (type == "Split") {
    const json& pattern = member(pre, "pattern", where, source);
    std::string regex;
    if (pattern.contains("Regex")) {
      regex = as_string(pattern["Regex"], where + ".pattern.Regex", source);
    } else if (pattern.contains("String")) {
      // A literal: quote it for PCRE2.
      regex = "\\Q" + as_string(pattern["String"], where + ".pattern.String", source) + "\\E";
    } else {
      fail("{}: {}.pattern: expected Regex or String", source, where);
    }
    auto behavior = pre.find("behavior");
    if (behavior != pre.end() && !(behavior->is_string() && behavior->get<std::string>() == "Isolated"))
      fail("{}: {}.behavior: only \"Isolated\" is supported", source, where);
    auto invert = pre.find("invert");
    if (invert != pre.end() && invert->is_boolean() && invert->get<bool>())
      fail("{}: {}.invert = true is not supported", source, where);
    regexes.push_back(std::move(regex));
  } else {
    fail("{}: {}.type '{}' is not supported (Sequence, ByteLevel, Digits, Split)", source, where, type);
  }
}

std::unique_ptr<Tokenizer> parse_tokenizer_json(std::string_view text, std::string_view config_text,
                                                const std::string& source) {
  json root = json::parse(text.begin(), text.end());
  json config = config_text.empty() ? json::object() : json::parse(config_text.begin(), config_text.end());
  if (!config.is_object()) fail("{}: tokenizer_config.json: expected an object", source);

  const json& model = member(root, "model", "(root)", source);
  const std::string& type = as_string(member(model, "type", "model", source), "model.type", source);
  if (type != "BPE") fail("{}: model.type '{}' is not supported (expected BPE)", source, type);

  // Token table: model.vocab plus added_tokens (which may extend it).
  std::map<int64_t, std::string> by_id;
  const json& vocab_json = member(model, "vocab", "model", source);
  if (!vocab_json.is_object()) fail("{}: model.vocab: expected an object of text -> id", source);
  for (auto it = vocab_json.begin(); it != vocab_json.end(); ++it) {
    if (!it.value().is_number_integer()) fail("{}: model.vocab[\"{}\"]: expected an integer id", source, it.key());
    by_id[it.value().get<int64_t>()] = it.key();
  }
  std::map<int64_t, TokenType> added_types;
  if (root.contains("added_tokens") && !root["added_tokens"].is_null()) {
    const json& added = root["added_tokens"];
    if (!added.is_array()) fail("{}: added_tokens: expected an array", source);
    for (size_t i = 0; i < added.size(); ++i) {
      std::string where = "added_tokens[" + std::to_string(i) + "]";
      const json& id = member(added[i], "id", where, source);
      if (!id.is_number_integer()) fail("{}: {}.id: expected an integer", source, where);
      by_id[id.get<int64_t>()] = as_string(member(added[i], "content", where, source), where + ".content", source);
      auto special = added[i].find("special");
      bool is_special = special != added[i].end() && special->is_boolean() && special->get<bool>();
      added_types[id.get<int64_t>()] = is_special ? TokenType::CONTROL : TokenType::USER_DEFINED;
    }
  }
  if (by_id.empty()) fail("{}: model.vocab is empty", source);
  if (by_id.begin()->first < 0) fail("{}: model.vocab: negative token id {}", source, by_id.begin()->first);
  int64_t n = by_id.rbegin()->first + 1;
  if (n > (int64_t{1} << 24) || n > static_cast<int64_t>(by_id.size()) * 2 + 1024)
    fail("{}: model.vocab: token ids up to {} for {} tokens", source, n - 1, by_id.size());
  Vocabulary vocab;
  vocab.tokens.resize(static_cast<size_t>(n));
  vocab.types.assign(static_cast<size_t>(n), TokenType::UNUSED);
  for (const auto& [id, t] : by_id) {
    vocab.tokens[id] = t;
    vocab.types[id] = TokenType::NORMAL;
  }
  for (const auto& [id, t] : added_types) vocab.types[id] = t;

  std::vector<std::pair<std::string, std::string>> merges;
  if (model.contains("merges") && !model["merges"].is_null()) {
    const json& list = model["merges"];
    if (!list.is_array()) fail("{}: model.merges: expected an array", source);
    merges.reserve(list.size());
    for (size_t i = 0; i < list.size(); ++i) {
      const json& m = list[i];
      if (m.is_string()) {
        const std::string& s = m.get_ref<const std::string&>();
        size_t at = s.find(' ', 1);
        if (at != std::string::npos && at + 1 < s.size()) {
          merges.emplace_back(s.substr(0, at), s.substr(at + 1));
          continue;
        }
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
        continue;
      }
      fail("{}: model.merges[{}]: expected a string 'a b' or a pair [a, b]", source, i);
    }
  }
  bool ignore_merges = false;
  if (model.contains("ignore_merges") && model["ignore_merges"].is_boolean())
    ignore_merges = model["ignore_merges"].get<bool>();

  std::vector<std::string> regexes;
  bool byte_level = false;
  if (root.contains("pre_tokenizer") && !root["pre_tokenizer"].is_null())
    add_pre_tokenizer(root["pre_tokenizer"], "pre_tokenizer", source, regexes, byte_level);
  if (!byte_level)
    fail("{}: pre_tokenizer: only byte-level BPE (a ByteLevel pre-tokenizer) is supported", source);

  // Special ids and BOS policy from tokenizer_config.json, else from conventional names.
  auto id_of = [&](const std::string& t) -> int32_t {
    for (const auto& [id, s] : by_id)
      if (s == t) return static_cast<int32_t>(id);
    return -1;
  };
  if (auto bos = token_text(config, "bos_token", source)) vocab.bos = id_of(*bos);
  if (auto eos = token_text(config, "eos_token", source)) vocab.eos = id_of(*eos);
  if (auto unk = token_text(config, "unk_token", source)) vocab.unk = id_of(*unk);
  if (vocab.eos < 0) vocab.eos = id_of("<|endoftext|>");
  if (config.contains("add_bos_token") && config["add_bos_token"].is_boolean())
    vocab.add_bos = config["add_bos_token"].get<bool>() && vocab.bos >= 0;
  if (config.contains("chat_template")) {
    const json& t = config["chat_template"];
    if (t.is_string()) {
      vocab.chat_template = t.get<std::string>();
    } else if (t.is_array()) {  // [{"name": "default", "template": "..."}, ...]
      for (const auto& entry : t)
        if (entry.is_object() && entry.value("name", "") == "default" && entry.contains("template") &&
            entry["template"].is_string())
          vocab.chat_template = entry["template"].get<std::string>();
    }
  }
  return std::make_unique<BytePairTokenizer>(std::move(vocab), merges, std::move(regexes), ignore_merges, source);
}

// --- SentencePiece ModelProto -------------------------------------------------------------------

class ProtoReader {
 public:
  ProtoReader(std::string_view data, const std::string& source, const char* what)
      : data_(data), source_(source), what_(what) {}
  bool done() const { return at_ >= data_.size(); }
  uint64_t varint() {
    uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (done()) fail("{}: {}: truncated varint at byte {}", source_, what_, at_);
      uint8_t b = static_cast<uint8_t>(data_[at_++]);
      value |= static_cast<uint64_t>(b & 0x7F) << shift;
      if (!(b & 0x80)) return value;
    }
    fail("{}: {}: varint longer than 10 bytes at byte {}", source_, what_, at_);
  }
  std::string_view bytes(size_t n) {
    if (n > data_.size() - at_) fail("{}: {}: field of {} bytes runs past the end", source_, what_, n);
    auto out = data_.substr(at_, n);
    at_ += n;
    return out;
  }
  // Reads a tag; fills the field number and wire type.
  void tag(uint32_t& field, uint32_t& wire) {
    uint64_t t = varint();
    field = static_cast<uint32_t>(t >> 3);
    wire = static_cast<uint32_t>(t & 7);
  }
  std::string_view length_delimited() { return bytes(static_cast<size_t>(std::min<uint64_t>(varint(), SIZE_MAX))); }
  float fixed32_float() {
    auto b = bytes(4);
    uint32_t u;
    std::memcpy(&u, b.data(), 4);  // protobuf is little-endian, like every target we build for
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
  void skip(uint32_t wire) {
    switch (wire) {
      case 0: varint(); break;
      case 1: bytes(8); break;
      case 2: length_delimited(); break;
      case 5: bytes(4); break;
      default: fail("{}: {}: unsupported protobuf wire type {}", source_, what_, wire);
    }
  }

 private:
  std::string_view data_;
  size_t at_ = 0;
  const std::string& source_;
  const char* what_;
};

}  // namespace

std::unique_ptr<Tokenizer> tokenizer_from_hf_json(std::string_view tokenizer_json, std::string_view config_json,
                                                  const std::string& source) {
  try {
    return parse_tokenizer_json(tokenizer_json, config_json, source);
  } catch (const json::exception& e) {
    fail("{}: {}", source, e.what());
  }
}

Vocabulary sentencepiece_model_vocabulary(std::string_view model_proto, const std::string& source) {
  Vocabulary vocab;
  vocab.unk = 0, vocab.bos = 1, vocab.eos = 2;  // TrainerSpec defaults
  vocab.add_bos = true;
  vocab.add_space_prefix = true;  // NormalizerSpec.add_dummy_prefix defaults to true
  ProtoReader model(model_proto, source, "ModelProto");
  uint32_t field, wire;
  while (!model.done()) {
    model.tag(field, wire);
    if (field == 1 && wire == 2) {  // repeated SentencePiece pieces
      ProtoReader piece(model.length_delimited(), source, "ModelProto.pieces");
      std::string text;
      float score = 0;
      int64_t type = 1;
      while (!piece.done()) {
        uint32_t f, w;
        piece.tag(f, w);
        if (f == 1 && w == 2) text = std::string(piece.length_delimited());
        else if (f == 2 && w == 5) score = piece.fixed32_float();
        else if (f == 3 && w == 0) type = static_cast<int64_t>(piece.varint());
        else piece.skip(w);
      }
      if (type < 1 || type > 6)
        fail("{}: ModelProto.pieces[{}].type {} is not a SentencePiece type", source, vocab.tokens.size(), type);
      vocab.tokens.push_back(std::move(text));
      vocab.scores.push_back(score);
      vocab.types.push_back(static_cast<TokenType>(type));
    } else if (field == 2 && wire == 2) {  // TrainerSpec
      ProtoReader spec(model.length_delimited(), source, "ModelProto.trainer_spec");
      while (!spec.done()) {
        uint32_t f, w;
        spec.tag(f, w);
        if (w == 0 && (f == 40 || f == 41 || f == 42)) {
          auto id = static_cast<int32_t>(static_cast<int64_t>(spec.varint()));
          (f == 40 ? vocab.unk : f == 41 ? vocab.bos : vocab.eos) = id;
        } else {
          spec.skip(w);
        }
      }
    } else if (field == 3 && wire == 2) {  // NormalizerSpec
      ProtoReader spec(model.length_delimited(), source, "ModelProto.normalizer_spec");
      while (!spec.done()) {
        uint32_t f, w;
        spec.tag(f, w);
        if (f == 3 && w == 0) vocab.add_space_prefix = spec.varint() != 0;
        else spec.skip(w);
      }
    } else {
      model.skip(wire);
    }
  }
  if (vocab.tokens.empty()) fail("{}: ModelProto has no pieces", source);
  if (vocab.bos < 0) vocab.add_bos = false;
  return vocab;
}

namespace {
std::string read_text_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open", path.string());
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}
}  // namespace

std::unique_ptr<Tokenizer> Tokenizer::from_hf_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  fs::path root(dir);
  if (!fs::is_directory(root)) fail("{}: not a directory", dir);
  std::string config;
  if (fs::exists(root / "tokenizer_config.json")) config = read_text_file(root / "tokenizer_config.json");
  if (fs::exists(root / "tokenizer.json")) {
    fs::path path = root / "tokenizer.json";
    std::string text = read_text_file(path);
    // A SentencePiece model shipped with a non-BPE tokenizer.json (e.g. Llama-2) uses tokenizer.model.
    bool is_bpe = false;
    try {
      json root_json = json::parse(text);
      is_bpe = root_json.is_object() && root_json.contains("model") && root_json["model"].is_object() &&
               root_json["model"].value("type", "") == "BPE";
    } catch (const json::exception& e) {
      fail("{}: {}", path.string(), e.what());
    }
    if (is_bpe || !fs::exists(root / "tokenizer.model")) return tokenizer_from_hf_json(text, config, path.string());
  }
  if (fs::exists(root / "tokenizer.model")) {
    fs::path path = root / "tokenizer.model";
    Vocabulary vocab = sentencepiece_model_vocabulary(read_text_file(path), path.string());
    if (!config.empty()) {
      try {
        json c = json::parse(config);
        if (c.is_object() && c.contains("add_bos_token") && c["add_bos_token"].is_boolean())
          vocab.add_bos = c["add_bos_token"].get<bool>() && vocab.bos >= 0;
        if (c.is_object() && c.contains("chat_template") && c["chat_template"].is_string())
          vocab.chat_template = c["chat_template"].get<std::string>();
      } catch (const json::exception& e) {
        fail("{}: {}", (root / "tokenizer_config.json").string(), e.what());
      }
    }
    return std::make_unique<SentencePieceTokenizer>(std::move(vocab), path.string());
  }
  fail("{}: no tokenizer (expected tokenizer.json or tokenizer.model)", dir);
}

}  // namespace lookahead::moe
