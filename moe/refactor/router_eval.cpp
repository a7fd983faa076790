#include "moe/refactor/router_eval.h"

#include <algorithm>
#include <chrono>

#include "common/error.h"

namespace lookahead::moe {

double RouterEval::accuracy() const {
  int64_t c = 0, all = 0;
  for (size_t d = 0; d < total.size(); ++d) c += correct[d], all += total[d];
  return all ? static_cast<double>(c) / static_cast<double>(all) : 0;
}

double RouterEval::locality() const {
  return pairs ? static_cast<double>(same_as_previous) / static_cast<double>(pairs) : 0;
}

double RouterEval::domain_accuracy(size_t d) const {
  return total[d] ? static_cast<double>(correct[d]) / static_cast<double>(total[d]) : 0;
}

namespace {

// Router decode cost: route up to 256 tokens one at a time with the KV cache.
double decode_us_per_token(RouterContext& router, const RouterConfig& rc) {
  const int64_t n_decode = std::min<int64_t>(256, rc.max_positions);
  router.truncate(0);
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < n_decode; ++i) {
    const int32_t token = static_cast<int32_t>((i * 7919) % rc.n_vocab);
    router.route(&token, 1);
  }
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() /
         static_cast<double>(n_decode);
}

}  // namespace

RouterEval evaluate_router(const ReadMeModel& model, const std::vector<CorpusDomain>& domains,
                           int64_t tokens_per_domain, int64_t ctx) {
  const Tokenizer& tok = model.source().tokenizer();
  const std::vector<int32_t> prefix = tok.encode("", true, false);
  const RouterConfig& rc = model.config().router;
  if (ctx > rc.max_positions) fail("--ctx {} exceeds the router's {} positions", ctx, rc.max_positions);
  RouterContext router(rc, model.router());
  const int32_t N = model.n_expert();

  RouterEval r;
  r.confusion.assign(domains.size(), std::vector<int64_t>(static_cast<size_t>(N), 0));
  r.correct.assign(domains.size(), 0);
  r.total.assign(domains.size(), 0);
  for (size_t d = 0; d < domains.size(); ++d) {
    const int32_t label = model.expert_index(domains[d].name);
    const std::vector<int32_t> ids = tokenize_prefix(tok, read_text_file(domains[d].path), tokens_per_domain);
    for_each_window(ids, prefix, ctx, tokens_per_domain, [&](const std::vector<int32_t>& window, int64_t) {
      router.truncate(0);
      const std::vector<int32_t> experts = router.route(window.data(), static_cast<int64_t>(window.size()));
      // Score the text tokens (not the BOS prefix).
      for (size_t i = prefix.size(); i < experts.size(); ++i) {
        ++r.confusion[d][static_cast<size_t>(experts[i])];
        ++r.total[d];
        if (experts[i] == label) ++r.correct[d];
        if (i > prefix.size()) {
          ++r.pairs;
          if (experts[i] == experts[i - 1]) ++r.same_as_previous;
        }
      }
    });
  }
  r.us_per_token = decode_us_per_token(router, rc);
  return r;
}

}  // namespace lookahead::moe
