#include "moe/model/readme_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/error.h"

namespace lookahead::moe {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

int32_t int_field(const json& j, const char* key, const std::string& where, std::optional<int32_t> fallback = {}) {
  if (!j.contains(key) || j[key].is_null()) {
    if (fallback) return *fallback;
    fail("{}: missing Read-ME field '{}'", where, key);
  }
  if (!j[key].is_number_integer()) fail("{}: Read-ME field '{}' must be an integer, got {}", where, key, j[key].dump());
  const int64_t v = j[key].get<int64_t>();
  if (v < -(int64_t{1} << 30) || v > (int64_t{1} << 30)) fail("{}: Read-ME field '{}' out of range", where, key);
  return static_cast<int32_t>(v);
}

double number_field(const json& j, const char* key, const std::string& where, double fallback) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_number()) fail("{}: Read-ME field '{}' must be a number, got {}", where, key, j[key].dump());
  return j[key].get<double>();
}

json read_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open", path);
  std::stringstream text;
  text << in.rdbuf();
  try {
    return json::parse(text.str());
  } catch (const json::exception& e) {
    fail("{}: not valid JSON: {}", path, e.what());
  }
}

}  // namespace

ReadMeConfig ReadMeConfig::from_config(const json& j, const std::string& where) {
  ReadMeConfig c;
  RouterConfig& r = c.router;
  r.n_expert = int_field(j, "N_cluster", where);
  r.n_vocab = int_field(j, "vocab_size", where);
  r.n_layer = int_field(j, "n_layer", where, 1);
  r.n_head = int_field(j, "n_head", where);
  r.d_model = int_field(j, "embedding_dim", where);
  r.d_inter = int_field(j, "inter_dim", where);
  r.normalizer = static_cast<float>(number_field(j, "normalizer", where, 1.0));
  r.max_positions = int_field(j, "max_position_embeddings_predictor", where, 4096);
  std::string act = "silu";
  if (j.contains("hidden_act_predictor")) {
    if (!j["hidden_act_predictor"].is_string()) fail("{}: Read-ME field 'hidden_act_predictor' must be a string", where);
    act = j["hidden_act_predictor"].get<std::string>();
  }
  if (act != "silu" && act != "swiglu")
    fail("{}: Read-ME field 'hidden_act_predictor' is '{}', expected \"silu\" or \"swiglu\"", where, act);
  r.swiglu = act == "swiglu";
  const json readme = j.contains("readme") && j["readme"].is_object() ? j["readme"] : json::object();
  r.rope_theta = static_cast<float>(number_field(readme, "router_rope_theta", where, 10000.0));
  r.rms_eps = static_cast<float>(number_field(readme, "router_rms_eps", where, 1e-6));
  c.keep = number_field(readme, "keep", where, 0.5);
  if (readme.contains("source_model") && readme["source_model"].is_string())
    c.source_model = readme["source_model"].get<std::string>();
  if (readme.contains("dtype") && readme["dtype"].is_string()) c.dtype = readme["dtype"].get<std::string>();
  if (readme.contains("experts")) {
    const json& e = readme["experts"];
    if (!e.is_array()) fail("{}: Read-ME field 'readme.experts' must be an array of names", where);
    for (const json& name : e) {
      if (!name.is_string()) fail("{}: Read-ME field 'readme.experts' must hold strings", where);
      c.experts.push_back(name.get<std::string>());
    }
    if (static_cast<int32_t>(c.experts.size()) != r.n_expert)
      fail("{}: 'readme.experts' names {} experts but N_cluster is {}", where, c.experts.size(), r.n_expert);
  } else {
    for (int32_t e = 0; e < r.n_expert; ++e) c.experts.push_back("expert" + std::to_string(e));
  }
  r.validate(where);
  return c;
}

void ReadMeConfig::to_config(json& j) const {
  j["N_cluster"] = router.n_expert;
  j["n_layer"] = router.n_layer;
  j["n_head"] = router.n_head;
  j["embedding_dim"] = router.d_model;
  j["inter_dim"] = router.d_inter;
  j["normalizer"] = router.normalizer;
  j["hidden_act_predictor"] = router.hidden_act();
  j["max_position_embeddings_predictor"] = router.max_positions;
  j["readme"] = {{"experts", experts},
                 {"keep", keep},
                 {"router_rope_theta", router.rope_theta},
                 {"router_rms_eps", router.rms_eps},
                 {"source_model", source_model},
                 {"dtype", dtype}};
}

std::string expert_tensor_name(int layer, const char* proj, int32_t e) {
  return "model.layers." + std::to_string(layer) + ".moe." + proj + "_proj_" + std::to_string(e) + ".weight";
}

std::string expert_neurons_name(int layer, int32_t e) {
  return "model.layers." + std::to_string(layer) + ".moe.neurons_" + std::to_string(e);
}

ReadMeModel::ReadMeModel(const std::string& dir) {
  source_ = std::make_unique<HfCheckpoint>(dir);
  const std::string config_path = (fs::path(dir) / "config.json").string();
  if (!source_->is_readme()) fail("{}: not a Read-ME model (config.json has no N_cluster)", dir);
  config_ = ReadMeConfig::from_config(read_json(config_path), config_path);
  const LlamaHparams& hp = source_->hparams();
  if (config_.router.n_vocab != hp.n_vocab)
    fail("{}: router vocabulary {} differs from the backbone's {}", config_path, config_.router.n_vocab, hp.n_vocab);
  backbone_ = std::make_unique<LlamaModel>(*source_);
  const HfCheckpoint& src = *source_;
  router_ = RouterWeights::load(config_.router, [&src](const std::string& n) { return src.raw_tensor(n); }, dir);

  const int32_t N = n_expert();
  const int64_t d = hp.n_embd, ff = hp.n_ff;
  experts_.assign(static_cast<size_t>(hp.n_layer), std::vector<ExpertFfn>(static_cast<size_t>(N)));
  neurons_.assign(static_cast<size_t>(hp.n_layer), std::vector<std::vector<int32_t>>(static_cast<size_t>(N)));
  slabs_.assign(static_cast<size_t>(hp.n_layer), std::vector<Slab>(static_cast<size_t>(N)));
  for (int l = 0; l < hp.n_layer; ++l) {
    for (int32_t e = 0; e < N; ++e) {
      auto get = [&](const std::string& name) -> const TensorView& {
        const TensorView* t = src.raw_tensor(name);
        if (!t) fail("{}: missing expert tensor '{}' (N_cluster = {}, num_hidden_layers = {})", dir, name, N, hp.n_layer);
        return *t;
      };
      const TensorView& ids = get(expert_neurons_name(l, e));
      if (ids.type != TensorType::I32 || ids.shape.size() != 1)
        fail("{}: tensor '{}' must be a 1-D I32 neuron list", dir, expert_neurons_name(l, e));
      const int64_t s = ids.shape[0];
      if (s < 1 || s > ff) fail("{}: tensor '{}' lists {} neurons, expected 1..{}", dir, expert_neurons_name(l, e), s, ff);
      std::vector<int32_t>& list = neurons_[static_cast<size_t>(l)][static_cast<size_t>(e)];
      list.resize(static_cast<size_t>(s));
      std::memcpy(list.data(), ids.data, static_cast<size_t>(s) * 4);
      for (int64_t i = 0; i < s; ++i)
        if (list[static_cast<size_t>(i)] < 0 || list[static_cast<size_t>(i)] >= ff ||
            (i > 0 && list[static_cast<size_t>(i)] <= list[static_cast<size_t>(i - 1)]))
          fail("{}: tensor '{}' must hold sorted distinct neuron ids below {}", dir, expert_neurons_name(l, e), ff);
      auto matrix = [&](const char* proj, int64_t rows, int64_t cols) {
        const std::string name = expert_tensor_name(l, proj, e);
        const TensorView& t = get(name);
        if (!is_weight_type(t.type)) fail("{}: tensor '{}' is not a weight type", dir, name);
        if (t.shape != std::vector<int64_t>{cols, rows})
          fail("{}: tensor '{}' has shape [{}], expected [{}, {}]", dir, name,
               t.shape.size() == 2 ? std::to_string(t.shape[1]) + ", " + std::to_string(t.shape[0]) : "?", rows, cols);
        return std::pair<WeightMatrix, const TensorView*>{WeightMatrix{t.type, t.data, rows, cols}, &t};
      };
      auto [gate, tg] = matrix("gate", s, d);
      auto [up, tu] = matrix("up", s, d);
      auto [down, td] = matrix("down", d, s);
      experts_[static_cast<size_t>(l)][static_cast<size_t>(e)] = ExpertFfn{gate, up, down};
      // The slab spans the three matrices; contiguous in our exports, maybe not in others'.
      const uint64_t lo = std::min({tg->file_offset, tu->file_offset, td->file_offset});
      const uint64_t hi = std::max({tg->file_offset + tg->bytes, tu->file_offset + tu->bytes, td->file_offset + td->bytes});
      slabs_[static_cast<size_t>(l)][static_cast<size_t>(e)] = Slab{lo, hi - lo, src.file_of(expert_tensor_name(l, "gate", e))};
    }
  }
}

const ExpertFfn& ReadMeModel::expert(int layer, int32_t e) const {
  return experts_.at(static_cast<size_t>(layer)).at(static_cast<size_t>(e));
}

const std::vector<int32_t>& ReadMeModel::neurons(int layer, int32_t e) const {
  return neurons_.at(static_cast<size_t>(layer)).at(static_cast<size_t>(e));
}

int32_t ReadMeModel::expert_index(const std::string& name) const {
  for (size_t e = 0; e < config_.experts.size(); ++e)
    if (config_.experts[e] == name) return static_cast<int32_t>(e);
  return -1;
}

ReadMeModel::Slab ReadMeModel::slab(int layer, int32_t e) const {
  return slabs_.at(static_cast<size_t>(layer)).at(static_cast<size_t>(e));
}

double ReadMeModel::ffn_fraction(int32_t e) const {
  double sum = 0;
  for (const auto& layer : neurons_) sum += static_cast<double>(layer.at(static_cast<size_t>(e)).size());
  return sum / static_cast<double>(neurons_.size()) / static_cast<double>(source_->hparams().n_ff);
}

void PreGatingRouter::route(const int32_t* tokens, int64_t n, int64_t pos0, int32_t* experts) {
  if (pos0 != ctx_.n_past())
    fail("router: tokens at position {} but the router has routed {} (truncate first)", pos0, ctx_.n_past());
  const std::vector<int32_t>& r = ctx_.route(tokens, n);
  std::copy(r.begin(), r.end(), experts);
}

void PreGatingRouter::truncate(int64_t pos) { ctx_.truncate(pos); }

namespace {

class OracleRouter : public TokenRouter {
 public:
  OracleRouter(int32_t e, std::string name) : e_(e), name_(std::move(name)) {}
  void route(const int32_t*, int64_t n, int64_t, int32_t* experts) override { std::fill_n(experts, n, e_); }
  std::string name() const override { return "oracle:" + name_; }

 private:
  int32_t e_;
  std::string name_;
};

class RandomRouter : public TokenRouter {
 public:
  RandomRouter(int32_t n_expert, uint64_t seed) : n_(n_expert), seed_(seed) {}
  void route(const int32_t*, int64_t n, int64_t pos0, int32_t* experts) override {
    for (int64_t i = 0; i < n; ++i) {
      // splitmix64 of (seed, position): the same position always gets the same expert.
      uint64_t z = seed_ + 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(pos0 + i + 1);
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
      z ^= z >> 31;
      experts[i] = static_cast<int32_t>(z % static_cast<uint64_t>(n_));
    }
  }
  std::string name() const override { return "random:" + std::to_string(seed_); }

 private:
  int32_t n_;
  uint64_t seed_;
};

}  // namespace

std::unique_ptr<TokenRouter> make_token_router(const ReadMeModel& model, const std::string& spec,
                                               const std::string& what, int64_t positions) {
  if (spec == "router") return std::make_unique<PreGatingRouter>(model.config().router, model.router(), positions);
  if (spec == "dense") {
    if (!model.backbone().has_dense_ffn())
      fail("{} dense: {} has no dense FFN weights (an experts-only export)", what, model.source().path());
    return nullptr;
  }
  if (spec.rfind("oracle:", 0) == 0) {
    const std::string name = spec.substr(7);
    int32_t e = model.expert_index(name);
    if (e < 0) {
      std::string names;
      for (const auto& n : model.config().experts) names += (names.empty() ? "" : ", ") + n;
      fail("{} {}: no expert named '{}' (experts: {})", what, spec, name, names);
    }
    return std::make_unique<OracleRouter>(e, name);
  }
  if (spec == "random" || spec.rfind("random:", 0) == 0) {
    uint64_t seed = 0;
    if (spec.size() > 7) {
      const std::string s = spec.substr(7);
      if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos || s.size() > 18)
        fail("{} {}: the seed must be a non-negative integer", what, spec);
      seed = std::stoull(s);
    }
    return std::make_unique<RandomRouter>(model.n_expert(), seed);
  }
  fail("{} '{}' is not one of router, oracle:DOMAIN, random[:SEED], dense", what, spec);
}

}  // namespace lookahead::moe
