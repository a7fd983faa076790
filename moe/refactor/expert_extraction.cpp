#include "moe/refactor/expert_extraction.h"

#include <algorithm>

#include "common/error.h"

namespace lookahead::moe {

std::vector<int32_t> top_neurons(const float* values, int32_t n, int32_t k) {
  LOOKAHEAD_CHECK(k >= 1 && k <= n);
  std::vector<float> sorted(values, values + n);
  std::nth_element(sorted.begin(), sorted.begin() + (k - 1), sorted.end(), std::greater<float>());
  const float threshold = sorted[static_cast<size_t>(k - 1)];  // the k-th largest value
  std::vector<int32_t> out;
  out.reserve(static_cast<size_t>(k));
  for (int32_t j = 0; j < n; ++j)
    if (values[j] > threshold) out.push_back(j);
  return out;
}

std::vector<int32_t> round_up_to_blocks(std::vector<int32_t> top, const float* values, int32_t n, int32_t block) {
  LOOKAHEAD_CHECK(block >= 1);
  const auto want = std::min<int64_t>(n, (static_cast<int64_t>(top.size()) + block - 1) / block * block);
  if (static_cast<int64_t>(top.size()) == want) return top;
  std::vector<char> taken(static_cast<size_t>(n), 0);
  for (int32_t j : top) taken[static_cast<size_t>(j)] = 1;
  std::vector<int32_t> rest;
  for (int32_t j = 0; j < n; ++j)
    if (!taken[static_cast<size_t>(j)]) rest.push_back(j);
  const auto extra = static_cast<size_t>(want - static_cast<int64_t>(top.size()));
  std::partial_sort(rest.begin(), rest.begin() + static_cast<std::ptrdiff_t>(extra), rest.end(),
                    [values](int32_t a, int32_t b) { return values[a] != values[b] ? values[a] > values[b] : a < b; });
  top.insert(top.end(), rest.begin(), rest.begin() + static_cast<std::ptrdiff_t>(extra));
  std::sort(top.begin(), top.end());
  return top;
}

ExpertSets extract_experts(const ActivationStats& stats, double keep, int32_t block) {
  if (!(keep > 0.0 && keep <= 1.0)) fail("--keep must lie in (0, 1] (got {})", keep);
  if (block < 1) fail("expert block size must be >= 1 (got {})", block);
  ExpertSets sets;
  sets.n_layer = stats.n_layer;
  sets.n_ff = stats.n_ff;
  sets.keep = keep;
  sets.experts = stats.domains;
  const int32_t k = std::max<int32_t>(1, static_cast<int32_t>(keep * stats.n_ff));
  sets.neurons.resize(static_cast<size_t>(stats.n_layer));
  sets.permanent.resize(static_cast<size_t>(stats.n_layer));
  for (int32_t l = 0; l < stats.n_layer; ++l)
    for (size_t e = 0; e < stats.domains.size(); ++e)
      sets.neurons[l].push_back(
          round_up_to_blocks(top_neurons(stats.row(e, l), stats.n_ff, k), stats.row(e, l), stats.n_ff, block));
  update_permanent(sets);
  return sets;
}

void update_permanent(ExpertSets& sets) {
  sets.permanent.assign(sets.neurons.size(), {});
  for (size_t l = 0; l < sets.neurons.size(); ++l) {
    if (sets.neurons[l].empty()) continue;
    std::vector<int32_t> common = sets.neurons[l][0];
    for (size_t e = 1; e < sets.neurons[l].size(); ++e) {
      std::vector<int32_t> next;
      std::set_intersection(common.begin(), common.end(), sets.neurons[l][e].begin(), sets.neurons[l][e].end(),
                            std::back_inserter(next));
      common = std::move(next);
    }
    sets.permanent[l] = std::move(common);
  }
}

OverlapReport overlap_report(const ExpertSets& sets) {
  const size_t n_exp = sets.experts.size();
  OverlapReport r;
  r.jaccard.assign(n_exp, std::vector<double>(n_exp, 0.0));
  r.multiplicity.assign(n_exp + 1, 0);
  std::vector<int32_t> count(static_cast<size_t>(sets.n_ff));
  for (int32_t l = 0; l < sets.n_layer; ++l) {
    r.permanent_share.push_back(static_cast<double>(sets.permanent[l].size()) / sets.n_ff);
    double mean_size = 0;
    std::fill(count.begin(), count.end(), 0);
    for (size_t a = 0; a < n_exp; ++a) {
      const auto& A = sets.neurons[l][a];
      mean_size += static_cast<double>(A.size());
      for (int32_t j : A) ++count[static_cast<size_t>(j)];
      for (size_t b = 0; b < n_exp; ++b) {
        const auto& B = sets.neurons[l][b];
        std::vector<int32_t> both;
        std::set_intersection(A.begin(), A.end(), B.begin(), B.end(), std::back_inserter(both));
        double uni = static_cast<double>(A.size() + B.size() - both.size());
        r.jaccard[a][b] += (uni > 0 ? static_cast<double>(both.size()) / uni : 1.0) / sets.n_layer;
      }
    }
    r.expert_share.push_back(mean_size / static_cast<double>(n_exp) / sets.n_ff);
    for (int32_t c : count) ++r.multiplicity[static_cast<size_t>(c)];
  }
  return r;
}

}  // namespace lookahead::moe
