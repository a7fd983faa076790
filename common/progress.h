#pragma once
// A progress bar for long work (conversion, training, sweeps, trace replay).
//
// Contract: draws on stderr only when stderr is a terminal, at most ~10 times a second, and
// erases itself on finish(); silent otherwise, so piped and --json output stays clean.
#include <chrono>
#include <cstdint>
#include <string>

namespace lookahead {

class ProgressBar {
 public:
  ProgressBar(std::string label, uint64_t total, bool enabled = true);
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  void advance(uint64_t n = 1) { set(done_ + n); }
  void set(uint64_t done);
  void finish();

 private:
  void draw();
  std::string label_;
  uint64_t total_;
  uint64_t done_ = 0;
  bool active_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace lookahead
