#pragma once
// What every `moe` command opens: a dense model (.gguf or HF directory) or a Read-ME model
// directory, with the routing `--route` asks for.
//
// Contract:
//   - A Read-ME directory (config.json has N_cluster) runs with `route` (default "router"); a dense
//     model accepts only an empty route or "dense" and throws lookahead::Error otherwise.
//   - attach(ctx) gives a context its own token router (routers keep per-sequence state); the
//     router lives as long as the LoadedModel.
#include <memory>
#include <string>
#include <vector>

#include "moe/checkpoint/model_source.h"
#include "moe/model/llama.h"
#include "moe/model/readme_model.h"

namespace lookahead::moe {

// True when `path` is a directory whose config.json carries the Read-ME keys.
bool is_readme_dir(const std::string& path);

class LoadedModel {
 public:
  explicit LoadedModel(const std::string& path, const std::string& route = "");
  const ModelSource& source() const {
    if (readme_) return readme_->source();
    return *source_;
  }
  const LlamaModel& llama() const { return readme_ ? readme_->backbone() : *dense_; }
  const ReadMeModel* readme() const { return readme_.get(); }
  const std::string& route() const { return route_; }  // "dense" for a dense model
  void attach(LlamaContext& ctx);
  // Weight bytes one routed decode token reads (dense FFN replaced by the expert it is routed to,
  // averaged over experts for routes that spread tokens; router weights included).
  uint64_t weight_bytes_per_token() const;

 private:
  std::unique_ptr<ModelSource> source_;
  std::unique_ptr<LlamaModel> dense_;
  std::unique_ptr<ReadMeModel> readme_;
  std::string route_;
  std::vector<std::unique_ptr<TokenRouter>> routers_;
};

}  // namespace lookahead::moe
