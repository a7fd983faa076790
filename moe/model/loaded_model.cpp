#include "moe/model/loaded_model.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/error.h"

namespace lookahead::moe {

namespace fs = std::filesystem;

bool is_readme_dir(const std::string& path) {
  std::error_code ec;
  if (!fs::is_directory(path, ec)) return false;
  std::ifstream in(fs::path(path) / "config.json", std::ios::binary);
  if (!in) return false;
  const nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  return j.is_object() && j.contains("N_cluster");
}

LoadedModel::LoadedModel(const std::string& path, const std::string& route) {
  if (is_readme_dir(path)) {
    readme_ = std::make_unique<ReadMeModel>(path);
    route_ = route.empty() ? "router" : route;
    make_token_router(*readme_, route_);  // validates the spec now, before any work
  } else {
    if (!route.empty() && route != "dense")
      fail("--route {}: {} is a dense model; routing needs a Read-ME model directory (lookahead moe refactor)", route,
           path);
    source_ = open_model(path);
    dense_ = std::make_unique<LlamaModel>(*source_);
    route_ = "dense";
  }
}

void LoadedModel::attach(LlamaContext& ctx) {
  if (!readme_) return;
  std::unique_ptr<TokenRouter> r = make_token_router(*readme_, route_);
  if (!r) return;  // dense
  ctx.set_routing(r.get(), readme_.get());
  routers_.push_back(std::move(r));
}

uint64_t LoadedModel::weight_bytes_per_token() const {
  const LlamaModel& m = llama();
  uint64_t total = m.weight_bytes_per_token();
  if (!readme_ || route_ == "dense") return total;
  for (const auto& l : m.weights().layers)
    if (l.w_gate.data) total -= static_cast<uint64_t>(l.w_gate.bytes() + l.w_up.bytes() + l.w_down.bytes());
  // Routed tokens read one expert per layer: the mean over experts (or the oracle's one).
  const int32_t N = readme_->n_expert();
  int32_t only = -1;
  if (route_.rfind("oracle:", 0) == 0) only = readme_->expert_index(route_.substr(7));
  double ffn = 0;
  for (int l = 0; l < m.hparams().n_layer; ++l) {
    double layer = 0;
    for (int32_t e = 0; e < N; ++e) {
      if (only >= 0 && e != only) continue;
      layer += static_cast<double>(readme_->expert(l, e).bytes());
    }
    ffn += only >= 0 ? layer : layer / N;
  }
  total += static_cast<uint64_t>(ffn);
  if (route_ == "router") total += readme_->router().bytes();
  return total;
}

}  // namespace lookahead::moe
