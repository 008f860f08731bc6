// Tests for lib/kernels/qmatmul: packing round-trips the file's blocks; the VNNI, AVX2 and plain
// paths of the packed types' products (q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl) give the
// reference twin's bits; the reference equals a product in double over the dequantized weights
// and the block-quantized activations; K-quant and dequantized-panel paths agree with theirs;
// decoding and batch shapes, strips of 16 rows left partial, beta, and shared inputs.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "base/memory.hpp"
#include "kernels/qmatmul.hpp"
#include "kernels/simd.hpp"
#include "quant/quant.hpp"

using namespace lm::kernels;
using lm::format::GgmlType;

namespace {

std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// A matrix quantized to `t` and packed the way the loader does it.
struct Packed {
  lm::LargeVector<uint8_t> buf;
  QWeight W;
  Packed(GgmlType t, const std::vector<float>& w, int rows, int cols) {
    std::vector<uint8_t> file(lm::quant::row_size(t, size_t(cols)) * size_t(rows));
    for (int r = 0; r < rows; ++r)
      lm::quant::quantize_row(t, w.data() + size_t(r) * cols, file.data() + size_t(r) * file.size() / rows, size_t(cols));
    buf.resize(packed_size(t, rows, cols));
    pack_weight(t, file.data(), rows, cols, buf.data());
    W = {t, rows, cols, buf.data()};
  }
};

// y = x W^T in double over the dequantized weights and x quantized as the kernels do (q8_0
// blocks, scale rounded to f16, round to nearest even).
std::vector<double> expected(const std::vector<float>& x, const QWeight& W, int N) {
  const int C = W.cols;
  std::vector<float> wr(static_cast<size_t>(C)), xq(x.size());
  for (int n = 0; n < N; ++n)
    for (int b = 0; b < C / 32; ++b) {
      const float* xb = x.data() + size_t(n) * C + b * 32;
      float amax = 0;
      for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(xb[j]));
      const float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
      const float dr = lm::quant::fp16_to_fp32(lm::quant::fp32_to_fp16(d));
      for (int j = 0; j < 32; ++j) xq[size_t(n) * C + b * 32 + j] = dr * std::nearbyint(xb[j] * id);
    }
  std::vector<double> y(size_t(N) * W.rows);
  for (int o = 0; o < W.rows; ++o) {
    dequantize_weight_row(W, o, wr.data());
    for (int n = 0; n < N; ++n) {
      double s = 0;
      for (int c = 0; c < C; ++c) s += double(wr[c]) * xq[size_t(n) * C + c];
      y[size_t(n) * W.rows + o] = s;
    }
  }
  return y;
}

void check_close(const float* got, const float* want, size_t n, double rel) {
  double scale = 0;
  for (size_t i = 0; i < n; ++i) scale = std::max(scale, double(std::fabs(want[i])));
  for (size_t i = 0; i < n; ++i) REQUIRE(std::fabs(got[i] - want[i]) <= rel * scale + 1e-6);
}

std::vector<float> run(const float* x, const QWeight& W, int N, float beta, const std::vector<float>& y0) {
  std::vector<float> y = y0;
  lm::LargeVector<uint8_t> scratch(qmatmul_scratch(W, N) + 64);
  qmatmul_forward(y.data(), x, W, N, beta, scratch.data());
  return y;
}

}  // namespace

// The types pack_weight repacks into strips of 16 rows.
const GgmlType kPackedTypes[] = {GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1,
                                 GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::IQ4_NL};

TEST_CASE("pack_weight keeps every value: dequantize_weight_row equals the file's blocks") {
  for (GgmlType t : kPackedTypes)
    for (int cols : {32, 96, 128, 160, 384, 1024}) {
      const int rows = cols == 96 ? 21 : 5;
      const std::vector<float> w = randn(size_t(rows) * cols, 7 + cols);
      Packed p(t, w, rows, cols);
      std::vector<uint8_t> file(lm::quant::row_size(t, static_cast<size_t>(cols)));
      std::vector<float> a(static_cast<size_t>(cols)), b(static_cast<size_t>(cols));
      for (int r = 0; r < rows; ++r) {
        lm::quant::quantize_row(t, w.data() + size_t(r) * cols, file.data(), size_t(cols));
        lm::quant::dequantize_row(t, file.data(), a.data(), size_t(cols));
        dequantize_weight_row(p.W, r, b.data());
        REQUIRE(std::memcmp(a.data(), b.data(), sizeof(float) * size_t(cols)) == 0);
      }
    }
}

TEST_CASE("packed products: the reference equals the double-precision definition") {
  for (GgmlType t : kPackedTypes)
    for (int cols : {32, 160, 256}) {
      const int rows = 9, N = 3;
      Packed p(t, randn(size_t(rows) * cols, 3), rows, cols);
      const std::vector<float> x = randn(size_t(N) * cols, 4, 2.0f);
      std::vector<float> y(size_t(N) * rows);
      qmatmul_forward_ref(y.data(), x.data(), p.W, N, 0.0f);
      const std::vector<double> want = expected(x, p.W, N);
      std::vector<float> wantf(want.begin(), want.end());
      check_close(y.data(), wantf.data(), y.size(), 1e-5);
    }
}

TEST_CASE("packed products: VNNI, AVX2 and plain paths give the reference's bits") {
  struct Shape {
    int N, C, OC;
  };
  // Decoding (1..4 rows), batches that leave a partial chunk of 8 activation rows, row counts
  // that leave a partial strip of 16 rows, columns that are not a multiple of 128.
  const Shape shapes[] = {{1, 128, 64}, {1, 1024, 300}, {2, 256, 70}, {4, 384, 129}, {5, 160, 67},
                          {7, 1056, 33}, {17, 512, 130}, {64, 128, 256}, {3, 32, 5}, {9, 96, 16},
                          {8, 64, 15}};
  for (GgmlType t : kPackedTypes)
    for (const Shape& s : shapes)
      for (float beta : {0.0f, 1.0f}) {
        CAPTURE(int(t));
        CAPTURE(s.N);
        CAPTURE(s.C);
        CAPTURE(s.OC);
        Packed p(t, randn(size_t(s.OC) * s.C, 11 + s.C), s.OC, s.C);
        std::vector<float> x = randn(size_t(s.N) * s.C, 12 + s.N, 3.0f);
        x[5] = 40.0f;  // an outlier: its block gets a coarse scale
        for (int c = 0; c < 32; ++c) x[size_t(s.C - 32 + c)] = 0.0f;  // an all-zero block
        if (s.C >= 96)  // a block whose 1 / d is past a float's range: quants 0, as ggml's
          for (int c = 32; c < 64; ++c) x[size_t(c)] = c % 2 ? 1e-38f : -2e-39f;
        const std::vector<float> y0 = randn(size_t(s.N) * s.OC, 13);
        std::vector<float> ref = y0;
        qmatmul_forward_ref(ref.data(), x.data(), p.W, s.N, beta);
        for (int path = 0; path < 3; ++path) {
          CAPTURE(path);
          enable_vnni(path == 0);
          enable_avx2(path < 2);
          enable_avx512(path == 0);
          const std::vector<float> y = run(x.data(), p.W, s.N, beta, y0);
          // Every path computes the reference's lanes with the same float operations.
          REQUIRE(std::memcmp(y.data(), ref.data(), sizeof(float) * y.size()) == 0);
        }
        enable_vnni(true);
        enable_avx2(true);
        enable_avx512(true);
      }
}

TEST_CASE("shared inputs: one quantization of x serves several weights") {
  for (GgmlType t : {GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::F32, GgmlType::F16, GgmlType::Q4_1, GgmlType::Q5_K})
    for (int N : {1, 3, 9}) {
      const int C = 256;
      Packed a(t, randn(size_t(100) * C, 1), 100, C), b(t, randn(size_t(40) * C, 2), 40, C);
      const std::vector<float> x = randn(size_t(N) * C, 3);
      std::vector<float> ya(size_t(N) * 100), yb(size_t(N) * 40);
      const QLinearOut outs[2] = {{ya.data(), &a.W}, {yb.data(), &b.W}};
      lm::LargeVector<uint8_t> scratch(std::max(qmatmul_scratch(a.W, N), qmatmul_scratch(b.W, N)) + 64);
      qmatmul_forward_shared(x.data(), N, outs, 2, scratch.data());
      const std::vector<float> za = run(x.data(), a.W, N, 0.0f, ya), zb = run(x.data(), b.W, N, 0.0f, yb);
      CHECK(std::memcmp(ya.data(), za.data(), sizeof(float) * ya.size()) == 0);
      CHECK(std::memcmp(yb.data(), zb.data(), sizeof(float) * yb.size()) == 0);
    }
}

// 200 rows: q4_K and q6_K take the tile (on AVX-512 VNNI), q3_K panels; each must still equal
// its own.
TEST_CASE("shared inputs: weights of types that take the same activations (q4_K, q6_K, q3_K) share them") {
  for (int N : {1, 3, 9, 200}) {
    const int C = 512;
    Packed a(GgmlType::Q4_K, randn(size_t(100) * C, 1), 100, C), b(GgmlType::Q6_K, randn(size_t(40) * C, 2), 40, C),
        c(GgmlType::Q3_K, randn(size_t(30) * C, 4), 30, C), d(GgmlType::Q5_0, randn(size_t(20) * C, 5), 20, C);
    const std::vector<float> x = randn(size_t(N) * C, 3);
    std::vector<float> ya(size_t(N) * 100), yb(size_t(N) * 40), yc(size_t(N) * 30), yd(size_t(N) * 20);
    const QLinearOut outs[3] = {{ya.data(), &a.W}, {yb.data(), &b.W}, {yc.data(), &c.W}};
    size_t scratch_bytes = 0;
    for (const Packed* p : {&a, &b, &c, &d}) scratch_bytes = std::max(scratch_bytes, qmatmul_scratch(p->W, N));
    lm::LargeVector<uint8_t> scratch(scratch_bytes + 64);
    qmatmul_forward_shared(x.data(), N, outs, 3, scratch.data());
    CHECK(ya == run(x.data(), a.W, N, 0.0f, ya));
    CHECK(yb == run(x.data(), b.W, N, 0.0f, yb));
    CHECK(yc == run(x.data(), c.W, N, 0.0f, yc));
    // q5_0 takes q8_0 activations: not shared with q4_K, each computed on its own.
    const QLinearOut mixed[2] = {{ya.data(), &a.W}, {yd.data(), &d.W}};
    qmatmul_forward_shared(x.data(), N, mixed, 2, scratch.data());
    CHECK(ya == run(x.data(), a.W, N, 0.0f, ya));
    CHECK(yd == run(x.data(), d.W, N, 0.0f, yd));
  }
}

TEST_CASE("f32 and f16 weights: the fast paths agree with the reference") {
  for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::BF16})
    for (int N : {1, 4, 20}) {
      const int C = 96, OC = 300;
      Packed p(t, randn(size_t(OC) * C, 5), OC, C);
      const std::vector<float> x = randn(size_t(N) * C, 6);
      const std::vector<float> y0 = randn(size_t(N) * OC, 7);
      std::vector<float> ref = y0;
      qmatmul_forward_ref(ref.data(), x.data(), p.W, N, 1.0f);
      const std::vector<float> y = run(x.data(), p.W, N, 1.0f, y0);
      check_close(y.data(), ref.data(), y.size(), 1e-5);
    }
}

// Short batches take the dot products (up to 32 rows; from AVX2 up q3_K always and q2_K to 64;
// q4_K, q5_K, q6_K and iq4_xs always on AVX-512 VNNI, iq4_xs to 64 on AVX2), longer ones
// dequantized panels into sgemm shared out among the threads (33 x 70 x 768 is large enough to
// run in parallel). 129 and 257 rows, on the shorter rows only: the tile on
// long batches.
TEST_CASE("block types with vec_dot: decoding and prompt paths agree with the reference") {
  const GgmlType types[] = {GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K,
                            GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::IQ4_XS};
  for (GgmlType t : types)
    for (int C : {256, 768})
      for (int N : {1, 2, 4, 9, 32, 33, 129, 257})
        for (float beta : {0.0f, 1.0f}) {
          if (N > 100 && C > 256) continue;
          const std::string type_name = lm::format::ggml_type_info(t).name;
          CAPTURE(type_name);
          CAPTURE(C);
          CAPTURE(N);
          const int OC = 70;
          Packed p(t, randn(size_t(OC) * C, 21 + C), OC, C);
          std::vector<float> x = randn(size_t(N) * C, 22 + N, 2.0f);
          x[3] = 30.0f;  // an outlier
          const std::vector<float> y0 = randn(size_t(N) * OC, 23);
          std::vector<float> ref = y0;
          qmatmul_forward_ref(ref.data(), x.data(), p.W, N, beta);
          const std::vector<float> y = run(x.data(), p.W, N, beta, y0);
          check_close(y.data(), ref.data(), y.size(), 1e-5);
          // Decoding quantizes the activations: within a few percent of the product with
          // q8_0-quantized x; q8_K's blocks of 256 share the outlier's coarse step.
          if (N <= 4) {
            const double tol = lm::quant::dot_activation_type(t) == GgmlType::Q8_K ? 0.1 : 0.03;
            const std::vector<double> want = expected(x, p.W, N);
            double scale = 0, err = 0;
            for (size_t i = 0; i < want.size(); ++i) {
              const double w = want[i] + beta * y0[i];
              scale = std::max(scale, std::fabs(w));
              err = std::max(err, std::fabs(y[i] - w));
            }
            CHECK(err <= tol * scale);
          }
        }
}
