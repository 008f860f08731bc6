// SIMD helpers private to lib/quant: the target attributes of the AVX2 and AVX-512 VNNI paths
// (the default build has no -march flag; dot_path() picks a path at run time) and hsum8.
#pragma once

// GCC 12's AVX-512 intrinsics warn once inlined (GCC bug 105593); see kernels/simd.hpp.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include "quant/kquant.hpp"

#define LM_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))
#define LM_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
// With BMI2 too (pdep): the VNNI dot path requires it (best_dot_path).
#define LM_TARGET_AVX512_BMI2 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c,bmi2")))

// Defines NAME(x, x_stride, nx, y, y_stride, ny, nb, out) for target attribute TARGET: nx weight
// rows of BLOCK (row i at x + i * x_stride bytes) against ny activation rows (row j at y + j *
// y_stride), KERNEL<R>(row's blocks, y, y_stride, nb, out) on runs of 8 activation rows, then 4,
// then the remainder, into out[i * ny + j]. One function per kernel, so its constants are set up
// once per call rather than once per weight row. The K-quant tiles (kquant.cpp, kquant_ext.cpp).
#define LM_QUANT_TILE(NAME, TARGET, BLOCK, KERNEL)                                                                 \
  TARGET void NAME(const uint8_t* x, size_t x_stride, int nx, const uint8_t* y, size_t y_stride, int ny, size_t nb, \
                   float* out) {                                                                                   \
    for (int i = 0; i < nx; ++i) {                                                                                 \
      const auto* xs = reinterpret_cast<const BLOCK*>(x + size_t(i) * x_stride);                                   \
      float* o = out + size_t(i) * ny;                                                                             \
      int j = 0;                                                                                                   \
      for (; j + 8 <= ny; j += 8) KERNEL<8>(xs, y + size_t(j) * y_stride, y_stride, nb, o + j);                    \
      for (; j + 4 <= ny; j += 4) KERNEL<4>(xs, y + size_t(j) * y_stride, y_stride, nb, o + j);                    \
      switch (ny - j) {                                                                                            \
        case 3: KERNEL<3>(xs, y + size_t(j) * y_stride, y_stride, nb, o + j); break;                               \
        case 2: KERNEL<2>(xs, y + size_t(j) * y_stride, y_stride, nb, o + j); break;                               \
        case 1: KERNEL<1>(xs, y + size_t(j) * y_stride, y_stride, nb, o + j); break;                               \
        default: break;                                                                                            \
      }                                                                                                            \
    }                                                                                                              \
  }

namespace lm::quant {

// A function LM_QUANT_TILE defines.
using TileKernel = void (*)(const uint8_t*, size_t, int, const uint8_t*, size_t, int, size_t, float*);

// The vec_dot_*_tile functions: `avx512` on the AVX-512 VNNI path, else `avx2` from AVX2 up
// (either may be null: no tile there), else `dot` per pair. n values per row.
inline void dot_tile(TileKernel avx512, TileKernel avx2, float (*dot)(const void*, const void*, size_t), const void* x,
                     size_t x_stride, int nx, const void* y, size_t y_stride, int ny, size_t n, float* out) {
  const auto* xb = static_cast<const uint8_t*>(x);
  const auto* yb = static_cast<const uint8_t*>(y);
  const DotPath path = dot_path();
  const TileKernel k = path == DotPath::Avx512Vnni && avx512 ? avx512 : path >= DotPath::Avx2 ? avx2 : nullptr;
  if (k) return k(xb, x_stride, nx, yb, y_stride, ny, n / kSuperBlock, out);
  for (int i = 0; i < nx; ++i)
    for (int j = 0; j < ny; ++j) out[size_t(i) * ny + j] = dot(xb + size_t(i) * x_stride, yb + size_t(j) * y_stride, n);
}

// The sum of v's 8 lanes: ((0 + 4) + (2 + 6)) + ((1 + 5) + (3 + 7)).
LM_TARGET_AVX2 inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

}  // namespace lm::quant
