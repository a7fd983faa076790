// ProgressLog: the plain progress lines written when stderr is not a terminal (issue 15 item 10),
// with the clock injected.
#include <gtest/gtest.h>

#include "common/progress.h"

namespace lookahead {
namespace {

using Clock = ProgressLog::Clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(ProgressLog, StartAndFinishLines) {
  const Clock::time_point t0{};
  ProgressLog log("perplexity", 40, t0);
  EXPECT_EQ(log.start_line(), "perplexity: started (40)");
  EXPECT_EQ(log.finish_line(40, t0 + seconds(20)), "perplexity: done 40/40 in 20s (2/s)");
  EXPECT_EQ(log.finish_line(40, t0 + milliseconds(2500)), "perplexity: done 40/40 in 2.5s (16/s)");
  EXPECT_EQ(log.finish_line(10, t0 + seconds(5)), "perplexity: stopped at 10/40 after 5.0s");
}

TEST(ProgressLog, ALineAtEachNewTenthButNotMoreThanOncePerSecond) {
  const Clock::time_point t0{};
  ProgressLog log("stats", 100, t0);
  EXPECT_FALSE(log.update(5, t0 + seconds(1)));  // still in the first tenth
  auto line = log.update(10, t0 + seconds(2));
  ASSERT_TRUE(line);
  EXPECT_EQ(*line, "stats: 10/100 (10%), 5/s, ETA 18s");
  EXPECT_FALSE(log.update(20, t0 + milliseconds(2500)));  // a new tenth, but only 0.5 s later
  EXPECT_EQ(log.update(25, t0 + seconds(3) + milliseconds(400)).value_or(""), "stats: 25/100 (25%), 7.35/s, ETA 10s");
  EXPECT_FALSE(log.update(28, t0 + seconds(4)));  // same tenth
  EXPECT_TRUE(log.update(30, t0 + seconds(4) + milliseconds(500)));
  EXPECT_FALSE(log.update(100, t0 + seconds(60)));  // the end is finish_line's
}

TEST(ProgressLog, ALineEveryTenSecondsWhenTenthsAreSlow) {
  const Clock::time_point t0{};
  ProgressLog log("fit code", 1000, t0);
  EXPECT_FALSE(log.update(1, t0 + seconds(9)));
  auto line = log.update(2, t0 + seconds(10));
  ASSERT_TRUE(line);
  EXPECT_EQ(*line, "fit code: 2/1000 (0%), 0.2/s, ETA 1h23m");
  EXPECT_FALSE(log.update(3, t0 + seconds(19)));
  EXPECT_TRUE(log.update(3, t0 + seconds(20)));
}

TEST(ProgressLog, LargeCountsAndDurationsAreReadable) {
  EXPECT_EQ(format_count(99999), "99999");
  EXPECT_EQ(format_count(270'000'000), "270M");
  EXPECT_EQ(format_count(1'500'000), "1.50M");
  EXPECT_EQ(format_duration(42), "42s");
  EXPECT_EQ(format_duration(185), "3m05s");
  EXPECT_EQ(format_duration(3720), "1h02m");
  const Clock::time_point t0{};
  ProgressLog log("convert -> f16", 270'000'000, t0);
  EXPECT_EQ(*log.update(135'000'000, t0 + seconds(3)), "convert -> f16: 135M/270M (50%), 45.0M/s, ETA 3s");
}

}  // namespace
}  // namespace lookahead
