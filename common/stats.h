#pragma once
// Small statistics used by benchmarks and simulators: percentiles over a sample.
#include <algorithm>
#include <cmath>
#include <vector>

namespace lookahead {

// Percentile p in [0, 100] with linear interpolation between closest ranks (numpy's default).
// Returns NaN for an empty sample. Takes a copy because it sorts.
inline double percentile(std::vector<double> values, double p) {
  if (values.empty()) return std::nan("");
  std::sort(values.begin(), values.end());
  double rank = (p / 100.0) * static_cast<double>(values.size() - 1);
  size_t lo = static_cast<size_t>(std::floor(rank));
  size_t hi = std::min(lo + 1, values.size() - 1);
  double frac = rank - static_cast<double>(lo);
  return values[lo] + (values[hi] - values[lo]) * frac;
}

inline double mean(const std::vector<double>& values) {
  if (values.empty()) return std::nan("");
  double sum = 0;
  for (double v : values) sum += v;
  return sum / static_cast<double>(values.size());
}

}  // namespace lookahead
