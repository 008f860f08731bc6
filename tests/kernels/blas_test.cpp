// Tests for lib/kernels/blas: sgemm against its reference with every transpose, on shapes on
// both sides of the BLAS threshold, strides, beta; and the OpenBLAS kernel family chosen.
#include <doctest/doctest.h>

#include <strings.h>

#include <cctype>
#include <cstdlib>
#include <cmath>
#include <tuple>
#include <string>
#include <vector>

#include "base/rng.hpp"
#include "kernels/blas.hpp"

using namespace lm::kernels;

TEST_CASE("sgemm matches sgemm_ref for all transposes, small and large shapes") {
  lm::Rng rng(3);
  for (auto [M, N, K] : {std::tuple{1, 1, 1}, std::tuple{3, 5, 7}, std::tuple{31, 33, 17}, std::tuple{64, 96, 128},
                         std::tuple{129, 65, 200}}) {
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb) {
        const int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 1, ldc = N + 2;
        std::vector<float> A(size_t(ta ? K : M) * lda), B(size_t(tb ? N : K) * ldb), C(size_t(M) * ldc);
        for (auto& x : A) x = rng.normal();
        for (auto& x : B) x = rng.normal();
        for (auto& x : C) x = rng.normal();
        auto C_ref = C;
        sgemm(ta, tb, M, N, K, 0.5f, A.data(), lda, B.data(), ldb, 0.25f, C.data(), ldc);
        sgemm_ref(ta, tb, M, N, K, 0.5f, A.data(), lda, B.data(), ldb, 0.25f, C_ref.data(), ldc);
        double worst = 0;
        for (int i = 0; i < M; ++i)
          for (int j = 0; j < N; ++j)
            worst = std::max(worst, std::fabs(double(C[size_t(i) * ldc + j]) - C_ref[size_t(i) * ldc + j]) /
                                        std::sqrt(double(K)));
        CAPTURE(M);
        CAPTURE(N);
        CAPTURE(K);
        CHECK(worst < 1e-5);
      }
  }
}

TEST_CASE("OpenBLAS loads with AVX-512 kernels on CPUs that have AVX-512") {
  BlasInfo info = blas_info();
  CHECK_FALSE(info.path.empty());
  CHECK_FALSE(info.core.empty());
  __builtin_cpu_init();
  // Unless the user chose a kernel family for lm, an AVX-512 CPU gets the AVX-512 kernels even
  // where OPENBLAS_CORETYPE=Haswell is set (what OpenBLAS 0.3.21 detects on Zen 5 by itself).
  const char* theirs = std::getenv("OPENBLAS_CORETYPE");
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl") && !std::getenv("LM_OPENBLAS_CORETYPE") &&
      (!theirs || strcasecmp(theirs, "haswell") == 0)) {
    CHECK(info.coretype_forced);
    std::string core = info.core;
    for (auto& c : core) c = char(std::tolower(uint8_t(c)));
    CHECK(core != "haswell");
  }
  CHECK(set_threads(1) == 1);
  CHECK(set_threads(0) >= 1);
}

TEST_CASE("sgemm with beta 0 ignores NaN already in C, and K = 0 scales C, on both sides of the threshold") {
  for (int n : {4, 64}) {  // 2 n^3 = 128 and 524288 flops against kBlasMinFlops
    CAPTURE(n);
    for (int tb = 0; tb < 2; ++tb) {
      std::vector<float> A(size_t(n) * n, 1.0f), B(size_t(n) * n, 2.0f), C(size_t(n) * n, NAN);
      sgemm(false, tb, n, n, n, 1.0f, A.data(), n, B.data(), n, 0.0f, C.data(), n);
      for (float c : C) CHECK(c == 2.0f * n);
    }
    std::vector<float> C(size_t(n) * n, 3.0f);
    sgemm(false, false, n, n, 0, 1.0f, nullptr, 1, nullptr, n, 0.5f, C.data(), n);
    for (float c : C) CHECK(c == 1.5f);
  }
}

TEST_CASE("sgemm gives the same bits at one and two threads") {
  // OpenBLAS's one-thread and threaded drivers split a K between GEMM_Q and twice it differently:
  // without care, K = 456 .. 4072 not a multiple of 32 gave other bits at -t 1 than at -t 2
  // (measured with SkylakeX kernels). Every transpose, beta 0 and 1, K around those bounds.
  lm::Rng rng(5);
  const int M = 96, N = 80;
  for (int K : {64, 100, 448, 456, 480, 880, 896, 1000, 2056, 4072})
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb)
        for (float beta : {0.0f, 1.0f}) {
          std::vector<float> A(size_t(M) * K), B(size_t(K) * N), C1(size_t(M) * N, 0.5f), C2 = C1, C3 = C1;
          for (auto& x : A) x = rng.normal();
          for (auto& x : B) x = rng.normal();
          const int lda = ta ? M : K, ldb = tb ? K : N;
          apply_threads(1);
          sgemm(ta, tb, M, N, K, 1.0f, A.data(), lda, B.data(), ldb, beta, C1.data(), N);
          apply_threads(2);
          sgemm(ta, tb, M, N, K, 1.0f, A.data(), lda, B.data(), ldb, beta, C2.data(), N);
          sgemm_ref(ta, tb, M, N, K, 1.0f, A.data(), lda, B.data(), ldb, beta, C3.data(), N);
          CAPTURE(K);
          CAPTURE(ta);
          CAPTURE(tb);
          CHECK(C1 == C2);
          double worst = 0;
          for (size_t i = 0; i < C1.size(); ++i) worst = std::max(worst, std::fabs(double(C1[i]) - C3[i]));
          CHECK(worst < 1e-5 * std::sqrt(double(K)));
        }
  set_threads(0);
}
