#include "moe/refactor/refactor.h"

#include <filesystem>

#include "common/error.h"
#include "moe/format/model_source.h"
#include "moe/format/safetensors.h"
#include "moe/model/llama.h"
#include "moe/refactor/activation_stats.h"
#include "moe/refactor/corpus.h"
#include "moe/refactor/expert_extraction.h"
#include "moe/refactor/readme_export.h"
#include "moe/refactor/router_targets.h"

namespace lookahead::moe {

namespace fs = std::filesystem;

RefactorSummary refactor_to_readme(const RefactorOptions& o, const RouterTrainer& train_router) {
  if (!(o.keep > 0 && o.keep <= 1)) fail("--keep must lie in (0, 1] (got {})", o.keep);
  if (o.out.empty()) fail("--out is required");
  std::error_code ec;
  if (fs::exists(o.out, ec)) fail("{}: already exists; choose a new output directory or remove it", o.out);
  // Both splits must exist for every domain before anything runs.
  const std::vector<CorpusDomain> calibration = open_corpus(o.corpus, "calibration", o.domains);
  const std::vector<CorpusDomain> train = open_corpus(o.corpus, "train", o.domains);
  if (calibration.size() < 2) fail("{}: Read-ME needs at least 2 domains (found {})", o.corpus, calibration.size());

  auto source = open_model(o.model);
  const LlamaModel model(*source);
  const LlamaHparams& hp = model.hparams();
  if (!model.has_dense_ffn()) fail("{}: has no dense FFN to refactor", o.model);
  for (int l = 0; l < hp.n_layer; ++l) {
    const auto& L = model.weights().layers[static_cast<size_t>(l)];
    if (L.w_gate.rows != hp.n_ff || L.w_up.rows != hp.n_ff || L.w_down.cols != hp.n_ff || L.w_gate.cols != hp.n_embd)
      fail("{}: layer {} FFN is not [{} x {}] SwiGLU as the config says", o.model, l, hp.n_ff, hp.n_embd);
  }
  RouterConfig rc = o.router;
  rc.n_expert = static_cast<int32_t>(calibration.size());
  rc.n_vocab = hp.n_vocab;
  rc.validate("router options");

  const fs::path work = o.work_dir.empty() ? fs::path(o.out + ".work") : fs::path(o.work_dir);
  fs::create_directories(work, ec);
  if (ec) fail("{}: cannot create the work directory: {}", work.string(), ec.message());

  // 1. Activation statistics (reused when the work dir has them for the same model and domains).
  const std::string stats_path = (work / "stats.gguf").string();
  ActivationStats stats;
  bool have_stats = false;
  if (fs::exists(stats_path, ec)) {
    stats = ActivationStats::load(stats_path);
    std::vector<std::string> names;
    for (const auto& d : calibration) names.push_back(d.name);
    have_stats = stats.model == o.model && stats.domains == names && stats.n_layer == hp.n_layer && stats.n_ff == hp.n_ff &&
                 !stats.tokens.empty() && stats.tokens[0] >= o.stats_tokens;
  }
  if (!have_stats) {
    StatsOptions so;
    so.ctx = o.ctx;
    so.tokens_per_domain = o.stats_tokens;
    so.progress = o.progress;
    stats = collect_activation_stats(model, calibration, so);
    stats.save(stats_path);
  }

  // 2. Experts.
  // A block-quantized export needs whole-block experts (expert_extraction.h).
  const ExpertSets sets = extract_experts(stats, o.keep, static_cast<int32_t>(traits(o.dtype).block_size));
  const OverlapReport overlap = overlap_report(sets);

  // 3. Router targets on the training split (the targets depend on the expert sets).
  const std::string targets_path = (work / "router_targets.safetensors").string();
  RouterTargetOptions to;
  to.tokens_per_domain = o.router_tokens;
  to.ctx = o.router_ctx;
  to.progress = o.progress;
  const RouterTargetSummary targets = collect_router_targets(model, train, sets, rc, to, targets_path);

  // 4. Router training (libtorch, out of process).
  const std::string router_path = (work / "router.safetensors").string();
  fs::remove(router_path, ec);
  train_router(targets_path, router_path);
  if (!fs::exists(router_path, ec)) fail("router training wrote no {}", router_path);
  SafetensorsFile router_file(router_path);

  // 5. Export.
  ReadMeConfig config;
  config.router = rc;
  config.experts = sets.experts;
  config.keep = o.keep;
  config.source_model = fs::path(o.model).filename().string();
  config.dtype = std::string(tensor_type_name(o.dtype));
  ReadMeExportOptions eo;
  eo.dtype = o.dtype;
  eo.dense_ffn = o.dense_ffn;
  eo.progress = o.progress;
  write_readme_model(*source, sets, config, [&](const std::string& n) { return router_file.find_tensor(n); }, o.out, eo);

  RefactorSummary s;
  s.experts = sets.experts;
  s.permanent_share = overlap.permanent_share;
  for (size_t e = 0; e < sets.experts.size(); ++e) {
    double sum = 0;
    for (int l = 0; l < sets.n_layer; ++l) sum += static_cast<double>(sets.neurons[static_cast<size_t>(l)][e].size());
    s.expert_share.push_back(sum / sets.n_layer / sets.n_ff);
  }
  for (auto t : stats.tokens) s.stats_tokens += t;
  s.router_tokens = targets.tokens;
  return s;
}

}  // namespace lookahead::moe
