// Sampling: greedy is argmax, seeded draws are reproducible, top-k/top-p restrict the support.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "common/error.h"
#include "moe/model/generate.h"
#include "moe/model/sampling.h"

using namespace lookahead::moe;

TEST(ModelSampling, GreedyIsArgmax) {
  std::vector<float> logits = {0.1f, 3.0f, -1.0f, 3.0f, 2.9f};
  Sampler s({0.0f, 40, 0.95f, 1}, 5);
  EXPECT_EQ(s.sample(logits.data()), 1);  // ties go to the lowest id
  EXPECT_EQ(argmax(logits.data(), 5), 1);
}

TEST(ModelSampling, SameSeedSameTokensDifferentSeedDiffers) {
  std::vector<float> logits(100);
  for (int i = 0; i < 100; ++i) logits[i] = std::sin(i * 0.7f);
  auto draw = [&](uint64_t seed) {
    Sampler s({1.0f, 0, 1.0f, seed}, 100);
    std::vector<int32_t> out;
    for (int i = 0; i < 50; ++i) out.push_back(s.sample(logits.data()));
    return out;
  };
  EXPECT_EQ(draw(42), draw(42));
  EXPECT_NE(draw(42), draw(43));
}

TEST(ModelSampling, TopKAndTopPRestrictSupport) {
  std::vector<float> logits = {5.0f, 4.0f, 1.0f, 0.0f, -1.0f};
  Sampler k2({1.0f, 2, 1.0f, 9}, 5);
  Sampler p({1.0f, 0, 0.5f, 9}, 5);  // token 0 alone has ~72% of the mass
  std::vector<int> counts(5, 0);
  for (int i = 0; i < 2000; ++i) {
    const int32_t a = k2.sample(logits.data());
    ASSERT_TRUE(a == 0 || a == 1);
    ++counts[static_cast<size_t>(a)];
    ASSERT_EQ(p.sample(logits.data()), 0);
  }
  // P(0 | top-2) = 1 / (1 + e^-1) = 0.731.
  EXPECT_NEAR(counts[0] / 2000.0, 0.731, 0.04);
}

TEST(ModelSampling, ParseTokenIds) {
  EXPECT_EQ(parse_token_ids("1, 2,3", "x"), (std::vector<int32_t>{1, 2, 3}));
  EXPECT_THROW(parse_token_ids("1,a", "x"), lookahead::Error);
  EXPECT_THROW(parse_token_ids("-4", "x"), lookahead::Error);
}

// One range check for the CLI flags and the HTTP API (issue 15 item 7).
TEST(ModelSampling, CheckSamplingRangesAndFlagNames) {
  EXPECT_FALSE(check_sampling({0.0f, 0, 1.0f, 0}));
  EXPECT_FALSE(check_sampling({2.0f, 40, 0.5f, 0}));
  EXPECT_STREQ(check_sampling({-1.0f, 40, 0.95f, 0})->field, "temperature");
  EXPECT_STREQ(check_sampling({INFINITY, 40, 0.95f, 0})->field, "temperature");
  EXPECT_STREQ(check_sampling({NAN, 40, 0.95f, 0})->field, "temperature");
  EXPECT_STREQ(check_sampling({0.5f, 40, 5.0f, 0})->field, "top_p");
  EXPECT_STREQ(check_sampling({0.5f, 40, 0.0f, 0})->field, "top_p");
  EXPECT_STREQ(check_sampling({0.5f, -3, 0.9f, 0})->field, "top_k");
  try {
    require_valid_sampling_flags({0.5f, -3, 0.9f, 0});
    FAIL() << "expected an error";
  } catch (const lookahead::Error& e) {
    EXPECT_STREQ(e.what(), "--top-k: -3 is below 0 (0 = all tokens)");
  }
  EXPECT_THROW(Sampler({-1.0f, 40, 0.95f, 0}, 5), lookahead::Error);
}
