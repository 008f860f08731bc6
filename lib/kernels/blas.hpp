// Matrix products through OpenBLAS, and the one place that sets thread counts for OpenMP and
// OpenBLAS together. blas.cpp is the only file that uses cblas.
#pragma once

#include <string>

namespace lm::kernels {

// Row-major C (M, N) = alpha * op(A) (M, K) * op(B) (K, N) + beta * C, op = transpose if trans_*.
// lda/ldb/ldc are row strides of A, B, C as stored. Products smaller than kBlasMinFlops use our
// own vectorised loop (no call overhead, no OpenBLAS threads); larger ones OpenBLAS (loaded on
// first use, see blas_info). beta == 0 never reads C. K == 0 gives C = beta C. The bits do not
// depend on the thread count. Throws lm::Error only if OpenBLAS cannot be loaded.
void sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
           int ldb, float beta, float* C, int ldc);
// The plain triple loop (double accumulation) used for small products and as the test reference.
void sgemm_ref(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
               int ldb, float beta, float* C, int ldc);

// 2*M*N*K below which sgemm does not call OpenBLAS (call overhead dominates there).
inline constexpr double kBlasMinFlops = 2.0 * 32 * 32 * 32;

// Sets the threads used by our OpenMP loops and by OpenBLAS; 0 = all cores, with inference
// steps at the count measured fastest now (kernels/thread_tuner.hpp). Returns the count.
// (Defined in thread_tuner.cpp.)
int set_threads(int threads);
// Sets the count of both now (set_threads and the tuner call it).
void apply_threads(int n);

// Best GFLOP/s of a few 768^3 products at the current thread count: the peak used for MFU.
double sgemm_peak_gflops();

struct BlasInfo {
  std::string path;       // the library file loaded
  std::string core;       // OpenBLAS's kernel family, e.g. "SkylakeX"
  std::string config;     // openblas_get_config()
  bool coretype_forced = false;  // we chose SkylakeX: AVX-512 CPU that OpenBLAS 0.3.21 calls Haswell
};
// Loads OpenBLAS if needed and describes it. Throws lm::Error if it cannot be loaded.
BlasInfo blas_info();

}  // namespace lm::kernels
