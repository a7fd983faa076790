// Row quantization: GGML-exact known blocks, f16/bf16 rounding, and round-trip error bounds.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "moe/kernels/fp16.h"
#include "moe/kernels/quantize.h"

using namespace lookahead::moe;

TEST(KernelsQuantize, Fp16KnownValues) {
  EXPECT_EQ(fp32_to_fp16(1.0f), 0x3C00);
  EXPECT_EQ(fp32_to_fp16(-2.0f), 0xC000);
  EXPECT_EQ(fp32_to_fp16(65504.0f), 0x7BFF);
  EXPECT_EQ(fp32_to_fp16(1e6f), 0x7C00);           // overflow -> inf
  EXPECT_EQ(fp32_to_fp16(0.1f), 0x2E66);
  EXPECT_EQ(fp32_to_fp16(1.0f + 0x1p-11f), 0x3C00);  // tie rounds to even
  EXPECT_EQ(fp32_to_fp16(1.0f + 3 * 0x1p-11f), 0x3C02);
  EXPECT_EQ(fp32_to_fp16(0x1p-24f), 0x0001);       // smallest subnormal
  EXPECT_TRUE(std::isnan(fp16_to_fp32(fp32_to_fp16(NAN))));
  for (uint32_t h = 0; h < 0x7C00; ++h) ASSERT_EQ(fp32_to_fp16(fp16_to_fp32(static_cast<uint16_t>(h))), h);
  EXPECT_EQ(fp32_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(fp32_to_bf16(fp32_from_bits(0x3F808000u)), 0x3F80);  // tie to even
  EXPECT_EQ(fp32_to_bf16(fp32_from_bits(0x3F818000u)), 0x3F82);
  EXPECT_EQ(bf16_to_fp32(0xC040), -3.0f);
}

TEST(KernelsQuantize, KnownBlocks) {
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j - 16);  // -16..15

  BlockQ4_0 q4;
  quantize_row(TensorType::Q4_0, x.data(), &q4, 32);
  EXPECT_EQ(q4.d, 0x4000);  // d = max/-8 = -16/-8 = 2
  EXPECT_EQ(q4.qs[0], 0x80);    // x=-16 -> 0, x=0 -> 8
  EXPECT_EQ(q4.qs[15], 0xF8);   // x=-1 -> 8 (trunc 7.5+0.5... = 8), x=15 -> 15 (clamped from 16)
  std::vector<float> back(32);
  dequantize_row(TensorType::Q4_0, &q4, back.data(), 32);
  EXPECT_EQ(back[0], -16.0f);
  EXPECT_EQ(back[31], 14.0f);

  BlockQ8_0 q8;
  quantize_row(TensorType::Q8_0, x.data(), &q8, 32);
  EXPECT_EQ(q8.qs[0], -127);
  EXPECT_EQ(q8.qs[16], 0);
  EXPECT_EQ(q8.qs[17], 8);  // round(1 * 127/16 = 7.94)
  EXPECT_EQ(q8.d, fp32_to_fp16(16.0f / 127.0f));

  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j) + 1.0f;  // 1..32
  BlockQ4_1 q41;
  quantize_row(TensorType::Q4_1, x.data(), &q41, 32);
  EXPECT_EQ(q41.m, 0x3C00);  // min = 1
  EXPECT_EQ(q41.d, fp32_to_fp16(31.0f / 15.0f));
  EXPECT_EQ(q41.qs[0] & 0x0F, 0);
  EXPECT_EQ(q41.qs[15] >> 4, 15);  // x = 32 -> max
}

TEST(KernelsQuantize, RoundTripBounds) {
  std::mt19937_64 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int64_t n = 32 * 9;
  std::vector<float> x(n), y(n);
  for (auto& v : x) v = normal(rng);
  x[5] = 0;  // a block with exact zeros must not divide by zero
  std::vector<float> zeros(32, 0.0f);
  for (TensorType type : {TensorType::F32, TensorType::F16, TensorType::BF16, TensorType::Q8_0, TensorType::Q4_0,
                          TensorType::Q4_1}) {
    std::vector<uint8_t> buf(static_cast<size_t>(row_bytes(type, n)));
    quantize_row(type, x.data(), buf.data(), n);
    dequantize_row(type, buf.data(), y.data(), n);
    for (int64_t b = 0; b < n / 32; ++b) {
      float amax = 0, lo = 1e30f, hi = -1e30f;
      for (int j = 0; j < 32; ++j) {
        amax = std::max(amax, std::fabs(x[b * 32 + j]));
        lo = std::min(lo, x[b * 32 + j]);
        hi = std::max(hi, x[b * 32 + j]);
      }
      for (int j = 0; j < 32; ++j) {
        const float v = x[b * 32 + j], err = std::fabs(y[b * 32 + j] - v);
        float bound = 0;
        switch (type) {
          case TensorType::F32: bound = 0; break;
          case TensorType::F16: bound = std::fabs(v) * 0x1p-11f; break;
          case TensorType::BF16: bound = std::fabs(v) * 0x1p-8f; break;
          case TensorType::Q8_0: bound = amax / 127 * 0.5f + amax * 0x1p-10f; break;
          case TensorType::Q4_0: bound = amax / 8 + amax * 0x1p-9f; break;  // +max side clamps at 7/8
          case TensorType::Q4_1: bound = (hi - lo) / 15 * 0.5f + amax * 0x1p-9f; break;
          case TensorType::I32: break;  // not a weight type; never in this list
        }
        ASSERT_LE(err, bound) << tensor_type_name(type) << " index " << b * 32 + j;
      }
    }
    std::vector<uint8_t> zbuf(static_cast<size_t>(row_bytes(type, 32)));
    std::vector<float> zback(32, 1.0f);
    quantize_row(type, zeros.data(), zbuf.data(), 32);
    dequantize_row(type, zbuf.data(), zback.data(), 32);
    for (float v : zback) EXPECT_EQ(v, 0.0f) << tensor_type_name(type);
  }
}
