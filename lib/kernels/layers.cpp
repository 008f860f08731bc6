// Layers of other architectures (inference only): LayerNorm, RoPE from a frequency table,
// GELU and GeGLU, bias, soft-capping. They run on activations, O(N C) per call: plain loops the
// compiler vectorises (compiled for AVX-512, AVX2 and baseline x86-64, picked at load time),
// OpenMP over rows only when a call is large (a decoding step runs on the calling thread).
// GELU and soft-capping evaluate e^x: they have an AVX-512 twin built on exp16 (simd.hpp),
// chosen at run time, since scalar std::exp / std::tanh would dominate them.
// attention_cached_ext lives in kernels.cpp with attention_cached, whose inner loop it shares.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/kernels.hpp"
#include "kernels/simd.hpp"

#define LM_TARGET_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

namespace lm::kernels {

// Calls smaller than this many values run on the calling thread (as in kernels.cpp).
static constexpr size_t kParallelMin = 16384;
// Element-wise kernels split their values in chunks of this many per task.
static constexpr size_t kChunk = 4096;

// ---- LayerNorm ----

// The corrected two-pass algorithm (Chan, Golub & LeVeque 1983): a first mean m1, then the
// sums of d = x - m1 and d^2, which give the mean's correction and the variance. x - m1 is
// exact when x is near m1, so rows with a large mean next to their spread (1e4 + N(0, 1)) keep
// 1e-6 accuracy, where one-pass E[x^2] - mean^2 or a float mean alone lose it. y may alias x:
// each y[c] is written after the last read of x[c].
LM_TARGET_CLONES static void layernorm_row(float* y, const float* x, const float* w, const float* b, int C,
                                           float eps) {
  float sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int c = 0; c < C; ++c) sum += x[c];
  const float m1 = sum / float(C);
  float sd = 0, ss = 0;
#pragma omp simd reduction(+ : sd, ss)
  for (int c = 0; c < C; ++c) {
    const float d = x[c] - m1;
    sd += d;
    ss += d * d;
  }
  const float corr = sd / float(C);
  const float r = 1.0f / std::sqrt(std::max(0.0f, ss / float(C) - corr * corr) + eps);
  if (b) {
#pragma omp simd
    for (int c = 0; c < C; ++c) y[c] = (x[c] - m1 - corr) * r * w[c] + b[c];
  } else {
#pragma omp simd
    for (int c = 0; c < C; ++c) y[c] = (x[c] - m1 - corr) * r * w[c];
  }
}

void layernorm_forward(float* y, const float* x, const float* w, const float* b, int N, int C, float eps) {
#pragma omp parallel for schedule(static) if (N > 1 && size_t(N) * C >= kParallelMin)
  for (int n = 0; n < N; ++n) layernorm_row(y + size_t(n) * C, x + size_t(n) * C, w, b, C, eps);
}

void layernorm_forward_ref(float* y, const float* x, const float* w, const float* b, int N, int C, float eps) {
  for (int n = 0; n < N; ++n) {
    const float* xr = x + size_t(n) * C;
    double mean = 0, var = 0;
    for (int c = 0; c < C; ++c) mean += xr[c];
    mean /= C;
    for (int c = 0; c < C; ++c) var += (xr[c] - mean) * (xr[c] - mean);
    const double r = 1.0 / std::sqrt(var / C + eps);
    for (int c = 0; c < C; ++c) y[size_t(n) * C + c] = float((xr[c] - mean) * r * w[c] + (b ? double(b[c]) : 0.0));
  }
}

// ---- RoPE from a frequency table ----

// Rotates the n_rot / 2 = P pairs of one head by the angles whose cos and sin (times mscale)
// are cs and sn.
LM_TARGET_CLONES static void rope_table_head(float* v, const float* cs, const float* sn, int P, bool neox) {
  if (neox) {
    float* hi = v + P;
#pragma omp simd
    for (int i = 0; i < P; ++i) {
      const float a = v[i], c = hi[i];
      v[i] = a * cs[i] - c * sn[i];
      hi[i] = a * sn[i] + c * cs[i];
    }
  } else {
#pragma omp simd
    for (int i = 0; i < P; ++i) {
      const float a = v[2 * i], c = v[2 * i + 1];
      v[2 * i] = a * cs[i] - c * sn[i];
      v[2 * i + 1] = a * sn[i] + c * cs[i];
    }
  }
}

void rope_table_forward(float* x, int n, int H, int D, int n_rot, const float* inv_freq, float mscale, bool neox,
                        int pos0) {
  const int P = n_rot / 2;
  if (P <= 0) return;
#pragma omp parallel if (size_t(n) * H * n_rot >= kParallelMin)
  {
    std::vector<float> cs(static_cast<size_t>(P)), sn(static_cast<size_t>(P));
#pragma omp for schedule(static)
    for (int t = 0; t < n; ++t) {
      // The angle in double: p * inv_freq reaches 1e5 and more, where a float angle would be
      // off by 1e-2 radians.
      for (int i = 0; i < P; ++i) {
        const double angle = double(pos0 + t) * double(inv_freq[i]);
        cs[size_t(i)] = float(double(mscale) * std::cos(angle));
        sn[size_t(i)] = float(double(mscale) * std::sin(angle));
      }
      for (int h = 0; h < H; ++h) rope_table_head(x + (size_t(t) * H + h) * D, cs.data(), sn.data(), P, neox);
    }
  }
}

void rope_table_forward_ref(float* x, int n, int H, int D, int n_rot, const float* inv_freq, float mscale, bool neox,
                            int pos0) {
  const int P = n_rot / 2;
  for (int t = 0; t < n; ++t)
    for (int h = 0; h < H; ++h)
      for (int i = 0; i < P; ++i) {
        float* v = x + (size_t(t) * H + h) * D;
        float* a = neox ? v + i : v + 2 * i;
        float* c = neox ? v + i + P : v + 2 * i + 1;
        const double angle = double(pos0 + t) * double(inv_freq[i]);
        const double a0 = *a, c0 = *c;
        *a = float(mscale * (a0 * std::cos(angle) - c0 * std::sin(angle)));
        *c = float(mscale * (a0 * std::sin(angle) + c0 * std::cos(angle)));
      }
}

// ---- GELU and GeGLU ----

// 0.5 g (1 + tanh z) = g / (1 + e^(-2z)), z = sqrt(2/pi) g (1 + 0.044715 g^2): one exponential,
// and no cancellation of 1 + tanh z for negative g. Constants as ggml's (ggml-cpu/vec.h).
static constexpr float kSqrt2OverPi = 0.79788456080286535587989211986876f;
static constexpr float kGeluCoefA = 0.044715f;

static inline float gelu_value(float x) {
  const float z = kSqrt2OverPi * x * (1.0f + kGeluCoefA * x * x);
  return x / (1.0f + std::exp(-2.0f * z));
}

LM_TARGET_CLONES static void gelu_chunk(float* h, const float* g, const float* u, size_t n) {
  if (u) {
#pragma omp simd
    for (size_t i = 0; i < n; ++i) h[i] = gelu_value(g[i]) * u[i];
  } else {
#pragma omp simd
    for (size_t i = 0; i < n; ++i) h[i] = gelu_value(g[i]);
  }
}

__attribute__((target("avx512f"))) static void gelu_chunk_avx512(float* h, const float* g, const float* u, size_t n) {
  const __m512 one = _mm512_set1_ps(1.0f), k = _mm512_set1_ps(-2.0f * kSqrt2OverPi), a = _mm512_set1_ps(kGeluCoefA);
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(int(std::min<size_t>(16, n - i)));
    const __m512 x = _mm512_maskz_loadu_ps(m, g + i);
    // -2z = (-2 sqrt(2/pi) x) (1 + a x^2)
    const __m512 mz2 = _mm512_mul_ps(_mm512_mul_ps(k, x), _mm512_fmadd_ps(_mm512_mul_ps(a, x), x, one));
    __m512 y = _mm512_div_ps(x, _mm512_add_ps(one, exp16(mz2)));
    if (u) y = _mm512_mul_ps(y, _mm512_maskz_loadu_ps(m, u + i));
    _mm512_mask_storeu_ps(h + i, m, y);
  }
}

// h = gelu(g) * u, or gelu(g) when u is nullptr.
static void gelu_apply(float* h, const float* g, const float* u, size_t n) {
  const bool avx512 = has_avx512f();
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (size_t c = 0; c < n; c += kChunk) {
    const size_t len = std::min(kChunk, n - c);
    if (avx512)
      gelu_chunk_avx512(h + c, g + c, u ? u + c : nullptr, len);
    else
      gelu_chunk(h + c, g + c, u ? u + c : nullptr, len);
  }
}

void gelu_forward(float* h, const float* g, size_t n) { gelu_apply(h, g, nullptr, n); }
void geglu_forward(float* h, const float* g, const float* u, size_t n) { gelu_apply(h, g, u, n); }

static double gelu_ref(double g) {
  return 0.5 * g * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (g + 0.044715 * g * g * g)));
}
void gelu_forward_ref(float* h, const float* g, size_t n) {
  for (size_t i = 0; i < n; ++i) h[i] = float(gelu_ref(g[i]));
}
void geglu_forward_ref(float* h, const float* g, const float* u, size_t n) {
  for (size_t i = 0; i < n; ++i) h[i] = float(gelu_ref(g[i]) * u[i]);
}

// ---- bias ----

LM_TARGET_CLONES static void add_bias_row(float* y, const float* b, int OC) {
#pragma omp simd
  for (int o = 0; o < OC; ++o) y[o] += b[o];
}

void add_bias(float* y, const float* b, int N, int OC) {
#pragma omp parallel for schedule(static) if (N > 1 && size_t(N) * OC >= kParallelMin)
  for (int n = 0; n < N; ++n) add_bias_row(y + size_t(n) * OC, b, OC);
}

void add_bias_ref(float* y, const float* b, int N, int OC) {
  for (int n = 0; n < N; ++n)
    for (int o = 0; o < OC; ++o) y[size_t(n) * OC + o] += b[o];
}

// ---- soft-capping ----

// tanh of 16 floats, within about 2 ulp (2.3e-7 relative at worst on layers_test's sweep of
// [-6, 6] and tiny values). |y| < 0.5: the odd Taylor series to y^15 (alternating; the first
// omitted term, 6e-4 y^17, is below 1e-8 relative); otherwise (1 - e) / (1 + e) with
// e = e^(-2|y|) <= e^-1, so 1 - e does not cancel, and the sign of y put back. +-inf gives +-1 (exp16 clamps its input) and NaN stays NaN.
__attribute__((target("avx512f"))) static __m512 tanh16(__m512 y) {
  const __m512 one = _mm512_set1_ps(1.0f);
  const __m512 a = _mm512_abs_ps(y);
  const __m512 e = exp16(_mm512_mul_ps(a, _mm512_set1_ps(-2.0f)));
  const __m512 big = _mm512_div_ps(_mm512_sub_ps(one, e), _mm512_add_ps(one, e));
  const __m512i sign = _mm512_and_si512(_mm512_castps_si512(y), _mm512_set1_epi32(INT32_MIN));
  const __m512 big_signed = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(big), sign));
  const __m512 y2 = _mm512_mul_ps(y, y);
  __m512 p = _mm512_set1_ps(float(-929569.0 / 638512875.0));
  p = _mm512_fmadd_ps(p, y2, _mm512_set1_ps(float(21844.0 / 6081075.0)));
  p = _mm512_fmadd_ps(p, y2, _mm512_set1_ps(float(-1382.0 / 155925.0)));
  p = _mm512_fmadd_ps(p, y2, _mm512_set1_ps(float(62.0 / 2835.0)));
  p = _mm512_fmadd_ps(p, y2, _mm512_set1_ps(float(-17.0 / 315.0)));
  p = _mm512_fmadd_ps(p, y2, _mm512_set1_ps(float(2.0 / 15.0)));
  p = _mm512_fmadd_ps(p, y2, _mm512_set1_ps(float(-1.0 / 3.0)));
  const __m512 small = _mm512_fmadd_ps(_mm512_mul_ps(y, y2), p, y);
  const __mmask16 is_small = _mm512_cmp_ps_mask(a, _mm512_set1_ps(0.5f), _CMP_LT_OQ);
  return _mm512_mask_blend_ps(is_small, big_signed, small);
}

__attribute__((target("avx512f"))) static void softcap_chunk_avx512(float* x, size_t n, float cap) {
  const __m512 c = _mm512_set1_ps(cap);
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(int(std::min<size_t>(16, n - i)));
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(c, tanh16(_mm512_div_ps(v, c))));
  }
}

static void softcap_chunk(float* x, size_t n, float cap) {
  for (size_t i = 0; i < n; ++i) x[i] = cap * std::tanh(x[i] / cap);
}

void softcap_forward(float* x, size_t n, float cap) {
  const bool avx512 = has_avx512f();
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (size_t c = 0; c < n; c += kChunk) {
    const size_t len = std::min(kChunk, n - c);
    if (avx512)
      softcap_chunk_avx512(x + c, len, cap);
    else
      softcap_chunk(x + c, len, cap);
  }
}

void softcap_forward_ref(float* x, size_t n, float cap) {
  for (size_t i = 0; i < n; ++i) x[i] = float(cap * std::tanh(double(x[i]) / cap));
}

}  // namespace lm::kernels
