// Decoding's matrix-vector product y = W x at the medium preset's shapes, as GB/s of W read:
// our few-row kernel (its AVX2 path and the portable one) against OpenBLAS sgemv-shaped sgemm, at 1 and 2
// threads. The bar is the STREAM read of docs/performance.md: 35 GB/s on 1 thread, 68 on 2.
// Usage: gemv_bench [reps]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

#include "base/rng.hpp"
#include "kernels/blas.hpp"
#include "kernels/kernels.hpp"
#include "kernels/simd.hpp"

using namespace lm::kernels;

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::atoi(argv[1]) : 20;
  // All weights of one medium layer plus the head, as decoding reads them: 12 x 7.1M + 24.6M floats.
  struct Shape {
    int C, OC;
  };
  const Shape shapes[] = {{768, 768}, {768, 768}, {768, 768}, {768, 768}, {768, 2048}, {768, 2048}, {2048, 768}};
  lm::Rng rng(1);
  std::vector<std::vector<float>> W;
  size_t bytes = 0;
  for (int l = 0; l < 12; ++l)
    for (const Shape& s : shapes) {
      W.emplace_back(size_t(s.C) * s.OC, 0.01f);
      bytes += W.back().size() * 4;
    }
  std::vector<float> head(size_t(32000) * 768, 0.01f);
  bytes += head.size() * 4;
  std::vector<float> x(2048, 1.0f), y(32000);
  bool shared = false;
  auto pass = [&](bool blas) {
    size_t i = 0;
    for (int l = 0; l < 12; ++l) {
      if (shared && !blas) {  // q, k, v and gate, up as decoding runs them
        const LinearOut qkv[3] = {{y.data(), W[i].data(), 768}, {y.data() + 768, W[i + 1].data(), 768},
                                  {y.data() + 1536, W[i + 2].data(), 768}};
        matmul_forward_shared(x.data(), 1, 768, qkv, 3);
        matmul_forward(y.data(), x.data(), W[i + 3].data(), 1, 768, 768);
        const LinearOut gu[2] = {{y.data(), W[i + 4].data(), 2048}, {y.data() + 2048, W[i + 5].data(), 2048}};
        matmul_forward_shared(x.data(), 1, 768, gu, 2);
        matmul_forward(y.data(), x.data(), W[i + 6].data(), 1, 2048, 768);
        i += 7;
        continue;
      }
      for (const Shape& s : shapes) {
        if (blas)
          sgemm(false, true, 1, s.OC, s.C, 1.0f, x.data(), s.C, W[i++].data(), s.C, 0.0f, y.data(), s.OC);
        else
          matmul_forward(y.data(), x.data(), W[i++].data(), 1, s.C, s.OC);
      }
    }
    if (blas)
      sgemm(false, true, 1, 32000, 768, 1.0f, x.data(), 768, head.data(), 768, 0.0f, y.data(), 32000);
    else
      matmul_forward(y.data(), x.data(), head.data(), 1, 768, 32000);
  };
  std::printf("OpenBLAS core %s; %.1f MiB of weights per pass\n", blas_info().core.c_str(), double(bytes) / (1 << 20));
  for (int threads : {1, 2}) {
    set_threads(threads);
    for (int variant : {0, 3, 1, 2}) {
      enable_avx512(variant != 1);
      shared = variant == 3;
      std::vector<double> gbs;
      for (int r = 0; r < reps + 1; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        pass(variant == 2);
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (r) gbs.push_back(double(bytes) / s / 1e9);
      }
      std::sort(gbs.begin(), gbs.end());
      std::printf("%dT %-34s %6.1f GB/s [%.1f-%.1f]\n", threads,
                  variant == 0 ? "lm AVX2 path" : variant == 3 ? "lm AVX2, q/k/v and gate/up shared" : variant == 1 ? "lm portable" : "OpenBLAS sgemm M=1", gbs[gbs.size() / 2],
                  gbs.front(), gbs.back());
    }
  }
  enable_avx512(true);
  return 0;
}
