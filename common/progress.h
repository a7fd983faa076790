#pragma once
// Progress for long work (conversion, training, sweeps, trace replay, perplexity, bench, refactor).
//
// Contract: on stderr only. When stderr is a terminal, a bar redrawn at most ~10 times a second
// that erases itself on finish(). Otherwise (a log file, a pipe, nohup) plain lines, so logs show
// the work too: one when the stage starts, one when it ends (with its time and rate), and in between
// one at most every 10 s or at each new 10% (at least 1 s apart), with done/total, rate and ETA.
// Nothing goes to stdout, so piped and --json output stays clean.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace lookahead {

// The plain lines of a stage, for logs. Pure: the caller passes the time, so tests can inject it.
class ProgressLog {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::seconds kInterval{10};    // a line at least this often while work advances
  static constexpr std::chrono::seconds kMinGap{1};       // a new 10% gets a line only this long after the last

  ProgressLog(std::string label, uint64_t total, Clock::time_point start);

  // "LABEL: started (TOTAL)".
  std::string start_line() const;
  // The line for `done` of total at `now`, when one is due: "LABEL: 40/100 (40%), 12.3/s, ETA 5s".
  std::optional<std::string> update(uint64_t done, Clock::time_point now);
  // "LABEL: done 100/100 in 8.1s (12.3/s)", or "LABEL: stopped at 40/100 after 3.2s" when unfinished.
  std::string finish_line(uint64_t done, Clock::time_point now) const;

 private:
  std::string label_;
  uint64_t total_;
  Clock::time_point start_;
  Clock::time_point last_line_;
  int last_decile_ = 0;
};

// Counts with k/M/G suffixes from 100000 up, so byte totals stay readable.
std::string format_count(uint64_t n);
// Seconds as "42s", "3m05s" or "1h02m".
std::string format_duration(double seconds);

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
  bool active_;   // drawing the terminal bar
  std::optional<ProgressLog> log_;  // writing plain lines (stderr not a terminal)
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace lookahead
