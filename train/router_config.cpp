#include "train/router_config.h"

#include <cmath>
#include <cstdlib>

#include "common/error.h"

namespace lookahead::train {

void RouterConfig::validate(const std::string& where) const {
  if (n_vocab <= 0) fail("{}: router vocabulary size must be > 0 (got {})", where, n_vocab);
  if (n_expert < 2) fail("{}: n_expert must be >= 2 (got {})", where, n_expert);
  if (n_head <= 0) fail("{}: n_head must be > 0 (got {})", where, n_head);
  if (embedding_dim <= 0 || embedding_dim % n_head != 0 || head_dim() % 2 != 0)
    fail("{}: embedding_dim {} must be a positive multiple of n_head {} with an even head size", where,
         embedding_dim, n_head);
  if (inter_dim <= 0) fail("{}: inter_dim must be > 0 (got {})", where, inter_dim);
  if (!(normalizer > 0) || !std::isfinite(normalizer)) fail("{}: normalizer must be > 0 (got {})", where, normalizer);
  if (hidden_act != "silu" && hidden_act != "swiglu")
    fail("{}: hidden_act_predictor must be 'silu' or 'swiglu' (got '{}')", where, hidden_act);
  if (max_positions <= 0) fail("{}: max_position_embeddings_predictor must be > 0 (got {})", where, max_positions);
  if (!(rope_theta > 0)) fail("{}: rope_theta must be > 0 (got {})", where, rope_theta);
  if (!(rms_eps > 0)) fail("{}: rms_eps must be > 0 (got {})", where, rms_eps);
}

nlohmann::json RouterConfig::to_json() const {
  return nlohmann::json{{"n_expert", n_expert},
                        {"vocab_size", n_vocab},
                        {"n_head", n_head},
                        {"embedding_dim", embedding_dim},
                        {"inter_dim", inter_dim},
                        {"normalizer", normalizer},
                        {"hidden_act_predictor", hidden_act},
                        {"max_position_embeddings_predictor", max_positions},
                        {"rope_theta", rope_theta},
                        {"rms_eps", rms_eps}};
}

namespace {

int64_t int_key(const nlohmann::json& j, const char* key, int64_t fallback, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end()) return fallback;
  if (!it->is_number_integer()) fail("{}: router_config key '{}' must be an integer", where, key);
  return it->get<int64_t>();
}

double number_key(const nlohmann::json& j, const char* key, double fallback, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end()) return fallback;
  if (!it->is_number()) fail("{}: router_config key '{}' must be a number", where, key);
  return it->get<double>();
}

}  // namespace

void RouterConfig::update_from_json(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) fail("{}: router_config must be a JSON object", where);
  n_expert = int_key(j, "n_expert", n_expert, where);
  n_vocab = int_key(j, "vocab_size", int_key(j, "n_vocab", n_vocab, where), where);
  n_head = int_key(j, "n_head", n_head, where);
  embedding_dim = int_key(j, "embedding_dim", embedding_dim, where);
  inter_dim = int_key(j, "inter_dim", inter_dim, where);
  normalizer = number_key(j, "normalizer", normalizer, where);
  max_positions = int_key(j, "max_position_embeddings_predictor", max_positions, where);
  rope_theta = number_key(j, "rope_theta", rope_theta, where);
  rms_eps = number_key(j, "rms_eps", rms_eps, where);
  if (auto it = j.find("hidden_act_predictor"); it != j.end()) {
    if (!it->is_string()) fail("{}: router_config key 'hidden_act_predictor' must be a string", where);
    hidden_act = it->get<std::string>();
  }
}

double parse_normalizer(const std::string& text, int64_t embedding_dim, int64_t n_head) {
  if (text == "released") return 1.0;
  if (text == "paper") return std::sqrt(static_cast<double>(embedding_dim) / static_cast<double>(n_head));
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !(v > 0) || !std::isfinite(v))
    fail("--normalizer: expected 'released', 'paper' or a number > 0 (got '{}')", text);
  return v;
}

}  // namespace lookahead::train
