// OpenBLAS, loaded at run time so that its kernel family can be chosen before it initialises.
//
// Why dlopen: Debian's OpenBLAS 0.3.21 does not know Zen 5 and picks its Haswell (AVX2) sgemm,
// half the speed of the SkylakeX (AVX-512) one on this CPU (docs/performance.md, the machine). The
// choice is read from OPENBLAS_CORETYPE when the library initialises, so a linked library would
// be too early. We set the variable, unless the user did, when the CPU has AVX-512, then load
// the OpenMP build so that OpenBLAS and our loops share one thread pool (the same section).
// OPENBLAS_CORETYPE=Haswell (or Zen) is what this OpenBLAS would choose by itself on such a CPU,
// and some environments set it so; on an AVX-512 CPU we replace those two values too.
// LM_OPENBLAS_CORETYPE, if set, is passed on as it is and always wins.
#include "kernels/blas.hpp"

#include <cblas.h>
#include <dlfcn.h>
#include <omp.h>

#include <strings.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <vector>
#include <mutex>

#include "base/error.hpp"

namespace lm::kernels {

namespace {

struct Blas {
  decltype(&cblas_sgemm) sgemm = nullptr;
  void (*set_num_threads)(int) = nullptr;
  char* (*get_corename)() = nullptr;
  char* (*get_config)() = nullptr;
  BlasInfo info;
};

bool cpu_has_avx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
}

const Blas& blas() {
  static Blas b;
  static std::once_flag once;
  std::call_once(once, [] {
    const char* ours = std::getenv("LM_OPENBLAS_CORETYPE");
    const char* theirs = std::getenv("OPENBLAS_CORETYPE");
    if (ours) {
      ::setenv("OPENBLAS_CORETYPE", ours, 1);
    } else if (cpu_has_avx512() && (!theirs || strcasecmp(theirs, "Haswell") == 0 || strcasecmp(theirs, "Zen") == 0)) {
      ::setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
      b.info.coretype_forced = true;
    }
    static const char* kPaths[] = {"/usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so.0", "libopenblas.so.0"};
    void* h = nullptr;
    for (const char* p : kPaths)
      if ((h = ::dlopen(p, RTLD_NOW | RTLD_LOCAL))) {
        b.info.path = p;
        break;
      }
    if (!h) return;
    b.sgemm = reinterpret_cast<decltype(&cblas_sgemm)>(::dlsym(h, "cblas_sgemm"));
    b.set_num_threads = reinterpret_cast<void (*)(int)>(::dlsym(h, "openblas_set_num_threads"));
    b.get_corename = reinterpret_cast<char* (*)()>(::dlsym(h, "openblas_get_corename"));
    b.get_config = reinterpret_cast<char* (*)()>(::dlsym(h, "openblas_get_config"));
    if (b.get_corename) b.info.core = b.get_corename();
    if (b.get_config) b.info.config = b.get_config();
  });
  if (!b.sgemm)
    throw Error("OpenBLAS (libopenblas.so.0 with cblas_sgemm) could not be loaded: install it with "
                "'apt-get install libopenblas0-openmp'");
  return b;
}

}  // namespace

BlasInfo blas_info() { return blas().info; }

void apply_threads(int n) {
  omp_set_num_threads(n);
  if (const Blas& b = blas(); b.set_num_threads) b.set_num_threads(n);
}

void sgemm_ref(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
               int ldb, float beta, float* C, int ldc) {
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      double acc = 0;
      for (int k = 0; k < K; ++k)
        acc += double(trans_a ? A[k * lda + i] : A[i * lda + k]) * double(trans_b ? B[j * ldb + k] : B[k * ldb + j]);
      float& c = C[i * ldc + j];
      c = float(alpha * acc + (beta == 0.0f ? 0.0 : double(beta) * c));
    }
}

// The small-product path: float accumulation, inner loops along contiguous rows so they
// vectorise. beta == 0 never reads C (it may hold NaN), as in BLAS.
__attribute__((target_clones("avx512f", "avx2", "default"))) static void sgemm_small(
    bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
    float beta, float* C, int ldc) {
  for (int i = 0; i < M; ++i) {
    float* c = C + size_t(i) * ldc;
    if (!trans_b) {  // C row i = beta C row i + sum over k of alpha A(i, k) B row k
      if (beta == 0.0f)
        std::fill(c, c + N, 0.0f);
      else if (beta != 1.0f)
        for (int j = 0; j < N; ++j) c[j] *= beta;
      for (int k = 0; k < K; ++k) {
        const float a = alpha * (trans_a ? A[size_t(k) * lda + i] : A[size_t(i) * lda + k]);
        const float* b = B + size_t(k) * ldb;
#pragma omp simd
        for (int j = 0; j < N; ++j) c[j] += a * b[j];
      }
    } else {  // C(i, j) = alpha <A row/column i, B row j> + beta C(i, j)
      for (int j = 0; j < N; ++j) {
        const float* b = B + size_t(j) * ldb;
        float acc = 0;
        if (trans_a) {
#pragma omp simd reduction(+ : acc)
          for (int k = 0; k < K; ++k) acc += A[size_t(k) * lda + i] * b[k];
        } else {
          const float* a = A + size_t(i) * lda;
#pragma omp simd reduction(+ : acc)
          for (int k = 0; k < K; ++k) acc += a[k] * b[k];
        }
        c[j] = alpha * acc + (beta == 0.0f ? 0.0f : beta * c[j]);
      }
    }
  }
}

void sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
           int ldb, float beta, float* C, int ldc) {
  if (M <= 0 || N <= 0) return;
  if (2.0 * M * N * K < kBlasMinFlops) {
    sgemm_small(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  // OpenBLAS adds over K in blocks of GEMM_Q (448 for SkylakeX's sgemm), and when what is left
  // is between GEMM_Q and twice it, its one-thread driver halves it rounded to GEMM_UNROLL_M while
  // its threaded driver halves it exactly: two orders of addition, so a product whose K is not a
  // multiple of 2 x GEMM_UNROLL_M gave other bits at -t 1 than at -t 2 (a classifier fine-tuned
  // on short texts, whose weight gradients add over b x t rows, depended on the thread count).
  // A K that is a multiple of 64 splits the same way in both (GEMM_Q is a multiple of 64 and
  // GEMM_UNROLL_M at most 32 in OpenBLAS's x86 sgemm kernels), and the rest, under 64, is one
  // block: so the product is two calls, and its bits do not depend on the thread count.
  const int K1 = K > 64 ? K - K % 64 : K;
  const auto ta = trans_a ? CblasTrans : CblasNoTrans, tb = trans_b ? CblasTrans : CblasNoTrans;
  blas().sgemm(CblasRowMajor, ta, tb, M, N, K1, alpha, A, lda, B, ldb, beta, C, ldc);
  if (K1 < K)
    blas().sgemm(CblasRowMajor, ta, tb, M, N, K - K1, alpha, trans_a ? A + size_t(K1) * lda : A + K1, lda,
                 trans_b ? B + K1 : B + size_t(K1) * ldb, ldb, 1.0f, C, ldc);
}

double sgemm_peak_gflops() {
  const int n = 768;
  std::vector<float> a(size_t(n) * n, 1.0f), c(size_t(n) * n);
  double best = 0;
  for (int r = 0; r < 8; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    sgemm(false, false, n, n, n, 1.0f, a.data(), n, a.data(), n, 0.0f, c.data(), n);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, 2.0 * n * n * n / s / 1e9);
  }
  return best;
}

}  // namespace lm::kernels
