// Layers of other architectures: LayerNorm, RoPE from a frequency table,
// GELU and GeGLU, bias, soft-capping, and the backward passes of those the encoder trains
// (LayerNorm, GELU, bias; docs/encoder.md). They run on activations, O(N C) per call: plain loops the
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
// each y[c] is written after the last read of x[c]. The row's mean and rstd go to *mean, *rstd
// (the backward pass reads them).
LM_TARGET_CLONES static void layernorm_row(float* y, float* mean, float* rstd, const float* x, const float* w,
                                           const float* b, int C, float eps) {
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
  *mean = m1 + corr;
  *rstd = r;
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
  for (int n = 0; n < N; ++n) {
    float mean, rstd;  // not kept
    layernorm_row(y + size_t(n) * C, &mean, &rstd, x + size_t(n) * C, w, b, C, eps);
  }
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

void layernorm_forward_train(float* y, float* mean, float* rstd, const float* x, const float* w, const float* b,
                             int N, int C, float eps) {
#pragma omp parallel for schedule(static) if (N > 1 && size_t(N) * C >= kParallelMin)
  for (int n = 0; n < N; ++n) layernorm_row(y + size_t(n) * C, mean + n, rstd + n, x + size_t(n) * C, w, b, C, eps);
}

void layernorm_forward_train_ref(float* y, float* mean, float* rstd, const float* x, const float* w,
                                 const float* b, int N, int C, float eps) {
  for (int n = 0; n < N; ++n) {
    const float* xr = x + size_t(n) * C;
    double m = 0, var = 0;
    for (int c = 0; c < C; ++c) m += xr[c];
    m /= C;
    for (int c = 0; c < C; ++c) var += (xr[c] - m) * (xr[c] - m);
    const double r = 1.0 / std::sqrt(var / C + eps);
    mean[n] = float(m);
    rstd[n] = float(r);
    for (int c = 0; c < C; ++c) y[size_t(n) * C + c] = float((xr[c] - m) * r * w[c] + (b ? double(b[c]) : 0.0));
  }
}

// dw and db over the columns c0 .. c1, every row in order.
LM_TARGET_CLONES static void layernorm_params_backward(float* dw, float* db, const float* dy, const float* x,
                                                       const float* mean, const float* rstd, int N, int C, int c0,
                                                       int c1) {
  for (int n = 0; n < N; ++n) {
    const float* d = dy + size_t(n) * C;
    const float* xr = x + size_t(n) * C;
    const float m = mean[n], r = rstd[n];
    if (dw) {
#pragma omp simd
      for (int c = c0; c < c1; ++c) dw[c] += d[c] * ((xr[c] - m) * r);
    }
    if (db) {
#pragma omp simd
      for (int c = c0; c < c1; ++c) db[c] += d[c];
    }
  }
}

LM_TARGET_CLONES static void layernorm_row_backward(float* dx, const float* dy, const float* x, const float* w,
                                                    float m, float r, int C) {
  float se = 0, sex = 0;
#pragma omp simd reduction(+ : se, sex)
  for (int c = 0; c < C; ++c) {
    const float e = dy[c] * w[c];
    se += e;
    sex += e * ((x[c] - m) * r);
  }
  const float me = se / float(C), mex = sex / float(C);
#pragma omp simd
  for (int c = 0; c < C; ++c) dx[c] = r * (dy[c] * w[c] - me - (x[c] - m) * r * mex);
}

void layernorm_backward(float* dx, float* dw, float* db, const float* dy, const float* x, const float* w,
                        const float* mean, const float* rstd, int N, int C) {
  // The parameters' gradients first (dx may overwrite dy), by column blocks so that each column's
  // sum runs over the rows in order whatever the thread count.
  constexpr int kCols = 64;
  const int blocks = (C + kCols - 1) / kCols;
  if (dw || db) {
#pragma omp parallel for schedule(static) if (size_t(N) * C >= kParallelMin)
    for (int k = 0; k < blocks; ++k)
      layernorm_params_backward(dw, db, dy, x, mean, rstd, N, C, k * kCols, std::min(C, (k + 1) * kCols));
  }
#pragma omp parallel for schedule(static) if (N > 1 && size_t(N) * C >= kParallelMin)
  for (int n = 0; n < N; ++n)
    layernorm_row_backward(dx + size_t(n) * C, dy + size_t(n) * C, x + size_t(n) * C, w, mean[n], rstd[n], C);
}

void layernorm_backward_ref(float* dx, float* dw, float* db, const float* dy, const float* x, const float* w,
                            const float* mean, const float* rstd, int N, int C) {
  std::vector<double> xh(static_cast<size_t>(C)), e(static_cast<size_t>(C));
  for (int n = 0; n < N; ++n) {
    const float* d = dy + size_t(n) * C;
    double se = 0, sex = 0;
    for (int c = 0; c < C; ++c) {
      xh[size_t(c)] = (double(x[size_t(n) * C + c]) - mean[n]) * rstd[n];
      e[size_t(c)] = double(d[c]) * w[c];
      se += e[size_t(c)];
      sex += e[size_t(c)] * xh[size_t(c)];
      if (dw) dw[c] += float(d[c] * xh[size_t(c)]);
      if (db) db[c] += d[c];
    }
    for (int c = 0; c < C; ++c)
      dx[size_t(n) * C + c] = float(rstd[n] * (e[size_t(c)] - se / C - xh[size_t(c)] * sex / C));
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

// gelu(g) = g s, s = sigmoid(2z) = 1 / (1 + e^(-2z)), z = k g (1 + a g^2), so
// gelu'(g) = s + g s (1 - s) 2k (1 + 3a g^2).
static inline float gelu_grad(float x) {
  const float z = kSqrt2OverPi * x * (1.0f + kGeluCoefA * x * x);
  const float s = 1.0f / (1.0f + std::exp(-2.0f * z));
  return s + x * s * (1.0f - s) * (2.0f * kSqrt2OverPi) * (1.0f + 3.0f * kGeluCoefA * x * x);
}

LM_TARGET_CLONES static void gelu_backward_chunk(float* dg, const float* dh, const float* g, size_t n) {
#pragma omp simd
  for (size_t i = 0; i < n; ++i) dg[i] = dh[i] * gelu_grad(g[i]);
}

__attribute__((target("avx512f"))) static void gelu_backward_chunk_avx512(float* dg, const float* dh, const float* g,
                                                                         size_t n) {
  const __m512 one = _mm512_set1_ps(1.0f), k = _mm512_set1_ps(-2.0f * kSqrt2OverPi), a = _mm512_set1_ps(kGeluCoefA);
  const __m512 k2 = _mm512_set1_ps(2.0f * kSqrt2OverPi), a3 = _mm512_set1_ps(3.0f * kGeluCoefA);
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(int(std::min<size_t>(16, n - i)));
    const __m512 x = _mm512_maskz_loadu_ps(m, g + i);
    const __m512 x2 = _mm512_mul_ps(x, x);
    const __m512 mz2 = _mm512_mul_ps(_mm512_mul_ps(k, x), _mm512_fmadd_ps(a, x2, one));
    const __m512 s = _mm512_div_ps(one, _mm512_add_ps(one, exp16(mz2)));
    // s + x s (1 - s) 2k (1 + 3a x^2)
    const __m512 t = _mm512_mul_ps(_mm512_mul_ps(x, s), _mm512_sub_ps(one, s));
    const __m512 d = _mm512_fmadd_ps(_mm512_mul_ps(t, k2), _mm512_fmadd_ps(a3, x2, one), s);
    _mm512_mask_storeu_ps(dg + i, m, _mm512_mul_ps(d, _mm512_maskz_loadu_ps(m, dh + i)));
  }
}

void gelu_backward(float* dg, const float* dh, const float* g, size_t n) {
  const bool avx512 = has_avx512f();
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (size_t c = 0; c < n; c += kChunk) {
    const size_t len = std::min(kChunk, n - c);
    if (avx512)
      gelu_backward_chunk_avx512(dg + c, dh + c, g + c, len);
    else
      gelu_backward_chunk(dg + c, dh + c, g + c, len);
  }
}

void geglu_backward(float* dg, float* du, const float* dh, const float* g, const float* u, size_t n) {
  const bool avx512 = has_avx512f();
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (size_t c = 0; c < n; c += kChunk) {
    const size_t len = std::min(kChunk, n - c);
    float* dgc = dg + c;
    for (size_t i = 0; i < len; ++i) dgc[i] = dh[c + i] * u[c + i];  // d gelu(g), before du is written
    if (avx512) {
      gelu_chunk_avx512(du + c, g + c, dh + c, len);  // du = gelu(g) dh
      gelu_backward_chunk_avx512(dgc, dgc, g + c, len);
    } else {
      gelu_chunk(du + c, g + c, dh + c, len);
      gelu_backward_chunk(dgc, dgc, g + c, len);
    }
  }
}

void geglu_backward_ref(float* dg, float* du, const float* dh, const float* g, const float* u, size_t n) {
  const double k = std::sqrt(2.0 / M_PI), a = 0.044715;
  for (size_t i = 0; i < n; ++i) {
    const double x = g[i], th = std::tanh(k * (x + a * x * x * x));
    du[i] = float(double(dh[i]) * gelu_ref(g[i]));
    dg[i] = float(double(dh[i]) * u[i] * (0.5 * (1 + th) + 0.5 * x * (1 - th * th) * k * (1 + 3 * a * x * x)));
  }
}

void gelu_backward_ref(float* dg, const float* dh, const float* g, size_t n) {
  const double k = std::sqrt(2.0 / M_PI), a = 0.044715;
  for (size_t i = 0; i < n; ++i) {
    const double x = g[i], th = std::tanh(k * (x + a * x * x * x));
    dg[i] = float(dh[i] * (0.5 * (1 + th) + 0.5 * x * (1 - th * th) * k * (1 + 3 * a * x * x)));
  }
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

LM_TARGET_CLONES static void bias_backward_block(float* db, const float* dy, int N, int OC, int c0, int c1) {
  for (int n = 0; n < N; ++n) {
    const float* d = dy + size_t(n) * OC;
#pragma omp simd
    for (int c = c0; c < c1; ++c) db[c] += d[c];
  }
}

void bias_backward(float* db, const float* dy, int N, int OC) {
  constexpr int kCols = 64;  // column blocks: each sum runs over the rows in order
  const int blocks = (OC + kCols - 1) / kCols;
#pragma omp parallel for schedule(static) if (size_t(N) * OC >= kParallelMin)
  for (int k = 0; k < blocks; ++k) bias_backward_block(db, dy, N, OC, k * kCols, std::min(OC, (k + 1) * kCols));
}

void bias_backward_ref(float* db, const float* dy, int N, int OC) {
  for (int c = 0; c < OC; ++c) {
    double s = 0;
    for (int n = 0; n < N; ++n) s += dy[size_t(n) * OC + c];
    db[c] += float(s);
  }
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
