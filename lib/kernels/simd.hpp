// AVX-512 helpers private to lib/kernels: a vector e^x and the CPU check that picks the AVX-512
// paths at run time. The default build has no -march flag, so callers put these in functions
// with __attribute__((target("avx512f"))) and call them only when has_avx512f() is true.
#pragma once

// GCC 12's AVX-512 intrinsics start from _mm512_undefined_ps() and warn about it once inlined
// (GCC bug 105593, fixed in GCC 13); the pragma covers the header's lines only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

namespace lm::kernels {

namespace detail {
inline bool cpu_has_avx512f() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") != 0;
}
inline bool& avx512_enabled() {
  static bool yes = cpu_has_avx512f();
  return yes;
}
}  // namespace detail

// True if the AVX-512 paths run: the CPU has AVX-512F and they were not switched off. Never throws.
inline bool has_avx512f() { return detail::avx512_enabled(); }
// For tests: false makes the kernels take their portable paths, so both are checked on one
// machine; true restores AVX-512 where the CPU has it. Not thread-safe: call between kernels.
inline void enable_avx512(bool on) { detail::avx512_enabled() = on && detail::cpu_has_avx512f(); }

// e^x for 16 floats, within 2 ulp of the correctly rounded value for normal results; e^x is 0
// below -104, +inf above 88.73, and NaN stays NaN. glibc's vector expf is only declared under
// -ffast-math, which lm never uses (docs/architecture.md, decisions), so scalar std::exp would
// be called once per element.
// Method: x = n ln2 + r with n = round(x log2 e) and ln2 split in two (the high part has 9
// significant bits, so n * hi is exact for |n| <= 150); e^r on |r| <= ln2/2 by its Taylor
// series to degree 7 (truncation 5e-9 relative); scalef multiplies by 2^n without overflowing
// an exponent field and rounds subnormal results.
__attribute__((target("avx512f"))) inline __m512 exp16(__m512 x) {
  // max(c, x) and min(c, x) return x when x is NaN: NaN propagates, as for std::exp.
  x = _mm512_max_ps(_mm512_set1_ps(-104.0f), x);
  x = _mm512_min_ps(_mm512_set1_ps(89.0f), x);
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.0f / 5040);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

// Mask of the first `n` (0..16) lanes, for loop tails.
__attribute__((target("avx512f"))) inline __mmask16 tail_mask(int n) {
  return n >= 16 ? __mmask16(0xffff) : __mmask16((1u << n) - 1u);
}

}  // namespace lm::kernels
