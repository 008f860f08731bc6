// Tests for lib/kernels/kernels: every fast kernel against its _ref twin on odd and even shapes,
// and every backward pass against central finite differences of the forward pass.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <tuple>
#include <vector>

#include "base/rng.hpp"
#include "kernels/kernels.hpp"

using namespace lm::kernels;

namespace {

std::vector<float> randn(size_t n, uint64_t seed, float scale = 1.0f) {
  lm::Rng rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = rng.normal() * scale;
  return v;
}

double max_rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(double(a[i]) - b[i]) / (1.0 + std::fabs(double(b[i]))));
  return m;
}

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
  const int B = 2, T = 5, H = 3, D = 8;
  auto x = randn(size_t(B) * T * H * D, 4);
  auto a = x, b = x;
  rope_forward(a.data(), B, T, H, D, 10000.0f, 3);
  rope_forward_ref(b.data(), B, T, H, D, 10000.0f, 3);
  CHECK(max_rel_diff(a, b) < 1e-5);
  CHECK(std::fabs(dot(a, a) - dot(x, x)) < 1e-3 * dot(x, x));
  // Position 0 is the identity; pairs are adjacent (x[0], x[1]).
  auto z = x;
  rope_forward(z.data(), 1, 1, 1, D, 10000.0f, 0);
  CHECK(std::vector<float>(z.begin(), z.begin() + D) == std::vector<float>(x.begin(), x.begin() + D));
  // The angle of pair i at position p is p * base^(-2i/D).
  std::vector<float> one = {1, 0, 1, 0};
  rope_forward(one.data(), 1, 1, 1, 4, 100.0f, 2);
  CHECK(one[0] == doctest::Approx(std::cos(2.0)));
  CHECK(one[1] == doctest::Approx(std::sin(2.0)));
  CHECK(one[2] == doctest::Approx(std::cos(2.0 / 10)));
  CHECK(one[3] == doctest::Approx(std::sin(2.0 / 10)));
  // d/dx of <rope(x), g> is rope_backward(g).
  auto g = randn(x.size(), 5);
  auto grad = g;
  rope_backward(grad.data(), B, T, H, D, 10000.0f, 3);
  check_grad(x, grad, [&] {
    auto y = x;
    rope_forward_ref(y.data(), B, T, H, D, 10000.0f, 3);
    return dot(y, g);
  });
}

TEST_CASE("swiglu forward and backward match the reference and finite differences") {
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
}

TEST_CASE("cross-entropy matches the reference and finite differences, and ignores negative targets") {
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
}

TEST_CASE("cross-entropy stays finite at extreme logits") {
  const int V = 8;
  std::vector<float> logits = {1e30f, -1e30f, 0, 88, -88, 1e4f, -1e4f, 3};
  std::vector<int> targets = {1};
  std::vector<float> loss(1), dl(V);
  cross_entropy_forward_backward(loss.data(), dl.data(), logits.data(), targets.data(), 1, V, 1.0f);
  CHECK(std::isfinite(loss[0]));
  for (float d : dl) CHECK(std::isfinite(d));
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

TEST_CASE("sum_squares") {
  auto x = randn(12345, 11);
  double s = 0;
  for (float v : x) s += double(v) * v;
  CHECK(sum_squares(x.data(), x.size()) == doctest::Approx(s).epsilon(1e-12));
}

TEST_CASE("attention forward matches the reference; backward matches finite differences (MHA and GQA)") {
  // T 300 spans three row blocks of the fast kernel, the last one partial.
  for (auto [B, T, H, Hkv, D] : {std::tuple{1, 1, 1, 1, 4}, std::tuple{2, 7, 4, 4, 8}, std::tuple{1, 40, 6, 2, 16},
                                 std::tuple{1, 300, 2, 1, 8}}) {
    CAPTURE(T);
    CAPTURE(Hkv);
    const size_t nq = size_t(B) * T * H * D, nk = size_t(B) * T * Hkv * D, na = size_t(B) * H * T * T;
    auto q = randn(nq, 21), k = randn(nk, 22), v = randn(nk, 23), dout = randn(nq, 24);
    std::vector<float> out(nq), out_ref(nq), att(na), att_ref(na);
    attention_forward(out.data(), att.data(), q.data(), k.data(), v.data(), B, T, H, Hkv, D);
    attention_forward_ref(out_ref.data(), att_ref.data(), q.data(), k.data(), v.data(), B, T, H, Hkv, D);
    CHECK(max_rel_diff(out, out_ref) < 1e-5);
    CHECK(max_rel_diff(att, att_ref) < 1e-5);
    std::vector<float> dq(nq), dk(nk, 7.0f), dv(nk, 7.0f), datt(na);
    attention_backward(dq.data(), dk.data(), dv.data(), datt.data(), dout.data(), att.data(), q.data(), k.data(),
                       v.data(), B, T, H, Hkv, D);
    auto loss = [&] {
      std::vector<float> o(nq), a(na);
      attention_forward_ref(o.data(), a.data(), q.data(), k.data(), v.data(), B, T, H, Hkv, D);
      return dot(o, dout);
    };
    check_grad(q, dq, loss);
    check_grad(k, dk, loss);
    check_grad(v, dv, loss);
  }
}

TEST_CASE("attention softmax subtracts the row maximum: scores near FLT_MAX stay finite") {
  const int T = 4, D = 2;
  std::vector<float> q = {1e19f, 1e19f, -1e19f, 1e19f, 0, 0, 1e19f, -1e19f}, k = q, v = randn(8, 30);
  std::vector<float> out(8), att(16);
  attention_forward(out.data(), att.data(), q.data(), k.data(), v.data(), 1, T, 1, 1, D);
  for (float x : out) CHECK(std::isfinite(x));
}
