// Activation statistics and expert extraction on the real SmolLM2 model with a tiny two-domain
// corpus: shapes, token counts, and that different domains light up different neurons.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "moe/checkpoint/model_source.h"
#include "moe/model/llama.h"
#include "moe/refactor/activation_stats.h"
#include "moe/refactor/expert_extraction.h"

namespace lookahead::moe {

TEST(RefactorStatsRealModel, TwoDomainsGiveDistinctExperts) {
  const std::string model_path = std::string(LOOKAHEAD_MODELS_DIR) + "/SmolLM2-135M-Instruct.Q4_1.gguf";
  auto dir = std::filesystem::temp_directory_path() / ("lookahead_stats_corpus_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir / "code");
  std::filesystem::create_directories(dir / "german");
  std::ofstream(dir / "code" / "calibration.txt")
      << "def fibonacci(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n\n"
         "class Stack:\n    def __init__(self):\n        self.items = []\n    def push(self, x):\n"
         "        self.items.append(x)\n";
  std::ofstream(dir / "german" / "calibration.txt")
      << "Wenn die Zeit kommt, in der man könnte, ist die Zeit vorbei, in der man kann.\n\n"
         "Kluge Leute erkennt man daran, daß sie bei einem Anfall von Dummheit schweigen.\n";

  auto source = open_model(model_path);
  LlamaModel model(*source);
  StatsOptions opt;
  opt.ctx = 32;
  opt.tokens_per_domain = 48;
  opt.progress = false;
  ActivationStats stats = collect_activation_stats(model, open_corpus(dir.string(), "calibration"), opt);
  ASSERT_EQ(stats.domains, (std::vector<std::string>{"code", "german"}));
  EXPECT_EQ(stats.n_layer, 30);
  EXPECT_EQ(stats.n_ff, 1536);
  EXPECT_EQ(stats.mean_abs.size(), 2u * 30 * 1536);
  for (int64_t t : stats.tokens) EXPECT_GT(t, 20);
  for (float v : stats.mean_abs) ASSERT_TRUE(std::isfinite(v) && v >= 0);

  ExpertSets sets = extract_experts(stats, 0.5);
  for (int l = 0; l < 30; ++l) {
    for (const auto& e : sets.neurons[l]) {
      EXPECT_LE(e.size(), 767u);  // strictly above the 768th largest
      EXPECT_GE(e.size(), 700u);  // ties are rare in real activations
    }
    // Code and German differ: the permanent expert is a strict subset of each domain's set.
    EXPECT_LT(sets.permanent[l].size(), sets.neurons[l][0].size());
  }
  std::filesystem::remove_all(dir);
}

}  // namespace lookahead::moe
