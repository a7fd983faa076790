// A GPT training iteration as jobs (net/workload/gpt.h): the presets' parameter counts, DDP-style
// buckets (sizes, order, readiness from the 6N compute rule), the all-reduce chain, bad input; and
// the jobs run on the simulator.
#include <gtest/gtest.h>

#include "common/error.h"
#include "net/analysis/paper_fabrics.h"
#include "net/analysis/repro.h"
#include "net/workload/gpt.h"

using namespace lookahead::net;

TEST(WorkloadGpt, PresetsHaveTheirPublishedParameterCounts) {
  // GPT-2 small: 124M with its token embedding (117M is the paper's older count); Llama 7B and 13B.
  EXPECT_EQ(gpt_model("gpt-117m").params(), 12 * (4 * 768 * 768 + 2 * 768 * 3072) + 50257 * 768);
  EXPECT_NEAR(static_cast<double>(gpt_model("llama-7b").params()), 6.74e9, 0.01e9);
  EXPECT_NEAR(static_cast<double>(gpt_model("llama-13b").params()), 13.0e9, 0.05e9);
  EXPECT_THROW(gpt_model("gpt-5"), lookahead::Error);
}

TEST(WorkloadGpt, BucketsFollowTheBackwardPassAndChainInLaunchOrder) {
  GptIterationSpec s;
  s.model = gpt_model("llama-7b");
  s.layers = 4;
  s.ranks = 16;
  s.first_host = 2;
  s.bucket_bytes = 600ull << 20;
  const GptIteration it = gpt_iteration(s);
  const GptModel& m = s.model;
  EXPECT_EQ(it.params, 4 * m.block_params() + 2 * m.vocab * m.d_model);
  // 6N: forward 2 x params x tokens, backward twice that.
  const double rate = s.tflops * 1e12 * s.mfu / 1e6;
  EXPECT_NEAR(it.forward_us, 2.0 * static_cast<double>(it.params) * 2048 / rate, 1e-6);
  EXPECT_NEAR(it.backward_us, 2 * it.forward_us, 1e-6);
  // Units in backward order: head (262 MB), block3..block0 (405 MB each), embedding (262 MB):
  // [head, block3] 667 MB, [block2, block1] 810 MB, [block0, embedding] 667 MB.
  ASSERT_EQ(it.buckets.size(), 3u);
  EXPECT_EQ(it.buckets[0].first, "head");
  EXPECT_EQ(it.buckets[0].last, "block3");
  EXPECT_EQ(it.buckets[1].first, "block2");
  EXPECT_EQ(it.buckets[2].last, "embedding");
  uint64_t total = 0;
  for (size_t k = 0; k < it.buckets.size(); ++k) {
    total += it.buckets[k].bytes;
    if (k + 1 < it.buckets.size()) {
      EXPECT_GE(it.buckets[k].bytes, s.bucket_bytes);
    }
    if (k > 0) {
      EXPECT_GT(it.buckets[k].ready_us, it.buckets[k - 1].ready_us);
    }
    const Job& job = it.jobs[k];
    EXPECT_EQ(job.name, "bucket" + std::to_string(k));
    EXPECT_EQ(job.collective.message_bytes, it.buckets[k].bytes);
    EXPECT_EQ(job.collective.ranks, 16);
    EXPECT_EQ(job.hosts.front(), 2);
    EXPECT_EQ(job.hosts.back(), 17);
    EXPECT_EQ(job.after, k == 0 ? std::vector<int>{} : std::vector<int>{static_cast<int>(k) - 1});
    EXPECT_EQ(job.start_ps, static_cast<uint64_t>(it.buckets[k].ready_us * 1e6));
  }
  EXPECT_EQ(total, static_cast<uint64_t>(it.params) * 2);
  EXPECT_NEAR(it.buckets.back().ready_us, it.forward_us + it.backward_us, 1e-3);
  // Tied embeddings (GPT-2): no head unit; the embedding is last.
  s.model = gpt_model("gpt-117m");
  s.layers = 0;
  s.bucket_bytes = 1;
  const GptIteration g = gpt_iteration(s);
  ASSERT_EQ(g.buckets.size(), 13u);  // one per unit: 12 blocks + the embedding
  EXPECT_EQ(g.buckets.front().first, "block11");
  EXPECT_EQ(g.buckets.back().first, "embedding");
}

TEST(WorkloadGpt, BadInputNamesTheField) {
  GptIterationSpec s;
  s.model = gpt_model("gpt-117m");
  s.ranks = 8;
  EXPECT_NO_THROW(gpt_iteration(s));
  auto bad = [&](auto change) {
    GptIterationSpec b = s;
    change(b);
    EXPECT_THROW(gpt_iteration(b), lookahead::Error);
  };
  bad([](GptIterationSpec& b) { b.ranks = 1; });
  bad([](GptIterationSpec& b) { b.layers = 13; });
  bad([](GptIterationSpec& b) { b.layers = -1; });
  bad([](GptIterationSpec& b) { b.tokens_per_rank = 0; });
  bad([](GptIterationSpec& b) { b.mfu = 1.5; });
  bad([](GptIterationSpec& b) { b.tflops = 0; });
  bad([](GptIterationSpec& b) { b.bucket_bytes = 0; });
  bad([](GptIterationSpec& b) { b.grad_bytes = 3; });
}

TEST(WorkloadGpt, TheIterationRunsOnTheSimulatorAndEndsAfterTheBackwardPass) {
  LeafSpineSpec fabric;
  fabric.leaves = fabric.spines = fabric.hosts_per_leaf = 4;
  GptIterationSpec s;
  s.model = gpt_model("gpt-117m");
  s.layers = 1;
  s.ranks = 16;
  s.algorithm = collective::Algorithm::HALVING_DOUBLING;
  s.tokens_per_rank = 64;  // a short compute phase, so the run is quick
  const GptIteration it = gpt_iteration(s);
  analysis::ReproPoint p;
  p.fabric = "gpt";
  p.topology = build_leaf_spine(fabric);
  p.jobs = it.jobs;
  p.scheme = "spray";
  p.config = analysis::paper_network_config();
  const auto r = analysis::run_point(p);
  ASSERT_TRUE(r.finished);
  ASSERT_EQ(r.job_finish_us.size(), it.jobs.size());
  // Each all-reduce starts no earlier than its gradients, and in launch order.
  for (size_t k = 0; k < it.jobs.size(); ++k) {
    EXPECT_GT(r.job_finish_us[k], it.buckets[k].ready_us);
    if (k > 0) {
      EXPECT_GT(r.job_finish_us[k], r.job_finish_us[k - 1]);
    }
  }
  EXPECT_GT(r.cct_us, it.forward_us + it.backward_us);
}
