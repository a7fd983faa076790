#include "bridge/routing_source.h"

#include <cmath>
#include <sstream>

#include "common/error.h"
#include "moe/model/readme_model.h"
#include "moe/refactor/corpus.h"
#include "moe/tokenize/tokenizer.h"
#include "net/route/path_selection.h"

namespace lookahead::bridge {

std::vector<int32_t> route_text(const moe::ReadMeModel& model, const std::string& text, int64_t tokens, int64_t ctx,
                                const std::string& where) {
  if (tokens < 1) fail("tokens to route must be >= 1 (got {})", tokens);
  const moe::RouterConfig& rc = model.config().router;
  if (ctx < 2 || ctx > rc.max_positions) fail("--ctx must be in [2, {}] (the router's positions), got {}", rc.max_positions, ctx);
  const moe::Tokenizer& tok = model.source().tokenizer();
  const std::vector<int32_t> prefix = tok.encode("", true, false);
  if (static_cast<int64_t>(prefix.size()) >= ctx) fail("--ctx {} leaves no room after the {}-token prefix", ctx, prefix.size());
  const std::vector<int32_t> ids = moe::tokenize_prefix(tok, text, tokens);
  if (static_cast<int64_t>(ids.size()) < tokens)
    fail("{}: has {} tokens, fewer than the {} the batches need", where, ids.size(), tokens);
  moe::RouterContext router(rc, model.router());
  std::vector<int32_t> experts;
  experts.reserve(static_cast<size_t>(tokens));
  moe::for_each_window(ids, prefix, ctx, tokens, [&](const std::vector<int32_t>& window, int64_t) {
    router.truncate(0);
    const std::vector<int32_t>& e = router.route(window.data(), static_cast<int64_t>(window.size()));
    experts.insert(experts.end(), e.begin() + static_cast<std::ptrdiff_t>(prefix.size()), e.end());  // text tokens only
  });
  experts.resize(static_cast<size_t>(tokens));
  return experts;
}

std::vector<int32_t> read_expert_trace(const std::string& path, int experts) {
  std::istringstream in(moe::read_text_file(path));
  std::vector<int32_t> out;
  std::string line;
  for (int line_no = 1; std::getline(in, line); ++line_no) {
    if (auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    std::istringstream words(line);
    for (std::string w; words >> w;) {
      size_t used = 0;
      long long v = -1;
      try {
        v = std::stoll(w, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != w.size() || v < 0 || v > 1'000'000)
        fail("{}:{}: '{}' is not an expert id (a non-negative integer)", path, line_no, w);
      if (experts > 0 && v >= experts) fail("{}:{}: expert {} out of range ({} experts)", path, line_no, v, experts);
      out.push_back(static_cast<int32_t>(v));
    }
  }
  if (out.empty()) fail("{}: no expert ids", path);
  return out;
}

std::vector<int32_t> zipf_experts(int experts, double skew, uint64_t tokens, uint64_t seed) {
  if (experts < 1) fail("--experts must be >= 1 (got {})", experts);
  if (!(skew >= 0) || !std::isfinite(skew)) fail("--zipf must be a finite number >= 0 (got {})", skew);
  std::vector<double> cdf(static_cast<size_t>(experts));
  double sum = 0;
  for (int e = 0; e < experts; ++e) cdf[static_cast<size_t>(e)] = sum += 1.0 / std::pow(e + 1.0, skew);
  std::vector<int32_t> out(tokens);
  for (uint64_t i = 0; i < tokens; ++i) {
    // 53 random bits from a counter-based hash: the same seed gives the same draws on any platform.
    const double u = static_cast<double>(net::splitmix64(seed * 0x9e3779b97f4a7c15ull + i) >> 11) * 0x1.0p-53 * sum;
    int e = 0;
    while (e + 1 < experts && cdf[static_cast<size_t>(e)] <= u) ++e;
    out[i] = e;
  }
  return out;
}

}  // namespace lookahead::bridge
