// SIMD helpers private to lib/quant: the target attributes of the AVX2 and AVX-512 VNNI paths
// (the default build has no -march flag; dot_path() picks a path at run time) and hsum8.
#pragma once

// GCC 12's AVX-512 intrinsics warn once inlined (GCC bug 105593); see kernels/simd.hpp.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#define LM_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))
#define LM_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))

namespace lm::quant {

// The sum of v's 8 lanes: ((0 + 4) + (2 + 6)) + ((1 + 5) + (3 + 7)).
LM_TARGET_AVX2 inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

}  // namespace lm::quant
