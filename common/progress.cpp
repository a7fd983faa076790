#include "common/progress.h"

#include <unistd.h>

#include <cstdio>

#include <fmt/format.h>

namespace lookahead {

namespace {

double seconds_between(ProgressLog::Clock::time_point a, ProgressLog::Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

std::string format_rate(double per_second) {
  if (per_second >= 100000) return format_count(static_cast<uint64_t>(per_second)) + "/s";
  if (per_second >= 100) return fmt::format("{:.0f}/s", per_second);
  return fmt::format("{:.3g}/s", per_second);
}

}  // namespace

std::string format_count(uint64_t n) {
  if (n < 100000) return std::to_string(n);
  const char* suffix[] = {"k", "M", "G", "T"};
  double v = static_cast<double>(n);
  int i = -1;
  while (v >= 1000 && i < 3) v /= 1000, ++i;
  return fmt::format("{:.{}f}{}", v, v < 10 ? 2 : (v < 100 ? 1 : 0), suffix[i]);
}

std::string format_duration(double seconds) {
  if (!(seconds >= 0)) seconds = 0;
  const auto s = static_cast<uint64_t>(seconds + 0.5);
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
}

ProgressLog::ProgressLog(std::string label, uint64_t total, Clock::time_point start)
    : label_(std::move(label)), total_(total), start_(start), last_line_(start) {}

std::string ProgressLog::start_line() const { return fmt::format("{}: started ({})", label_, format_count(total_)); }

std::optional<std::string> ProgressLog::update(uint64_t done, Clock::time_point now) {
  if (done == 0 || total_ == 0 || done >= total_) return std::nullopt;  // the start and finish lines cover these
  const int decile = static_cast<int>(done * 10 / total_);
  const auto since = now - last_line_;
  const bool due = since >= kInterval || (decile > last_decile_ && since >= kMinGap);
  if (!due) return std::nullopt;
  last_line_ = now;
  last_decile_ = decile;
  const double elapsed = seconds_between(start_, now);
  const double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0;
  std::string line = fmt::format("{}: {}/{} ({}%)", label_, format_count(done), format_count(total_), done * 100 / total_);
  if (rate > 0)
    line += fmt::format(", {}, ETA {}", format_rate(rate), format_duration(static_cast<double>(total_ - done) / rate));
  return line;
}

std::string ProgressLog::finish_line(uint64_t done, Clock::time_point now) const {
  const double elapsed = seconds_between(start_, now);
  const std::string took = elapsed < 10 ? fmt::format("{:.1f}s", elapsed) : format_duration(elapsed);
  if (done < total_)
    return fmt::format("{}: stopped at {}/{} after {}", label_, format_count(done), format_count(total_), took);
  std::string line = fmt::format("{}: done {}/{} in {}", label_, format_count(done), format_count(total_), took);
  if (elapsed > 0 && done > 0) line += fmt::format(" ({})", format_rate(static_cast<double>(done) / elapsed));
  return line;
}

ProgressBar::ProgressBar(std::string label, uint64_t total, bool enabled)
    : label_(std::move(label)),
      total_(total),
      active_(enabled && isatty(STDERR_FILENO) == 1),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {
  if (enabled && !active_) {
    log_.emplace(label_, total_, start_);
    std::fprintf(stderr, "%s\n", log_->start_line().c_str());
    std::fflush(stderr);
  }
}

ProgressBar::~ProgressBar() { finish(); }

void ProgressBar::set(uint64_t done) {
  done_ = done;
  if (log_) {
    if (auto line = log_->update(done_, std::chrono::steady_clock::now())) {
      std::fprintf(stderr, "%s\n", line->c_str());
      std::fflush(stderr);
    }
    return;
  }
  if (!active_) return;
  auto now = std::chrono::steady_clock::now();
  if (now - last_draw_ < std::chrono::milliseconds(100) && done_ < total_) return;
  last_draw_ = now;
  draw();
}

void ProgressBar::draw() {
  const int width = 30;
  double fraction = total_ ? static_cast<double>(done_) / static_cast<double>(total_) : 0.0;
  if (fraction > 1.0) fraction = 1.0;
  int filled = static_cast<int>(fraction * width);
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  double eta = fraction > 0 ? elapsed * (1.0 - fraction) / fraction : 0.0;
  std::fprintf(stderr, "\r%s [%.*s%*s] %3d%% %llu/%llu  %.0fs left ", label_.c_str(), filled,
               "##############################", width - filled, "", static_cast<int>(fraction * 100),
               static_cast<unsigned long long>(done_), static_cast<unsigned long long>(total_), eta);
  std::fflush(stderr);
}

void ProgressBar::finish() {
  if (log_) {
    std::fprintf(stderr, "%s\n", log_->finish_line(done_, std::chrono::steady_clock::now()).c_str());
    std::fflush(stderr);
    log_.reset();
    return;
  }
  if (!active_) return;
  std::fprintf(stderr, "\r\033[K");
  std::fflush(stderr);
  active_ = false;
}

}  // namespace lookahead
