// Tests for the kernels of other architectures' layers (lib/kernels/layers.cpp and
// attention_cached_ext): each fast kernel against its _ref twin on odd sizes, on both the
// AVX-512 and the portable paths, and small cases computed by hand.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <tuple>
#include <vector>

#include "base/rng.hpp"
#include "kernels/blas.hpp"
#include "kernels/kernels.hpp"
#include "kernels/simd.hpp"
#include "kernels/kernel_test_util.hpp"

using namespace lm::kernels;

namespace {

using lm::test::max_rel_diff;
using lm::test::randn;

// Runs `body` on each implementation this CPU has: the AVX-512 paths, then the portable ones.
template <class F>
void for_each_path(F body) {
  for (bool avx512 : {true, false}) {
    enable_avx512(avx512);
    CAPTURE(avx512);
    body();
  }
  enable_avx512(true);
}

}  // namespace

TEST_CASE("layernorm matches the reference, with and without bias, in place, and with a large mean") {
  for_each_path([] {
    for (auto [N, C] : {std::pair{1, 7}, std::pair{1, 1000}, std::pair{5, 33}, std::pair{40, 1001}}) {
      CAPTURE(N);
      CAPTURE(C);
      auto x = randn(size_t(N) * C, 1, 2.0f), w = randn(size_t(C), 2), b = randn(size_t(C), 3);
      // Row 0 sits far from 0: the mean is 1e4 times the spread.
      for (int c = 0; c < C; ++c) x[size_t(c)] += 1e4f;
      for (const float* bias : {static_cast<const float*>(nullptr), static_cast<const float*>(b.data())}) {
        CAPTURE(bias != nullptr);
        std::vector<float> y(x.size()), y_ref(x.size());
        layernorm_forward(y.data(), x.data(), w.data(), bias, N, C, 1e-5f);
        layernorm_forward_ref(y_ref.data(), x.data(), w.data(), bias, N, C, 1e-5f);
        CHECK(max_rel_diff(y, y_ref) < 2e-6);
        auto inplace = x;
        layernorm_forward(inplace.data(), inplace.data(), w.data(), bias, N, C, 1e-5f);
        CHECK(inplace == y);
      }
    }
  });
}

TEST_CASE("layernorm of small rows computed by hand") {
  // [1, 2, 3]: mean 2, biased variance 2/3, so y = (x - 2) sqrt(3/2).
  std::vector<float> x = {1, 2, 3}, w = {1, 1, 1}, b = {0, 0, 0}, y(3);
  layernorm_forward(y.data(), x.data(), w.data(), b.data(), 1, 3, 0.0f);
  CHECK(y[0] == doctest::Approx(-1.224744871391589).epsilon(1e-6));
  CHECK(y[1] == 0.0f);
  CHECK(y[2] == doctest::Approx(1.224744871391589).epsilon(1e-6));
  // Gains and bias apply per channel after the normalisation; bias nullptr is no bias.
  std::vector<float> w2 = {2, 3, 4}, b2 = {0.5f, -1, 10};
  layernorm_forward(y.data(), x.data(), w2.data(), b2.data(), 1, 3, 0.0f);
  CHECK(y[0] == doctest::Approx(0.5 - 2 * 1.224744871391589).epsilon(1e-6));
  CHECK(y[1] == -1.0f);
  CHECK(y[2] == doctest::Approx(10 + 4 * 1.224744871391589).epsilon(1e-6));
  layernorm_forward(y.data(), x.data(), w2.data(), nullptr, 1, 3, 0.0f);
  CHECK(y[1] == 0.0f);
  // A constant row is 0 (+ bias): eps keeps rstd finite.
  std::vector<float> flat = {5, 5, 5, 5}, w4 = {1, 1, 1, 1}, b4 = {0, 1, 2, 3}, y4(4);
  layernorm_forward(y4.data(), flat.data(), w4.data(), b4.data(), 1, 4, 1e-5f);
  CHECK(y4 == b4);
  // eps adds to the variance: [-1, 1] has variance 1, and eps 3 makes rstd 1/2.
  std::vector<float> pm = {-1, 1}, w1 = {1, 1}, y2(2);
  layernorm_forward(y2.data(), pm.data(), w1.data(), nullptr, 1, 2, 3.0f);
  CHECK(y2 == std::vector<float>{-0.5f, 0.5f});
}

TEST_CASE("rope_table matches the reference in both pair orders, partial and scaled, on odd shapes") {
  for (auto [n, H, D, n_rot, pos0] : {std::tuple{1, 1, 4, 4, 0}, std::tuple{1, 3, 10, 6, 1000}, std::tuple{9, 2, 64, 64, 5},
                                      std::tuple{7, 5, 80, 32, 77}, std::tuple{40, 4, 128, 128, 3}}) {
    CAPTURE(n);
    CAPTURE(D);
    CAPTURE(n_rot);
    std::vector<float> inv_freq(size_t(n_rot / 2));
    for (size_t i = 0; i < inv_freq.size(); ++i) inv_freq[i] = std::pow(10000.0f, -2.0f * float(i) / float(n_rot)) * 0.7f;
    const auto x = randn(size_t(n) * H * D, 10);
    for (bool neox : {false, true})
      for (float mscale : {1.0f, 1.3f}) {
        CAPTURE(neox);
        CAPTURE(mscale);
        auto a = x, b = x;
        rope_table_forward(a.data(), n, H, D, n_rot, inv_freq.data(), mscale, neox, pos0);
        rope_table_forward_ref(b.data(), n, H, D, n_rot, inv_freq.data(), mscale, neox, pos0);
        CHECK(max_rel_diff(a, b) < 1e-6);
        // Partial rotary: the dimensions from n_rot on are untouched, bit for bit.
        for (size_t r = 0; r < size_t(n) * H; ++r)
          for (int c = n_rot; c < D; ++c) CHECK(a[r * size_t(D) + size_t(c)] == x[r * size_t(D) + size_t(c)]);
      }
  }
}

TEST_CASE("rope_table with base^(-2i/D), all dimensions and mscale 1 is rope_forward, in both orders") {
  for (const bool neox : {false, true}) {
  CAPTURE(neox);
  const int n = 6, H = 3, D = 16;
  const float base = 10000.0f;
  std::vector<float> inv_freq(D / 2);
  for (int i = 0; i < D / 2; ++i) inv_freq[size_t(i)] = float(std::pow(double(base), -2.0 * i / D));
  const auto x = randn(size_t(n) * H * D, 11);
  auto a = x, b = x, a_ref = x, b_ref = x;
  rope_table_forward(a.data(), n, H, D, D, inv_freq.data(), 1.0f, neox, 3);
  rope_forward(b.data(), 1, n, H, D, base, 3, neox);
  // inv_freq is rounded to float, rope_forward's frequencies are not: at positions below 10 the
  // angles differ by less than 1e-6.
  CHECK(max_rel_diff(a, b) < 2e-6);
  rope_table_forward_ref(a_ref.data(), n, H, D, D, inv_freq.data(), 1.0f, neox, 3);
  rope_forward_ref(b_ref.data(), 1, n, H, D, base, 3, neox);
  CHECK(max_rel_diff(a_ref, b_ref) < 2e-6);
  }
}

TEST_CASE("rope_table on a tiny head: NORM and NeoX pairs, partial rotary, mscale, position 0") {
  // Position 2, frequencies 0.5 and 0.25: pair 0 turns by 1 radian, pair 1 by 0.5.
  const std::vector<float> inv_freq = {0.5f, 0.25f};
  const double c1 = std::cos(1.0), s1 = std::sin(1.0), c2 = std::cos(0.5), s2 = std::sin(0.5);
  // Head of 6 with n_rot 4: x[4] and x[5] are not rotated.
  const std::vector<float> x = {1, 2, 3, 4, 5, 6};
  auto norm = x, neox = x;
  rope_table_forward(norm.data(), 1, 1, 6, 4, inv_freq.data(), 1.0f, false, 2);
  rope_table_forward(neox.data(), 1, 1, 6, 4, inv_freq.data(), 1.0f, true, 2);
  // NORM: pairs (x0, x1) and (x2, x3).
  CHECK(norm[0] == doctest::Approx(1 * c1 - 2 * s1));
  CHECK(norm[1] == doctest::Approx(1 * s1 + 2 * c1));
  CHECK(norm[2] == doctest::Approx(3 * c2 - 4 * s2));
  CHECK(norm[3] == doctest::Approx(3 * s2 + 4 * c2));
  // NeoX: pairs (x0, x2) and (x1, x3), half of n_rot apart (not half of D).
  CHECK(neox[0] == doctest::Approx(1 * c1 - 3 * s1));
  CHECK(neox[2] == doctest::Approx(1 * s1 + 3 * c1));
  CHECK(neox[1] == doctest::Approx(2 * c2 - 4 * s2));
  CHECK(neox[3] == doctest::Approx(2 * s2 + 4 * c2));
  for (const auto* v : {&norm, &neox}) {
    CHECK((*v)[4] == 5.0f);
    CHECK((*v)[5] == 6.0f);
  }
  // mscale multiplies the rotated dimensions only.
  auto scaled = x;
  rope_table_forward(scaled.data(), 1, 1, 6, 4, inv_freq.data(), 2.0f, true, 2);
  for (int i = 0; i < 4; ++i) CHECK(scaled[size_t(i)] == doctest::Approx(2 * neox[size_t(i)]));
  CHECK(scaled[4] == 5.0f);
  // Position 0 with mscale 1 is the identity, bit for bit; token t has position pos0 + t.
  std::vector<float> two = {1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6};
  rope_table_forward(two.data(), 2, 1, 6, 4, inv_freq.data(), 1.0f, false, 0);
  CHECK(std::vector<float>(two.begin(), two.begin() + 6) == x);
  auto at1 = x;
  rope_table_forward(at1.data(), 1, 1, 6, 4, inv_freq.data(), 1.0f, false, 1);
  CHECK(std::vector<float>(two.begin() + 6, two.end()) == at1);
}

TEST_CASE("gelu and geglu match the reference and ggml's f32 formula; gelu at known points") {
  for_each_path([] {
    for (size_t n : {size_t(1), size_t(17), size_t(4099), size_t(40001)}) {
      CAPTURE(n);
      auto g = randn(n, 20, 3.0f), u = randn(n, 21);
      std::vector<float> h(n), h_ref(n);
      gelu_forward(h.data(), g.data(), n);
      gelu_forward_ref(h_ref.data(), g.data(), n);
      CHECK(max_rel_diff(h, h_ref) < 1e-6);
      auto inplace = g;
      gelu_forward(inplace.data(), inplace.data(), n);
      CHECK(inplace == h);
      std::vector<float> gg(n), gg_ref(n);
      geglu_forward(gg.data(), g.data(), u.data(), n);
      geglu_forward_ref(gg_ref.data(), g.data(), u.data(), n);
      CHECK(max_rel_diff(gg, gg_ref) < 1e-6);
      // geglu is gelu times u, bit for bit.
      for (size_t i = 0; i < n; ++i) h[i] *= u[i];
      CHECK(gg == h);
    }
    // ggml_gelu_f32 (ggml-cpu/vec.h) in float: the same function, up to its rounding.
    std::vector<float> g, h;
    for (int i = -2000; i <= 2000; ++i) g.push_back(float(i) * 0.005f);
    h.resize(g.size());
    gelu_forward(h.data(), g.data(), g.size());
    double worst = 0;
    for (size_t i = 0; i < g.size(); ++i) {
      const float x = g[i];
      const float ggml = 0.5f * x * (1.0f + std::tanh(0.79788456080286535587989211986876f * x * (1.0f + 0.044715f * x * x)));
      worst = std::max(worst, std::fabs(double(h[i]) - ggml));
    }
    CHECK(worst < 2e-6);
    // 0.5 g (1 + tanh(sqrt(2/pi) (g + 0.044715 g^3))) at 0, +-1, 2, and far out.
    std::vector<float> pts = {0.0f, 1.0f, -1.0f, 2.0f, 20.0f, -20.0f}, out(pts.size());
    gelu_forward(out.data(), pts.data(), pts.size());
    CHECK(out[0] == 0.0f);
    CHECK(out[1] == doctest::Approx(0.8411919906082768).epsilon(1e-6));
    CHECK(out[2] == doctest::Approx(-0.15880800939172324).epsilon(1e-6));
    CHECK(out[3] == doctest::Approx(1.954597694087775).epsilon(1e-6));
    CHECK(out[4] == 20.0f);
    CHECK(std::fabs(out[5]) < 1e-30f);
  });
}

TEST_CASE("add_bias adds the same bias to every row, like the reference") {
  for (auto [N, OC] : {std::pair{1, 13}, std::pair{3, 1}, std::pair{40, 1001}}) {
    CAPTURE(N);
    CAPTURE(OC);
    auto y = randn(size_t(N) * OC, 30), b = randn(size_t(OC), 31);
    auto y_ref = y;
    add_bias(y.data(), b.data(), N, OC);
    add_bias_ref(y_ref.data(), b.data(), N, OC);
    CHECK(y == y_ref);
  }
  std::vector<float> y = {1, 2, 3, 4}, b = {0.5f, -1};
  add_bias(y.data(), b.data(), 2, 2);
  CHECK(y == std::vector<float>{1.5f, 1, 3.5f, 3});
}

TEST_CASE("softcap matches the reference to a few ulp, is odd, and caps at +-cap") {
  for_each_path([] {
    for (size_t n : {size_t(1), size_t(33), size_t(40001)}) {
      CAPTURE(n);
      for (float cap : {30.0f, 1.0f}) {
        CAPTURE(cap);
        auto x = randn(n, 40, 2.0f * cap), x_ref = x;
        softcap_forward(x.data(), n, cap);
        softcap_forward_ref(x_ref.data(), n, cap);
        CHECK(max_rel_diff(x, x_ref) < 1e-6);
      }
    }
    // Relative error on a sweep across the switch between the two tanh formulas (|x / cap| = 0.5)
    // and down to tiny values.
    std::vector<float> x;
    for (int i = -6000; i <= 6000; ++i) x.push_back(float(i) * 1e-3f);
    for (float t = 1e-30f; t < 1.0f; t *= 3.0f) x.push_back(t);
    auto y = x, y_ref = x;
    softcap_forward(y.data(), y.size(), 1.0f);
    softcap_forward_ref(y_ref.data(), y_ref.size(), 1.0f);
    double worst = 0;
    for (size_t i = 0; i < x.size(); ++i)
      if (y_ref[i] != 0.0f) worst = std::max(worst, std::fabs(double(y[i]) - y_ref[i]) / std::fabs(double(y_ref[i])));
    CHECK(worst < 3e-7);  // 2.5 ulp
    // Odd, 0 at 0, +-cap at +-inf, NaN stays NaN; cap tanh(x / cap) at a point.
    const float inf = std::numeric_limits<float>::infinity();
    std::vector<float> v = {0.0f, 7.0f, -7.0f, inf, -inf, 1e30f, std::nanf(""), 15.0f};
    softcap_forward(v.data(), v.size(), 30.0f);
    CHECK(v[0] == 0.0f);
    CHECK(v[1] == -v[2]);
    CHECK(v[3] == 30.0f);
    CHECK(v[4] == -30.0f);
    CHECK(v[5] == 30.0f);
    CHECK(std::isnan(v[6]));
    CHECK(v[7] == doctest::Approx(30.0 * std::tanh(0.5)).epsilon(1e-6));
  });
}

TEST_CASE("attention_cached_ext matches the reference with every option, and itself one token at a time") {
  for_each_path([] {
    // n 150 spans two query blocks; pos0 > 0 continues a cache; GQA; D not a multiple of 8.
    for (auto [n, pos0, H, Hkv, D] : {std::tuple{1, 0, 1, 1, 4}, std::tuple{1, 40, 4, 2, 16}, std::tuple{5, 3, 4, 4, 8},
                                      std::tuple{150, 20, 6, 2, 16}, std::tuple{7, 9, 2, 2, 6}}) {
      CAPTURE(n);
      CAPTURE(pos0);
      const int T = pos0 + n, cap = T + 5;
      auto q = randn(size_t(n) * H * D, 80), kc = randn(size_t(Hkv) * cap * D, 81), vc = randn(size_t(Hkv) * cap * D, 82);
      for (float scale : {0.0f, 0.7f})
        for (float softcap : {0.0f, 1.5f})
          for (int window : {0, 1, 3, 40})
            for (bool causal : {true, false}) {
              AttentionOptions o;
              o.scale = scale;
              o.softcap = softcap;
              o.window = window;
              o.causal = causal;
              CAPTURE(scale);
              CAPTURE(softcap);
              CAPTURE(window);
              CAPTURE(causal);
              std::vector<float> out(q.size()), out_ref(q.size()), scratch(attention_cached_scratch(n, T, H));
              attention_cached_ext(out.data(), q.data(), kc.data(), vc.data(), n, pos0, H, Hkv, D, cap, o,
                                   scratch.data());
              attention_cached_ext_ref(out_ref.data(), q.data(), kc.data(), vc.data(), n, pos0, H, Hkv, D, cap, o);
              CHECK(max_rel_diff(out, out_ref) < 1e-5);
              if (!causal) continue;
              // Decoding the queries one at a time gives the batch's rows.
              std::vector<float> one(size_t(H) * D), s1(attention_cached_scratch(1, T, H));
              for (int i = 0; i < n; i += std::max(1, n / 7)) {
                attention_cached_ext(one.data(), q.data() + size_t(i) * H * D, kc.data(), vc.data(), 1, pos0 + i, H,
                                     Hkv, D, cap, o, s1.data());
                std::vector<float> row(out.begin() + long(i) * H * D, out.begin() + long(i + 1) * H * D);
                CHECK(max_rel_diff(one, row) < 1e-5);
              }
            }
      // The default options are attention_cached, and scale 0 means 1/sqrt(D), bit for bit.
      std::vector<float> a(q.size()), b(q.size()), c(q.size()), scratch(attention_cached_scratch(n, T, H));
      attention_cached(a.data(), q.data(), kc.data(), vc.data(), n, pos0, H, Hkv, D, cap, scratch.data());
      attention_cached_ext(b.data(), q.data(), kc.data(), vc.data(), n, pos0, H, Hkv, D, cap, AttentionOptions{},
                           scratch.data());
      AttentionOptions explicit_scale;
      explicit_scale.scale = 1.0f / std::sqrt(float(D));
      attention_cached_ext(c.data(), q.data(), kc.data(), vc.data(), n, pos0, H, Hkv, D, cap, explicit_scale,
                           scratch.data());
      CHECK(a == b);
      CHECK(b == c);
    }
  });
}

TEST_CASE("attention_cached_ext masks and soft-capping on tiny caches computed by hand") {
  for_each_path([] {
    // D 1, one head, queries 0: every key seen gets the same weight, so each output is the mean
    // of the values it sees. Values 1, 3, 5, 7 at positions 0..3.
    const std::vector<float> kc = {0.25f, -1, 2, 0.5f}, vc = {1, 3, 5, 7};
    auto run = [&](int n, int pos0, AttentionOptions o) {
      const size_t len = static_cast<size_t>(n);
      std::vector<float> q(len, 0.0f), out(len), scratch(attention_cached_scratch(n, pos0 + n, 1));
      attention_cached_ext(out.data(), q.data(), kc.data(), vc.data(), n, pos0, 1, 1, 1, 4, o, scratch.data());
      // Weights 1/3 are rounded: equal to 1e-6.
      std::vector<double> rounded;
      for (float x : out) rounded.push_back(std::round(double(x) * 1e6) / 1e6);
      return rounded;
    };
    AttentionOptions causal;
    CHECK(run(4, 0, causal) == std::vector<double>{1, 2, 3, 4});
    CHECK(run(1, 3, causal) == std::vector<double>{4});
    AttentionOptions bidir;
    bidir.causal = false;
    CHECK(run(4, 0, bidir) == std::vector<double>{4, 4, 4, 4});
    // Window 2: the query's own key and the one before.
    AttentionOptions win2;
    win2.window = 2;
    CHECK(run(4, 0, win2) == std::vector<double>{1, 2, 4, 6});
    CHECK(run(2, 2, win2) == std::vector<double>{4, 6});
    CHECK(run(1, 3, win2) == std::vector<double>{6});
    // Window 1: only its own key, whatever the scores.
    AttentionOptions win1;
    win1.window = 1;
    CHECK(run(4, 0, win1) == std::vector<double>{1, 3, 5, 7});
    // Not causal with a window: it limits only the keys before the query.
    AttentionOptions bidir_win2 = win2;
    bidir_win2.causal = false;
    CHECK(run(4, 0, bidir_win2) == std::vector<double>{4, 4, 5, 6});

    // Soft-capping: q 1, keys 100 and 0, scale 1, cap 1: the scores become tanh(100) = 1 and 0,
    // so the weights are e / (e + 1) and 1 / (e + 1); without the cap the first key takes all.
    const std::vector<float> k2 = {100, 0}, v2 = {1, 0}, q1 = {1};
    std::vector<float> out(1), scratch(attention_cached_scratch(1, 2, 1));
    AttentionOptions sc;
    sc.scale = 1.0f;
    sc.softcap = 1.0f;
    attention_cached_ext(out.data(), q1.data(), k2.data(), v2.data(), 1, 1, 1, 1, 1, 2, sc, scratch.data());
    CHECK(out[0] == doctest::Approx(0.7310585786300049).epsilon(1e-6));
    sc.softcap = 0.0f;
    attention_cached_ext(out.data(), q1.data(), k2.data(), v2.data(), 1, 1, 1, 1, 1, 2, sc, scratch.data());
    CHECK(out[0] == 1.0f);
    // The scale multiplies the scores: scale 0.01 gives weights e / (e + 1) again.
    sc.scale = 0.01f;
    attention_cached_ext(out.data(), q1.data(), k2.data(), v2.data(), 1, 1, 1, 1, 1, 2, sc, scratch.data());
    CHECK(out[0] == doctest::Approx(0.7310585786300049).epsilon(1e-6));
  });
}
