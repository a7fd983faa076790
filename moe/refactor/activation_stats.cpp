#include "moe/refactor/activation_stats.h"

#include <cmath>

#include "common/error.h"
#include "common/progress.h"
#include "moe/format/gguf.h"
#include "moe/format/gguf_writer.h"

namespace lookahead::moe {

ActivationRecorder::ActivationRecorder(int32_t n_layer, int32_t n_ff)
    : n_layer_(n_layer), n_ff_(n_ff), sum_abs_(static_cast<size_t>(n_layer) * n_ff, 0.0) {}

void ActivationRecorder::on_ffn_activation(int layer, const float* a, int64_t n_tokens, int64_t n_ff) {
  LOOKAHEAD_CHECK(layer >= 0 && layer < n_layer_ && n_ff == n_ff_);
  double* sum = sum_abs_.data() + static_cast<size_t>(layer) * n_ff_;
  for (int64_t t = 0; t < n_tokens; ++t) {
    const float* row = a + t * n_ff;
    for (int64_t j = 0; j < n_ff; ++j) sum[j] += std::fabs(row[j]);
  }
}

void ActivationRecorder::reset() { std::fill(sum_abs_.begin(), sum_abs_.end(), 0.0); }

std::vector<float> ActivationRecorder::means(int64_t tokens) const {
  std::vector<float> out(sum_abs_.size());
  for (size_t i = 0; i < out.size(); ++i) out[i] = tokens > 0 ? static_cast<float>(sum_abs_[i] / tokens) : 0.0f;
  return out;
}


ActivationStats collect_activation_stats(const LlamaModel& model, const std::vector<CorpusDomain>& domains,
                                         const StatsOptions& options) {
  if (options.ctx < 2) fail("--ctx must be at least 2 (got {})", options.ctx);
  if (options.tokens_per_domain < 1) fail("--tokens-per-domain must be positive (got {})", options.tokens_per_domain);
  const LlamaHparams& hp = model.hparams();
  const Tokenizer& tokenizer = model.source().tokenizer();
  // What the vocabulary puts before a text (BOS for SentencePiece Llama, nothing for SmolLM2).
  const std::vector<int32_t> prefix = tokenizer.encode("", /*add_special=*/true, /*parse_special=*/false);
  if (static_cast<int64_t>(prefix.size()) >= options.ctx) fail("--ctx {} leaves no room for text", options.ctx);

  ActivationStats stats;
  stats.n_layer = hp.n_layer;
  stats.n_ff = hp.n_ff;
  stats.model = model.source().path();
  ContextOptions copt;
  copt.n_ctx = options.ctx;
  copt.n_batch = options.ctx;
  LlamaContext ctx(model, copt);
  ActivationRecorder recorder(hp.n_layer, hp.n_ff);
  ctx.set_ffn_hook(&recorder);

  ProgressBar progress("stats", static_cast<uint64_t>(options.tokens_per_domain) * domains.size(), options.progress);
  for (size_t d = 0; d < domains.size(); ++d) {
    std::vector<int32_t> ids = tokenize_prefix(tokenizer, read_text_file(domains[d].path), options.tokens_per_domain);
    if (ids.empty()) fail("corpus domain '{}' ({}) has no tokens", domains[d].name, domains[d].path);
    recorder.reset();
    int64_t used = 0, seen = 0;
    for_each_window(ids, prefix, options.ctx, options.tokens_per_domain, [&](const std::vector<int32_t>& window, int64_t n) {
      ctx.truncate(0);
      ctx.forward(window.data(), static_cast<int64_t>(window.size()));
      used += n;
      seen += static_cast<int64_t>(window.size());
      progress.set(static_cast<uint64_t>(d) * options.tokens_per_domain + static_cast<uint64_t>(used));
    });
    std::vector<float> means = recorder.means(seen);
    stats.domains.push_back(domains[d].name);
    stats.tokens.push_back(seen);
    stats.mean_abs.insert(stats.mean_abs.end(), means.begin(), means.end());
  }
  progress.finish();
  return stats;
}

void ActivationStats::save(const std::string& path) const {
  GgufWriter writer;
  writer.set("general.type", gguf_string("readme.activation_stats"));
  writer.set("readme.stats.model", gguf_string(model));
  writer.set("readme.stats.n_layer", gguf_u32(static_cast<uint32_t>(n_layer)));
  writer.set("readme.stats.n_ff", gguf_u32(static_cast<uint32_t>(n_ff)));
  writer.set("readme.stats.domains", gguf_string_array(domains));
  std::vector<int32_t> token_counts;
  for (auto t : tokens) token_counts.push_back(static_cast<int32_t>(std::min<int64_t>(t, INT32_MAX)));
  writer.set("readme.stats.tokens", gguf_i32_array(token_counts));
  const uint64_t per_domain = static_cast<uint64_t>(n_layer) * n_ff;
  for (size_t d = 0; d < domains.size(); ++d)
    writer.add_tensor("stats." + domains[d], TensorType::F32, {n_ff, n_layer}, mean_abs.data() + d * per_domain,
                      per_domain * sizeof(float));
  writer.write(path);
}

ActivationStats ActivationStats::load(const std::string& path) {
  GgufFile file(path);
  if (file.find_string("general.type") != std::optional<std::string>("readme.activation_stats"))
    fail("{}: not an activation-statistics file (general.type is not 'readme.activation_stats'; make one with "
         "`lookahead moe stats`)", path);
  ActivationStats s;
  s.model = file.get_string("readme.stats.model");
  s.n_layer = static_cast<int32_t>(file.get_int("readme.stats.n_layer"));
  s.n_ff = static_cast<int32_t>(file.get_int("readme.stats.n_ff"));
  if (s.n_layer <= 0 || s.n_ff <= 0) fail("{}: readme.stats.n_layer / n_ff must be positive", path);
  s.domains = file.get_string_array("readme.stats.domains");
  s.tokens = file.get_int_array("readme.stats.tokens");
  if (s.domains.empty()) fail("{}: readme.stats.domains is empty", path);
  if (s.tokens.size() != s.domains.size())
    fail("{}: readme.stats.tokens has {} entries for {} domains", path, s.tokens.size(), s.domains.size());
  for (const auto& name : s.domains) {
    const TensorView& t = file.tensor("stats." + name);
    if (t.type != TensorType::F32 || t.shape.size() != 2 || t.shape[0] != s.n_ff || t.shape[1] != s.n_layer)
      fail("{}: tensor 'stats.{}' must be F32 [{}, {}]", path, name, s.n_ff, s.n_layer);
    const float* v = reinterpret_cast<const float*>(t.data);
    for (int64_t i = 0; i < t.elements(); ++i)
      if (!std::isfinite(v[i]) || v[i] < 0) fail("{}: tensor 'stats.{}' holds a negative or non-finite mean", path, name);
    s.mean_abs.insert(s.mean_abs.end(), v, v + t.elements());
  }
  return s;
}

}  // namespace lookahead::moe
