// Tests for the block types q4_1, q5_0, q5_1, iq4_nl, q2_K, q3_K, q5_K and iq4_xs (quant.hpp,
// kquant.hpp): round trips within each format's error, zero rows, the row API, and the dot
// products with their activations: every SIMD path against `_ref` (and q3_K and iq4_xs on
// AVX-512 against AVX2, to the bit), `_ref` against the dot product of the decoded rows, on
// quantized rows, random block bytes and the largest levels.
// Bit-compatibility with ggml is ggml_golden_test.cpp's job.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

#include "base/rng.hpp"
#include "quant/kquant.hpp"
#include "quant/quant.hpp"
#include "test_util.hpp"

using namespace lm::quant;
using lm::format::GgmlType;

namespace {

struct Type {
  GgmlType t;
  const char* name;
  double max_rel_rms;  // round trip of normal rows
  int d_at, min_at;    // offsets of the f16 scale and min fields (-1: none)
};
const Type kTypes[] = {
    {GgmlType::Q4_1, "q4_1", 0.12, offsetof(BlockQ4_1, d), offsetof(BlockQ4_1, m)},
    {GgmlType::Q5_0, "q5_0", 0.07, offsetof(BlockQ5_0, d), -1},
    {GgmlType::Q5_1, "q5_1", 0.06, offsetof(BlockQ5_1, d), offsetof(BlockQ5_1, m)},
    {GgmlType::IQ4_NL, "iq4_nl", 0.12, offsetof(BlockIQ4_NL, d), -1},
    {GgmlType::Q2_K, "q2_K", 0.40, offsetof(BlockQ2_K, d), offsetof(BlockQ2_K, dmin)},
    {GgmlType::Q3_K, "q3_K", 0.22, offsetof(BlockQ3_K, d), -1},
    {GgmlType::Q5_K, "q5_K", 0.05, offsetof(BlockQ5_K, d), offsetof(BlockQ5_K, dmin)},
    {GgmlType::IQ4_XS, "iq4_xs", 0.12, offsetof(BlockIQ4_XS, d), -1},
};

size_t block_of(GgmlType t) { return lm::format::ggml_type_info(t).block; }
size_t block_bytes(GgmlType t) { return lm::format::ggml_type_info(t).block_bytes; }

std::vector<float> normal_row(size_t n, lm::Rng& rng, float scale = 1.0f) {
  std::vector<float> x(n);
  for (float& v : x) v = scale * rng.normal();
  return x;
}

std::vector<float> decode(GgmlType t, const uint8_t* q, size_t n) {
  std::vector<float> y(n);
  dequantize_row(t, q, y.data(), n);
  return y;
}

// The activations as floats (q8_K is no file type, so not in dequantize_row).
std::vector<float> decode_act(GgmlType t, const uint8_t* q, size_t n) {
  std::vector<float> y(n);
  if (dot_activation_type(t) == GgmlType::Q8_K)
    dequantize_q8_K(q, y.data(), n);
  else
    dequantize_row(GgmlType::Q8_0, q, y.data(), n);
  return y;
}

const DotPath kPaths[] = {DotPath::Portable, DotPath::Avx2, DotPath::Avx512Vnni};


// A weight row and an activation row, each at an odd offset in its buffer (unaligned).
struct DotCase {
  GgmlType t;
  std::vector<uint8_t> xbuf, ybuf;
  size_t n;
  const uint8_t* x() const { return xbuf.data() + 3; }
  const uint8_t* y() const { return ybuf.data() + 1; }
  uint8_t* x() { return xbuf.data() + 3; }
  uint8_t* y() { return ybuf.data() + 1; }
};

DotCase make_case(GgmlType t, size_t n) {
  return {t, std::vector<uint8_t>(row_size(t, n) + 3), std::vector<uint8_t>(activation_row_size(t, n) + 1), n};
}

DotCase quantized_case(GgmlType t, size_t n, lm::Rng& rng, float x_scale) {
  DotCase c = make_case(t, n);
  const std::vector<float> x = normal_row(n, rng, x_scale), y = normal_row(n, rng);
  quantize_row(t, x.data(), c.x(), n);
  quantize_activations(t, y.data(), c.y(), n);
  return c;
}

// Activations with any level in -127..127 (what the quantizers make), finite scales and, for
// q8_K, matching bsums. `level` != 0 fills every value with it.
void fill_activations(DotCase& c, lm::Rng& rng, int level = 0) {
  if (dot_activation_type(c.t) == GgmlType::Q8_0) {
    for (size_t b = 0; b < c.n / kBlock; ++b) {
      BlockQ8_0 y;
      y.d = fp32_to_fp16(level ? 1.0f : 0.05f * rng.uniform());
      for (int8_t& q : y.qs) q = int8_t(level ? level : int(rng.below(255)) - 127);
      std::memcpy(c.y() + b * sizeof y, &y, sizeof y);
    }
    complete_q8_0_activations(c.y(), c.n);
    return;
  }
  for (size_t b = 0; b < c.n / kSuperBlock; ++b) {
    BlockQ8_K y;
    y.d = level ? 1.0f : 0.05f * rng.uniform();
    for (int8_t& q : y.qs) q = int8_t(level ? level : int(rng.below(255)) - 127);
    for (int g = 0; g < 16; ++g) {
      int s = 0;
      for (int i = 0; i < 16; ++i) s += y.qs[16 * g + i];
      y.bsums[g] = int16_t(s);
    }
    std::memcpy(c.y() + b * sizeof y, &y, sizeof y);
  }
}

void set_f16(uint8_t* p, float v) {
  const uint16_t h = fp32_to_fp16(v);
  std::memcpy(p, &h, 2);
}

// Random bytes in every field of the weight blocks but the f16 scale and min (finite, moderate).
DotCase random_bytes_case(const Type& ty, size_t n, lm::Rng& rng) {
  DotCase c = make_case(ty.t, n);
  for (uint8_t& b : c.xbuf) b = uint8_t(rng.next_u32());
  for (size_t b = 0; b < n / block_of(ty.t); ++b) {
    uint8_t* blk = c.x() + b * block_bytes(ty.t);
    set_f16(blk + ty.d_at, 0.01f * (rng.uniform() - 0.5f));
    if (ty.min_at >= 0) set_f16(blk + ty.min_at, 0.01f * (rng.uniform() - 0.5f));
  }
  fill_activations(c, rng);
  return c;
}

// Every byte 0xff (largest levels and scales) with unit f16 scales, activations all `level`.
DotCase extreme_case(const Type& ty, size_t n, int level) {
  DotCase c = make_case(ty.t, n);
  std::fill(c.xbuf.begin(), c.xbuf.end(), uint8_t(0xff));
  for (size_t b = 0; b < n / block_of(ty.t); ++b) {
    uint8_t* blk = c.x() + b * block_bytes(ty.t);
    set_f16(blk + ty.d_at, 1.0f);
    if (ty.min_at >= 0) set_f16(blk + ty.min_at, 1.0f);
  }
  lm::Rng rng(1);
  fill_activations(c, rng, level);
  return c;
}

// sum_i |x[i] y[i]| in double, x's scale and min parts counted apart: the scale of the float
// rounding in any order of summation.
double magnitude(const Type& ty, const DotCase& c) {
  const std::vector<float> y = decode_act(c.t, c.y(), c.n);
  std::vector<uint8_t> only_d(c.x(), c.x() + row_size(c.t, c.n)), only_min = only_d;
  std::vector<float> a(c.n), b(c.n, 0.0f);
  if (ty.min_at >= 0) {
    for (size_t k = 0; k < c.n / block_of(c.t); ++k) {
      std::memset(only_d.data() + k * block_bytes(c.t) + ty.min_at, 0, 2);
      std::memset(only_min.data() + k * block_bytes(c.t) + ty.d_at, 0, 2);
    }
    dequantize_row(c.t, only_min.data(), b.data(), c.n);
  }
  dequantize_row(c.t, only_d.data(), a.data(), c.n);
  double m = 0;
  for (size_t i = 0; i < c.n; ++i) m += (std::fabs(double(a[i])) + std::fabs(double(b[i]))) * std::fabs(double(y[i]));
  return m;
}

void check_all_paths(const Type& ty, const DotCase& c) {
  lm::test::DotPathGuard guard;
  const float ref = vec_dot_ref(c.t, c.x(), c.y(), c.n);
  const double tol = 1e-5 * magnitude(ty, c);
  const std::vector<float> xd = decode(c.t, c.x(), c.n);
  const std::vector<float> yd = decode_act(c.t, c.y(), c.n);
  double exact = 0;
  for (size_t i = 0; i < c.n; ++i) exact += double(xd[i]) * yd[i];
  CHECK(std::fabs(ref - exact) <= tol);
  for (DotPath p : kPaths) {
    limit_dot_path(p);
    if (dot_path() != p) continue;  // this CPU lacks it
    CAPTURE(int(p));
    const float fast = vec_dot(c.t, c.x(), c.y(), c.n);
    if (p == DotPath::Portable)
      CHECK(fast == ref);
    else
      CHECK(std::fabs(fast - ref) <= tol);
  }
}

}  // namespace

TEST_CASE("new block types: round trips of normal rows stay within each format's error") {
  lm::Rng rng(11);
  for (const Type& ty : kTypes) {
    CAPTURE(std::string(ty.name));
    CHECK(is_supported(ty.t));
    const size_t n = 1024;
    for (float scale : {1.0f, 0.02f, 300.0f}) {
      const std::vector<float> x = normal_row(n, rng, scale);
      std::vector<uint8_t> q(row_size(ty.t, n));
      quantize_row(ty.t, x.data(), q.data(), n);
      const std::vector<float> y = decode(ty.t, q.data(), n);
      double e = 0, s = 0;
      for (size_t i = 0; i < n; ++i) e += double(x[i] - y[i]) * (x[i] - y[i]), s += double(x[i]) * x[i];
      CAPTURE(scale);
      CHECK(std::sqrt(e / s) < ty.max_rel_rms);
    }
    const std::vector<float> zero(n, 0.0f);
    std::vector<uint8_t> q(row_size(ty.t, n));
    quantize_row(ty.t, zero.data(), q.data(), n);
    CHECK(decode(ty.t, q.data(), n) == zero);
    // quantize_rows / dequantize_rows equal the row calls.
    const std::vector<float> x2 = normal_row(3 * n, rng);
    std::vector<uint8_t> q2(3 * row_size(ty.t, n)), q1(row_size(ty.t, n));
    quantize_rows(ty.t, x2.data(), q2.data(), 3, n);
    quantize_row(ty.t, x2.data() + 2 * n, q1.data(), n);
    CHECK(std::memcmp(q2.data() + 2 * q1.size(), q1.data(), q1.size()) == 0);
  }
}

TEST_CASE("new block types: every dot path matches _ref on quantized rows of many lengths") {
  lm::Rng rng(2025);
  for (const Type& ty : kTypes) {
    for (int it = 0; it < 60; ++it) {
      const size_t n = kSuperBlock * (1 + rng.below(12));
      CAPTURE(std::string(ty.name));
      CAPTURE(n);
      check_all_paths(ty, quantized_case(ty.t, n, rng, it % 3 == 0 ? 0.02f : 1.0f));
    }
  }
}

TEST_CASE("new block types: every dot path matches _ref on random block bytes") {
  lm::Rng rng(77);
  for (const Type& ty : kTypes) {
    for (int it = 0; it < 60; ++it) {
      const size_t n = kSuperBlock * (1 + rng.below(12));
      CAPTURE(std::string(ty.name));
      CAPTURE(n);
      check_all_paths(ty, random_bytes_case(ty, n, rng));
    }
  }
}

TEST_CASE("new block types: the largest levels and scales overflow no integer lane") {
  for (const Type& ty : kTypes) {
    for (int level : {127, -127}) {
      CAPTURE(std::string(ty.name));
      CAPTURE(level);
      check_all_paths(ty, extreme_case(ty, 4 * kSuperBlock, level));
    }
  }
}

TEST_CASE("q3_K, iq4_xs: the AVX-512 product equals the AVX2 one to the bit") {
  // Both sum the same exact integer lanes, then run the same float operations (the AVX-512
  // walks fold their 16 lanes into the AVX2 walks' 8 first).
  lm::test::DotPathGuard guard;
  limit_dot_path(DotPath::Avx512Vnni);
  if (dot_path() != DotPath::Avx512Vnni) return;  // this CPU lacks it
  for (GgmlType t : {GgmlType::Q3_K, GgmlType::IQ4_XS}) {
    const Type& ty = *std::find_if(std::begin(kTypes), std::end(kTypes), [t](const Type& k) { return k.t == t; });
    CAPTURE(std::string(ty.name));
    lm::Rng rng(91);
    std::vector<DotCase> cases;
    for (int it = 0; it < 40; ++it) {
      const size_t n = kSuperBlock * (1 + rng.below(12));
      cases.push_back(it % 2 ? random_bytes_case(ty, n, rng) : quantized_case(ty.t, n, rng, 1.0f));
    }
    for (int level : {127, -127}) {
      cases.push_back(extreme_case(ty, 4 * kSuperBlock, level));
      if (t != GgmlType::IQ4_XS) continue;
      // Every byte after d 0: the most negative level (-127) and scale (-32).
      DotCase c = extreme_case(ty, 4 * kSuperBlock, level);
      for (size_t b = 0; b < 4; ++b)
        std::fill(c.x() + b * block_bytes(t) + 2, c.x() + (b + 1) * block_bytes(t), uint8_t(0));
      cases.push_back(std::move(c));
    }
    for (const DotCase& c : cases) {
      limit_dot_path(DotPath::Avx512Vnni);
      const float wide = vec_dot(c.t, c.x(), c.y(), c.n);
      limit_dot_path(DotPath::Avx2);
      const float narrow = vec_dot(c.t, c.x(), c.y(), c.n);
      CHECK(std::memcmp(&wide, &narrow, sizeof wide) == 0);
      CHECK(std::fabs(narrow - vec_dot_ref(c.t, c.x(), c.y(), c.n)) <= 1e-5 * magnitude(ty, c));
    }
  }
}

TEST_CASE("new block types: 32-value types take rows of single blocks") {
  lm::Rng rng(8);
  for (const Type& ty : kTypes) {
    if (block_of(ty.t) != kBlock) continue;
    CAPTURE(std::string(ty.name));
    for (size_t n : {size_t(32), size_t(96), size_t(288)}) check_all_paths(ty, quantized_case(ty.t, n, rng, 1.0f));
  }
}

TEST_CASE("activation rows: q8_0 blocks, then each block's f32 scale and int32 level sum") {
  lm::Rng rng(4);
  const size_t n = 96;
  const std::vector<float> x = normal_row(n, rng);
  CHECK(activation_row_size(GgmlType::Q5_1, n) == 3 * sizeof(BlockQ8_0) + 3 * 8);
  CHECK(activation_row_size(GgmlType::Q3_K, 256) == sizeof(BlockQ8_K));
  std::vector<uint8_t> a(activation_row_size(GgmlType::IQ4_NL, n));
  quantize_activations(GgmlType::IQ4_NL, x.data(), a.data(), n);
  std::vector<uint8_t> blocks(row_size(GgmlType::Q8_0, n));
  quantize_q8_0(x.data(), blocks.data(), n);
  CHECK(std::memcmp(a.data(), blocks.data(), blocks.size()) == 0);
  for (size_t b = 0; b < 3; ++b) {
    BlockQ8_0 y;
    std::memcpy(&y, blocks.data() + b * sizeof y, sizeof y);
    int sum = 0;
    for (int8_t q : y.qs) sum += q;
    float d;
    int32_t s;
    std::memcpy(&d, a.data() + blocks.size() + 4 * b, 4);
    std::memcpy(&s, a.data() + blocks.size() + 12 + 4 * b, 4);
    CHECK(d == fp16_to_fp32(y.d));
    CHECK(s == sum);
  }
}
