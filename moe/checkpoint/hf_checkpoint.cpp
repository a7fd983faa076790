#include "moe/checkpoint/hf_checkpoint.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <map>
#include <optional>
#include <sstream>

#include "common/error.h"

namespace lookahead::moe {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// One expected dimension: the config.json expression it comes from and its value.
struct Dim {
  std::string field;
  int64_t value;
};

class Config {
 public:
  explicit Config(const std::string& dir) : path_((fs::path(dir) / "config.json").string()) {
    std::ifstream in(path_, std::ios::binary);
    if (!in) fail("{}: missing config.json (not a Hugging Face checkpoint directory?)", dir);
    std::stringstream text;
    text << in.rdbuf();
    try {
      j_ = json::parse(text.str());
    } catch (const json::exception& e) {
      fail("{}: not valid JSON: {}", path_, e.what());
    }
    if (!j_.is_object()) fail("{}: not a JSON object", path_);
  }

  const std::string& path() const { return path_; }
  const json& j() const { return j_; }

  bool present(const char* field) const { return j_.contains(field) && !j_[field].is_null(); }

  int32_t positive_int(const char* field, std::optional<int64_t> fallback = std::nullopt) const {
    if (!present(field)) {
      if (fallback) return static_cast<int32_t>(*fallback);
      fail("{}: missing field '{}'", path_, field);
    }
    const json& v = j_[field];
    if (!v.is_number_integer() || v.get<int64_t>() <= 0 || v.get<int64_t>() > (int64_t{1} << 30))
      fail("{}: field '{}' must be a positive integer, got {}", path_, field, v.dump());
    return static_cast<int32_t>(v.get<int64_t>());
  }

  double number(const char* field, double fallback) const {
    if (!present(field)) return fallback;
    const json& v = j_[field];
    if (!v.is_number() || v.get<double>() <= 0) fail("{}: field '{}' must be a positive number, got {}", path_, field, v.dump());
    return v.get<double>();
  }

  bool boolean(const char* field, bool fallback) const {
    if (!present(field)) return fallback;
    if (!j_[field].is_boolean()) fail("{}: field '{}' must be true or false", path_, field);
    return j_[field].get<bool>();
  }

 private:
  std::string path_;
  json j_;
};

const std::pair<const char*, const char*> kLayerNames[] = {
    {"self_attn.q_proj.weight", "attn_q.weight"},      {"self_attn.k_proj.weight", "attn_k.weight"},
    {"self_attn.v_proj.weight", "attn_v.weight"},      {"self_attn.o_proj.weight", "attn_output.weight"},
    {"mlp.gate_proj.weight", "ffn_gate.weight"},       {"mlp.up_proj.weight", "ffn_up.weight"},
    {"mlp.down_proj.weight", "ffn_down.weight"},       {"input_layernorm.weight", "attn_norm.weight"},
    {"post_attention_layernorm.weight", "ffn_norm.weight"},
};

std::string hf_shape(const TensorView& t) {
  std::vector<int64_t> s(t.shape.rbegin(), t.shape.rend());
  return fmt::format("[{}]", fmt::join(s, ", "));
}

}  // namespace

std::string gguf_name_of_hf(const std::string& hf) {
  if (hf == "model.embed_tokens.weight") return "token_embd.weight";
  if (hf == "model.norm.weight") return "output_norm.weight";
  if (hf == "lm_head.weight") return "output.weight";
  const std::string prefix = "model.layers.";
  if (hf.compare(0, prefix.size(), prefix) != 0) return "";
  size_t dot = hf.find('.', prefix.size());
  if (dot == std::string::npos || dot == prefix.size() || dot - prefix.size() > 6) return "";
  std::string layer = hf.substr(prefix.size(), dot - prefix.size());
  for (char c : layer)
    if (c < '0' || c > '9') return "";
  if (layer.size() > 1 && layer[0] == '0') return "";
  std::string rest = hf.substr(dot + 1);
  for (const auto& [from, to] : kLayerNames)
    if (rest == from) return "blk." + layer + "." + to;
  return "";
}

std::string hf_name_of_gguf(const std::string& g) {
  if (g == "token_embd.weight") return "model.embed_tokens.weight";
  if (g == "output_norm.weight") return "model.norm.weight";
  if (g == "output.weight") return "lm_head.weight";
  if (g.rfind("blk.", 0) != 0) return "";
  const size_t dot = g.find('.', 4);
  if (dot == std::string::npos) return "";
  const std::string layer = g.substr(4, dot - 4), rest = g.substr(dot + 1);
  for (const auto& [from, to] : kLayerNames)
    if (rest == to) return "model.layers." + layer + "." + from;
  return "";
}

HfCheckpoint::HfCheckpoint(const std::string& dir) : dir_(dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) fail("{}: not a directory", dir);
  Config config(dir);
  const std::string& cpath = config.path();

  const json& j = config.j();
  if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty() &&
      j["architectures"][0].is_string())
    architecture_ = j["architectures"][0].get<std::string>();
  if (architecture_ != "LlamaForCausalLM" && architecture_ != "MistralForCausalLM")
    fail("{}: field 'architectures' is {}, expected [\"LlamaForCausalLM\"] or [\"MistralForCausalLM\"]", cpath,
         j.contains("architectures") ? j["architectures"].dump() : "missing");
  for (const char* bias : {"attention_bias", "mlp_bias"})
    if (config.boolean(bias, false)) fail("{}: field '{}' is true; biases are not supported", cpath, bias);
  if (config.present("rope_scaling"))
    fail("{}: field 'rope_scaling' is {}; RoPE scaling is not supported", cpath, j["rope_scaling"].dump());

  hp_.n_embd = config.positive_int("hidden_size");
  hp_.n_ff = config.positive_int("intermediate_size");
  hp_.n_layer = config.positive_int("num_hidden_layers");
  hp_.n_head = config.positive_int("num_attention_heads");
  hp_.n_head_kv = config.positive_int("num_key_value_heads", hp_.n_head);
  hp_.n_vocab = config.positive_int("vocab_size");
  hp_.n_ctx_train = config.positive_int("max_position_embeddings", 2048);
  if (hp_.n_head % hp_.n_head_kv != 0)
    fail("{}: num_attention_heads {} is not a multiple of num_key_value_heads {}", cpath, hp_.n_head, hp_.n_head_kv);
  if (config.present("head_dim")) {
    hp_.head_dim = config.positive_int("head_dim");
  } else {
    if (hp_.n_embd % hp_.n_head != 0)
      fail("{}: hidden_size {} is not a multiple of num_attention_heads {} (and no head_dim)", cpath, hp_.n_embd,
           hp_.n_head);
    hp_.head_dim = hp_.n_embd / hp_.n_head;
  }
  if (hp_.head_dim % 2 != 0) fail("{}: head size {} is odd; RoPE needs pairs", cpath, hp_.head_dim);
  hp_.rms_eps = static_cast<float>(config.number("rms_norm_eps", 1e-6));  // transformers' LlamaConfig default
  hp_.rope_theta = static_cast<float>(config.number("rope_theta", 10000.0));
  hp_.rope_neox = true;  // HF q/k are not permuted: rotate_half pairs (i, i + head_dim/2)
  const bool tie = config.boolean("tie_word_embeddings", false);

  weights_ = std::make_unique<SafetensorsCheckpoint>(dir);

  // Every checkpoint tensor must have a GGUF name; the rotary inverse frequencies some old
  // checkpoints store are recomputed from rope_theta, so they are skipped.
  std::map<std::string, std::string> hf_of;  // gguf -> hf
  // A Read-ME directory (config.json has N_cluster; docs/readme-model.md) also holds experts and
  // the router; those are read by ReadMeModel through raw_tensor(), and its dense FFN is optional.
  readme_ = config.present("N_cluster");
  for (const auto& [hf, view] : weights_->tensors()) {
    if (hf.find("rotary_emb.inv_freq") != std::string::npos) continue;
    if (readme_ && (hf.rfind("cluster_predictor.", 0) == 0 || hf.find(".moe.") != std::string::npos)) continue;
    if (hf == "lm_head.weight" && tie) continue;  // transformers ties it to embed_tokens
    std::string g = gguf_name_of_hf(hf);
    if (g.empty())
      fail("{}: tensor '{}' has no GGUF counterpart (not a Llama/Mistral weight this engine supports)",
           weights_->file_of(hf), hf);
    hf_of[g] = hf;
  }
  hp_.tied_embeddings = hf_of.count("output.weight") == 0;
  if (hp_.tied_embeddings && !tie)
    fail("{}: missing tensor 'lm_head.weight' ({} has tie_word_embeddings false)", dir, cpath);

  const int64_t q_dim = int64_t{hp_.n_head} * hp_.head_dim, kv_dim = int64_t{hp_.n_head_kv} * hp_.head_dim;
  const Dim d{"hidden_size", hp_.n_embd}, ff{"intermediate_size", hp_.n_ff}, vocab{"vocab_size", hp_.n_vocab};
  const Dim q{"num_attention_heads*head_dim", q_dim}, kv{"num_key_value_heads*head_dim", kv_dim};
  // Expected shapes in HF (row-major, [out, in]) order with the fields they come from.
  auto add = [&](const std::string& gguf, std::vector<Dim> expect) {
    auto it = hf_of.find(gguf);
    if (it == hf_of.end()) {
      // Name the HF tensor the user would look for.
      std::string want;
      if (gguf == "token_embd.weight") want = "model.embed_tokens.weight";
      else if (gguf == "output_norm.weight") want = "model.norm.weight";
      else if (gguf == "output.weight") want = "lm_head.weight";
      else {
        size_t dot = gguf.find('.', 4);
        std::string layer = gguf.substr(4, dot - 4), rest = gguf.substr(dot + 1);
        for (const auto& [from, to] : kLayerNames)
          if (rest == to) want = "model.layers." + layer + "." + from;
      }
      fail("{}: missing tensor '{}' (config.json num_hidden_layers = {})", dir, want, hp_.n_layer);
    }
    const std::string& hf = it->second;
    const TensorView* view = weights_->find_tensor(hf);
    std::vector<int64_t> ggml_shape;
    for (auto e = expect.rbegin(); e != expect.rend(); ++e) ggml_shape.push_back(e->value);
    if (view->shape != ggml_shape) {
      std::vector<std::string> parts;
      for (const auto& e : expect) parts.push_back(fmt::format("{}={}", e.field, e.value));
      fail("{}: tensor '{}' has shape {}, expected [{}] from config.json", weights_->file_of(hf), hf, hf_shape(*view),
           fmt::join(parts, ", "));
    }
    TensorView t = *view;
    t.name = gguf;
    index_[gguf] = tensors_.size();
    tensors_.push_back(std::move(t));
    hf_names_.push_back(hf);
    hf_of.erase(it);
  };
  add("token_embd.weight", {vocab, d});
  for (int l = 0; l < hp_.n_layer; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    add(b + "attn_norm.weight", {d});
    add(b + "attn_q.weight", {q, d});
    add(b + "attn_k.weight", {kv, d});
    add(b + "attn_v.weight", {kv, d});
    add(b + "attn_output.weight", {d, q});
    add(b + "ffn_norm.weight", {d});
    if (readme_ && !hf_of.count(b + "ffn_gate.weight") && !hf_of.count(b + "ffn_up.weight") &&
        !hf_of.count(b + "ffn_down.weight"))
      continue;  // an exported Read-ME model without the dense FFN: experts only
    add(b + "ffn_gate.weight", {ff, d});
    add(b + "ffn_up.weight", {ff, d});
    add(b + "ffn_down.weight", {d, ff});
  }
  add("output_norm.weight", {d});
  if (!hp_.tied_embeddings) add("output.weight", {vocab, d});
  if (!hf_of.empty())  // layers beyond num_hidden_layers
    fail("{}: tensor '{}' is beyond config.json num_hidden_layers = {}", weights_->file_of(hf_of.begin()->second),
         hf_of.begin()->second, hp_.n_layer);
}

const TensorView* HfCheckpoint::find_tensor(const std::string& gguf_name) const {
  auto it = index_.find(gguf_name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const TensorView* HfCheckpoint::raw_tensor(const std::string& hf_name) const { return weights_->find_tensor(hf_name); }

std::string HfCheckpoint::file_of(const std::string& hf_name) const { return weights_->file_of(hf_name); }

const std::string& HfCheckpoint::hf_name(const std::string& gguf_name) const {
  auto it = index_.find(gguf_name);
  if (it == index_.end()) fail("{}: missing tensor '{}'", dir_, gguf_name);
  return hf_names_[it->second];
}

const Tokenizer& HfCheckpoint::tokenizer() const {
  std::call_once(tokenizer_once_, [this] {
    std::error_code ec;
    if (fs::exists(fs::path(dir_) / "tokenizer.json", ec) || fs::exists(fs::path(dir_) / "tokenizer.model", ec)) {
      tokenizer_ = Tokenizer::from_hf_dir(dir_);
    } else if (fs::exists(fs::path(dir_) / "tokenizer.gguf", ec)) {
      // A model refactored from a GGUF file keeps its vocabulary as GGUF tokenizer keys.
      GgufFile vocab((fs::path(dir_) / "tokenizer.gguf").string());
      tokenizer_ = Tokenizer::from_gguf(vocab);
    }
  });
  if (!tokenizer_) fail("{}: missing tokenizer: none of tokenizer.json, tokenizer.model, tokenizer.gguf is in the directory", dir_);
  return *tokenizer_;
}

std::unique_ptr<ModelSource> open_hf_checkpoint(const std::string& dir) { return std::make_unique<HfCheckpoint>(dir); }

}  // namespace lookahead::moe
