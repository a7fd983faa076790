// The serving commands' --scheduler / --cache names and --budget values.
#include <gtest/gtest.h>

#include "common/error.h"
#include "moe/serving/engine_choice.h"
#include "moe/serving/expert_cache.h"
#include "moe/serving/scheduler.h"

namespace lookahead::moe::serving {
namespace {

TEST(ServeEngineChoice, SchedulerAndCacheNamesRoundTripAndUnknownNamesAreErrors) {
  for (const char* s : {"expert-aware", "decode-first", "prefill-first"})
    EXPECT_STREQ(serving::scheduler_name(serving::parse_scheduler(s)), s);
  for (const char* c : {"none", "belady", "lru", "random"})
    EXPECT_STREQ(serving::cache_policy_name(serving::parse_cache_policy(c)), c);
  EXPECT_THROW(serving::parse_scheduler("fifo"), lookahead::Error);
  EXPECT_THROW(serving::parse_scheduler("sequential"), lookahead::Error);
  EXPECT_THROW(serving::parse_cache_policy("lfu"), lookahead::Error);
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

}  // namespace
}  // namespace lookahead::moe::serving
