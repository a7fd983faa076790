#pragma once
// How the pre-gating router of a Read-ME model routes held-out text (`lookahead moe router-eval`):
// accuracy against domain labels, the confusion matrix, temporal locality (the fraction of tokens
// routed like the token before them; paper: 71%) and the router's own decode cost per token.
//
// Contract: each domain's text is tokenized up to `tokens_per_domain` tokens and routed in windows
// of `ctx` positions (the tokenizer's BOS prefix first, not scored); a domain's label is the expert
// named like it. The decode cost routes 256 tokens (at most the router's positions) one at a time
// with the KV cache. `ctx` beyond the router's positions is a lookahead::Error.
#include <cstdint>
#include <vector>

#include "moe/model/readme_model.h"
#include "moe/refactor/corpus.h"

namespace lookahead::moe {

struct RouterEval {
  std::vector<std::vector<int64_t>> confusion;  // [domain][expert]: tokens routed there
  std::vector<int64_t> correct, total;          // [domain]: tokens routed to the domain's expert, all tokens
  int64_t same_as_previous = 0, pairs = 0;      // consecutive scored tokens routed alike, all such pairs
  double us_per_token = 0;                      // router decode cost

  double accuracy() const;
  double locality() const;
  double domain_accuracy(size_t d) const;  // a fraction; 0 for a domain without tokens
};

RouterEval evaluate_router(const ReadMeModel& model, const std::vector<CorpusDomain>& domains,
                           int64_t tokens_per_domain, int64_t ctx);

}  // namespace lookahead::moe
