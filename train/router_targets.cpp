#include "train/router_targets.h"

#include <cstring>

#include "common/error.h"
#include "moe/format/safetensors.h"

namespace lookahead::train {

namespace {

// The tensor `name` with `type` and row-major `rank` dimensions; returns its row-major shape.
const moe::TensorView& require(const moe::SafetensorsFile& f, const std::string& name, moe::TensorType type,
                               size_t rank, std::vector<int64_t>& shape) {
  const moe::TensorView* t = f.find_tensor(name);
  if (!t) fail("{}: missing tensor '{}' (see docs/readme-model.md, router training data)", f.path(), name);
  if (t->type != type)
    fail("{}: tensor '{}' must be {} (got {})", f.path(), name, moe::tensor_type_name(type), moe::tensor_type_name(t->type));
  if (t->shape.size() != rank) fail("{}: tensor '{}' must have {} dimensions (got {})", f.path(), name, rank, t->shape.size());
  shape.assign(t->shape.rbegin(), t->shape.rend());  // GGML order -> row-major
  return *t;
}

std::vector<int32_t> copy_i32(const moe::TensorView& t) {
  std::vector<int32_t> v(static_cast<size_t>(t.elements()));
  if (!v.empty()) std::memcpy(v.data(), t.data, v.size() * sizeof(int32_t));
  return v;
}

}  // namespace

RouterTargets load_router_targets(const std::string& path) {
  RouterTargets d;
  d.path = path;
  d.file = std::make_shared<moe::SafetensorsFile>(path);
  const auto& f = *d.file;
  std::vector<int64_t> s_tok, s_start, s_dom, s_tgt, s_emb;
  const auto& tokens = require(f, "tokens", moe::TensorType::I32, 1, s_tok);
  const auto& starts = require(f, "seq_start", moe::TensorType::I32, 1, s_start);
  const auto& domain = require(f, "domain", moe::TensorType::I32, 1, s_dom);
  const auto& targets = require(f, "targets", moe::TensorType::F32, 3, s_tgt);
  const auto& embed = require(f, "router_init.embed", moe::TensorType::F32, 2, s_emb);

  d.n_tokens = s_tok[0];
  if (d.n_tokens < 1) fail("{}: tensor 'tokens' is empty", path);
  if (s_dom[0] != d.n_tokens) fail("{}: tensor 'domain' has {} entries, 'tokens' {}", path, s_dom[0], d.n_tokens);
  if (s_tgt[0] != d.n_tokens)
    fail("{}: tensor 'targets' has shape [{}, {}, {}], expected [{} (tokens), L, N]", path, s_tgt[0], s_tgt[1], s_tgt[2], d.n_tokens);
  d.n_layer = s_tgt[1];
  d.n_expert = s_tgt[2];
  if (d.n_layer < 1 || d.n_expert < 2)
    fail("{}: tensor 'targets' has shape [{}, {}, {}], expected L >= 1 layers and N >= 2 experts", path, s_tgt[0], s_tgt[1], s_tgt[2]);
  d.n_vocab = s_emb[0];
  d.embed_dim = s_emb[1];
  if (d.n_vocab < 1 || d.embed_dim < 1) fail("{}: tensor 'router_init.embed' has an empty shape", path);
  if (s_start[0] < 2) fail("{}: tensor 'seq_start' needs at least 2 entries (got {})", path, s_start[0]);

  d.tokens = copy_i32(tokens);
  d.seq_start = copy_i32(starts);
  d.domain = copy_i32(domain);
  d.targets = reinterpret_cast<const float*>(targets.data);
  d.embed = reinterpret_cast<const float*>(embed.data);

  if (d.seq_start.front() != 0 || d.seq_start.back() != d.n_tokens)
    fail("{}: tensor 'seq_start' must run from 0 to {} (the token count), got {} .. {}", path, d.n_tokens,
         d.seq_start.front(), d.seq_start.back());
  for (size_t s = 1; s < d.seq_start.size(); ++s)
    if (d.seq_start[s] < d.seq_start[s - 1]) fail("{}: tensor 'seq_start' decreases at entry {}", path, s);
  for (int64_t t = 0; t < d.n_tokens; ++t) {
    if (d.tokens[t] < 0 || d.tokens[t] >= d.n_vocab)
      fail("{}: tokens[{}] = {} is outside the router vocabulary [0, {})", path, t, d.tokens[t], d.n_vocab);
    if (d.domain[t] < 0 || d.domain[t] >= d.n_expert)
      fail("{}: domain[{}] = {} is outside [0, {}) (one domain per expert)", path, t, d.domain[t], d.n_expert);
  }

  const auto& meta = f.metadata();
  if (auto it = meta.find("router_config"); it != meta.end()) {
    try {
      d.router_config = nlohmann::json::parse(it->second);
    } catch (const nlohmann::json::exception& e) {
      fail("{}: __metadata__ router_config is not valid JSON: {}", path, e.what());
    }
    if (!d.router_config.is_object()) fail("{}: __metadata__ router_config must be a JSON object", path);
  }
  if (auto it = meta.find("experts"); it != meta.end()) {
    std::string s = it->second;
    size_t pos = 0;
    while (pos <= s.size()) {
      size_t comma = s.find(',', pos);
      if (comma == std::string::npos) comma = s.size();
      d.experts.push_back(s.substr(pos, comma - pos));
      pos = comma + 1;
    }
  }
  return d;
}

}  // namespace lookahead::train
