#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "common/error.h"
#include "moe/refactor/expert_extraction.h"

namespace lookahead::moe {

TEST(RefactorTopNeurons, StrictlyAboveTheKthLargestLikeThePaper) {
  // k = 2 of 4 distinct values: only the largest is strictly above the 2nd largest (paper: 5503 of 11008).
  float v[] = {0.1f, 0.9f, 0.5f, 0.3f};
  EXPECT_EQ(top_neurons(v, 4, 2), (std::vector<int32_t>{1}));
  EXPECT_EQ(top_neurons(v, 4, 3), (std::vector<int32_t>{1, 2}));
  // Ties at the threshold are all left out.
  float tie[] = {0.5f, 0.5f, 0.5f, 1.0f};
  EXPECT_EQ(top_neurons(tie, 4, 2), (std::vector<int32_t>{3}));
}

// A synthetic 2-layer, 8-neuron model with three domains whose statistics are built so the top
// sets are known by construction.
static ActivationStats synthetic_stats() {
  ActivationStats s;
  s.n_layer = 2;
  s.n_ff = 8;
  s.model = "synthetic";
  s.domains = {"a", "b", "c"};
  s.tokens = {10, 20, 30};
  // keep 0.5 -> k = 4 -> each domain keeps the 3 neurons above its 4th largest value.
  const float layer0[3][8] = {{9, 8, 7, 1, 1, 1, 1, 6},   // a: {0,1,2}
                              {9, 8, 1, 7, 1, 1, 1, 6},   // b: {0,1,3}
                              {9, 1, 8, 7, 1, 1, 1, 6}};  // c: {0,2,3}
  const float layer1[3][8] = {{1, 1, 1, 1, 9, 8, 7, 6},   // a: {4,5,6}
                              {1, 1, 1, 1, 9, 8, 7, 6},   // b: {4,5,6}
                              {1, 1, 1, 1, 9, 8, 6, 7}};  // c: {4,5,7}
  for (int d = 0; d < 3; ++d) {
    s.mean_abs.insert(s.mean_abs.end(), layer0[d], layer0[d] + 8);
    s.mean_abs.insert(s.mean_abs.end(), layer1[d], layer1[d] + 8);
  }
  return s;
}

// Quantized exports: each top set is filled up to whole blocks with the domain's next most active
// neurons (ties to the lower index), never beyond n.
TEST(RefactorExtractExperts, BlockRoundingAddsTheNextMostActiveNeurons) {
  const float v[] = {0.1f, 0.9f, 0.5f, 0.3f, 0.5f, 0.2f};
  EXPECT_EQ(round_up_to_blocks({1}, v, 6, 1), (std::vector<int32_t>{1}));
  EXPECT_EQ(round_up_to_blocks({1}, v, 6, 2), (std::vector<int32_t>{1, 2}));  // 0.5 at 2 and 4: lower index
  EXPECT_EQ(round_up_to_blocks({1}, v, 6, 3), (std::vector<int32_t>{1, 2, 4}));
  EXPECT_EQ(round_up_to_blocks({1, 2}, v, 6, 4), (std::vector<int32_t>{1, 2, 3, 4}));
  EXPECT_EQ(round_up_to_blocks({1, 2, 4}, v, 6, 4), (std::vector<int32_t>{1, 2, 3, 4}));
  EXPECT_EQ(round_up_to_blocks({1, 2, 4}, v, 6, 32), (std::vector<int32_t>{0, 1, 2, 3, 4, 5}));  // capped at n
  EXPECT_EQ(round_up_to_blocks({1, 2}, v, 6, 2), (std::vector<int32_t>{1, 2}));  // already whole

  // On the synthetic stats: every set is a superset of the paper's and a multiple of the block.
  const ExpertSets paper = extract_experts(synthetic_stats(), 0.5);
  const ExpertSets blocked = extract_experts(synthetic_stats(), 0.5, 4);
  for (int l = 0; l < 2; ++l)
    for (int e = 0; e < 3; ++e) {
      const auto& a = paper.neurons[l][e];
      const auto& b = blocked.neurons[l][e];
      EXPECT_EQ(b.size(), 4u) << l << " " << e;
      EXPECT_TRUE(std::includes(b.begin(), b.end(), a.begin(), a.end())) << l << " " << e;
    }
  EXPECT_EQ(blocked.neurons[0][0], (std::vector<int32_t>{0, 1, 2, 7}));  // a's 4th: neuron 7 (6)
  EXPECT_THROW(extract_experts(synthetic_stats(), 0.5, 0), Error);
}

TEST(RefactorExtractExperts, ExpectedNeuronSetsAndPermanentExpert) {
  ExpertSets sets = extract_experts(synthetic_stats(), 0.5);
  ASSERT_EQ(sets.neurons.size(), 2u);
  EXPECT_EQ(sets.neurons[0][0], (std::vector<int32_t>{0, 1, 2}));
  EXPECT_EQ(sets.neurons[0][1], (std::vector<int32_t>{0, 1, 3}));
  EXPECT_EQ(sets.neurons[0][2], (std::vector<int32_t>{0, 2, 3}));
  EXPECT_EQ(sets.permanent[0], (std::vector<int32_t>{0}));
  EXPECT_EQ(sets.neurons[1][2], (std::vector<int32_t>{4, 5, 7}));
  EXPECT_EQ(sets.permanent[1], (std::vector<int32_t>{4, 5}));

  OverlapReport r = overlap_report(sets);
  EXPECT_DOUBLE_EQ(r.permanent_share[0], 1.0 / 8);
  EXPECT_DOUBLE_EQ(r.permanent_share[1], 2.0 / 8);
  EXPECT_DOUBLE_EQ(r.expert_share[0], 3.0 / 8);
  // Layer 0: a,b share {0,1} of union {0,1,2,3} = 0.5; layer 1: a == b -> 1. Mean 0.75.
  EXPECT_DOUBLE_EQ(r.jaccard[0][1], 0.75);
  EXPECT_DOUBLE_EQ(r.jaccard[2][2], 1.0);
  // Layer 0: neuron 0 in 3 experts, 1/2/3 in 2, 4..7 in 0. Layer 1: 4,5 in 3; 6 in 2; 7 in 1; 0..3 in 0.
  EXPECT_EQ(r.multiplicity, (std::vector<int64_t>{8, 1, 4, 3}));
}

TEST(RefactorExtractExperts, KeepOutsideUnitIntervalIsAnError) {
  EXPECT_THROW(extract_experts(synthetic_stats(), 0.0), Error);
  EXPECT_THROW(extract_experts(synthetic_stats(), 1.5), Error);
  EXPECT_NO_THROW(extract_experts(synthetic_stats(), 1.0));
}

TEST(RefactorActivationStats, SaveLoadRoundTripIsExact) {
  auto path = std::filesystem::temp_directory_path() / ("lookahead_stats_" + std::to_string(::getpid()) + ".gguf");
  ActivationStats s = synthetic_stats();
  s.save(path.string());
  ActivationStats back = ActivationStats::load(path.string());
  EXPECT_EQ(back.domains, s.domains);
  EXPECT_EQ(back.tokens, s.tokens);
  EXPECT_EQ(back.n_layer, 2);
  EXPECT_EQ(back.n_ff, 8);
  EXPECT_EQ(back.mean_abs, s.mean_abs);
  std::filesystem::remove(path);
}

TEST(RefactorActivationRecorder, MeanOfAbsoluteActivations) {
  ActivationRecorder rec(1, 3);
  const float a[2][3] = {{1, -2, 0}, {-3, 2, 4}};
  rec.on_ffn_activation(0, &a[0][0], 2, 3);
  EXPECT_EQ(rec.means(2), (std::vector<float>{2, 2, 2}));
}

TEST(RefactorCorpus, MissingAndEmptyDomainsAreErrors) {
  auto dir = std::filesystem::temp_directory_path() / ("lookahead_corpus_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir / "code");
  std::filesystem::create_directories(dir / "empty");
  { std::FILE* f = std::fopen((dir / "code" / "calibration.txt").c_str(), "w"); std::fputs("def f(): pass\n", f); std::fclose(f); }
  { std::FILE* f = std::fopen((dir / "empty" / "calibration.txt").c_str(), "w"); std::fclose(f); }
  EXPECT_EQ(open_corpus(dir.string(), "calibration", {"code"}).size(), 1u);
  try {
    open_corpus(dir.string(), "calibration", {"missing"});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing"), std::string::npos);
  }
  EXPECT_THROW(open_corpus(dir.string(), "calibration", {"empty"}), Error);
  EXPECT_THROW(open_corpus((dir / "nope").string(), "calibration"), Error);
  std::filesystem::remove_all(dir);
}

}  // namespace lookahead::moe
