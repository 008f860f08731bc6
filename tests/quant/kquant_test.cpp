// Tests for lib/quant/kquant: q4_K, q6_K and q8_K round trips on rows of many kinds (error
// bounds, zero / constant / tiny / huge rows), re-quantizing decoded rows, the row API, and the
// dot products: every SIMD path against `_ref` and against the dot product of the decoded rows.
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

struct Format {
  const char* name;
  size_t block_bytes;
  void (*quantize)(const float*, void*, size_t);
  void (*dequantize)(const void*, float*, size_t);
};
const Format kQ4K{"q4_K", sizeof(BlockQ4_K), quantize_q4_K, dequantize_q4_K};
const Format kQ6K{"q6_K", sizeof(BlockQ6_K), quantize_q6_K, dequantize_q6_K};
const Format kQ8K{"q8_K", sizeof(BlockQ8_K), quantize_q8_K, dequantize_q8_K};
const Format* const kFormats[] = {&kQ4K, &kQ6K, &kQ8K};

enum class Kind { Normal, Uniform, Zero, Constant, NegConstant, Tiny, Huge, Outlier, NegativeOnly, Magnitudes, Sparse };
const Kind kKinds[] = {Kind::Normal, Kind::Uniform, Kind::Zero, Kind::Constant, Kind::NegConstant, Kind::Tiny,
                       Kind::Huge, Kind::Outlier, Kind::NegativeOnly, Kind::Magnitudes, Kind::Sparse};
const char* kind_name(Kind k) {
  static const char* const names[] = {"normal", "uniform", "zero", "constant", "negative constant", "tiny 1e-30",
                                      "huge 1e30", "one outlier", "negative only", "magnitudes 1e-6..1e4", "sparse"};
  return names[int(k)];
}

std::vector<float> make_row(Kind k, size_t n, lm::Rng& rng) {
  std::vector<float> x(n);
  for (size_t i = 0; i < n; ++i) {
    switch (k) {
      case Kind::Normal: x[i] = rng.normal(); break;
      case Kind::Uniform: x[i] = 2 * rng.uniform() - 1; break;
      case Kind::Zero: x[i] = 0; break;
      case Kind::Constant: x[i] = 0.37f; break;
      case Kind::NegConstant: x[i] = -3.25f; break;
      case Kind::Tiny: x[i] = 1e-30f * rng.normal(); break;
      case Kind::Huge: x[i] = 1e30f * rng.normal(); break;
      case Kind::Outlier: x[i] = i % 256 == 77 ? 40.0f : 0.01f * rng.normal(); break;
      case Kind::NegativeOnly: x[i] = -0.01f - 2 * rng.uniform(); break;
      case Kind::Magnitudes: x[i] = (rng.uniform() < 0.5f ? -1 : 1) * std::pow(10.0f, 10 * rng.uniform() - 6); break;
      case Kind::Sparse: x[i] = rng.uniform() < 0.1f ? rng.normal() : 0.0f; break;
    }
  }
  return x;
}

std::vector<float> round_trip(const Format& f, const std::vector<float>& x, std::vector<uint8_t>* bytes = nullptr) {
  std::vector<uint8_t> q(x.size() / kSuperBlock * f.block_bytes);
  f.quantize(x.data(), q.data(), x.size());
  std::vector<float> y(x.size());
  f.dequantize(q.data(), y.data(), x.size());
  if (bytes) *bytes = q;
  return y;
}

// The f16 scale of each block (q4_K's d, q6_K's d).
std::vector<uint16_t> f16_scales(const Format& f, const std::vector<uint8_t>& q) {
  std::vector<uint16_t> d;
  for (size_t off = 0; off < q.size(); off += f.block_bytes) {
    uint16_t v;
    std::memcpy(&v, q.data() + off + (&f == &kQ4K ? offsetof(BlockQ4_K, d) : offsetof(BlockQ6_K, d)), 2);
    d.push_back(v);
  }
  return d;
}

double rel_rms(const std::vector<float>& x, const std::vector<float>& y) {
  double e = 0, s = 0;
  for (size_t i = 0; i < x.size(); ++i) e += double(x[i] - y[i]) * (x[i] - y[i]), s += double(x[i]) * x[i];
  return std::sqrt(e / s);
}

// The largest |x - y| in block b, over the block's range max(x, 0) - min(x, 0) and amax.
struct BlockErr {
  double err, range, amax, d_q8;
};
BlockErr block_err(const std::vector<float>& x, const std::vector<float>& y, size_t b) {
  BlockErr r{0, 0, 0, 0};
  float lo = 0, hi = 0;
  for (size_t i = b * kSuperBlock; i < (b + 1) * kSuperBlock; ++i) {
    r.err = std::max(r.err, double(std::fabs(x[i] - y[i])));
    lo = std::min(lo, x[i]), hi = std::max(hi, x[i]);
    r.amax = std::max(r.amax, double(std::fabs(x[i])));
  }
  r.range = double(hi) - lo;
  return r;
}

const DotPath kPaths[] = {DotPath::Portable, DotPath::Avx2, DotPath::Avx512Vnni};
const char* path_name(DotPath p) {
  return p == DotPath::Avx512Vnni ? "AVX-512 VNNI" : p == DotPath::Avx2 ? "AVX2" : "portable";
}


}  // namespace

TEST_CASE("K-quant round trips stay within each format's error bound on rows of every kind") {
  lm::Rng rng(42);
  for (const Format* fp : kFormats) {
    const Format& f = *fp;
    for (Kind k : kKinds) {
      CAPTURE(std::string(f.name));
      CAPTURE(std::string(kind_name(k)));
      const std::vector<float> x = make_row(k, 8 * kSuperBlock, rng);
      std::vector<uint8_t> q;
      const std::vector<float> y = round_trip(f, x, &q);
      if (k == Kind::Zero) {  // an all-zero row is all-zero bytes and decodes to zeros
        CHECK(std::all_of(q.begin(), q.end(), [](uint8_t b) { return b == 0; }));
        CHECK(std::all_of(y.begin(), y.end(), [](float v) { return v == 0.0f; }));
        continue;
      }
      if (&f == &kQ4K && k == Kind::Huge) {
        // q4_K keeps its scales in f16: beyond 65504 they become inf, as in ggml.
        for (uint16_t d : f16_scales(f, q)) CHECK((d & 0x7fff) == 0x7c00);
        continue;
      }
      if (&f == &kQ6K && k == Kind::Huge) {
        // q6_K weighs errors by x^2, which overflows f32 above 1.8e19: the fitted scales are NaN
        // and, as in ggml, every block is stored as zero.
        CHECK(std::all_of(q.begin(), q.end(), [](uint8_t b) { return b == 0; }));
        continue;
      }
      if (&f != &kQ8K && k == Kind::Tiny) {
        // ... and below f16's smallest subnormal they become 0, so the row decodes to zeros.
        for (uint16_t d : f16_scales(f, q)) CHECK((d & 0x7fff) == 0);
        for (float v : y) CHECK(v == 0.0f);
        continue;
      }
      for (size_t b = 0; b < x.size() / kSuperBlock; ++b) {
        const BlockErr e = block_err(x, y, b);
        CAPTURE(b);
        if (k == Kind::Constant || k == Kind::NegConstant) {
          // f16 rounding of the scales only (f32 for q8_K)
          CHECK(e.err <= (&f == &kQ8K ? 1e-6 : 0x1p-10) * e.amax);
        } else if (&f == &kQ8K) {
          BlockQ8_K blk;
          std::memcpy(&blk, q.data() + b * sizeof blk, sizeof blk);
          CHECK(e.err <= 0.5 * std::fabs(blk.d) * (1 + 0x1p-20));  // half a step
        } else if (&f == &kQ6K) {
          CHECK(e.err <= 0.03 * e.amax);  // measured at most 0.0224 over 4000 blocks of each kind
        } else {
          CHECK(e.err <= 0.1 * e.range);  // measured at most 0.082
        }
      }
      if (k == Kind::Normal) CHECK(rel_rms(x, y) < (&f == &kQ4K ? 0.08 : &f == &kQ6K ? 0.02 : 0.008));
    }
  }
}

TEST_CASE("re-quantizing a decoded row moves it by less than the format's step") {
  lm::Rng rng(7);
  for (const Format* fp : kFormats) {
    const Format& f = *fp;
    for (Kind k : {Kind::Normal, Kind::Uniform, Kind::Outlier, Kind::NegativeOnly, Kind::Sparse}) {
      CAPTURE(std::string(f.name));
      CAPTURE(std::string(kind_name(k)));
      const std::vector<float> x = make_row(k, 64 * kSuperBlock, rng);
      const std::vector<float> y = round_trip(f, x);
      const std::vector<float> z = round_trip(f, y);
      // The second trip's error from x is hardly worse than the first's (measured: sparse
      // rows up to 3% worse, the others under 0.1%).
      CHECK(rel_rms(x, z) <= 1.05 * rel_rms(x, y));
      for (size_t b = 0; b < x.size() / kSuperBlock; ++b) {
        const BlockErr e = block_err(y, z, b);
        if (&f == &kQ8K) {
          // The same levels come back (their sign may flip with d's when two values tie for
          // the largest magnitude), so the values agree to rounding.
          CHECK(e.err <= 0x1p-20 * e.amax);
        } else {
          CHECK(e.err <= 0.02 * e.range);  // measured at most 0.014
        }
      }
    }
  }
}

TEST_CASE("the row API takes q4_K and q6_K (not q8_K, which is no file type)") {
  CHECK(is_supported(GgmlType::Q4_K));
  CHECK(is_supported(GgmlType::Q6_K));
  CHECK_FALSE(is_supported(GgmlType::Q8_K));
  CHECK(row_size(GgmlType::Q4_K, 512) == 2 * sizeof(BlockQ4_K));
  CHECK(row_size(GgmlType::Q6_K, 512) == 2 * sizeof(BlockQ6_K));
  lm::Rng rng(3);
  const std::vector<float> x = make_row(Kind::Normal, 512, rng);
  for (const Format* f : {&kQ4K, &kQ6K}) {
    const GgmlType t = f == &kQ4K ? GgmlType::Q4_K : GgmlType::Q6_K;
    std::vector<uint8_t> a(row_size(t, 512)), b(row_size(t, 512));
    quantize_row(t, x.data(), a.data(), 512);
    f->quantize(x.data(), b.data(), 512);
    CHECK(a == b);
    std::vector<float> ya(512), yb(512);
    dequantize_row(t, a.data(), ya.data(), 512);
    f->dequantize(b.data(), yb.data(), 512);
    CHECK(ya == yb);
  }
}

namespace {

// A q4_K / q6_K row and a q8_K row, each at an odd offset in its buffer (pointers are unaligned).
struct DotCase {
  std::vector<uint8_t> xbuf, ybuf;
  size_t n;
  const uint8_t* x() const { return xbuf.data() + 3; }
  const uint8_t* y() const { return ybuf.data() + 1; }
};

DotCase quantized_case(const Format& f, Kind kx, size_t n, lm::Rng& rng) {
  DotCase c{std::vector<uint8_t>(n / kSuperBlock * f.block_bytes + 3),
            std::vector<uint8_t>(n / kSuperBlock * sizeof(BlockQ8_K) + 1), n};
  const std::vector<float> x = make_row(kx, n, rng), y = make_row(Kind::Normal, n, rng);
  f.quantize(x.data(), c.xbuf.data() + 3, n);
  quantize_q8_K(y.data(), c.ybuf.data() + 1, n);
  return c;
}

// Random bytes in every field but the f16 scales (kept finite and moderate), and q8_K rows
// with any int8 level, -128 included, and matching bsums.
DotCase random_bytes_case(const Format& f, size_t n, lm::Rng& rng) {
  DotCase c{std::vector<uint8_t>(n / kSuperBlock * f.block_bytes + 3),
            std::vector<uint8_t>(n / kSuperBlock * sizeof(BlockQ8_K) + 1), n};
  for (uint8_t& b : c.xbuf) b = uint8_t(rng.next_u32());
  for (size_t b = 0; b < n / kSuperBlock; ++b) {
    uint8_t* blk = c.xbuf.data() + 3 + b * f.block_bytes;
    const uint16_t d = fp32_to_fp16(0.01f * (rng.uniform() - 0.5f)), dmin = fp32_to_fp16(0.01f * rng.uniform());
    if (&f == &kQ4K) {
      std::memcpy(blk + offsetof(BlockQ4_K, d), &d, 2);
      std::memcpy(blk + offsetof(BlockQ4_K, dmin), &dmin, 2);
    } else {
      std::memcpy(blk + offsetof(BlockQ6_K, d), &d, 2);
    }
    BlockQ8_K y;
    y.d = 0.05f * rng.uniform();
    for (int i = 0; i < kSuperBlock; ++i) y.qs[i] = int8_t(rng.next_u32());
    for (int g = 0; g < 16; ++g) {
      int s = 0;
      for (int i = 0; i < 16; ++i) s += y.qs[16 * g + i];
      y.bsums[g] = int16_t(s);
    }
    std::memcpy(c.ybuf.data() + 1 + b * sizeof y, &y, sizeof y);
  }
  return c;
}

// The largest levels everywhere: |each integer lane| at its bound, no saturation allowed.
DotCase extreme_case(const Format& f, size_t n, int8_t y_level) {
  DotCase c{std::vector<uint8_t>(n / kSuperBlock * f.block_bytes + 3, 0xff),
            std::vector<uint8_t>(n / kSuperBlock * sizeof(BlockQ8_K) + 1), n};
  for (size_t b = 0; b < n / kSuperBlock; ++b) {
    uint8_t* blk = c.xbuf.data() + 3 + b * f.block_bytes;
    const uint16_t one = 0x3c00;
    if (&f == &kQ4K) {
      std::memcpy(blk + offsetof(BlockQ4_K, d), &one, 2);
      std::memcpy(blk + offsetof(BlockQ4_K, dmin), &one, 2);
    } else {
      std::memset(blk + offsetof(BlockQ6_K, scales), 0x80, 16);  // -128
      std::memcpy(blk + offsetof(BlockQ6_K, d), &one, 2);
    }
    BlockQ8_K y;
    y.d = 1.0f;
    std::memset(y.qs, y_level, sizeof y.qs);
    for (int16_t& s : y.bsums) s = int16_t(16 * y_level);
    std::memcpy(c.ybuf.data() + 1 + b * sizeof y, &y, sizeof y);
  }
  return c;
}

// sum_i |each term of x[i] * y[i]| in double: the scale of the float rounding in any order of
// summation. q4_K's x[i] = d sc q - dmin m counts both parts (decoded with dmin, then d, zeroed).
double magnitude(const Format& f, const DotCase& c) {
  const size_t nb = c.n / kSuperBlock;
  std::vector<float> y(c.n);
  dequantize_q8_K(c.y(), y.data(), c.n);
  std::vector<uint8_t> xs(c.x(), c.x() + nb * f.block_bytes);
  std::vector<float> a(c.n), b(c.n, 0.0f);
  if (&f == &kQ4K) {
    std::vector<uint8_t> only_d = xs, only_min = xs;
    for (size_t k = 0; k < nb; ++k) {
      std::memset(only_d.data() + k * f.block_bytes + offsetof(BlockQ4_K, dmin), 0, 2);
      std::memset(only_min.data() + k * f.block_bytes + offsetof(BlockQ4_K, d), 0, 2);
    }
    dequantize_q4_K(only_d.data(), a.data(), c.n);
    dequantize_q4_K(only_min.data(), b.data(), c.n);
  } else {
    f.dequantize(xs.data(), a.data(), c.n);
  }
  double m = 0;
  for (size_t i = 0; i < c.n; ++i) m += (std::fabs(double(a[i])) + std::fabs(double(b[i]))) * std::fabs(double(y[i]));
  return m;
}

float dot(const Format& f, const DotCase& c, bool ref) {
  if (&f == &kQ4K) return ref ? vec_dot_q4_K_q8_K_ref(c.x(), c.y(), c.n) : vec_dot_q4_K_q8_K(c.x(), c.y(), c.n);
  return ref ? vec_dot_q6_K_q8_K_ref(c.x(), c.y(), c.n) : vec_dot_q6_K_q8_K(c.x(), c.y(), c.n);
}

// Every path on this CPU against the reference twin, and the twin against the double dot
// product of the decoded rows; all within 1e-5 of the terms' magnitude.
void check_all_paths(const Format& f, const DotCase& c) {
  lm::test::DotPathGuard guard;
  const float ref = dot(f, c, true);
  const double tol = 1e-5 * magnitude(f, c);
  std::vector<float> xd(c.n), yd(c.n);
  f.dequantize(c.x(), xd.data(), c.n);
  dequantize_q8_K(c.y(), yd.data(), c.n);
  double exact = 0;
  for (size_t i = 0; i < c.n; ++i) exact += double(xd[i]) * yd[i];
  CHECK(std::fabs(ref - exact) <= tol);
  for (DotPath p : kPaths) {
    limit_dot_path(p);
    if (dot_path() != p) continue;  // this CPU lacks it
    CAPTURE(std::string(path_name(p)));
    const float fast = dot(f, c, false);
    if (p == DotPath::Portable)
      CHECK(fast == ref);
    else
      CHECK(std::fabs(fast - ref) <= tol);
  }
}

}  // namespace

TEST_CASE("dot path selection: the best the CPU has, limited on request") {
  lm::test::DotPathGuard guard;
  const DotPath best = dot_path();
  MESSAGE("K-quant dot products on this CPU: " << std::string(path_name(best)));
  limit_dot_path(DotPath::Portable);
  CHECK(dot_path() == DotPath::Portable);
  limit_dot_path(DotPath::Avx512Vnni);
  CHECK(dot_path() == best);
  limit_dot_path(DotPath::Avx2);
  CHECK(dot_path() == std::min(best, DotPath::Avx2));
}

TEST_CASE("vec_dot: every path matches _ref on quantized rows of many kinds and lengths") {
  lm::Rng rng(2024);
  const Kind kinds[] = {Kind::Normal, Kind::Uniform, Kind::Outlier, Kind::NegativeOnly, Kind::Sparse, Kind::Magnitudes};
  for (const Format* f : {&kQ4K, &kQ6K}) {
    for (int it = 0; it < 200; ++it) {
      const size_t n = kSuperBlock * (1 + rng.below(16));  // 256 .. 4096
      const Kind k = kinds[it % 6];
      CAPTURE(std::string(f->name));
      CAPTURE(std::string(kind_name(k)));
      CAPTURE(n);
      check_all_paths(*f, quantized_case(*f, k, n, rng));
    }
  }
}

TEST_CASE("vec_dot: every path matches _ref on random block bytes and q8 levels down to -128") {
  lm::Rng rng(99);
  for (const Format* f : {&kQ4K, &kQ6K}) {
    for (int it = 0; it < 200; ++it) {
      const size_t n = kSuperBlock * (1 + rng.below(16));
      CAPTURE(std::string(f->name));
      CAPTURE(n);
      check_all_paths(*f, random_bytes_case(*f, n, rng));
    }
  }
}

TEST_CASE("vec_dot: the largest levels and scales overflow no integer lane") {
  for (const Format* f : {&kQ4K, &kQ6K}) {
    for (int8_t level : {int8_t(127), int8_t(-128)}) {
      CAPTURE(std::string(f->name));
      CAPTURE(int(level));
      const DotCase c = extreme_case(*f, 4 * kSuperBlock, level);
      // q4_K: 256 values of 63 * 15 - 63 = 882 per block; q6_K: -128 * 31 per value.
      const double want = 4.0 * 256 * level * (f == &kQ4K ? 63 * 15 - 63 : -128 * 31);
      CHECK(double(dot(*f, c, true)) == want);
      check_all_paths(*f, c);
    }
  }
}

TEST_CASE("vec_dot: zero rows give exactly zero on every path") {
  lm::test::DotPathGuard guard;
  lm::Rng rng(5);
  for (const Format* f : {&kQ4K, &kQ6K}) {
    const DotCase c = quantized_case(*f, Kind::Zero, 1024, rng);
    for (DotPath p : kPaths) {
      limit_dot_path(p);
      CHECK(dot(*f, c, false) == 0.0f);
    }
  }
}

// vec_dot_tile reads a weight row once for several activation rows (up to 8: q4_K, q5_K, q6_K
// on AVX-512 VNNI, q2_K, q3_K, iq4_xs on AVX2 and up); each product must still equal vec_dot's to the bit, so a batch of
// sequences decodes as each would alone. The rows sit further apart than their size, and the
// slot after the last output must stay untouched.
TEST_CASE("vec_dot_tile: every product equals vec_dot's to the bit, on every path") {
  lm::test::DotPathGuard guard;
  lm::Rng rng(7);
  for (GgmlType t : {GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::Q5_K, GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::IQ4_XS}) {
    const size_t n = 3 * kSuperBlock;
    const int nx = 3;
    const size_t x_stride = row_size(t, n) + 8;
    std::vector<uint8_t> x(x_stride * nx);
    for (int i = 0; i < nx; ++i) {
      const std::vector<float> w = make_row(i == 1 ? Kind::Magnitudes : Kind::Normal, n, rng);
      quantize_row(t, w.data(), x.data() + size_t(i) * x_stride, n);
    }
    const size_t stride = activation_row_size(t, n) + 16;
    for (int ny : {1, 2, 3, 4, 5, 7, 8, 9, 12, 15}) {
      std::vector<uint8_t> y(stride * size_t(ny));
      for (int j = 0; j < ny; ++j) {
        const std::vector<float> v = make_row(j % 3 == 1 ? Kind::Outlier : Kind::Normal, n, rng);
        quantize_activations(t, v.data(), y.data() + size_t(j) * stride, n);
      }
      for (DotPath p : kPaths) {
        limit_dot_path(p);
        if (dot_path() != p) continue;
        CAPTURE(std::string(lm::format::ggml_type_info(t).name));
        CAPTURE(std::string(path_name(p)));
        CAPTURE(ny);
        std::vector<float> out(size_t(nx * ny) + 1, -7.0f);
        vec_dot_tile(t, x.data(), x_stride, nx, y.data(), stride, ny, n, out.data());
        for (int i = 0; i < nx; ++i)
          for (int j = 0; j < ny; ++j) {
            const float one = vec_dot(t, x.data() + size_t(i) * x_stride, y.data() + size_t(j) * stride, n);
            CHECK(std::memcmp(&out[size_t(i * ny + j)], &one, sizeof(float)) == 0);
          }
        CHECK(out[size_t(nx * ny)] == -7.0f);
      }
    }
  }
}

// quantize_q8_K (the activations of every K-quant product) has an AVX-512 version; it must
// write the plain version's bytes: ties of magnitude (the first sets the sign of the scale),
// values on .5 after scaling, zero blocks, subnormal blocks, and rows with infinity or NaN (left
// to the plain version).
TEST_CASE("quantize_q8_K: the AVX-512 version writes the plain version's bytes") {
  lm::test::DotPathGuard guard;
  lm::Rng rng(11);
  const size_t n = 4 * kSuperBlock;
  for (int it = 0; it < 300; ++it) {
    std::vector<float> x = make_row(kKinds[size_t(it) % std::size(kKinds)], n, rng);
    if (it % 7 == 1) x[200] = std::fabs(x[200]) + 3, x[5] = -x[200];  // a tie of magnitude, the negative first
    if (it % 7 == 2) for (size_t i = 0; i < 256; ++i) x[i] = (float(int(i % 255)) - 127.0f) / 2.0f;  // .5 steps
    if (it % 7 == 3) x[300] = INFINITY;
    if (it % 7 == 4) x[600] = NAN;
    if (it % 7 == 5) std::fill(x.begin() + 256, x.begin() + 512, 0.0f);
    if (it % 7 == 6) std::fill(x.begin() + 512, x.begin() + 768, 1e-40f);  // subnormal: infinite scale
    std::vector<uint8_t> fast(n / kSuperBlock * sizeof(BlockQ8_K)), plain(fast.size());
    limit_dot_path(DotPath::Avx512Vnni);
    quantize_q8_K(x.data(), fast.data(), n);
    limit_dot_path(DotPath::Portable);
    quantize_q8_K(x.data(), plain.data(), n);
    CAPTURE(it);
    CHECK(std::memcmp(fast.data(), plain.data(), fast.size()) == 0);
  }
}
