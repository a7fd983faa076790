#include "moe/refactor/router_targets.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/progress.h"
#include "moe/format/safetensors_writer.h"
#include "moe/kernels/quantize.h"

namespace lookahead::moe {

RouterTargetScorer::RouterTargetScorer(const ExpertSets& sets) : sets_(sets) {
  const size_t N = sets.experts.size();
  for (int l = 0; l < sets.n_layer; ++l) {
    std::vector<uint8_t> member(static_cast<size_t>(sets.n_ff) * N, 0);
    double exclusive = 0;
    for (size_t e = 0; e < N; ++e) {
      for (int32_t j : sets.neurons[static_cast<size_t>(l)][e]) member[static_cast<size_t>(j) * N + e] = 1;
      exclusive += static_cast<double>(sets.neurons[static_cast<size_t>(l)][e].size() -
                                       sets.permanent[static_cast<size_t>(l)].size());
    }
    // At least 5 so every threshold c below is a distinct rank >= 1.
    exclusive_.push_back(std::max<int64_t>(5, std::llround(exclusive / static_cast<double>(N))));
    member_.push_back(std::move(member));
  }
}

void RouterTargetScorer::score(int layer, const float* a, float* d) {
  const size_t N = sets_.experts.size();
  const int64_t ff = sets_.n_ff, n = std::min<int64_t>(exclusive_[static_cast<size_t>(layer)], ff);
  // Ranks c in {n-1, 4n/5, 3n/5, 2n/5, n/5}; the threshold is the c-th largest value.
  const int64_t ranks[5] = {std::max<int64_t>(1, n - 1), std::max<int64_t>(1, 4 * n / 5),
                            std::max<int64_t>(1, 3 * n / 5), std::max<int64_t>(1, 2 * n / 5),
                            std::max<int64_t>(1, n / 5)};
  sorted_.assign(a, a + ff);
  // Partially sort the top ranks[0] values in descending order.
  std::nth_element(sorted_.begin(), sorted_.begin() + (ranks[0] - 1), sorted_.end(), std::greater<float>());
  std::sort(sorted_.begin(), sorted_.begin() + ranks[0], std::greater<float>());
  float threshold[5];
  for (int k = 0; k < 5; ++k) threshold[k] = sorted_[static_cast<size_t>(ranks[k] - 1)];
  std::fill(d, d + N, 0.0f);
  const std::vector<uint8_t>& member = member_[static_cast<size_t>(layer)];
  const double norm = 1.0 / (3.0 * static_cast<double>(n));
  for (int64_t j = 0; j < ff; ++j) {
    if (!(a[j] > threshold[0])) continue;  // thresholds grow with k: below the lowest, no count
    int count = 0;
    for (int k = 0; k < 5; ++k) count += a[j] > threshold[k];
    const uint8_t* m = member.data() + static_cast<size_t>(j) * N;
    for (size_t e = 0; e < N; ++e)
      if (m[e]) d[e] += static_cast<float>(count * norm);
  }
  float mean = 0;
  for (size_t e = 0; e < N; ++e) mean += d[e];
  mean /= static_cast<float>(N);
  for (size_t e = 0; e < N; ++e) d[e] = 10.0f * (d[e] - mean);
}

namespace {

// Scores every token of a forward call into rows of the targets table.
class TargetRecorder : public FfnHook {
 public:
  TargetRecorder(RouterTargetScorer& scorer, int32_t n_layer, int32_t n_expert)
      : scorer_(scorer), L_(n_layer), N_(n_expert) {}
  void begin(float* rows) { rows_ = rows; }
  void on_ffn_activation(int layer, const float* a, int64_t n_tokens, int64_t n_ff) override {
    for (int64_t t = 0; t < n_tokens; ++t)
      scorer_.score(layer, a + t * n_ff, rows_ + (t * L_ + layer) * N_);
  }

 private:
  RouterTargetScorer& scorer_;
  int64_t L_, N_;
  float* rows_ = nullptr;
};

}  // namespace

RouterTargetSummary collect_router_targets(const LlamaModel& model, const std::vector<CorpusDomain>& domains,
                                           const ExpertSets& sets, const RouterConfig& router,
                                           const RouterTargetOptions& options, const std::string& out_path) {
  const LlamaHparams& hp = model.hparams();
  if (options.ctx < 2) fail("router targets: window of {} tokens is too short", options.ctx);
  if (options.tokens_per_domain < 1) fail("router targets: tokens per domain must be positive");
  if (sets.n_layer != hp.n_layer || sets.n_ff != hp.n_ff) fail("router targets: expert sets do not fit the model");
  if (domains.size() != sets.experts.size()) fail("router targets: {} domains for {} experts", domains.size(), sets.experts.size());
  const Tokenizer& tokenizer = model.source().tokenizer();
  const std::vector<int32_t> prefix = tokenizer.encode("", true, false);
  if (options.ctx - static_cast<int64_t>(prefix.size()) < 1) fail("router targets: window of {} tokens leaves no room for text", options.ctx);
  const int32_t L = hp.n_layer, N = static_cast<int32_t>(sets.experts.size());

  std::vector<int32_t> tokens, seq_start{0}, domain;
  std::vector<float> targets;
  RouterTargetScorer scorer(sets);
  TargetRecorder recorder(scorer, L, N);
  ContextOptions copt;
  copt.n_ctx = options.ctx;
  copt.n_batch = options.ctx;
  LlamaContext ctx(model, copt);
  ctx.set_ffn_hook(&recorder);
  ProgressBar progress("router targets", static_cast<uint64_t>(options.tokens_per_domain) * domains.size(),
                       options.progress);
  for (size_t dmn = 0; dmn < domains.size(); ++dmn) {
    if (domains[dmn].name != sets.experts[dmn])
      fail("router targets: domain {} is '{}' but expert {} is '{}'", dmn, domains[dmn].name, dmn, sets.experts[dmn]);
    const std::vector<int32_t> ids = tokenize_prefix(tokenizer, read_text_file(domains[dmn].path), options.tokens_per_domain);
    if (ids.empty()) fail("corpus domain '{}' ({}) has no tokens", domains[dmn].name, domains[dmn].path);
    int64_t used = 0;
    for_each_window(ids, prefix, options.ctx, options.tokens_per_domain, [&](const std::vector<int32_t>& window, int64_t n) {
      const auto w = static_cast<int64_t>(window.size());
      const size_t row0 = targets.size();
      targets.resize(row0 + static_cast<size_t>(w * L * N));
      recorder.begin(targets.data() + row0);
      ctx.truncate(0);
      ctx.forward(window.data(), w);
      tokens.insert(tokens.end(), window.begin(), window.end());
      domain.insert(domain.end(), static_cast<size_t>(w), static_cast<int32_t>(dmn));
      seq_start.push_back(static_cast<int32_t>(tokens.size()));
      used += n;
      progress.set(dmn * static_cast<uint64_t>(options.tokens_per_domain) + static_cast<uint64_t>(used));
    });
  }
  progress.finish();
  if (tokens.size() > static_cast<size_t>(INT32_MAX)) fail("router targets: too many tokens");

  RouterTargetSummary summary;
  summary.tokens = static_cast<int64_t>(tokens.size());
  summary.sequences = static_cast<int64_t>(seq_start.size()) - 1;
  summary.argmax_share.assign(static_cast<size_t>(N), 0.0);
  for (size_t r = 0; r < targets.size(); r += static_cast<size_t>(N))
    summary.argmax_share[static_cast<size_t>(argmax(targets.data() + r, N))] += 1.0;
  for (double& s : summary.argmax_share) s /= static_cast<double>(targets.size() / static_cast<size_t>(N));

  // The router's initial embedding: the backbone's first d_r columns.
  const int64_t dr = router.d_model, d = hp.n_embd;
  std::vector<float> embed(static_cast<size_t>(int64_t{hp.n_vocab} * dr), 0.0f), row(static_cast<size_t>(d));
  const TensorView& te = model.source().tensor("token_embd.weight");
  for (int64_t v = 0; v < hp.n_vocab; ++v) {
    dequantize_row(te.type, te.data + v * row_bytes(te.type, d), row.data(), d);
    std::copy_n(row.data(), std::min(d, dr), embed.data() + v * dr);
  }

  SafetensorsWriter w;
  RouterConfig rc = router;
  rc.n_vocab = hp.n_vocab;
  w.set_metadata("router_config", rc.to_json().dump());
  w.set_metadata("n_expert", std::to_string(N));
  w.set_metadata("n_layer", std::to_string(L));
  std::string names;
  for (const auto& e : sets.experts) names += (names.empty() ? "" : ",") + e;
  w.set_metadata("experts", names);
  w.add_tensor("tokens", TensorType::I32, {summary.tokens}, tokens.data());
  w.add_tensor("seq_start", TensorType::I32, {static_cast<int64_t>(seq_start.size())}, seq_start.data());
  w.add_tensor("domain", TensorType::I32, {summary.tokens}, domain.data());
  w.add_tensor("targets", TensorType::F32, {summary.tokens, L, N}, targets.data());
  w.add_tensor("router_init.embed", TensorType::F32, {int64_t{hp.n_vocab}, dr}, embed.data());
  w.write(out_path);
  return summary;
}

}  // namespace lookahead::moe
