#include "moe/model/speed_bench.h"

#include <fmt/format.h>

#include <chrono>

#include "common/progress.h"

namespace lookahead::moe {

SpeedTest bench_prompt(LlamaContext& ctx, int32_t n_vocab, int64_t n_prompt, int reps, std::mt19937_64& rng,
                       bool progress) {
  SpeedTest r{fmt::format("pp{}", n_prompt), n_prompt, 0, {}};
  std::vector<int32_t> tokens(static_cast<size_t>(n_prompt));
  ProgressBar bar("bench " + r.name + " (runs)", static_cast<uint64_t>(reps) + 1, progress);
  for (int rep = -1; rep < reps; ++rep) {  // rep -1 is the warm-up
    for (auto& t : tokens) t = static_cast<int32_t>(rng() % static_cast<uint64_t>(n_vocab));
    ctx.truncate(0);
    const auto t0 = std::chrono::steady_clock::now();
    ctx.forward(tokens.data(), n_prompt);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (rep >= 0) r.samples_ts.push_back(static_cast<double>(n_prompt) / s);
    bar.advance();
  }
  bar.finish();
  return r;
}

SpeedTest bench_generation(LlamaContext& ctx, int32_t n_vocab, int64_t n_gen, int reps, std::mt19937_64& rng,
                           bool progress) {
  SpeedTest r{fmt::format("tg{}", n_gen), 0, n_gen, {}};
  double total = 0, router = 0;
  ProgressBar bar("bench " + r.name + " (tokens)", (static_cast<uint64_t>(reps) + 1) * static_cast<uint64_t>(n_gen),
                  progress);
  for (int rep = -1; rep < reps; ++rep) {
    ctx.truncate(0);
    const double r0 = ctx.router_seconds();
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < n_gen; ++i) {
      const int32_t token = static_cast<int32_t>(rng() % static_cast<uint64_t>(n_vocab));
      ctx.forward(&token, 1);
      bar.advance();
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (rep >= 0) {
      r.samples_ts.push_back(static_cast<double>(n_gen) / s);
      total += s, router += ctx.router_seconds() - r0;
    }
  }
  bar.finish();
  r.router_share = total > 0 ? router / total : 0;
  return r;
}

ModelSize model_size(const LlamaModel& model) {
  ModelSize z;
  auto add = [&](const WeightMatrix& m) {
    z.bytes += static_cast<uint64_t>(m.bytes());
    z.params += static_cast<uint64_t>(m.rows * m.cols);
  };
  const LlamaWeights& w = model.weights();
  add(w.token_embd);
  if (!model.hparams().tied_embeddings) add(w.output);
  for (const auto& L : w.layers) {
    for (const WeightMatrix* m : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) add(*m);
    z.bytes += 2 * L.attn_norm.size() * 4;
    z.params += 2 * L.attn_norm.size();
  }
  z.bytes += w.output_norm.size() * 4;
  z.params += w.output_norm.size();
  return z;
}

}  // namespace lookahead::moe
