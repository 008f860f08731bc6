// Peak multiply-add throughput of one core for the three AVX-512 dot instructions a matrix
// product could be built on: fp32 FMA (vfmadd231ps, what OpenBLAS's SkylakeX sgemm uses),
// bf16 pairs (vdpbf16ps, AVX512_BF16) and int8 quads (vpdpbusd, AVX512_VNNI). 24 independent
// accumulators, each started from a different value so that the compiler cannot merge them;
// GFLOP/s counts 2 operations per multiply-add (an int8 multiply-add counts as 2 "FLOPs").
// Median [min-max] of 5 timed runs. An instruction the CPU does not run is reported as such:
// some hypervisors hide AVX512_BF16 from CPUID on CPUs that execute it, so it is tried under a
// SIGILL handler instead of trusting the CPUID bit.
#include <algorithm>
#include <chrono>
#include <csetjmp>
#include <csignal>
#include <cstdio>
#include <vector>

#include "kernels/simd.hpp"  // immintrin.h without GCC 12's false warnings

namespace {

constexpr long kIters = 20000000;

#define LM_X24(X) \
  X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15) X(16) X(17) X(18) X(19) X(20) \
      X(21) X(22) X(23)

__attribute__((target("avx512f"), noinline)) float run_fma() {
  const __m512 b = _mm512_set1_ps(0.5f), c = _mm512_set1_ps(0.25f);
#define LM_DECL(k) __m512 a##k = _mm512_set1_ps(float(k));
  LM_X24(LM_DECL)
  for (long i = 0; i < kIters; ++i) {
#define LM_STEP(k) a##k = _mm512_fmadd_ps(a##k, b, c);
    LM_X24(LM_STEP)
  }
#define LM_SUM(k) +_mm512_reduce_add_ps(a##k)
  return 0 LM_X24(LM_SUM);
}

__attribute__((target("avx512f,avx512bf16"), noinline)) float run_bf16() {
  __m512bh b = (__m512bh)_mm512_set1_epi32(0x3f803f80);  // (1, 1)
#define LM_DECL_B(k) __m512 d##k = _mm512_set1_ps(float(k));
  LM_X24(LM_DECL_B)
  for (long i = 0; i < kIters; ++i) {
#define LM_STEP_B(k) d##k = _mm512_dpbf16_ps(d##k, b, b);
    LM_X24(LM_STEP_B)
    __asm__ volatile("" : "+v"(b));
  }
#define LM_SUM_B(k) +_mm512_reduce_add_ps(d##k)
  return 0 LM_X24(LM_SUM_B);
}

__attribute__((target("avx512f,avx512vnni"), noinline)) float run_vnni() {
  __m512i b = _mm512_set1_epi8(1);
#define LM_DECL_V(k) __m512i v##k = _mm512_set1_epi32(k);
  LM_X24(LM_DECL_V)
  for (long i = 0; i < kIters; ++i) {
#define LM_STEP_V(k) v##k = _mm512_dpbusd_epi32(v##k, b, b);
    LM_X24(LM_STEP_V)
    __asm__ volatile("" : "+v"(b));
  }
#define LM_SUM_V(k) +_mm512_reduce_add_epi32(v##k)
  return float(0 LM_X24(LM_SUM_V));
}

sigjmp_buf g_jump;
void on_sigill(int) { siglongjmp(g_jump, 1); }

// Runs f once under a SIGILL handler: false if the CPU does not have the instruction.
bool runs(float (*f)()) {
  struct sigaction sa {}, old {};
  sa.sa_handler = on_sigill;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGILL, &sa, &old);
  bool ok = false;
  if (sigsetjmp(g_jump, 1) == 0) {
    f();
    ok = true;
  }
  sigaction(SIGILL, &old, nullptr);
  return ok;
}

}  // namespace

int main() {
  struct Kind {
    const char* name;
    float (*run)();
    double ops_per_instr;  // multiply-adds per instruction, times 2
  };
  const Kind kinds[] = {{"fp32 FMA (vfmadd231ps)", run_fma, 32},
                        {"bf16 pairs (vdpbf16ps)", run_bf16, 64},
                        {"int8 quads (vpdpbusd)", run_vnni, 128}};
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx512f")) {
    std::printf("no AVX-512F on this CPU\n");
    return 0;
  }
  double fma = 0;
  for (const Kind& k : kinds) {
    if (!runs(k.run)) {
      std::printf("%-24s not supported by this CPU\n", k.name);
      continue;
    }
    std::vector<double> g;
    for (int r = 0; r < 5; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      volatile float sink = k.run();
      (void)sink;
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      g.push_back(double(kIters) * 24 * k.ops_per_instr / s / 1e9);
    }
    std::sort(g.begin(), g.end());
    if (k.run == run_fma) fma = g[2];
    std::printf("%-24s %7.1f GFLOP/s per core [%.1f-%.1f]  %.2fx fp32 FMA\n", k.name, g[2], g[0], g[4], g[2] / fma);
  }
  return 0;
}
