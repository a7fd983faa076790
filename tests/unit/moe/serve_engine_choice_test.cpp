// `moe serve --scheduler/--cache/--budget`: names and budgets are validated; what needs the
// Read-ME serving engine (issue #5) is refused with a reason.
#include <gtest/gtest.h>

#include "common/error.h"
#include "moe/serve/engine_choice.h"

namespace lookahead::moe::serve {
namespace {

TEST(ServeEngineChoice, NamesRoundTripAndUnknownNamesAreErrors) {
  for (const char* s : {"sequential", "expert-aware", "decode-first", "prefill-first"})
    EXPECT_STREQ(scheduler_name(parse_scheduler(s)), s);
  for (const char* c : {"none", "belady", "lru", "random"}) EXPECT_STREQ(cache_policy_name(parse_cache_policy(c)), c);
  EXPECT_THROW(parse_scheduler("fifo"), lookahead::Error);
  EXPECT_THROW(parse_cache_policy("lfu"), lookahead::Error);
}

TEST(ServeEngineChoice, Budgets) {
  EXPECT_EQ(parse_budget("1048576").bytes, 1048576u);
  EXPECT_EQ(parse_budget("512MiB").bytes, 512ull << 20);
  EXPECT_EQ(parse_budget("2GB").bytes, 2000000000ull);
  EXPECT_EQ(parse_budget("3KiB").bytes, 3072u);
  EXPECT_EQ(parse_budget("3experts").experts, 3);
  EXPECT_EQ(parse_budget("k=5").experts, 5);
  for (const char* bad : {"", "0", "-1", "12XB", "MiB", "k=", "k=3MiB", "99999999999999999999GiB", "1.5GiB"})
    EXPECT_THROW(parse_budget(bad), lookahead::Error) << bad;
}

TEST(ServeEngineChoice, OnlyTheSequentialEngineRunsToday) {
  EXPECT_EQ(engine_unavailable_reason(SchedulerKind::SEQUENTIAL, CachePolicy::NONE, {}), "");
  EXPECT_NE(engine_unavailable_reason(SchedulerKind::EXPERT_AWARE, CachePolicy::NONE, {}).find("not yet available"),
            std::string::npos);
  EXPECT_NE(engine_unavailable_reason(SchedulerKind::SEQUENTIAL, CachePolicy::BELADY, {}).find("--cache belady"),
            std::string::npos);
  EXPECT_NE(engine_unavailable_reason(SchedulerKind::SEQUENTIAL, CachePolicy::NONE, parse_budget("1GiB")).find("--budget"),
            std::string::npos);
}

}  // namespace
}  // namespace lookahead::moe::serve
