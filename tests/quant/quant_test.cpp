// Tests for lib/quant: half and bfloat16 conversions (exhaustive round trips, rounding at
// ties, overflow), and the q8_0 / q4_0 block rules on blocks with worked answers.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "quant/quant.hpp"

using namespace lm::quant;

TEST_CASE("fp16: every finite half round-trips; rounding is to nearest even; overflow is inf") {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = fp16_to_fp32(uint16_t(h));
    if (std::isnan(f)) {
      CHECK(std::isnan(fp16_to_fp32(fp32_to_fp16(f))));
      continue;
    }
    REQUIRE(fp32_to_fp16(f) == h);
  }
  CHECK(fp32_to_fp16(1.0f) == 0x3c00);
  CHECK(fp32_to_fp16(-2.0f) == 0xc000);
  CHECK(fp32_to_fp16(65504.0f) == 0x7bff);
  CHECK(fp32_to_fp16(65519.99f) == 0x7bff);
  CHECK(fp32_to_fp16(65520.0f) == 0x7c00);   // halfway to 65536: ties to even = inf
  CHECK(fp32_to_fp16(1e9f) == 0x7c00);
  // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to even (1.0); 1 + 3 * 2^-11 rounds up.
  CHECK(fp32_to_fp16(1.0f + 0x1p-11f) == 0x3c00);
  CHECK(fp32_to_fp16(1.0f + 3 * 0x1p-11f) == 0x3c02);
  // Subnormals: 2^-24 is the smallest; half of it ties to even (0).
  CHECK(fp32_to_fp16(0x1p-24f) == 0x0001);
  CHECK(fp32_to_fp16(0x1p-25f) == 0x0000);
  CHECK(fp32_to_fp16(0x1.8p-24f) == 0x0002);
  CHECK(fp32_to_fp16(-0.0f) == 0x8000);
}

TEST_CASE("bf16: truncation with round to nearest even; NaN stays NaN") {
  CHECK(fp32_to_bf16(1.0f) == 0x3f80);
  CHECK(fp32_to_bf16(1.5f) == 0x3fc0);
  float tie;  // 1 + 2^-8 is halfway between bf16 neighbours 1 and 1 + 2^-7
  tie = 1.0f + 0x1p-8f;
  CHECK(fp32_to_bf16(tie) == 0x3f80);
  CHECK(fp32_to_bf16(1.0f + 3 * 0x1p-8f) == 0x3f82);
  CHECK(std::isnan(bf16_to_fp32(fp32_to_bf16(NAN))));
  for (uint32_t b = 0; b < 65536; ++b) {
    const float f = bf16_to_fp32(uint16_t(b));
    if (!std::isnan(f)) REQUIRE(fp32_to_bf16(f) == b);
  }
}

TEST_CASE("q8_0: d = max|x| / 127, q = round(x / d); a worked block and the error bound") {
  std::vector<float> x(32);
  for (int i = 0; i < 32; ++i) x[size_t(i)] = float(i - 16) / 4.0f;  // -4 .. 3.75
  BlockQ8_0 b;
  quantize_q8_0(x.data(), &b, 32);
  // d = 4 / 127 = 0.031496; as a half: 0x2808 = 0.0314941...
  CHECK(b.d == fp32_to_fp16(4.0f / 127.0f));
  CHECK(b.qs[0] == -127);           // -4 / (4/127)
  CHECK(b.qs[16] == 0);
  CHECK(b.qs[17] == 8);             // 0.25 * 127 / 4 = 7.9375 -> 8
  std::vector<float> y(32);
  dequantize_q8_0(&b, y.data(), 32);
  const float d = fp16_to_fp32(b.d);
  for (int i = 0; i < 32; ++i) CHECK(std::fabs(y[size_t(i)] - x[size_t(i)]) <= 0.5f * d + 1e-3f * 4);
  // An all-zero block has d = 0 and decodes to zeros.
  std::vector<float> z(32, 0.0f);
  quantize_q8_0(z.data(), &b, 32);
  dequantize_q8_0(&b, y.data(), 32);
  CHECK(b.d == 0);
  for (float v : y) CHECK(v == 0.0f);
}

TEST_CASE("q4_0: the largest-magnitude value maps to -8 with its sign; nibble order") {
  std::vector<float> x(32, 0.0f);
  x[3] = -8.0f;   // largest magnitude, negative: d = -8 / -8 = 1
  x[20] = 7.0f;   // q = 7 + 8 = 15
  x[5] = 2.4f;    // 2.4 + 8.5 = 10.9 -> 10 -> decodes to 2
  BlockQ4_0 b;
  quantize_q4_0(x.data(), &b, 32);
  CHECK(fp16_to_fp32(b.d) == 1.0f);
  CHECK((b.qs[3] & 0x0f) == 0);        // element 3 in the low nibble of byte 3
  CHECK((b.qs[4] >> 4) == 15);         // element 20 in the high nibble of byte 4
  std::vector<float> y(32);
  dequantize_q4_0(&b, y.data(), 32);
  CHECK(y[3] == -8.0f);
  CHECK(y[20] == 7.0f);
  CHECK(y[5] == 2.0f);
  CHECK(y[0] == 0.0f);
  // Largest magnitude positive: d = -max / 8 < 0, and +max clips to q = 15 (7 * d... = -7/8 max).
  std::vector<float> p(32, 0.0f);
  p[0] = 8.0f;
  quantize_q4_0(p.data(), &b, 32);
  dequantize_q4_0(&b, y.data(), 32);
  CHECK(fp16_to_fp32(b.d) == -1.0f);
  CHECK(y[0] == 8.0f);  // q = 0: (0 - 8) * -1
}
