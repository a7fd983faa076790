// `moe synth` with GGML block types: a Q8_0 synthetic Read-ME model holds the
// float model of the same seed, quantized. Checked against the F32 model: the same neurons per
// expert, every expert row within Q8_0's rounding bound of the float row, and next-token logits
// through the real forward pass (oracle routing) close to the float model's.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/error.h"
#include "moe/kernels/quantize.h"
#include "moe/model/llama.h"
#include "tests/unit/moe/synth_model_fixture.h"

namespace lookahead::moe::serving {
namespace {

std::vector<float> row_of(const WeightMatrix& m, int64_t r) {
  std::vector<float> out(static_cast<size_t>(m.cols));
  dequantize_row(m.type, m.row(r), out.data(), m.cols);
  return out;
}

// Next-token logits after `tokens`, every token routed to expert `e` in every layer.
std::vector<float> logits_with_expert(const ReadMeModel& m, const std::vector<int32_t>& tokens, int32_t e) {
  auto router = make_token_router(m, "oracle:" + m.config().experts.at(static_cast<size_t>(e)));
  ContextOptions o;
  o.n_ctx = 64;
  LlamaContext ctx(m.backbone(), o);
  ctx.set_routing(router.get(), &m);
  const float* logits = ctx.forward(tokens.data(), static_cast<int64_t>(tokens.size()));
  return {logits, logits + m.backbone().hparams().n_vocab};
}

TEST(SynthModel, Q8_0ModelIsTheFloatModelQuantized) {
  TempSynthModel f32("synth_f32", 3, 2, TensorType::F32, 11);
  TempSynthModel q8("synth_q8", 3, 2, TensorType::Q8_0, 11);
  const ReadMeModel& a = f32.model();
  const ReadMeModel& b = q8.model();
  ASSERT_EQ(b.config().dtype, "Q8_0");
  for (int l = 0; l < 2; ++l)
    for (int32_t e = 0; e < 3; ++e) {
      ASSERT_EQ(a.neurons(l, e), b.neurons(l, e)) << l << " " << e;
      const ExpertFfn& fa = a.expert(l, e);
      const ExpertFfn& fb = b.expert(l, e);
      EXPECT_EQ(fb.gate.type, TensorType::Q8_0);
      EXPECT_EQ(fb.down.type, TensorType::Q8_0);
      for (auto [ma, mb] : {std::pair{&fa.gate, &fb.gate}, std::pair{&fa.up, &fb.up}, std::pair{&fa.down, &fb.down}}) {
        ASSERT_EQ(ma->rows, mb->rows);
        ASSERT_EQ(ma->cols, mb->cols);
        for (int64_t r = 0; r < ma->rows; ++r) {
          const std::vector<float> x = row_of(*ma, r), y = row_of(*mb, r);
          // Q8_0 rounds each value to a multiple of d = amax(block) / 127: error at most d / 2, plus
          // up to 127 * d * 2^-11 from storing d as f16.
          for (int64_t blk = 0; blk < ma->cols; blk += 32) {
            float amax = 0;
            for (int64_t i = blk; i < blk + 32; ++i) amax = std::max(amax, std::fabs(x[static_cast<size_t>(i)]));
            for (int64_t i = blk; i < blk + 32; ++i)
              ASSERT_LE(std::fabs(x[static_cast<size_t>(i)] - y[static_cast<size_t>(i)]), amax / 127.0f * 0.57f + 1e-6f)
                  << "layer " << l << " expert " << e << " row " << r << " col " << i;
          }
        }
      }
      // One slab is Q8_0's 34 bytes per 32 values: 17/64 of F32's.
      EXPECT_EQ(b.slab(l, e).bytes * 64, a.slab(l, e).bytes * 17) << l << " " << e;
    }

  // Logits: Q8_0 weights (and the kernels' Q8 activations) move them by a few percent; routing the
  // same tokens to another expert of the float model moves them far more, so the check can tell
  // "the same model, quantized" from "a different model".
  const std::vector<int32_t> tokens = {1, 7, 42, 3, 99, 5};
  auto relative_rms = [](const std::vector<float>& x, const std::vector<float>& y) {
    double err = 0, norm = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      err += (x[i] - y[i]) * (x[i] - y[i]);
      norm += x[i] * x[i];
    }
    return norm > 0 ? std::sqrt(err / norm) : 1e9;
  };
  for (int32_t e = 0; e < 3; ++e) {
    const std::vector<float> x = logits_with_expert(a, tokens, e), y = logits_with_expert(b, tokens, e);
    const std::vector<float> other = logits_with_expert(a, tokens, (e + 1) % 3);
    const double quantized = relative_rms(x, y), different = relative_rms(x, other);
    EXPECT_LT(quantized, 0.05) << "expert " << e;
    EXPECT_GT(different, 5 * quantized) << "expert " << e;
  }
}

TEST(SynthModel, BlockTypesRoundExpertsToWholeBlocks) {
  EXPECT_EQ(expert_neurons(0.5, 11008, TensorType::BF16), 5504);
  EXPECT_EQ(expert_neurons(0.5, 11008, TensorType::Q8_0), 5504);  // 172 blocks
  EXPECT_EQ(expert_neurons(0.3, 1536, TensorType::F16), 461);
  EXPECT_EQ(expert_neurons(0.3, 1536, TensorType::Q8_0), 448);
  EXPECT_EQ(expert_neurons(0.31, 1536, TensorType::Q4_1), 480);
  EXPECT_EQ(expert_neurons(1.0, 128, TensorType::Q4_0), 128);
  SynthOptions o;
  o.dtype = TensorType::Q8_0;
  o.keep = 0.1;  // 13 of tiny's 128 neurons: no whole block
  EXPECT_THROW(check_synth_options(o), Error);
  o.keep = 0.2;  // 26 -> 32
  EXPECT_NO_THROW(check_synth_options(o));
}

}  // namespace
}  // namespace lookahead::moe::serving
