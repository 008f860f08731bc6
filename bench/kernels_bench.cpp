// Fused-kernel times at the "small" preset's shapes (B 8, T 512, C 384, H 6, D 64, F 1024,
// V 8192), AVX-512 paths against the portable ones (glibc scalar expf), at 1 and 2 threads.
// Prints ms as median [min-max] of 5 timed calls after one warm-up call.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <vector>

#include "base/rng.hpp"
#include "kernels/blas.hpp"
#include "kernels/kernels.hpp"
#include "kernels/simd.hpp"

using namespace lm::kernels;

static void time_it(const char* name, const std::function<void()>& f) {
  f();
  std::vector<double> ms;
  for (int r = 0; r < 5; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  std::printf("  %-34s %8.2f ms [%.2f-%.2f]\n", name, ms[2], ms[0], ms[4]);
}

int main() {
  const int B = 8, T = 512, H = 6, D = 64, F = 1024, V = 8192, N = B * T;
  lm::Rng rng(1);
  auto randn = [&](size_t n, float s) {
    std::vector<float> v(n);
    for (auto& x : v) x = rng.normal() * s;
    return v;
  };
  auto logits = randn(size_t(N) * V, 2.0f), g = randn(size_t(N) * F, 2.0f), u = randn(size_t(N) * F, 1.0f);
  auto q = randn(size_t(N) * H * D, 1.0f), k = randn(size_t(N) * H * D, 1.0f), v = randn(size_t(N) * H * D, 1.0f);
  std::vector<float> losses(N), dl(logits.size()), h(g.size()), dg(g.size()), du(g.size());
  std::vector<float> out(q.size()), att(size_t(B) * H * T * T), datt(att.size());
  std::vector<float> dq(q.size()), dk(k.size()), dv(v.size());
  std::vector<int> targets(N);
  for (auto& t : targets) t = int(rng.below(V));
  std::printf("OpenBLAS core %s; shapes B %d T %d H %d D %d F %d V %d\n", blas_info().core.c_str(), B, T, H, D, F, V);
  for (int threads : {1, 2}) {
    set_threads(threads);
    for (bool avx512 : {true, false}) {
      enable_avx512(avx512);
      std::printf("%dT %s\n", threads, avx512 ? "AVX-512 paths" : "portable paths");
      time_it("cross_entropy (N, V)", [&] {
        cross_entropy_forward_backward(losses.data(), dl.data(), logits.data(), targets.data(), N, V, 1.0f / N);
      });
      time_it("swiglu_forward (N, F)", [&] { swiglu_forward(h.data(), g.data(), u.data(), g.size()); });
      time_it("swiglu_backward (N, F)",
              [&] { swiglu_backward(dg.data(), du.data(), h.data(), g.data(), u.data(), g.size()); });
      time_it("attention_forward (B, T, H, D)", [&] {
        attention_forward(out.data(), att.data(), q.data(), k.data(), v.data(), B, T, H, H, D);
      });
      time_it("attention_backward (B, T, H, D)", [&] {
        attention_backward(dq.data(), dk.data(), dv.data(), datt.data(), out.data(), att.data(), q.data(), k.data(),
                           v.data(), B, T, H, H, D);
      });
    }
  }
  return 0;
}
