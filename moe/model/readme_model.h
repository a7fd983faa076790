#pragma once
// A Read-ME model directory (docs/readme-model.md): the dense backbone's attention, norms and
// embeddings, per-(layer, expert) FFN weights, and the pre-gating router, plus the routings
// `--route` selects for experiments.
//
// Contract:
//   - ReadMeModel opens the directory (an HF checkpoint whose config.json has N_cluster), validates
//     every expert tensor (shapes [S_e, d], [S_e, d], [d, S_e], neuron list I32 [S_e], sorted,
//     distinct, < n_ff) and the router, and throws lookahead::Error naming the file and tensor on
//     any problem. Weights stay memory-mapped.
//   - It is the ExpertWeights the forward pass reads; slab(l, e) gives the byte range of one
//     (layer, expert)'s gate, up and down (contiguous in our exports) for the serving system.
//   - make_token_router(spec): "router" (the pre-gating router, with its KV cache), "oracle:NAME"
//     (every token to expert NAME), "random[:SEED]" (uniform, a deterministic function of seed and
//     position), "dense" (nullptr: the dense FFN, which a model without one rejects).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "moe/checkpoint/hf_checkpoint.h"
#include "moe/model/experts.h"
#include "moe/model/llama.h"
#include "moe/model/router.h"

namespace lookahead::moe {

struct ReadMeConfig {
  RouterConfig router;
  std::vector<std::string> experts;  // expert e's name (its calibration domain)
  double keep = 0.5;
  std::string source_model;
  std::string dtype = "F16";
  // Reads the Read-ME keys of config.json (`where` names the file in errors).
  static ReadMeConfig from_config(const nlohmann::json& config, const std::string& where);
  // Adds the Read-ME keys to a dense config.json object.
  void to_config(nlohmann::json& config) const;
};

class ReadMeModel : public ExpertWeights {
 public:
  explicit ReadMeModel(const std::string& dir);

  const HfCheckpoint& source() const { return *source_; }
  const LlamaModel& backbone() const { return *backbone_; }
  const ReadMeConfig& config() const { return config_; }
  const RouterWeights& router() const { return router_; }

  int32_t n_expert() const override { return static_cast<int32_t>(config_.experts.size()); }
  const ExpertFfn& expert(int layer, int32_t e) const override;
  const std::vector<int32_t>& neurons(int layer, int32_t e) const;
  // Index of the expert named `name`, or -1.
  int32_t expert_index(const std::string& name) const;

  struct Slab {
    uint64_t offset = 0;  // absolute offset in `file`
    uint64_t bytes = 0;
    std::string file;
  };
  Slab slab(int layer, int32_t e) const;
  // Mean over layers of S_e / n_ff: the fraction of FFN weights a token routed to e reads.
  double ffn_fraction(int32_t e) const;

 private:
  std::unique_ptr<HfCheckpoint> source_;
  std::unique_ptr<LlamaModel> backbone_;
  ReadMeConfig config_;
  RouterWeights router_;
  std::vector<std::vector<ExpertFfn>> experts_;               // [layer][expert]
  std::vector<std::vector<std::vector<int32_t>>> neurons_;    // [layer][expert]
  std::vector<std::vector<Slab>> slabs_;                      // [layer][expert]
};

// Tensor names of the export (docs/readme-model.md).
std::string expert_tensor_name(int layer, const char* proj, int32_t e);  // proj: "gate", "up", "down"
std::string expert_neurons_name(int layer, int32_t e);

// The routings of `--route`; nullptr for "dense". `what` names the flag in errors.
// `positions` (0 = the router's whole window) sizes the pre-gating router's KV cache.
std::unique_ptr<TokenRouter> make_token_router(const ReadMeModel& model, const std::string& spec,
                                               const std::string& what = "--route", int64_t positions = 0);

// The pre-gating router as a TokenRouter (keeps a RouterContext; follows rewinds by re-routing
// nothing: positions after a truncate are routed again when fed).
class PreGatingRouter : public TokenRouter {
 public:
  PreGatingRouter(const RouterConfig& config, const RouterWeights& weights, int64_t positions = 0)
      : ctx_(config, weights, positions) {}
  void route(const int32_t* tokens, int64_t n, int64_t pos0, int32_t* experts) override;
  void truncate(int64_t pos) override;
  std::string name() const override { return "router"; }
  const RouterContext& context() const { return ctx_; }

 private:
  RouterContext ctx_;
};

}  // namespace lookahead::moe
