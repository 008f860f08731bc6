// Tests for lib/kernels/kernels: every fast kernel against its _ref twin on odd and even shapes,
// and every backward pass against central finite differences of the forward pass.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <tuple>
#include <vector>

#include "base/file.hpp"
#include "base/rng.hpp"
#include "golden_reader.hpp"
#include "kernels/blas.hpp"
#include "kernels/kernels.hpp"
#include "kernels/simd.hpp"
#include "kernels/kernel_test_util.hpp"

using namespace lm::kernels;

namespace {

using lm::test::max_rel_diff;
using lm::test::randn;

// Checks grad[i] == d/dx[i] of loss(x) by central differences, at `samples` indices.
void check_grad(std::vector<float>& x, const std::vector<float>& grad, const std::function<double()>& loss,
                int samples = 24, float h = 1e-2f, double tol = 2e-2) {
  lm::Rng rng(99);
  double gmax = 0;
  for (float g : grad) gmax = std::max(gmax, double(std::fabs(g)));
  for (int s = 0; s < samples; ++s) {
    const size_t i = size_t(rng.below(x.size()));
    const float keep = x[i];
    x[i] = keep + h;
    const double up = loss();
    x[i] = keep - h;
    const double down = loss();
    x[i] = keep;
    const double fd = (up - down) / (2.0 * h);
    CAPTURE(i);
    CHECK(std::fabs(fd - grad[i]) <= tol * (gmax + 1e-3));
  }
}

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

// Runs `body` at `threads` OpenMP threads, then restores the default (all cores).
template <class F>
void with_threads(int threads, F body) {
  set_threads(threads);
  body();
  set_threads(0);
}

double dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += double(a[i]) * b[i];
  return s;
}

}  // namespace

TEST_CASE("rmsnorm forward and backward match the reference and finite differences") {
  for (auto [N, C] : {std::pair{1, 7}, std::pair{5, 64}, std::pair{33, 257}}) {
    CAPTURE(N);
    CAPTURE(C);
    auto x = randn(size_t(N) * C, 1), w = randn(size_t(C), 2), dy = randn(size_t(N) * C, 3);
    std::vector<float> y(x.size()), y_ref(x.size()), r(static_cast<size_t>(N)), r_ref(static_cast<size_t>(N));
    rmsnorm_forward(y.data(), r.data(), x.data(), w.data(), N, C, 1e-5f);
    rmsnorm_forward_ref(y_ref.data(), r_ref.data(), x.data(), w.data(), N, C, 1e-5f);
    CHECK(max_rel_diff(y, y_ref) < 1e-5);
    std::vector<float> dx(x.size()), dx_ref(x.size()), dw(size_t(C), 0.5f), dw_ref(size_t(C), 0.5f);
    rmsnorm_backward(dx.data(), dw.data(), dy.data(), x.data(), w.data(), r.data(), N, C);
    rmsnorm_backward_ref(dx_ref.data(), dw_ref.data(), dy.data(), x.data(), w.data(), r_ref.data(), N, C);
    CHECK(max_rel_diff(dx, dx_ref) < 1e-4);
    CHECK(max_rel_diff(dw, dw_ref) < 1e-4);
    auto loss = [&] {
      std::vector<float> yy(x.size()), rr(static_cast<size_t>(N));
      rmsnorm_forward_ref(yy.data(), rr.data(), x.data(), w.data(), N, C, 1e-5f);
      return dot(yy, dy);
    };
    check_grad(x, dx_ref, loss);
    for (auto& d : dw_ref) d -= 0.5f;  // the accumulator started at 0.5
    check_grad(w, dw_ref, loss);
  }
}

TEST_CASE("rope forward matches the reference, keeps norms, and backward is its inverse") {
  for (const bool neox : {false, true}) {
  CAPTURE(neox);
  const int B = 2, T = 5, H = 3, D = 8;
  auto x = randn(size_t(B) * T * H * D, 4);
  auto a = x, b = x;
  rope_forward(a.data(), B, T, H, D, 10000.0f, 3, neox);
  rope_forward_ref(b.data(), B, T, H, D, 10000.0f, 3, neox);
  CHECK(max_rel_diff(a, b) < 1e-5);
  CHECK(std::fabs(dot(a, a) - dot(x, x)) < 1e-3 * dot(x, x));
  // Position 0 is the identity; pairs are adjacent (x[0], x[1]).
  auto z = x;
  rope_forward(z.data(), 1, 1, 1, D, 10000.0f, 0, neox);
  CHECK(std::vector<float>(z.begin(), z.begin() + D) == std::vector<float>(x.begin(), x.begin() + D));
  // The angle of pair i at position p is p * base^(-2i/D); pair 1 is (x[2], x[3]), or with
  // neox (x[1], x[3]).
  std::vector<float> one = neox ? std::vector<float>{1, 1, 0, 0} : std::vector<float>{1, 0, 1, 0};
  rope_forward(one.data(), 1, 1, 1, 4, 100.0f, 2, neox);
  const size_t c0 = 0, s0 = neox ? 2 : 1, c1 = neox ? 1 : 2, s1 = 3;
  CHECK(one[c0] == doctest::Approx(std::cos(2.0)));
  CHECK(one[s0] == doctest::Approx(std::sin(2.0)));
  CHECK(one[c1] == doctest::Approx(std::cos(2.0 / 10)));
  CHECK(one[s1] == doctest::Approx(std::sin(2.0 / 10)));
  // d/dx of <rope(x), g> is rope_backward(g).
  auto g = randn(x.size(), 5);
  auto grad = g, grad_ref = g;
  rope_backward(grad.data(), B, T, H, D, 10000.0f, 3, neox);
  rope_backward_ref(grad_ref.data(), B, T, H, D, 10000.0f, 3, neox);
  CHECK(max_rel_diff(grad, grad_ref) < 1e-5);
  // Far positions (a long generation) still match: angles are computed in double.
  auto far = x, far_ref = x;
  rope_forward(far.data(), B, T, H, D, 10000.0f, 100000, neox);
  rope_forward_ref(far_ref.data(), B, T, H, D, 10000.0f, 100000, neox);
  CHECK(max_rel_diff(far, far_ref) < 1e-5);
  check_grad(x, grad, [&] {
    auto y = x;
    rope_forward_ref(y.data(), B, T, H, D, 10000.0f, 3, neox);
    return dot(y, g);
  });
  }
}

TEST_CASE("rope on q and k in one pass gives rope on each, forward and backward") {
  for (const bool neox : {false, true}) {
    CAPTURE(neox);
    // 4 query heads on 2 key heads; 300 positions make the pass parallel; D = 576 puts the
    // tables on the heap.
    for (const int D : {8, 64, 576}) {
      CAPTURE(D);
      const int B = 2, T = D == 576 ? 3 : 300, H = 4, Hkv = 2;
      const auto q0 = randn(size_t(B) * T * H * D, 6), k0 = randn(size_t(B) * T * Hkv * D, 7);
      for (const float sign : {1.0f, -1.0f}) {
        auto q = q0, k = k0, q1 = q0, k1 = k0, qr = q0, kr = k0;
        if (sign > 0) {
          rope_forward_qk(q.data(), k.data(), B, T, H, Hkv, D, 10000.0f, 5, neox);
          rope_forward(q1.data(), B, T, H, D, 10000.0f, 5, neox);
          rope_forward(k1.data(), B, T, Hkv, D, 10000.0f, 5, neox);
          rope_forward_qk_ref(qr.data(), kr.data(), B, T, H, Hkv, D, 10000.0f, 5, neox);
        } else {
          rope_backward_qk(q.data(), k.data(), B, T, H, Hkv, D, 10000.0f, 5, neox);
          rope_backward(q1.data(), B, T, H, D, 10000.0f, 5, neox);
          rope_backward(k1.data(), B, T, Hkv, D, 10000.0f, 5, neox);
          rope_backward_qk_ref(qr.data(), kr.data(), B, T, H, Hkv, D, 10000.0f, 5, neox);
        }
        CHECK(q == q1);  // the same bits: decoding and training keep their outputs
        CHECK(k == k1);
        CHECK(max_rel_diff(q, qr) < 1e-5);
        CHECK(max_rel_diff(k, kr) < 1e-5);
        CHECK(q != q0);
      }
    }
  }
}

TEST_CASE("swiglu forward and backward match the reference and finite differences") {
  for_each_path([] {
  for (size_t n : {size_t{1}, size_t{17}, size_t{10000}}) {
    auto g = randn(n, 6, 3.0f), u = randn(n, 7), dh = randn(n, 8);
    std::vector<float> h(n), h_ref(n), dg(n), du(n), dg_ref(n), du_ref(n);
    swiglu_forward(h.data(), g.data(), u.data(), n);
    swiglu_forward_ref(h_ref.data(), g.data(), u.data(), n);
    CHECK(max_rel_diff(h, h_ref) < 1e-5);
    swiglu_backward(dg.data(), du.data(), dh.data(), g.data(), u.data(), n);
    swiglu_backward_ref(dg_ref.data(), du_ref.data(), dh.data(), g.data(), u.data(), n);
    CHECK(max_rel_diff(dg, dg_ref) < 1e-5);
    CHECK(max_rel_diff(du, du_ref) < 1e-5);
    auto loss = [&] {
      std::vector<float> hh(n);
      swiglu_forward_ref(hh.data(), g.data(), u.data(), n);
      return dot(hh, dh);
    };
    check_grad(g, dg_ref, loss);
    check_grad(u, du_ref, loss);
  }
  });
}

TEST_CASE("cross-entropy matches the reference and finite differences, and ignores negative targets") {
  for_each_path([] {
  const int N = 6, V = 101;
  auto logits = randn(size_t(N) * V, 9, 2.0f);
  std::vector<int> targets = {3, 100, -1, 0, 50, 7};
  std::vector<float> loss(N), loss_ref(N), dl(logits.size()), dl_ref(logits.size());
  CHECK(cross_entropy_forward_backward(loss.data(), dl.data(), logits.data(), targets.data(), N, V, 0.2f) == 5);
  CHECK(cross_entropy_forward_backward_ref(loss_ref.data(), dl_ref.data(), logits.data(), targets.data(), N, V, 0.2f) == 5);
  CHECK(max_rel_diff(loss, loss_ref) < 1e-5);
  CHECK(max_rel_diff(dl, dl_ref) < 1e-5);
  CHECK(loss[2] == 0);
  for (int v = 0; v < V; ++v) CHECK(dl[size_t(2 * V + v)] == 0);
  // The gradient of 0.2 * sum(losses) is dlogits.
  check_grad(logits, dl_ref, [&] {
    std::vector<float> l(N), d(logits.size());
    cross_entropy_forward_backward_ref(l.data(), d.data(), logits.data(), targets.data(), N, V, 1.0f);
    double s = 0;
    for (float x : l) s += 0.2 * x;
    return s;
  }, 24, 1e-2f);
  // In place (dlogits aliasing logits) gives the same result.
  auto inplace = logits;
  std::vector<float> loss2(N);
  cross_entropy_forward_backward(loss2.data(), inplace.data(), inplace.data(), targets.data(), N, V, 0.2f);
  CHECK(loss2 == loss);
  CHECK(inplace == dl);
  });
}

TEST_CASE("cross-entropy stays finite at extreme logits") {
  for_each_path([] {
    const int V = 19;  // one full AVX-512 vector and a tail
    std::vector<float> logits = {1e30f, -1e30f, 0, 88, -88, 1e4f, -1e4f, 3, -3.4e38f, 200, -200, 1e-30f,
                                 5, 6, 7, 8, 9, 10, -1e30f};
    for (int target : {0, 1, 8, 18}) {
      CAPTURE(target);
      std::vector<float> loss(1), dl(V);
      cross_entropy_forward_backward(loss.data(), dl.data(), logits.data(), &target, 1, V, 1.0f);
      CHECK(std::isfinite(loss[0]));
      CHECK(loss[0] >= 0);
      double sum = 0;
      for (float d : dl) {
        CHECK(std::isfinite(d));
        sum += d;
      }
      CHECK(std::fabs(sum) < 1e-6);  // softmax sums to 1, the one-hot takes 1 away
    }
    // The winning logit's row: loss 0 and gradient 0 at the target.
    int target = 0;
    std::vector<float> loss(1), dl(V);
    cross_entropy_forward_backward(loss.data(), dl.data(), logits.data(), &target, 1, V, 1.0f);
    CHECK(loss[0] == 0.0f);
    CHECK(dl[0] == 0.0f);
  });
}

TEST_CASE("cross-entropy at V = 8192 with large logits: fast paths match the reference") {
  for_each_path([] {
    const int N = 5, V = 8192 + 3;
    auto logits = randn(size_t(N) * V, 12, 30.0f);
    std::vector<int> targets = {0, V - 1, 4097, -1, 17};
    std::vector<float> loss(N), loss_ref(N), dl(logits.size()), dl_ref(logits.size());
    cross_entropy_forward_backward(loss.data(), dl.data(), logits.data(), targets.data(), N, V, 0.25f);
    cross_entropy_forward_backward_ref(loss_ref.data(), dl_ref.data(), logits.data(), targets.data(), N, V, 0.25f);
    CHECK(max_rel_diff(loss, loss_ref) < 1e-5);
    CHECK(max_rel_diff(dl, dl_ref) < 1e-6);
  });
}

// Distillation (docs/distillation.md): the fast kernel against the double-precision reference and
// finite differences, dense and top-k, and alpha = 0 against cross-entropy bit for bit.
TEST_CASE("distillation loss matches the reference and finite differences, dense and top-k") {
  const int N = 5, V = 83, K = 7;
  auto logits = randn(size_t(N) * V, 21, 2.0f), teacher = randn(size_t(N) * V, 22, 3.0f);
  std::vector<int> targets = {3, -1, 82, 0, 40};
  // Top-k ids: K distinct ids per row (not sorted: the kernel must not assume an order).
  std::vector<int> ids(size_t(N) * K);
  std::vector<float> tk(size_t(N) * K);
  for (int n = 0; n < N; ++n)
    for (int k = 0; k < K; ++k) {
      ids[size_t(n * K + k)] = (n * 13 + k * 11) % V;
      tk[size_t(n * K + k)] = teacher[size_t(n * V + ids[size_t(n * K + k)])];
    }
  for (bool top_k : {false, true})
    for (auto [alpha, temp] : {std::pair{0.5f, 2.0f}, std::pair{1.0f, 1.0f}, std::pair{0.25f, 0.7f}}) {
      CAPTURE(top_k);
      CAPTURE(alpha);
      CAPTURE(temp);
      const float* t = top_k ? tk.data() : teacher.data();
      const int* id = top_k ? ids.data() : nullptr;
      const int k = top_k ? K : V;
      std::vector<float> loss_ref(N), kl_ref(N), dl_ref(logits.size());
      CHECK(distill_forward_backward_ref(loss_ref.data(), kl_ref.data(), dl_ref.data(), logits.data(), targets.data(), t,
                                         id, k, N, V, alpha, temp, 0.25f) == 4);
      for_each_path([&] {
        std::vector<float> loss(N), kl(N), dl(logits.size());
        CHECK(distill_forward_backward(loss.data(), kl.data(), dl.data(), logits.data(), targets.data(), t, id, k, N, V,
                                       alpha, temp, 0.25f) == 4);
        CHECK(max_rel_diff(loss, loss_ref) < 1e-5);
        CHECK(max_rel_diff(kl, kl_ref) < 1e-4);
        CHECK(max_rel_diff(dl, dl_ref) < 1e-5);
        CHECK(loss[1] == 0);
        for (int v = 0; v < V; ++v) CHECK(dl[size_t(V + v)] == 0);
        // In place (dlogits aliasing logits), as the model calls it.
        auto inplace = logits;
        std::vector<float> loss2(N);
        distill_forward_backward(loss2.data(), nullptr, inplace.data(), inplace.data(), targets.data(), t, id, k, N, V,
                                 alpha, temp, 0.25f);
        CHECK(loss2 == loss);
        CHECK(inplace == dl);
      });
      for (float x : kl_ref) CHECK(x >= 0);
      // The gradient of 0.25 * sum(losses) is dlogits.
      check_grad(logits, dl_ref, [&] {
        std::vector<float> l(N), d(logits.size());
        distill_forward_backward_ref(l.data(), nullptr, d.data(), logits.data(), targets.data(), t, id, k, N, V, alpha,
                                     temp, 1.0f);
        double s = 0;
        for (float x : l) s += 0.25 * x;
        return s;
      }, 24, 1e-2f);
    }
}

TEST_CASE("distillation with alpha 0 is cross-entropy bit for bit; a teacher equal to the student adds no KL") {
  for_each_path([] {
    const int N = 4, V = 8192 + 5;
    auto logits = randn(size_t(N) * V, 31, 4.0f), teacher = randn(size_t(N) * V, 32, 4.0f);
    std::vector<int> targets = {1, V - 1, -1, 4000};
    std::vector<float> loss(N), kl(N, 9.0f), dl(logits.size()), loss_ce(N), dl_ce(logits.size());
    distill_forward_backward(loss.data(), kl.data(), dl.data(), logits.data(), targets.data(), teacher.data(), nullptr, V,
                             N, V, 0.0f, 2.0f, 0.5f);
    cross_entropy_forward_backward(loss_ce.data(), dl_ce.data(), logits.data(), targets.data(), N, V, 0.5f);
    CHECK(loss == loss_ce);
    CHECK(dl == dl_ce);
    CHECK(kl == std::vector<float>(N, 0.0f));
    // Teacher = student: the KL term is 0 (to rounding) and alpha = 1 leaves no gradient.
    std::vector<float> loss_self(N), kl_self(N), dl_self(logits.size());
    distill_forward_backward(loss_self.data(), kl_self.data(), dl_self.data(), logits.data(), targets.data(),
                             logits.data(), nullptr, V, N, V, 1.0f, 3.0f, 1.0f);
    for (float x : kl_self) CHECK(x < 1e-5f);
    for (float d : dl_self) CHECK(std::fabs(d) < 1e-6f);
  });
}

TEST_CASE("distillation loss and gradient match PyTorch (kl_div with log targets), temperature and top-k") {
  lm::test::GoldenReader r{lm::load_file(std::string(LM_TEST_DATA_DIR) + "/distill_golden.bin")};
  REQUIRE(r.bytes.substr(0, 8) == std::string("LMDIST1\0", 8));
  r.pos = 8;
  const int cases = r.take<int32_t>(1)[0];
  REQUIRE(cases == 4);
  for (int c = 0; c < cases; ++c) {
    CAPTURE(c);
    const auto dims = r.take<int32_t>(4);
    const int N = dims[0], V = dims[1], K = dims[2];
    const bool has_ids = dims[3] != 0;
    const auto at = r.take<float>(2);
    const auto targets = r.take<int32_t>(size_t(N));
    const auto logits = r.take<float>(size_t(N) * V);
    const auto teacher = r.take<float>(size_t(N) * K);
    const auto ids = has_ids ? r.take<int32_t>(size_t(N) * K) : std::vector<int32_t>{};
    const float want_loss = r.take<float>(1)[0];
    const auto want_dl = r.take<float>(size_t(N) * V);
    int scored = 0;
    for (int y : targets) scored += y >= 0;
    for_each_path([&] {
      std::vector<float> loss(N), dl(size_t(N) * V);
      distill_forward_backward(loss.data(), nullptr, dl.data(), logits.data(), targets.data(), teacher.data(),
                               has_ids ? ids.data() : nullptr, K, N, V, at[0], at[1], 1.0f / float(scored));
      double mean = 0;
      for (float x : loss) mean += x;
      mean /= scored;
      CHECK(std::fabs(mean - want_loss) <= 1e-4 * std::fabs(want_loss));
      CHECK(max_rel_diff(dl, want_dl) < 1e-4);
    });
  }
}

TEST_CASE("LSTM cell: forward and backward match the reference; gradients match finite differences") {
  const int B = 3, H = 37;
  auto gates = randn(size_t(B) * 4 * H, 41, 2.0f), c_prev = randn(size_t(B) * H, 42), u = randn(size_t(B) * H, 43),
       v = randn(size_t(B) * H, 44);
  std::vector<float> h_ref(size_t(B) * H), c_ref(size_t(B) * H), a_ref(gates.size()), t_ref(size_t(B) * H);
  lstm_cell_forward_ref(h_ref.data(), c_ref.data(), a_ref.data(), t_ref.data(), gates.data(), c_prev.data(), B, H);
  // The loss sum(u h) + sum(v c): dh = u, and v is the gradient of c from later steps.
  std::vector<float> dg_ref(gates.size()), dc_ref = v;
  lstm_cell_backward_ref(dg_ref.data(), dc_ref.data(), u.data(), a_ref.data(), t_ref.data(), c_prev.data(), B, H);
  for_each_path([&] {
    std::vector<float> h(h_ref.size()), c(c_ref.size()), a(a_ref.size()), t(t_ref.size());
    lstm_cell_forward(h.data(), c.data(), a.data(), t.data(), gates.data(), c_prev.data(), B, H);
    CHECK(max_rel_diff(h, h_ref) < 1e-6);
    CHECK(max_rel_diff(c, c_ref) < 1e-6);
    CHECK(max_rel_diff(a, a_ref) < 1e-6);
    std::vector<float> dg(gates.size()), dc = v;
    lstm_cell_backward(dg.data(), dc.data(), u.data(), a.data(), t.data(), c_prev.data(), B, H);
    CHECK(max_rel_diff(dg, dg_ref) < 1e-5);
    CHECK(max_rel_diff(dc, dc_ref) < 1e-5);
  });
  auto loss = [&] {
    std::vector<float> h(h_ref.size()), c(c_ref.size()), a(a_ref.size()), t(t_ref.size());
    lstm_cell_forward_ref(h.data(), c.data(), a.data(), t.data(), gates.data(), c_prev.data(), B, H);
    double s = 0;
    for (size_t i = 0; i < h.size(); ++i) s += double(u[i]) * h[i] + double(v[i]) * c[i];
    return s;
  };
  check_grad(gates, dg_ref, loss, 48, 1e-2f);
  check_grad(c_prev, dc_ref, loss, 24, 1e-2f);
}

TEST_CASE("adamw matches the reference over several steps") {
  const size_t n = 10007;
  auto p = randn(n, 10), p_ref = p;
  std::vector<float> m(n, 0), v(n, 0), m_ref(n, 0), v_ref(n, 0);
  for (int t = 1; t <= 5; ++t) {
    auto g = randn(n, 100 + uint64_t(t));
    adamw_step(p.data(), g.data(), m.data(), v.data(), n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, t);
    adamw_step_ref(p_ref.data(), g.data(), m_ref.data(), v_ref.data(), n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, t);
  }
  CHECK(max_rel_diff(p, p_ref) < 1e-5);
  CHECK(max_rel_diff(m, m_ref) < 1e-5);
  CHECK(max_rel_diff(v, v_ref) < 1e-5);
  // The first step moves every weight by about lr against the gradient's sign (plus decay).
  std::vector<float> q = {1.0f}, g = {0.5f}, mm = {0}, vv = {0};
  adamw_step(q.data(), g.data(), mm.data(), vv.data(), 1, 0.01f, 0.9f, 0.999f, 1e-8f, 0.0f, 1);
  CHECK(q[0] == doctest::Approx(0.99f).epsilon(1e-5));
}

TEST_CASE("sum_squares matches a plain sum and gives the same bits at 1 and 3 threads") {
  auto x = randn(300007, 11);
  double s = 0;
  for (float v : x) s += double(v) * v;
  CHECK(sum_squares(x.data(), x.size()) == doctest::Approx(s).epsilon(1e-12));
  double one = 0, three = 0;
  with_threads(1, [&] { one = sum_squares(x.data(), x.size()); });
  with_threads(3, [&] { three = sum_squares(x.data(), x.size()); });
  CHECK(one == three);
  CHECK(sum_squares(x.data(), 0) == 0.0);
}

TEST_CASE("rmsnorm and embedding backward: the same bits at 1 and 3 threads, with gradients already accumulated") {
  const int N = 301, C = 200, V = 37;
  auto x = randn(size_t(N) * C, 40), w = randn(size_t(C), 41), dy = randn(size_t(N) * C, 42);
  std::vector<float> y(x.size()), r(static_cast<size_t>(N));
  rmsnorm_forward(y.data(), r.data(), x.data(), w.data(), N, C, 1e-5f);
  std::vector<int> tokens(static_cast<size_t>(N));
  for (int n = 0; n < N; ++n) tokens[size_t(n)] = (n * 7) % V;
  std::vector<std::vector<float>> dws, dEs;
  for (int threads : {1, 3}) {
    auto dw = randn(size_t(C), 43), dE = randn(size_t(V) * C, 44);
    std::vector<float> dx(x.size());
    with_threads(threads, [&] {
      rmsnorm_backward(dx.data(), dw.data(), dy.data(), x.data(), w.data(), r.data(), N, C);
      embedding_backward(dE.data(), tokens.data(), dy.data(), N, C);
    });
    dws.push_back(dw);
    dEs.push_back(dE);
  }
  CHECK(dws[0] == dws[1]);
  CHECK(dEs[0] == dEs[1]);
}

TEST_CASE("embedding forward copies rows; backward adds repeated tokens like the reference, bit for bit") {
  for (auto [N, C, V] : {std::tuple{1, 1, 1}, std::tuple{9, 70, 5}, std::tuple{130, 129, 300}}) {
    CAPTURE(C);
    auto E = randn(size_t(V) * C, 50), dx = randn(size_t(N) * C, 51);
    lm::Rng rng(52);
    std::vector<int> tokens(static_cast<size_t>(N));
    for (auto& t : tokens) t = int(rng.below(uint64_t(V)));
    std::vector<float> x(size_t(N) * C), x_ref(size_t(N) * C);
    embedding_forward(x.data(), tokens.data(), E.data(), N, C);
    embedding_forward_ref(x_ref.data(), tokens.data(), E.data(), N, C);
    CHECK(x == x_ref);
    auto dE = randn(size_t(V) * C, 53), dE_ref = dE;
    embedding_backward(dE.data(), tokens.data(), dx.data(), N, C);
    embedding_backward_ref(dE_ref.data(), tokens.data(), dx.data(), N, C);
    CHECK(dE == dE_ref);
  }
}

TEST_CASE("learned positions: forward and backward equal the reference bit for bit, at 1 and 3 threads") {
  // N = B * T rows: one value, a case under the kernels' parallel threshold (16384 values), one
  // past it whose 257 columns end in a partial column block.
  for (auto [N, T, C] : {std::tuple{1, 1, 1}, std::tuple{12, 4, 70}, std::tuple{600, 150, 257}}) {
    CAPTURE(C);
    auto P = randn(size_t(T) * C, 54), extra = randn(size_t(C), 55), x0 = randn(size_t(N) * C, 56);
    auto dx = randn(size_t(N) * C, 57), dP0 = randn(size_t(T) * C, 58);
    for (const float* e : {static_cast<const float*>(nullptr), static_cast<const float*>(extra.data())}) {
      auto x_ref = x0;
      position_add_forward_ref(x_ref.data(), P.data(), e, N, T, C);
      // Row n of the reference holds x0 + P[n % T] (+ extra), checked on one element.
      const size_t i = size_t(N - 1) * C + size_t(C - 1);
      const float want = e ? x0[i] + (P[size_t((N - 1) % T) * C + size_t(C - 1)] + extra[size_t(C - 1)])
                           : x0[i] + P[size_t((N - 1) % T) * C + size_t(C - 1)];
      CHECK(x_ref[i] == want);
      for (int threads : {1, 3}) {
        auto x = x0;
        with_threads(threads, [&] { position_add_forward(x.data(), P.data(), e, N, T, C); });
        CHECK(x == x_ref);
      }
    }
    auto dP_ref = dP0;
    position_add_backward_ref(dP_ref.data(), dx.data(), N, T, C);
    double want = dP0[0];
    for (int n = 0; n < N; n += T) want += double(dx[size_t(n) * C]);
    CHECK(double(dP_ref[0]) == doctest::Approx(want).epsilon(1e-5));
    for (int threads : {1, 3}) {
      auto dP = dP0;
      with_threads(threads, [&] { position_add_backward(dP.data(), dx.data(), N, T, C); });
      CHECK(dP == dP_ref);
    }
  }
}

TEST_CASE("matmul forward and backward match the reference on both sides of the BLAS threshold, and FD") {
  // 2*N*C*OC: 2, 210, 72930 and 1.6M flops against kBlasMinFlops = 65536.
  for (auto [N, C, OC] : {std::tuple{1, 1, 1}, std::tuple{3, 5, 7}, std::tuple{33, 17, 65}, std::tuple{64, 96, 130}}) {
    CAPTURE(N);
    CAPTURE(C);
    CAPTURE(OC);
    auto x = randn(size_t(N) * C, 60), W = randn(size_t(OC) * C, 61), dy = randn(size_t(N) * OC, 62);
    const double tol = 1e-6 * std::sqrt(double(std::max({N, C, OC})));
    for (float beta : {0.0f, 1.0f}) {
      auto y = randn(size_t(N) * OC, 63), y_ref = y;
      matmul_forward(y.data(), x.data(), W.data(), N, C, OC, beta);
      matmul_forward_ref(y_ref.data(), x.data(), W.data(), N, C, OC, beta);
      CHECK(max_rel_diff(y, y_ref) < tol);
    }
    for (bool acc : {false, true}) {
      auto dx = randn(x.size(), 64), dx_ref = dx, dW = randn(W.size(), 65), dW_ref = dW;
      matmul_backward(dx.data(), dW.data(), dy.data(), x.data(), W.data(), N, C, OC, acc);
      matmul_backward_ref(dx_ref.data(), dW_ref.data(), dy.data(), x.data(), W.data(), N, C, OC, acc);
      CHECK(max_rel_diff(dx, dx_ref) < tol);
      CHECK(max_rel_diff(dW, dW_ref) < tol);
    }
    // dx == nullptr leaves out the input gradient only.
    auto dW = randn(W.size(), 65), dW_ref = dW;
    matmul_backward(nullptr, dW.data(), dy.data(), x.data(), W.data(), N, C, OC, false);
    matmul_backward_ref(nullptr, dW_ref.data(), dy.data(), x.data(), W.data(), N, C, OC, false);
    CHECK(max_rel_diff(dW, dW_ref) < tol);
    // Gradients of <x W^T, dy>.
    std::vector<float> gx(x.size()), gW(W.size(), 0.0f);
    matmul_backward_ref(gx.data(), gW.data(), dy.data(), x.data(), W.data(), N, C, OC, false);
    auto loss = [&] {
      std::vector<float> y(size_t(N) * OC);
      matmul_forward_ref(y.data(), x.data(), W.data(), N, C, OC);
      return dot(y, dy);
    };
    check_grad(x, gx, loss, 8);
    check_grad(W, gW, loss, 8);
  }
}

TEST_CASE("attention forward matches the reference; backward matches finite differences (MHA and GQA, soft-capped)") {
  for_each_path([] {
  // T 300 spans three row blocks of the fast kernel, the last one partial. A soft-cap of 0.5
  // (Gemma 2's is 50 on larger scores) bends these scores of about unit size.
  for (float cap : {0.0f, 0.5f})
  for (auto [B, T, H, Hkv, D] : {std::tuple{1, 1, 1, 1, 4}, std::tuple{2, 7, 4, 4, 8}, std::tuple{1, 40, 6, 2, 16},
                                 std::tuple{1, 300, 2, 1, 8}}) {
    CAPTURE(cap);
    CAPTURE(T);
    CAPTURE(Hkv);
    const size_t nq = size_t(B) * T * H * D, nk = size_t(B) * T * Hkv * D, na = size_t(B) * H * T * T;
    auto q = randn(nq, 21), k = randn(nk, 22), v = randn(nk, 23), dout = randn(nq, 24);
    std::vector<float> out(nq), out_ref(nq), att(na), att_ref(na);
    attention_forward(out.data(), att.data(), q.data(), k.data(), v.data(), B, T, H, Hkv, D, cap);
    attention_forward_ref(out_ref.data(), att_ref.data(), q.data(), k.data(), v.data(), B, T, H, Hkv, D, cap);
    CHECK(max_rel_diff(out, out_ref) < 1e-5);
    CHECK(max_rel_diff(att, att_ref) < 1e-5);
    if (cap > 0) {  // the cap changed the result (a check that passes uncapped would prove nothing)
      std::vector<float> plain(nq), pa(na);
      attention_forward_ref(plain.data(), pa.data(), q.data(), k.data(), v.data(), B, T, H, Hkv, D);
      if (T > 1) CHECK(max_rel_diff(plain, out_ref) > 1e-3);
    }
    std::vector<float> dq(nq), dk(nk, 7.0f), dv(nk, 7.0f), datt(na);
    attention_backward(dq.data(), dk.data(), dv.data(), datt.data(), dout.data(), att.data(), q.data(), k.data(),
                       v.data(), B, T, H, Hkv, D, cap);
    auto loss = [&] {
      std::vector<float> o(nq), a(na);
      attention_forward_ref(o.data(), a.data(), q.data(), k.data(), v.data(), B, T, H, Hkv, D, cap);
      return dot(o, dout);
    };
    check_grad(q, dq, loss);
    check_grad(k, dk, loss);
    check_grad(v, dv, loss);
    std::vector<float> dq_ref(nq), dk_ref(nk), dv_ref(nk);
    attention_backward_ref(dq_ref.data(), dk_ref.data(), dv_ref.data(), nullptr, dout.data(), nullptr, q.data(),
                           k.data(), v.data(), B, T, H, Hkv, D, cap);
    CHECK(max_rel_diff(dq, dq_ref) < 1e-4);
    CHECK(max_rel_diff(dk, dk_ref) < 1e-4);
    CHECK(max_rel_diff(dv, dv_ref) < 1e-4);
  }
  });
}

TEST_CASE("attention softmax subtracts the row maximum: scores near FLT_MAX stay finite") {
  const int T = 4, D = 2;
  std::vector<float> q = {1e19f, 1e19f, -1e19f, 1e19f, 0, 0, 1e19f, -1e19f}, k = q, v = randn(8, 30);
  std::vector<float> out(8), att(16);
  for_each_path([&] {
    attention_forward(out.data(), att.data(), q.data(), k.data(), v.data(), 1, T, 1, 1, D);
    for (float x : out) CHECK(std::isfinite(x));
    // Masked entries (above the diagonal) are exactly 0; every row sums to 1.
    for (int i = 0; i < T; ++i) {
      double sum = 0;
      for (int j = 0; j < T; ++j) {
        if (j > i) CHECK(att[size_t(i * T + j)] == 0.0f);
        sum += att[size_t(i * T + j)];
      }
      CHECK(sum == doctest::Approx(1.0).epsilon(1e-6));
    }
  });
}

TEST_CASE("few-row matmul (decoding) matches the reference on odd shapes, with and without beta") {
  for_each_path([] {
    for (auto [N, C, OC] : {std::tuple{1, 1, 1}, std::tuple{1, 17, 5}, std::tuple{2, 100, 131}, std::tuple{4, 384, 1030},
                            std::tuple{3, 1024, 67}}) {
      CAPTURE(N);
      CAPTURE(C);
      CAPTURE(OC);
      auto x = randn(size_t(N) * C, 70), W = randn(size_t(OC) * C, 71);
      for (float beta : {0.0f, 1.0f}) {
        auto y = randn(size_t(N) * OC, 72), y_ref = y;
        matmul_forward(y.data(), x.data(), W.data(), N, C, OC, beta);
        matmul_forward_ref(y_ref.data(), x.data(), W.data(), N, C, OC, beta);
        CHECK(max_rel_diff(y, y_ref) < 1e-6 * std::sqrt(double(C)) + 1e-6);
      }
    }
  });
}

TEST_CASE("cached attention matches the reference, the training kernel, and itself one token at a time") {
  for_each_path([] {
    // n 150 spans two query blocks; pos0 > 0 continues a cache; GQA with 3 heads per kv head;
    // the cache has room beyond the keys in use (cap).
    for (auto [n, pos0, H, Hkv, D] : {std::tuple{1, 0, 1, 1, 4}, std::tuple{5, 3, 4, 4, 8}, std::tuple{150, 20, 6, 2, 16},
                                      std::tuple{1, 600, 6, 6, 64}, std::tuple{7, 9, 2, 2, 6}}) {
      CAPTURE(n);
      CAPTURE(pos0);
      const int T = pos0 + n, cap = T + 5;
      auto q = randn(size_t(n) * H * D, 80), kc = randn(size_t(Hkv) * cap * D, 81), vc = randn(size_t(Hkv) * cap * D, 82);
      std::vector<float> out(q.size()), out_ref(q.size()), scratch(attention_cached_scratch(n, T, H));
      attention_cached(out.data(), q.data(), kc.data(), vc.data(), n, pos0, H, Hkv, D, cap, scratch.data());
      attention_cached_ref(out_ref.data(), q.data(), kc.data(), vc.data(), n, pos0, H, Hkv, D, cap);
      CHECK(max_rel_diff(out, out_ref) < 1e-5);
      // The same queries one at a time give the same rows as the batch.
      std::vector<float> one(size_t(H) * D), s1(attention_cached_scratch(1, T, H));
      for (int i = 0; i < n; i += std::max(1, n / 7)) {
        attention_cached(one.data(), q.data() + size_t(i) * H * D, kc.data(), vc.data(), 1, pos0 + i, H, Hkv, D, cap,
                         s1.data());
        std::vector<float> row(out.begin() + long(i) * H * D, out.begin() + long(i + 1) * H * D);
        CHECK(max_rel_diff(one, row) < 1e-5);
      }
      // From an empty cache it is the training kernel's causal attention, whose k and v are
      // (T, Hkv, D).
      if (pos0 == 0) {
        std::vector<float> k(size_t(n) * Hkv * D), v(k.size());
        for (int t = 0; t < n; ++t)
          for (int g = 0; g < Hkv; ++g)
            for (int c = 0; c < D; ++c) {
              k[(size_t(t) * Hkv + g) * D + c] = kc[(size_t(g) * cap + t) * D + c];
              v[(size_t(t) * Hkv + g) * D + c] = vc[(size_t(g) * cap + t) * D + c];
            }
        std::vector<float> o2(q.size()), att(size_t(H) * n * n);
        attention_forward(o2.data(), att.data(), q.data(), k.data(), v.data(), 1, n, H, Hkv, D);
        CHECK(max_rel_diff(out, o2) < 1e-5);
      }
    }
  });
}

TEST_CASE("matmul_forward_shared equals separate products, decoding and batched") {
  for_each_path([] {
    for (int N : {1, 3, 9}) {
      CAPTURE(N);
      const int C = 70;
      const int OCs[3] = {33, 130, 7};
      auto x = randn(size_t(N) * C, 90);
      std::vector<std::vector<float>> W, y, y_ref;
      for (int i = 0; i < 3; ++i) {
        W.push_back(randn(size_t(OCs[i]) * C, uint64_t(91 + i)));
        y.emplace_back(size_t(N) * OCs[i], NAN);
        y_ref.emplace_back(size_t(N) * OCs[i]);
        matmul_forward_ref(y_ref.back().data(), x.data(), W.back().data(), N, C, OCs[i]);
      }
      const LinearOut outs[3] = {{y[0].data(), W[0].data(), OCs[0]}, {y[1].data(), W[1].data(), OCs[1]},
                                 {y[2].data(), W[2].data(), OCs[2]}};
      matmul_forward_shared(x.data(), N, C, outs, 3);
      for (int i = 0; i < 3; ++i) CHECK(max_rel_diff(y[size_t(i)], y_ref[size_t(i)]) < 1e-5);
    }
  });
}

TEST_CASE("linear_forward (bias first, product added) matches the reference, decoding and batched, with and without bias") {
  for_each_path([] {
    for (int N : {1, 3, 9, 300}) {
      CAPTURE(N);
      const int C = 70, OC = 130;
      auto x = randn(size_t(N) * C, 92), W = randn(size_t(OC) * C, 93), b = randn(size_t(OC), 94);
      for (const float* bias : {static_cast<const float*>(b.data()), static_cast<const float*>(nullptr)}) {
        std::vector<float> y(size_t(N) * OC, NAN), y_ref(size_t(N) * OC);
        linear_forward(y.data(), x.data(), W.data(), bias, N, C, OC);
        linear_forward_ref(y_ref.data(), x.data(), W.data(), bias, N, C, OC);
        CHECK(max_rel_diff(y, y_ref) < 1e-5);
      }
    }
  });
}

TEST_CASE("logsumexp and KL divergence rows match the reference; KL of a distribution with itself is 0") {
  for_each_path([] {
    for (int V : {1, 17, 8192}) {
      CAPTURE(V);
      const int N = 5;
      auto a = randn(size_t(N) * V, 100, 3.0f), b = randn(size_t(N) * V, 101, 3.0f);
      std::vector<float> lse(N), lse_ref(N), kl(N), kl_ref(N), self(N);
      logsumexp_rows(lse.data(), a.data(), N, V);
      logsumexp_rows_ref(lse_ref.data(), a.data(), N, V);
      CHECK(max_rel_diff(lse, lse_ref) < 1e-5);
      for (int n = 0; n < N; ++n) CHECK(logsumexp(a.data() + size_t(n) * V, V) == lse[size_t(n)]);
      std::vector<float> lse_b(N);
      logsumexp_rows(lse_b.data(), b.data(), N, V);
      kl_divergence_rows(kl.data(), a.data(), b.data(), lse.data(), lse_b.data(), N, V);
      kl_divergence_rows_ref(kl_ref.data(), a.data(), b.data(), N, V);
      CHECK(max_rel_diff(kl, kl_ref) < 1e-4);
      kl_divergence_rows(self.data(), a.data(), a.data(), lse.data(), lse.data(), N, V);
      for (float x : self) CHECK(x < 1e-5f);
      for (float x : kl) CHECK(x >= 0.0f);
    }
  });
}

TEST_CASE("top_k_ids keeps the k largest, lower ids first on ties, as nth_element does") {
  for_each_path([] {
    for (int n : {1, 15, 16, 17, 100, 8192, 8203}) {
      for (int k : {1, 2, 16, 40, n}) {
        if (k > n) continue;
        CAPTURE(n);
        CAPTURE(k);
        for (int grid : {0, 1}) {  // grid: few distinct values, so ties at the k-th place
          auto x = randn(size_t(n), uint64_t(n) * 7 + uint64_t(k), 2.0f);
          if (grid)
            for (float& v : x) v = std::round(v * 2.0f);
          std::vector<int> ids(static_cast<size_t>(k)), ref(static_cast<size_t>(k));
          top_k_ids(x.data(), n, k, ids.data());
          top_k_ids_ref(x.data(), n, k, ref.data());
          std::sort(ids.begin(), ids.end());
          std::sort(ref.begin(), ref.end());
          CHECK(ids == ref);
        }
      }
    }
  });
}

// ---- the encoder's training kernels (docs/encoder.md) ----

TEST_CASE("encoder attention over padded rows: forward matches the reference; backward finite differences") {
  for_each_path([] {
    // T 300 spans three row blocks; lengths leave padded keys in some rows.
    for (auto [B, T, H, Hkv, D] : {std::tuple{1, 1, 1, 1, 4}, std::tuple{3, 7, 4, 4, 8}, std::tuple{2, 40, 6, 2, 16},
                                   std::tuple{1, 300, 2, 1, 8}}) {
      CAPTURE(T);
      CAPTURE(Hkv);
      std::vector<int> lengths(static_cast<size_t>(B));
      for (int b = 0; b < B; ++b) lengths[size_t(b)] = std::max(1, T - 3 * b);
      for (const int* len : {static_cast<const int*>(nullptr), static_cast<const int*>(lengths.data())}) {
        CAPTURE(len != nullptr);
        const size_t nq = size_t(B) * T * H * D, nk = size_t(B) * T * Hkv * D, na = size_t(B) * H * T * T;
        auto q = randn(nq, 41), k = randn(nk, 42), v = randn(nk, 43), dout = randn(nq, 44);
        std::vector<float> out(nq), out_ref(nq), att(na), att_ref(na);
        attention_encoder_forward(out.data(), att.data(), q.data(), k.data(), v.data(), len, B, T, H, Hkv, D);
        attention_encoder_forward_ref(out_ref.data(), att_ref.data(), q.data(), k.data(), v.data(), len, B, T, H, Hkv,
                                      D);
        CHECK(max_rel_diff(out, out_ref) < 1e-5);
        CHECK(max_rel_diff(att, att_ref) < 1e-5);
        std::vector<float> dq(nq), dk(nk, 7.0f), dv(nk, 7.0f), datt(na);
        attention_encoder_backward(dq.data(), dk.data(), dv.data(), datt.data(), dout.data(), att.data(), q.data(),
                                   k.data(), v.data(), len, B, T, H, Hkv, D);
        std::vector<float> dq_ref(nq), dk_ref(nk), dv_ref(nk);
        attention_encoder_backward_ref(dq_ref.data(), dk_ref.data(), dv_ref.data(), nullptr, dout.data(), nullptr,
                                       q.data(), k.data(), v.data(), len, B, T, H, Hkv, D);
        CHECK(max_rel_diff(dq, dq_ref) < 1e-4);
        CHECK(max_rel_diff(dk, dk_ref) < 1e-4);
        CHECK(max_rel_diff(dv, dv_ref) < 1e-4);
        if (T <= 40) {  // finite differences of the reference forward
          auto loss = [&] {
            std::vector<float> o(nq), a(na);
            attention_encoder_forward_ref(o.data(), a.data(), q.data(), k.data(), v.data(), len, B, T, H, Hkv, D);
            return dot(o, dout);
          };
          check_grad(q, dq, loss);
          check_grad(k, dk, loss);
          check_grad(v, dv, loss);
        }
        if (len) {  // padded keys: no probability, no gradient; every query sees all the others
          long bad = 0;
          for (int b = 0; b < B; ++b)
            for (int t = lengths[size_t(b)]; t < T; ++t)
              for (int c = 0; c < Hkv * D; ++c)
                bad += dk[(size_t(b) * T + t) * Hkv * D + c] != 0.0f || dv[(size_t(b) * T + t) * Hkv * D + c] != 0.0f;
          const int b = B - 1, L = lengths[size_t(b)];
          for (int i = 0; i < T; ++i)
            for (int j = 0; j < T; ++j) {
              const float a = att[((size_t(b) * H) * T + i) * T + j];
              bad += j >= L ? a != 0.0f : !(a > 0.0f);
            }
          CHECK(bad == 0);
        }
      }
    }
  });
}

TEST_CASE("layernorm for training: layernorm_forward's output bit for bit, its statistics, and its backward") {
  for_each_path([] {
    for (auto [N, C] : {std::pair{1, 7}, std::pair{5, 33}, std::pair{40, 200}}) {
      CAPTURE(N);
      CAPTURE(C);
      auto x = randn(size_t(N) * C, 51, 2.0f), w = randn(static_cast<size_t>(C), 52), b = randn(static_cast<size_t>(C), 53);
      for (float& v : x) v += 3.0f;  // a mean away from 0
      std::vector<float> y(x.size()), y_inf(x.size()), y_ref(x.size()), mean(static_cast<size_t>(N)), rstd(static_cast<size_t>(N)),
          mean_ref(static_cast<size_t>(N)), rstd_ref(static_cast<size_t>(N));
      layernorm_forward_train(y.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), N, C, 1e-5f);
      layernorm_forward(y_inf.data(), x.data(), w.data(), b.data(), N, C, 1e-5f);
      CHECK(y == y_inf);
      layernorm_forward_train_ref(y_ref.data(), mean_ref.data(), rstd_ref.data(), x.data(), w.data(), b.data(), N, C,
                                  1e-5f);
      CHECK(max_rel_diff(y, y_ref) < 1e-5);
      CHECK(max_rel_diff(mean, mean_ref) < 1e-6);
      CHECK(max_rel_diff(rstd, rstd_ref) < 1e-5);
      auto dy = randn(x.size(), 54);
      std::vector<float> dx(x.size()), dw(static_cast<size_t>(C), 0.5f), db(static_cast<size_t>(C), 0.5f);
      layernorm_backward(dx.data(), dw.data(), db.data(), dy.data(), x.data(), w.data(), mean.data(), rstd.data(), N, C);
      std::vector<float> dx_ref(x.size()), dw_ref(static_cast<size_t>(C), 0.5f), db_ref(static_cast<size_t>(C), 0.5f);
      layernorm_backward_ref(dx_ref.data(), dw_ref.data(), db_ref.data(), dy.data(), x.data(), w.data(), mean.data(),
                             rstd.data(), N, C);
      CHECK(max_rel_diff(dx, dx_ref) < 1e-4);
      CHECK(max_rel_diff(dw, dw_ref) < 1e-4);
      CHECK(max_rel_diff(db, db_ref) < 1e-5);
      // dx in place of dy
      std::vector<float> d2 = dy;
      layernorm_backward(d2.data(), nullptr, nullptr, d2.data(), x.data(), w.data(), mean.data(), rstd.data(), N, C);
      CHECK(d2 == dx);
      // the same gradients at one thread
      std::vector<float> dw1(static_cast<size_t>(C), 0.5f), db1(static_cast<size_t>(C), 0.5f), dx1(x.size());
      with_threads(1, [&] {
        layernorm_backward(dx1.data(), dw1.data(), db1.data(), dy.data(), x.data(), w.data(), mean.data(), rstd.data(),
                           N, C);
      });
      CHECK(dw1 == dw);
      CHECK(db1 == db);
      // finite differences of <layernorm(x), dy> (from dw = db = 0)
      std::vector<float> gx(x.size()), gw(static_cast<size_t>(C), 0.0f), gb(static_cast<size_t>(C), 0.0f);
      layernorm_backward_ref(gx.data(), gw.data(), gb.data(), dy.data(), x.data(), w.data(), mean.data(), rstd.data(), N,
                             C);
      auto loss = [&] {
        std::vector<float> yy(x.size()), m(static_cast<size_t>(N)), r(static_cast<size_t>(N));
        layernorm_forward_train_ref(yy.data(), m.data(), r.data(), x.data(), w.data(), b.data(), N, C, 1e-5f);
        return dot(yy, dy);
      };
      check_grad(x, gx, loss);
      check_grad(w, gw, loss);
      check_grad(b, gb, loss);
    }
  });
}

TEST_CASE("gelu_backward matches the reference and finite differences of gelu_forward") {
  for_each_path([] {
    for (size_t n : {size_t(1), size_t(17), size_t(5000), size_t(20001)}) {
      CAPTURE(n);
      auto g = randn(n, 61, 3.0f), dh = randn(n, 62);
      std::vector<float> dg(n), dg_ref(n);
      gelu_backward(dg.data(), dh.data(), g.data(), n);
      gelu_backward_ref(dg_ref.data(), dh.data(), g.data(), n);
      CHECK(max_rel_diff(dg, dg_ref) < 2e-5);
      std::vector<float> d2 = dh;  // in place
      gelu_backward(d2.data(), d2.data(), g.data(), n);
      CHECK(d2 == dg);
      auto loss = [&] {
        std::vector<float> h(n);
        gelu_forward_ref(h.data(), g.data(), n);
        return dot(h, dh);
      };
      check_grad(g, dg, loss, 24, 1e-2f, 2e-2);
    }
    // gelu'(0) = 1/2; far out it is 0 and 1
    std::vector<float> g = {0.0f, -30.0f, 30.0f}, one = {1, 1, 1}, d(3);
    gelu_backward(d.data(), one.data(), g.data(), 3);
    CHECK(d[0] == doctest::Approx(0.5).epsilon(1e-6));
    CHECK(std::fabs(d[1]) < 1e-6);
    CHECK(d[2] == doctest::Approx(1.0).epsilon(1e-6));
  });
}

TEST_CASE("geglu_backward matches the reference and finite differences of geglu_forward") {
  for_each_path([] {
    for (size_t n : {size_t(1), size_t(17), size_t(20001)}) {
      CAPTURE(n);
      auto g = randn(n, 63, 3.0f), u = randn(n, 64), dh = randn(n, 65);
      std::vector<float> dg(n), du(n), dg_ref(n), du_ref(n);
      geglu_backward(dg.data(), du.data(), dh.data(), g.data(), u.data(), n);
      geglu_backward_ref(dg_ref.data(), du_ref.data(), dh.data(), g.data(), u.data(), n);
      CHECK(max_rel_diff(dg, dg_ref) < 2e-5);
      CHECK(max_rel_diff(du, du_ref) < 2e-5);
      auto loss = [&] {
        std::vector<float> h(n);
        geglu_forward_ref(h.data(), g.data(), u.data(), n);
        return dot(h, dh);
      };
      check_grad(g, dg, loss, 24, 1e-2f, 2e-2);
      check_grad(u, du, loss, 24, 1e-2f, 2e-2);
    }
  });
}

TEST_CASE("bias_backward adds the column sums like the reference, the same bits at any thread count") {
  for (auto [N, OC] : {std::pair{1, 5}, std::pair{7, 130}, std::pair{300, 384}}) {
    auto dy = randn(size_t(N) * OC, 71);
    std::vector<float> db(static_cast<size_t>(OC), 1.0f), db_ref(static_cast<size_t>(OC), 1.0f), db1(static_cast<size_t>(OC), 1.0f);
    bias_backward(db.data(), dy.data(), N, OC);
    bias_backward_ref(db_ref.data(), dy.data(), N, OC);
    CHECK(max_rel_diff(db, db_ref) < 1e-5);
    with_threads(1, [&] { bias_backward(db1.data(), dy.data(), N, OC); });
    CHECK(db1 == db);
  }
}
