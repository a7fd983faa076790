#include "moe/refactor/refactor.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>

#include "common/error.h"
#include "common/progress.h"
#include "moe/checkpoint/model_source.h"
#include "moe/format/safetensors.h"
#include "moe/model/llama.h"
#include "moe/refactor/activation_stats.h"
#include "moe/refactor/corpus.h"
#include "moe/refactor/expert_extraction.h"
#include "moe/refactor/ffn_reconstruction.h"
#include "moe/refactor/pruned_model.h"
#include "moe/refactor/readme_export.h"
#include "moe/refactor/router_targets.h"

namespace lookahead::moe {

namespace fs = std::filesystem;

namespace {

// The activation statistics of `calibration`: WORK/stats.gguf when it was made from the same model
// and domains with at least as many tokens, else collected now and saved there.
ActivationStats statistics_for(const LlamaModel& model, const std::vector<CorpusDomain>& calibration,
                               const fs::path& work, const RefactorOptions& o) {
  const LlamaHparams& hp = model.hparams();
  const std::string stats_path = (work / "stats.gguf").string();
  std::error_code ec;
  if (fs::exists(stats_path, ec)) {
    ActivationStats stats = ActivationStats::load(stats_path);
    std::vector<std::string> names;
    for (const auto& d : calibration) names.push_back(d.name);
    if (stats.model == o.model && stats.domains == names && stats.n_layer == hp.n_layer && stats.n_ff == hp.n_ff &&
        !stats.tokens.empty() && stats.tokens[0] >= o.stats_tokens)
      return stats;
  }
  StatsOptions so;
  so.ctx = o.ctx;
  so.tokens_per_domain = o.stats_tokens;
  so.progress = o.progress;
  ActivationStats stats = collect_activation_stats(model, calibration, so);
  stats.save(stats_path);
  return stats;
}

void check_reconstruction_options(const RefactorOptions& o) {
  if (o.reconstruct != "lsq" && o.reconstruct != "none") fail("--reconstruct '{}' must be lsq or none", o.reconstruct);
  if (!std::isfinite(o.ridge)) fail("--ridge must be finite (got {})", o.ridge);
  if (o.reconstruct_tokens < 1) fail("--reconstruct-tokens must be positive (got {})", o.reconstruct_tokens);
  if (o.validation_tokens < 1) fail("--validation-tokens must be positive (got {})", o.validation_tokens);
  if (o.select != "activation" && o.select != "output") fail("--select '{}' must be activation or output", o.select);
  if (!(o.select_damp > 0) || !std::isfinite(o.select_damp)) fail("--select-damp must be finite and > 0 (got {})", o.select_damp);
  if (o.select_block < 1) fail("--select-block must be positive (got {})", o.select_block);
  if (!(o.general_mix >= 0 && o.general_mix <= 1)) fail("--general-mix must lie in [0, 1] (got {})", o.general_mix);
}

// Both need the calibration Grams.
bool needs_grams(const RefactorOptions& o) { return o.reconstruct == "lsq" || o.select == "output"; }

// `neurons` replaced by as many chosen on the fit Gram of `layer` (select_neurons_output).
void select_on_gram(const LlamaModel& model, const std::pair<FfnGram, FfnGram>& grams, int l, const std::vector<float>& dense,
                    std::vector<int32_t>& neurons, const RefactorOptions& o, const std::string& what) {
  const LlamaHparams& hp = model.hparams();
  neurons = select_neurons_output(dense.data(), hp.n_embd, hp.n_ff, grams.first.layer(l), static_cast<int64_t>(neurons.size()),
                                  o.select_damp, o.select_block, what);
}

std::string reconstruction_label(const RefactorOptions& o) {
  std::string label = o.reconstruct != "lsq" ? "none"
                      : o.ridge >= 0          ? fmt::format("lsq ridge={}", o.ridge)
                                              : fmt::format("lsq ridge=auto({} fit + {} validation tokens per domain)",
                                                            o.reconstruct_tokens, o.validation_tokens);
  if (o.select == "output") label += fmt::format("; neurons selected by output error (damp {}, block {})", o.select_damp, o.select_block);
  if (o.general_mix > 0) label += fmt::format("; {} of every expert's Grams from all domains", o.general_mix);
  return label;
}

// Per-(layer, expert) down_proj fits of one kind of FFN: what the summary reports.
struct FitReport {
  double error_cut = 0, error_fit = 0, validation_error_cut = 0, validation_error_fit = 0;
  std::vector<double> ridges;
  void add(const DownFit& f, int n_layer) {
    error_cut += f.error_cut / n_layer, error_fit += f.error_fit / n_layer;
    validation_error_cut += f.validation_error_cut / n_layer, validation_error_fit += f.validation_error_fit / n_layer;
    ridges.push_back(f.ridge);
  }
  double median_ridge() {
    std::sort(ridges.begin(), ridges.end());
    return ridges.empty() ? 0 : ridges[ridges.size() / 2];
  }
};

// The Grams of `domains`' calibration text, summed: the fit tokens' and the validation tokens'.
std::pair<FfnGram, FfnGram> reconstruction_grams(const LlamaModel& model, const std::vector<CorpusDomain>& domains,
                                                 const RefactorOptions& o) {
  GramOptions go;
  go.ctx = o.ctx;
  go.progress = o.progress;
  const bool validate = o.reconstruct == "lsq" && o.ridge < 0;
  std::pair<FfnGram, FfnGram> g;
  for (size_t d = 0; d < domains.size(); ++d) {
    const ReconstructionTokens t = reconstruction_tokens(model.source().tokenizer(), domains[d], o.reconstruct_tokens,
                                                         validate ? o.validation_tokens : 0);
    if (validate && t.validation.empty())
      fail("corpus domain '{}' ({}): no calibration tokens left to choose the ridge on; give --ridge R", domains[d].name,
           domains[d].path);
    FfnGram fit = collect_ffn_gram(model, t.fit, domains[d].name, go);
    FfnGram held = validate ? collect_ffn_gram(model, t.validation, domains[d].name + " (validation)", go) : FfnGram();
    if (d == 0) {
      g = {std::move(fit), std::move(held)};
    } else {
      g.first.add(fit);
      if (validate) g.second.add(held);
    }
  }
  return g;
}

DownFit fit_layer(const LlamaModel& model, const std::pair<FfnGram, FfnGram>& grams, int l, const std::vector<float>& dense,
                  const std::vector<int32_t>& neurons, const RefactorOptions& o, const std::string& what) {
  const LlamaHparams& hp = model.hparams();
  if (o.ridge >= 0) return fit_down_proj(dense.data(), hp.n_embd, hp.n_ff, grams.first.layer(l), neurons, o.ridge, what);
  return fit_down_proj(dense.data(), hp.n_embd, hp.n_ff, grams.first.layer(l), neurons, auto_ridges(), grams.second.layer(l),
                       what);
}

// Per expert, on its own domain's calibration tokens (one domain's Grams at a time, so at most two
// n_layer x n_ff^2 double arrays are held): with --select output, chooses the expert's neurons
// (select_neurons_output); with --reconstruct lsq, refits its down_proj (ffn_reconstruction.h).
ExpertDownProjs fit_experts(const LlamaModel& model, const std::vector<CorpusDomain>& calibration, ExpertSets& sets,
                            const RefactorOptions& o, RefactorSummary& summary) {
  const LlamaHparams& hp = model.hparams();
  const size_t n_expert = sets.experts.size();
  ExpertDownProjs down(static_cast<size_t>(hp.n_layer), std::vector<std::vector<float>>(n_expert));
  std::vector<std::vector<float>> dense(static_cast<size_t>(hp.n_layer));
  for (int l = 0; l < hp.n_layer; ++l) dense[static_cast<size_t>(l)] = dense_down_proj(model.source(), l);
  // --general-mix a: every expert is selected and fit on (1 - a) x its own domain's Grams + a x all
  // domains' (each normalized per token), so it also serves the tokens of other text the router
  // sends it. Needs every domain's Grams at once (2 x domains x n_layer x n_ff^2 doubles).
  std::vector<std::pair<FfnGram, FfnGram>> own;
  std::pair<FfnGram, FfnGram> pooled;
  if (o.general_mix > 0) {
    for (size_t e = 0; e < n_expert; ++e) own.push_back(reconstruction_grams(model, {calibration[e]}, o));
    pooled = own[0];
    for (auto* g : {&pooled.first, &pooled.second})
      std::fill(g->g.begin(), g->g.end(), 0.0);
    for (const auto& [fit, held] : own) {
      pooled.first.add_scaled(fit, 1.0 / static_cast<double>(fit.tokens));
      if (!held.g.empty()) pooled.second.add_scaled(held, 1.0 / static_cast<double>(held.tokens));
    }
  }
  for (size_t e = 0; e < n_expert; ++e) {
    std::pair<FfnGram, FfnGram> grams;
    if (o.general_mix > 0) {
      grams = std::move(own[e]);
      for (auto [g, all] : {std::pair{&grams.first, &pooled.first}, std::pair{&grams.second, &pooled.second}}) {
        if (g->g.empty()) continue;
        const double own_scale = (1 - o.general_mix) / static_cast<double>(g->tokens);
        for (double& x : g->g) x *= own_scale;
        g->add_scaled(*all, o.general_mix / static_cast<double>(n_expert));
      }
    } else {
      grams = reconstruction_grams(model, {calibration[e]}, o);
    }
    FitReport report;
    ProgressBar progress("fit " + sets.experts[e], static_cast<uint64_t>(hp.n_layer), o.progress);
    for (int l = 0; l < hp.n_layer; ++l) {
      const std::string what = fmt::format("expert '{}' layer {}", sets.experts[e], l);
      std::vector<int32_t>& neurons = sets.neurons[static_cast<size_t>(l)][e];
      if (o.select == "output") select_on_gram(model, grams, l, dense[static_cast<size_t>(l)], neurons, o, "neuron selection of " + what);
      if (o.reconstruct == "lsq") {
        DownFit fit = fit_layer(model, grams, l, dense[static_cast<size_t>(l)], neurons, o, "reconstruction of " + what);
        report.add(fit, hp.n_layer);
        down[static_cast<size_t>(l)][e] = std::move(fit.down);
      }
      progress.advance();
    }
    progress.finish();
    if (o.reconstruct != "lsq") continue;
    summary.error_cut.push_back(report.error_cut);
    summary.error_fit.push_back(report.error_fit);
    summary.validation_error_cut.push_back(report.validation_error_cut);
    summary.validation_error_fit.push_back(report.validation_error_fit);
    summary.ridge.push_back(report.median_ridge());
  }
  if (o.select == "output") update_permanent(sets);
  return down;
}

}  // namespace

RefactorSummary refactor_to_readme(const RefactorOptions& o, const RouterTrainer& train_router) {
  if (!(o.keep > 0 && o.keep <= 1)) fail("--keep must lie in (0, 1] (got {})", o.keep);
  check_reconstruction_options(o);
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
  const ActivationStats stats = statistics_for(model, calibration, work, o);

  // 2. Experts.
  // A block-quantized export needs whole-block experts (expert_extraction.h).
  // The sizes are the activation rule's; --select output then chooses which neurons on the Grams.
  ExpertSets sets = extract_experts(stats, o.keep, static_cast<int32_t>(traits(o.dtype).block_size));

  // 2b. Neuron selection and expert reconstruction on each domain's calibration tokens.
  RefactorSummary s;
  ExpertDownProjs refit;
  if (needs_grams(o)) {
    const auto start = std::chrono::steady_clock::now();
    refit = fit_experts(model, calibration, sets, o, s);
    s.reconstruct_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
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
  if (o.reconstruct == "lsq") eo.down = &refit;
  eo.reconstruction = reconstruction_label(o);
  write_readme_model(*source, sets, config, [&](const std::string& n) { return router_file.find_tensor(n); }, o.out, eo);

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

PruneSummary prune_to_dense(const RefactorOptions& o, int32_t width) {
  if (!(o.keep > 0 && o.keep <= 1)) fail("--keep must lie in (0, 1] (got {})", o.keep);
  check_reconstruction_options(o);
  if (o.out.empty()) fail("--out is required");
  std::error_code ec;
  if (fs::exists(o.out, ec)) fail("{}: already exists; choose a new output directory or remove it", o.out);
  const std::vector<CorpusDomain> calibration = open_corpus(o.corpus, "calibration", o.domains);
  auto source = open_model(o.model);
  const LlamaModel model(*source);
  const LlamaHparams& hp = model.hparams();
  if (!model.has_dense_ffn()) fail("{}: has no dense FFN to prune", o.model);
  const fs::path work = o.work_dir.empty() ? fs::path(o.out + ".work") : fs::path(o.work_dir);
  fs::create_directories(work, ec);
  if (ec) fail("{}: cannot create the work directory: {}", work.string(), ec.message());
  const ActivationStats stats = statistics_for(model, calibration, work, o);

  const auto block = static_cast<int32_t>(traits(o.dtype).block_size);
  if (width <= 0) {
    const ExpertSets sets = extract_experts(stats, o.keep, block);
    double sum = 0;
    for (const auto& layer : sets.neurons)
      for (const auto& expert : layer) sum += static_cast<double>(expert.size());
    const double mean = sum / static_cast<double>(sets.n_layer) / static_cast<double>(sets.experts.size());
    width = static_cast<int32_t>(std::lround(mean / block)) * block;
  }
  if (width < 1 || width > hp.n_ff) fail("--width {} must lie in [1, {}]", width, hp.n_ff);
  if (width % block != 0) fail("--width {} must be a multiple of {} for --dtype {}", width, block, tensor_type_name(o.dtype));
  std::vector<std::vector<int32_t>> neurons = pruned_neurons(stats, width);

  PruneSummary s;
  s.width = width;
  for (auto t : stats.tokens) s.stats_tokens += t;
  std::vector<std::vector<float>> refit;
  if (needs_grams(o)) {
    // One Gram pooled over every domain: the pruned model serves them all with the same neurons.
    const auto grams = reconstruction_grams(model, calibration, o);
    FitReport report;
    ProgressBar progress("fit pruned", static_cast<uint64_t>(hp.n_layer), o.progress);
    for (int l = 0; l < hp.n_layer; ++l) {
      const std::vector<float> dense = dense_down_proj(model.source(), l);
      if (o.select == "output")
        select_on_gram(model, grams, l, dense, neurons[static_cast<size_t>(l)], o,
                       fmt::format("neuron selection of the pruned FFN, layer {}", l));
      if (o.reconstruct == "lsq") {
        DownFit fit = fit_layer(model, grams, l, dense, neurons[static_cast<size_t>(l)], o,
                                fmt::format("reconstruction of the pruned FFN, layer {}", l));
        report.add(fit, hp.n_layer);
        refit.push_back(std::move(fit.down));
      }
      progress.advance();
    }
    progress.finish();
    s.error_cut = report.error_cut, s.error_fit = report.error_fit;
    s.validation_error_cut = report.validation_error_cut, s.validation_error_fit = report.validation_error_fit;
    s.ridge = report.median_ridge();
  }
  PrunedExportOptions eo;
  eo.dtype = o.dtype;
  eo.progress = o.progress;
  if (o.reconstruct == "lsq") eo.down = &refit;
  write_pruned_model(*source, neurons, o.out, eo);
  return s;
}

}  // namespace lookahead::moe
