// sgemm throughput through lm::kernels::sgemm (OpenBLAS as lm loads it) at 1 and 2 threads:
// square 1024 and the small preset's shapes (x:[4096,384], W:[1152,384]; docs/performance.md).
// Prints the OpenBLAS kernel family, then GFLOP/s as median [min-max] of 5 timed repetitions.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "base/rng.hpp"
#include "kernels/blas.hpp"

using namespace lm::kernels;

int main() {
  BlasInfo info = blas_info();
  std::printf("OpenBLAS %s, core %s%s\n", info.path.c_str(), info.core.c_str(),
              info.coretype_forced ? " (OPENBLAS_CORETYPE set by lm)" : "");
  struct Shape { const char* name; bool ta, tb; int M, N, K; };
  const Shape shapes[] = {{"square 1024", false, false, 1024, 1024, 1024},
                          {"fwd y=x*W^T 4096x1152x384", false, true, 4096, 1152, 384},
                          {"bwd dX=dY*W 4096x384x1152", false, false, 4096, 384, 1152},
                          {"bwd dW=dY^T*X 1152x384x4096", true, false, 1152, 384, 4096}};
  lm::Rng rng(1);
  std::vector<float> A(size_t(4096) * 1152), B(size_t(4096) * 1152), C(size_t(4096) * 1152);
  for (auto& x : A) x = rng.normal();
  for (auto& x : B) x = rng.normal();
  for (int threads : {1, 2}) {
    set_threads(threads);
    for (const Shape& s : shapes) {
      const int lda = s.ta ? s.M : s.K, ldb = s.tb ? s.K : s.N;
      std::vector<double> gf;
      sgemm(s.ta, s.tb, s.M, s.N, s.K, 1, A.data(), lda, B.data(), ldb, 0, C.data(), s.N);  // warm-up
      for (int r = 0; r < 5; ++r) {
        int reps = 0;
        auto t0 = std::chrono::steady_clock::now();
        double secs = 0;
        do {
          sgemm(s.ta, s.tb, s.M, s.N, s.K, 1, A.data(), lda, B.data(), ldb, 0, C.data(), s.N);
          ++reps;
          secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        } while (secs < 0.3);
        gf.push_back(2.0 * s.M * s.N * s.K * reps / secs / 1e9);
      }
      std::sort(gf.begin(), gf.end());
      std::printf("%dT %-30s %6.0f GFLOP/s [%.0f-%.0f]\n", threads, s.name, gf[2], gf[0], gf[4]);
    }
  }
  return 0;
}
