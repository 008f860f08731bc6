// Fused fp32 kernels: OpenMP over rows, inner loops written to vectorise. Hot row functions are
// compiled for AVX-512, AVX2 and baseline x86-64 and picked at load time, so the default build
// (no -march=native) still runs AVX-512 code on CPUs that have it. Loops that evaluate e^x have
// an explicit AVX-512 twin (simd.hpp), chosen at run time: scalar std::exp would dominate them.
// Sums over rows (dw, dE, squared norms) add in a fixed order that does not depend on the
// thread count or on timing, so a resumed run reproduces the same bits (docs/architecture.md,
// decisions: checkpoints).
#include "kernels/kernels.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "base/error.hpp"
#include "kernels/blas.hpp"
#include "kernels/simd.hpp"

#define LM_TARGET_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

namespace lm::kernels {

// Column blocks for sums over rows: a thread owns whole columns and adds the rows in order.
static constexpr int kColBlock = 64;

// Small calls (decoding one token) run on the calling thread: waking the team would cost more
// than the work.
static constexpr size_t kParallelMin = 16384;

// ---- matmul ----

// Few rows (decoding): y = x W^T reads all of W once per call, so it is bound by memory
// bandwidth. Threads own blocks of W's rows; a row of W is read from memory once and reused
// from cache for the other input rows. Each dot is summed by one thread in a fixed order, so
// the bits do not depend on the thread count.

// 256-bit loads on purpose: streaming W from memory, they reach 55-73 GB/s on 2 threads of this
// Zen 5 machine against 41-43 GB/s with 512-bit loads (bench/gemv_bench). One row of W at a time
// (one sequential stream), four accumulators so loads never wait on the previous FMA.
__attribute__((target("avx2,fma"))) static void gemv_block_avx2(float* y, const float* x, const float* W, int N,
                                                                int C, int OC, int o0, int o1, float beta) {
  const int main = C & ~31;
  for (int o = o0; o < o1; ++o) {
    const float* w = W + size_t(o) * C;
    for (int n = 0; n < N; ++n) {
      const float* xn = x + size_t(n) * C;
      __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      int c = 0;
      for (; c < main; c += 32) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + c), _mm256_loadu_ps(xn + c), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + c + 8), _mm256_loadu_ps(xn + c + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w + c + 16), _mm256_loadu_ps(xn + c + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w + c + 24), _mm256_loadu_ps(xn + c + 24), a3);
      }
      const __m256 s8 = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
      __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
      s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
      s4 = _mm_add_ss(s4, _mm_movehdup_ps(s4));
      float d = _mm_cvtss_f32(s4);
      for (; c < C; ++c) d += w[c] * xn[c];
      float& out = y[size_t(n) * OC + o];
      out = beta == 0.0f ? d : d + beta * out;
    }
  }
}

LM_TARGET_CLONES static void gemv_block(float* y, const float* x, const float* W, int N, int C, int OC, int o0, int o1,
                                        float beta) {
  for (int o = o0; o < o1; ++o) {
    const float* w = W + size_t(o) * C;
    for (int n = 0; n < N; ++n) {
      const float* xn = x + size_t(n) * C;
      float acc = 0;
#pragma omp simd reduction(+ : acc)
      for (int c = 0; c < C; ++c) acc += w[c] * xn[c];
      float& out = y[size_t(n) * OC + o];
      out = beta == 0.0f ? acc : acc + beta * out;
    }
  }
}

void matmul_forward(float* y, const float* x, const float* W, int N, int C, int OC, float beta) {
  if (N > kGemvMaxRows) {
    sgemm(false, true, N, OC, C, 1.0f, x, C, W, C, beta, y, OC);
    return;
  }
  const bool avx512 = has_avx512f();
  // Blocks of 64 rows of W per task: small enough to balance two threads, large enough that
  // scheduling costs nothing next to reading them.
  const int blocks = (OC + 63) / 64;
#pragma omp parallel for schedule(static) if (size_t(OC) * C >= 2 * kParallelMin)
  for (int b = 0; b < blocks; ++b) {
    const int o0 = b * 64, o1 = std::min(OC, o0 + 64);
    if (avx512)  // every AVX-512 CPU has AVX2 and FMA
      gemv_block_avx2(y, x, W, N, C, OC, o0, o1, beta);
    else
      gemv_block(y, x, W, N, C, OC, o0, o1, beta);
  }
}
void matmul_forward_shared(const float* x, int N, int C, const LinearOut* outs, int n_outs) {
  if (N > kGemvMaxRows) {
    for (int i = 0; i < n_outs; ++i) matmul_forward(outs[i].y, x, outs[i].W, N, C, outs[i].OC);
    return;
  }
  // One parallel region over the row blocks of all the weights.
  int blocks[8 + 1] = {0};
  LM_ASSERT(n_outs <= 8);
  for (int i = 0; i < n_outs; ++i) blocks[i + 1] = blocks[i] + (outs[i].OC + 63) / 64;
  const bool avx512 = has_avx512f();
  size_t work = 0;
  for (int i = 0; i < n_outs; ++i) work += size_t(outs[i].OC) * C;
#pragma omp parallel for schedule(static) if (work >= 2 * kParallelMin)
  for (int b = 0; b < blocks[n_outs]; ++b) {
    int i = 0;
    while (b >= blocks[i + 1]) ++i;
    const LinearOut& o = outs[i];
    const int o0 = (b - blocks[i]) * 64, o1 = std::min(o.OC, o0 + 64);
    if (avx512)
      gemv_block_avx2(o.y, x, o.W, N, C, o.OC, o0, o1, 0.0f);
    else
      gemv_block(o.y, x, o.W, N, C, o.OC, o0, o1, 0.0f);
  }
}

void matmul_forward_ref(float* y, const float* x, const float* W, int N, int C, int OC, float beta) {
  sgemm_ref(false, true, N, OC, C, 1.0f, x, C, W, C, beta, y, OC);
}

void linear_forward(float* y, const float* x, const float* W, const float* b, int N, int C, int OC) {
  if (!b) {
    matmul_forward(y, x, W, N, C, OC);
    return;
  }
#pragma omp parallel for schedule(static) if (N > 1 && size_t(N) * OC >= kParallelMin)
  for (int n = 0; n < N; ++n) std::memcpy(y + size_t(n) * OC, b, sizeof(float) * size_t(OC));
  matmul_forward(y, x, W, N, C, OC, 1.0f);
}

void linear_forward_ref(float* y, const float* x, const float* W, const float* b, int N, int C, int OC) {
  matmul_forward_ref(y, x, W, N, C, OC);
  if (b) add_bias_ref(y, b, N, OC);
}

void matmul_backward(float* dx, float* dW, const float* dy, const float* x, const float* W, int N, int C, int OC,
                     bool accumulate_dx) {
  if (dx) sgemm(false, false, N, C, OC, 1.0f, dy, OC, W, C, accumulate_dx ? 1.0f : 0.0f, dx, C);
  if (dW) sgemm(true, false, OC, C, N, 1.0f, dy, OC, x, C, 1.0f, dW, C);
}
void matmul_backward_ref(float* dx, float* dW, const float* dy, const float* x, const float* W, int N, int C, int OC,
                         bool accumulate_dx) {
  if (dx) sgemm_ref(false, false, N, C, OC, 1.0f, dy, OC, W, C, accumulate_dx ? 1.0f : 0.0f, dx, C);
  if (dW) sgemm_ref(true, false, OC, C, N, 1.0f, dy, OC, x, C, 1.0f, dW, C);
}

// ---- embedding ----

void embedding_forward(float* x, const int* tokens, const float* E, int N, int C) {
#pragma omp parallel for schedule(static) if (size_t(N) * C >= kParallelMin)
  for (int n = 0; n < N; ++n) std::memcpy(x + size_t(n) * C, E + size_t(tokens[n]) * C, sizeof(float) * size_t(C));
}
void embedding_forward_ref(float* x, const int* tokens, const float* E, int N, int C) {
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c) x[size_t(n) * C + c] = E[size_t(tokens[n]) * C + c];
}

// dE[tokens[n], c0..c1) += dx[n, c0..c1) for every n in order.
LM_TARGET_CLONES static void embedding_backward_block(float* dE, const int* tokens, const float* dx, int N, int C,
                                                      int c0, int c1) {
  for (int n = 0; n < N; ++n) {
    float* row = dE + size_t(tokens[n]) * C;
    const float* d = dx + size_t(n) * C;
#pragma omp simd
    for (int c = c0; c < c1; ++c) row[c] += d[c];
  }
}

void embedding_backward(float* dE, const int* tokens, const float* dx, int N, int C) {
  // Threads own column blocks, so repeated tokens never race and add in the order of n.
#pragma omp parallel for schedule(static)
  for (int c0 = 0; c0 < C; c0 += kColBlock)
    embedding_backward_block(dE, tokens, dx, N, C, c0, std::min(C, c0 + kColBlock));
}
void embedding_backward_ref(float* dE, const int* tokens, const float* dx, int N, int C) {
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c) dE[size_t(tokens[n]) * C + c] += dx[size_t(n) * C + c];
}

// ---- learned positions ----

LM_TARGET_CLONES static void position_add_row(float* row, const float* pr, const float* extra, int C) {
  if (extra) {
#pragma omp simd
    for (int c = 0; c < C; ++c) row[c] += pr[c] + extra[c];
  } else {
#pragma omp simd
    for (int c = 0; c < C; ++c) row[c] += pr[c];
  }
}

void position_add_forward(float* x, const float* P, const float* extra, int N, int T, int C) {
#pragma omp parallel for schedule(static) if (size_t(N) * C >= kParallelMin)
  for (int n = 0; n < N; ++n) position_add_row(x + size_t(n) * C, P + size_t(n % T) * C, extra, C);
}
void position_add_forward_ref(float* x, const float* P, const float* extra, int N, int T, int C) {
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c)
      x[size_t(n) * C + c] += extra ? P[size_t(n % T) * C + c] + extra[c] : P[size_t(n % T) * C + c];
}

// dP[n % T, c0..c1) += dx[n, c0..c1) for every n in order.
LM_TARGET_CLONES static void position_add_backward_block(float* dP, const float* dx, int N, int T, int C, int c0,
                                                         int c1) {
  for (int n = 0; n < N; ++n) {
    float* row = dP + size_t(n % T) * C;
    const float* d = dx + size_t(n) * C;
#pragma omp simd
    for (int c = c0; c < c1; ++c) row[c] += d[c];
  }
}

void position_add_backward(float* dP, const float* dx, int N, int T, int C) {
  // As embedding_backward: threads own column blocks, rows add in the order of n.
#pragma omp parallel for schedule(static) if (size_t(N) * C >= kParallelMin)
  for (int c0 = 0; c0 < C; c0 += kColBlock)
    position_add_backward_block(dP, dx, N, T, C, c0, std::min(C, c0 + kColBlock));
}
void position_add_backward_ref(float* dP, const float* dx, int N, int T, int C) {
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c) dP[size_t(n % T) * C + c] += dx[size_t(n) * C + c];
}

// ---- RMSNorm ----

LM_TARGET_CLONES static float rmsnorm_row(float* y, const float* x, const float* w, int C, float eps) {
  float ss = 0;
#pragma omp simd reduction(+ : ss)
  for (int c = 0; c < C; ++c) ss += x[c] * x[c];
  const float r = 1.0f / std::sqrt(ss / float(C) + eps);
#pragma omp simd
  for (int c = 0; c < C; ++c) y[c] = x[c] * r * w[c];
  return r;
}

void rmsnorm_forward(float* y, float* rstd, const float* x, const float* w, int N, int C, float eps) {
#pragma omp parallel for schedule(static) if (N > 1 && size_t(N) * C >= kParallelMin)
  for (int n = 0; n < N; ++n) rstd[n] = rmsnorm_row(y + size_t(n) * C, x + size_t(n) * C, w, C, eps);
}

void rmsnorm_forward_ref(float* y, float* rstd, const float* x, const float* w, int N, int C, float eps) {
  for (int n = 0; n < N; ++n) {
    const float* xr = x + size_t(n) * C;
    double ss = 0;
    for (int c = 0; c < C; ++c) ss += double(xr[c]) * xr[c];
    const double r = 1.0 / std::sqrt(ss / C + eps);
    for (int c = 0; c < C; ++c) y[size_t(n) * C + c] = float(xr[c] * r * w[c]);
    rstd[n] = float(r);
  }
}

LM_TARGET_CLONES static void rmsnorm_backward_row(float* dx, const float* dy, const float* x, const float* w, float r,
                                                  int C) {
  float dot = 0;
#pragma omp simd reduction(+ : dot)
  for (int c = 0; c < C; ++c) dot += dy[c] * w[c] * x[c];
  const float k = r * r * r * dot / float(C);
#pragma omp simd
  for (int c = 0; c < C; ++c) dx[c] = r * w[c] * dy[c] - k * x[c];
}

// dw[c0, c1) += sum over n of dy (N, C) * x (N, C) * rstd[n], rows added in order.
LM_TARGET_CLONES static void rmsnorm_dw_block(float* dw, const float* dy, const float* x, const float* rstd, int N,
                                              int C, int c0, int c1) {
  float acc[kColBlock] = {};
  const int w = c1 - c0;
  for (int n = 0; n < N; ++n) {
    const float r = rstd[n];
    const float* dyr = dy + size_t(n) * C + c0;
    const float* xr = x + size_t(n) * C + c0;
#pragma omp simd
    for (int j = 0; j < w; ++j) acc[j] += dyr[j] * xr[j] * r;
  }
  for (int j = 0; j < w; ++j) dw[c0 + j] += acc[j];
}

void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* w, const float* rstd, int N,
                      int C) {
#pragma omp parallel
  {
#pragma omp for schedule(static)
    for (int n = 0; n < N; ++n)
      rmsnorm_backward_row(dx + size_t(n) * C, dy + size_t(n) * C, x + size_t(n) * C, w, rstd[n], C);
    if (dw)
#pragma omp for schedule(static)
      for (int c0 = 0; c0 < C; c0 += kColBlock) rmsnorm_dw_block(dw, dy, x, rstd, N, C, c0, std::min(C, c0 + kColBlock));
  }
}

void rmsnorm_backward_ref(float* dx, float* dw, const float* dy, const float* x, const float* w, const float* rstd,
                          int N, int C) {
  for (int n = 0; n < N; ++n) {
    const size_t o = size_t(n) * C;
    const double r = rstd[n];
    double dot = 0;
    for (int c = 0; c < C; ++c) dot += double(dy[o + c]) * w[c] * x[o + c];
    for (int c = 0; c < C; ++c) {
      dx[o + c] = float(r * w[c] * dy[o + c] - r * r * r * dot / C * x[o + c]);
      if (dw) dw[c] += float(double(dy[o + c]) * x[o + c] * r);
    }
  }
}

// ---- RoPE ----

// Rotates every pair of x (B, T, Hx, D), and of y (B, T, Hy, D) when given, by sign * angle(pos0
// + t, i): pair i is (x[2i], x[2i+1]), or with neox (x[i], x[i + D/2]). q and k of one layer take
// one call: the angles' cosines and sines are computed once per position for both, and the
// frequencies base^(-2i/D) once per call (before, per position and head group: a decoding step
// of 8 sequences spent 4% of its time in pow and sincos).
static void rope_apply(float* x, int Hx, float* y, int Hy, int B, int T, int D, float base, int pos0, float sign,
                       bool neox) {
  const int P = D / 2;
  constexpr int kStack = 256;  // head dimensions up to 512 keep their tables on the stack
  double freq_stack[kStack];
  std::vector<double> freq_heap(P > kStack ? size_t(P) : 0);
  double* freq = P > kStack ? freq_heap.data() : freq_stack;
  for (int i = 0; i < P; ++i) freq[i] = std::pow(double(base), -2.0 * i / D);
  auto rotate = [&](float* v, const float* cs, const float* sn) {
    if (neox) {
#pragma omp simd
      for (int i = 0; i < P; ++i) {
        const float a = v[i], c = v[i + P];
        v[i] = a * cs[i] - c * sn[i];
        v[i + P] = a * sn[i] + c * cs[i];
      }
      return;
    }
#pragma omp simd
    for (int i = 0; i < P; ++i) {
      const float a = v[2 * i], c = v[2 * i + 1];
      v[2 * i] = a * cs[i] - c * sn[i];
      v[2 * i + 1] = a * sn[i] + c * cs[i];
    }
  };
#pragma omp parallel if (size_t(B) * T * (Hx + Hy) * D >= kParallelMin)
  {
    float cs_stack[kStack], sn_stack[kStack];
    std::vector<float> cs_heap(P > kStack ? size_t(P) : 0), sn_heap(cs_heap.size());
    float* cs = P > kStack ? cs_heap.data() : cs_stack;
    float* sn = P > kStack ? sn_heap.data() : sn_stack;
#pragma omp for schedule(static)
    for (int t = 0; t < T; ++t) {
      for (int i = 0; i < P; ++i) {
        const double angle = double(pos0 + t) * freq[i];
        cs[i] = float(std::cos(angle));
        sn[i] = sign * float(std::sin(angle));
      }
      for (int b = 0; b < B; ++b) {
        for (int h = 0; h < Hx; ++h) rotate(x + ((size_t(b) * T + t) * Hx + h) * D, cs, sn);
        for (int h = 0; h < Hy; ++h) rotate(y + ((size_t(b) * T + t) * Hy + h) * D, cs, sn);
      }
    }
  }
}

void rope_forward(float* x, int B, int T, int H, int D, float base, int pos0, bool neox) {
  rope_apply(x, H, nullptr, 0, B, T, D, base, pos0, 1.0f, neox);
}
void rope_backward(float* dx, int B, int T, int H, int D, float base, int pos0, bool neox) {
  rope_apply(dx, H, nullptr, 0, B, T, D, base, pos0, -1.0f, neox);
}
void rope_forward_qk(float* q, float* k, int B, int T, int H, int Hkv, int D, float base, int pos0, bool neox) {
  rope_apply(q, H, k, Hkv, B, T, D, base, pos0, 1.0f, neox);
}
void rope_backward_qk(float* dq, float* dk, int B, int T, int H, int Hkv, int D, float base, int pos0, bool neox) {
  rope_apply(dq, H, dk, Hkv, B, T, D, base, pos0, -1.0f, neox);
}

static void rope_apply_ref(float* x, int B, int T, int H, int D, float base, int pos0, double sign, bool neox) {
  const size_t step = neox ? 1 : 2, other = neox ? size_t(D / 2) : 1;  // pair i: v[step i], v[step i + other]
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t)
      for (int h = 0; h < H; ++h)
        for (int i = 0; i < D / 2; ++i) {
          float* v = x + ((size_t(b) * T + t) * H + h) * D + step * size_t(i);
          const double angle = sign * double(pos0 + t) / std::pow(double(base), 2.0 * i / D);
          const double a = v[0], c = v[other];
          v[0] = float(a * std::cos(angle) - c * std::sin(angle));
          v[other] = float(a * std::sin(angle) + c * std::cos(angle));
        }
}

void rope_forward_ref(float* x, int B, int T, int H, int D, float base, int pos0, bool neox) {
  rope_apply_ref(x, B, T, H, D, base, pos0, 1.0, neox);
}
void rope_backward_ref(float* dx, int B, int T, int H, int D, float base, int pos0, bool neox) {
  rope_apply_ref(dx, B, T, H, D, base, pos0, -1.0, neox);
}
void rope_forward_qk_ref(float* q, float* k, int B, int T, int H, int Hkv, int D, float base, int pos0, bool neox) {
  rope_apply_ref(q, B, T, H, D, base, pos0, 1.0, neox);
  rope_apply_ref(k, B, T, Hkv, D, base, pos0, 1.0, neox);
}
void rope_backward_qk_ref(float* dq, float* dk, int B, int T, int H, int Hkv, int D, float base, int pos0, bool neox) {
  rope_apply_ref(dq, B, T, H, D, base, pos0, -1.0, neox);
  rope_apply_ref(dk, B, T, Hkv, D, base, pos0, -1.0, neox);
}

// ---- SwiGLU ----

LM_TARGET_CLONES static void swiglu_chunk(float* h, const float* g, const float* u, size_t n) {
#pragma omp simd
  for (size_t i = 0; i < n; ++i) h[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

LM_TARGET_CLONES static void swiglu_backward_chunk(float* dg, float* du, const float* dh, const float* g,
                                                   const float* u, size_t n) {
#pragma omp simd
  for (size_t i = 0; i < n; ++i) {
    const float s = 1.0f / (1.0f + std::exp(-g[i]));
    const float d = dh[i];
    du[i] = d * g[i] * s;
    dg[i] = d * u[i] * s * (1.0f + g[i] * (1.0f - s));
  }
}

__attribute__((target("avx512f"))) static void swiglu_chunk_avx512(float* h, const float* g, const float* u, size_t n) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(int(std::min<size_t>(16, n - i)));
    const __m512 gv = _mm512_maskz_loadu_ps(m, g + i), uv = _mm512_maskz_loadu_ps(m, u + i);
    const __m512 s = _mm512_div_ps(one, _mm512_add_ps(one, exp16(_mm512_sub_ps(_mm512_setzero_ps(), gv))));
    _mm512_mask_storeu_ps(h + i, m, _mm512_mul_ps(_mm512_mul_ps(gv, s), uv));
  }
}

__attribute__((target("avx512f"))) static void swiglu_backward_chunk_avx512(float* dg, float* du, const float* dh,
                                                                           const float* g, const float* u, size_t n) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(int(std::min<size_t>(16, n - i)));
    const __m512 gv = _mm512_maskz_loadu_ps(m, g + i), uv = _mm512_maskz_loadu_ps(m, u + i);
    const __m512 d = _mm512_maskz_loadu_ps(m, dh + i);
    const __m512 s = _mm512_div_ps(one, _mm512_add_ps(one, exp16(_mm512_sub_ps(_mm512_setzero_ps(), gv))));
    const __m512 ds = _mm512_mul_ps(d, s);
    _mm512_mask_storeu_ps(du + i, m, _mm512_mul_ps(ds, gv));
    // d silu(g)/dg = s (1 + g (1 - s))
    const __m512 k = _mm512_fmadd_ps(gv, _mm512_sub_ps(one, s), one);
    _mm512_mask_storeu_ps(dg + i, m, _mm512_mul_ps(_mm512_mul_ps(ds, uv), k));
  }
}

static constexpr size_t kChunk = 4096;

void swiglu_forward(float* h, const float* g, const float* u, size_t n) {
  const bool avx512 = has_avx512f();
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (size_t c = 0; c < n; c += kChunk) {
    const size_t len = std::min(kChunk, n - c);
    if (avx512)
      swiglu_chunk_avx512(h + c, g + c, u + c, len);
    else
      swiglu_chunk(h + c, g + c, u + c, len);
  }
}

void swiglu_backward(float* dg, float* du, const float* dh, const float* g, const float* u, size_t n) {
  const bool avx512 = has_avx512f();
#pragma omp parallel for schedule(static)
  for (size_t c = 0; c < n; c += kChunk) {
    const size_t len = std::min(kChunk, n - c);
    if (avx512)
      swiglu_backward_chunk_avx512(dg + c, du + c, dh + c, g + c, u + c, len);
    else
      swiglu_backward_chunk(dg + c, du + c, dh + c, g + c, u + c, len);
  }
}

void swiglu_forward_ref(float* h, const float* g, const float* u, size_t n) {
  for (size_t i = 0; i < n; ++i) h[i] = float(double(g[i]) / (1.0 + std::exp(-double(g[i]))) * u[i]);
}

void swiglu_backward_ref(float* dg, float* du, const float* dh, const float* g, const float* u, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const double s = 1.0 / (1.0 + std::exp(-double(g[i])));
    du[i] = float(double(dh[i]) * g[i] * s);
    dg[i] = float(double(dh[i]) * u[i] * s * (1.0 + g[i] * (1.0 - s)));
  }
}

// ---- cross-entropy ----

// One row: returns the loss and writes dl (V), which may alias l (V). l[target] is read before
// dl is written; e^(l - max) is stored in dl on the way, so each logit costs one exp.
LM_TARGET_CLONES static float cross_entropy_row(float* dl, const float* l, int target, int V, float dscale) {
  float mx = l[0];
#pragma omp simd reduction(max : mx)
  for (int v = 0; v < V; ++v) mx = std::max(mx, l[v]);
  const float lt = l[target];
  float sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int v = 0; v < V; ++v) sum += dl[v] = std::exp(l[v] - mx);
  const float k = dscale / sum;
#pragma omp simd
  for (int v = 0; v < V; ++v) dl[v] *= k;
  dl[target] -= dscale;
  return std::log(sum) + (mx - lt);
}

// AVX-512 row pieces shared by cross-entropy, log-sum-exp and softmax: the maximum, the sum of
// e^(x - max) (optionally storing the exponentials), and scaling in place.
__attribute__((target("avx512f"))) static float max_avx512(const float* x, int n) {
  __m512 mxv = _mm512_set1_ps(-INFINITY);
  for (int v = 0; v < n; v += 16) {
    const __mmask16 m = tail_mask(n - v);
    mxv = _mm512_mask_max_ps(mxv, m, mxv, _mm512_maskz_loadu_ps(m, x + v));
  }
  return _mm512_reduce_max_ps(mxv);
}

// Sum of e^(x - mx) over n values; with Store, the exponentials go to out (which may be x).
template <bool Store>
__attribute__((target("avx512f"))) static float exp_sum_avx512(float* out, const float* x, int n, float mx) {
  const __m512 mxb = _mm512_set1_ps(mx);
  __m512 acc = _mm512_setzero_ps();
  for (int v = 0; v < n; v += 16) {
    const __mmask16 m = tail_mask(n - v);
    const __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + v), mxb));
    if constexpr (Store) _mm512_mask_storeu_ps(out + v, m, e);
    acc = _mm512_mask_add_ps(acc, m, acc, e);
  }
  return _mm512_reduce_add_ps(acc);
}

__attribute__((target("avx512f"))) static void scale_avx512(float* x, int n, float k) {
  const __m512 kv = _mm512_set1_ps(k);
  for (int v = 0; v < n; v += 16) {
    const __mmask16 m = tail_mask(n - v);
    _mm512_mask_storeu_ps(x + v, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + v), kv));
  }
}

__attribute__((target("avx512f"))) static float cross_entropy_row_avx512(float* dl, const float* l, int target, int V,
                                                                        float dscale) {
  const float mx = max_avx512(l, V);
  const float lt = l[target];
  const float sum = exp_sum_avx512<true>(dl, l, V, mx);
  scale_avx512(dl, V, dscale / sum);
  dl[target] -= dscale;
  return std::log(sum) + (mx - lt);
}

int cross_entropy_forward_backward(float* losses, float* dlogits, const float* logits, const int* targets, int N,
                                   int V, float dscale) {
  int scored = 0;
  const bool avx512 = has_avx512f();
#pragma omp parallel for schedule(static) reduction(+ : scored)
  for (int n = 0; n < N; ++n) {
    float* dl = dlogits + size_t(n) * V;
    if (targets[n] < 0) {
      losses[n] = 0;
      for (int v = 0; v < V; ++v) dl[v] = 0;
      continue;
    }
    losses[n] = avx512 ? cross_entropy_row_avx512(dl, logits + size_t(n) * V, targets[n], V, dscale)
                       : cross_entropy_row(dl, logits + size_t(n) * V, targets[n], V, dscale);
    ++scored;
  }
  return scored;
}

// ---- evaluation: log-sum-exp and KL divergence per row ----

LM_TARGET_CLONES static float logsumexp_row(const float* l, int V) {
  float mx = l[0];
#pragma omp simd reduction(max : mx)
  for (int v = 0; v < V; ++v) mx = std::max(mx, l[v]);
  float sum = 0;
  for (int v = 0; v < V; ++v) sum += std::exp(l[v] - mx);
  return mx + std::log(sum);
}

__attribute__((target("avx512f"))) static float logsumexp_row_avx512(const float* l, int V) {
  const float mx = max_avx512(l, V);
  return mx + std::log(exp_sum_avx512<false>(nullptr, l, V, mx));
}

void logsumexp_rows(float* lse, const float* logits, int N, int V) {
  const bool avx512 = has_avx512f();
#pragma omp parallel for schedule(static) if (size_t(N) * V >= kParallelMin)
  for (int n = 0; n < N; ++n)
    lse[n] = avx512 ? logsumexp_row_avx512(logits + size_t(n) * V, V) : logsumexp_row(logits + size_t(n) * V, V);
}

float logsumexp(const float* logits, int V) {
  return has_avx512f() ? logsumexp_row_avx512(logits, V) : logsumexp_row(logits, V);
}

// The heap's front is the worst of the k kept (lowest value, then highest id); a later id with
// an equal value ranks below every kept one, so only a strictly greater value gets in.
namespace {
struct TopK {
  int* ids;
  const float* x;
  int k;
  bool better(int a, int b) const { return x[a] > x[b] || (x[a] == x[b] && a < b); }
  float floor() const { return x[ids[0]]; }
  void start() {
    for (int i = 0; i < k; ++i) ids[i] = i;
    std::make_heap(ids, ids + k, [this](int a, int b) { return better(a, b); });
  }
  void offer(int i) {
    if (!(x[i] > floor())) return;
    auto cmp = [this](int a, int b) { return better(a, b); };
    std::pop_heap(ids, ids + k, cmp);
    ids[k - 1] = i;
    std::push_heap(ids, ids + k, cmp);
  }
};
}  // namespace

__attribute__((target("avx512f"))) static void top_k_scan_avx512(TopK& t, int n) {
  int i = t.k;
  for (; i + 16 <= n; i += 16) {
    __mmask16 m = _mm512_cmp_ps_mask(_mm512_loadu_ps(t.x + i), _mm512_set1_ps(t.floor()), _CMP_GT_OQ);
    while (m) {
      t.offer(i + __builtin_ctz(m));  // checks again: the floor rose with each one taken
      m = __mmask16(m & (m - 1));
    }
  }
  for (; i < n; ++i) t.offer(i);
}

void top_k_ids(const float* x, int n, int k, int* ids) {
  LM_ASSERT(k > 0 && k <= n);
  TopK t{ids, x, k};
  t.start();
  if (has_avx512f()) {
    top_k_scan_avx512(t, n);
  } else {
    for (int i = k; i < n; ++i) t.offer(i);
  }
}

void top_k_ids_ref(const float* x, int n, int k, int* ids) {
  std::vector<int> all(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) all[size_t(i)] = i;
  std::nth_element(all.begin(), all.begin() + (k - 1), all.end(),
                   [&](int a, int b) { return x[a] > x[b] || (x[a] == x[b] && a < b); });
  std::copy(all.begin(), all.begin() + k, ids);
}

void logsumexp_rows_ref(float* lse, const float* logits, int N, int V) {
  for (int n = 0; n < N; ++n) {
    const float* l = logits + size_t(n) * V;
    double mx = l[0], sum = 0;
    for (int v = 0; v < V; ++v) mx = std::max(mx, double(l[v]));
    for (int v = 0; v < V; ++v) sum += std::exp(double(l[v]) - mx);
    lse[n] = float(mx + std::log(sum));
  }
}

// KL = sum_v p_r(v) (log p_r(v) - log p_m(v)) = sum_v p_r(v) (r_v - m_v) - lse_r + lse_m.
LM_TARGET_CLONES static float kl_row(const float* r, const float* m, int V, float lse_r, float lse_m) {
  float acc = 0;
  for (int v = 0; v < V; ++v) acc += std::exp(r[v] - lse_r) * (r[v] - m[v]);
  return std::max(0.0f, acc - lse_r + lse_m);
}

__attribute__((target("avx512f"))) static float kl_row_avx512(const float* r, const float* m, int V, float lse_r,
                                                             float lse_m) {
  const __m512 lb = _mm512_set1_ps(lse_r);
  __m512 acc = _mm512_setzero_ps();
  for (int v = 0; v < V; v += 16) {
    const __mmask16 k = tail_mask(V - v);
    const __m512 rv = _mm512_maskz_loadu_ps(k, r + v), mv = _mm512_maskz_loadu_ps(k, m + v);
    acc = _mm512_mask3_fmadd_ps(exp16(_mm512_sub_ps(rv, lb)), _mm512_sub_ps(rv, mv), acc, k);
  }
  return std::max(0.0f, _mm512_reduce_add_ps(acc) - lse_r + lse_m);
}

void kl_divergence_rows(float* kl, const float* ref, const float* model, const float* lse_ref,
                        const float* lse_model, int N, int V) {
  const bool avx512 = has_avx512f();
#pragma omp parallel for schedule(static) if (size_t(N) * V >= kParallelMin)
  for (int n = 0; n < N; ++n) {
    const float *r = ref + size_t(n) * V, *m = model + size_t(n) * V;
    kl[n] = avx512 ? kl_row_avx512(r, m, V, lse_ref[n], lse_model[n]) : kl_row(r, m, V, lse_ref[n], lse_model[n]);
  }
}

void kl_divergence_rows_ref(float* kl, const float* ref, const float* model, int N, int V) {
  std::vector<float> lr(static_cast<size_t>(N)), lm(static_cast<size_t>(N));
  logsumexp_rows_ref(lr.data(), ref, N, V);
  logsumexp_rows_ref(lm.data(), model, N, V);
  for (int n = 0; n < N; ++n) {
    double acc = 0;
    for (int v = 0; v < V; ++v) {
      const double a = double(ref[size_t(n) * V + v]) - lr[size_t(n)];
      const double b = double(model[size_t(n) * V + v]) - lm[size_t(n)];
      acc += std::exp(a) * (a - b);
    }
    kl[n] = float(acc);
  }
}

int cross_entropy_forward_backward_ref(float* losses, float* dlogits, const float* logits, const int* targets, int N,
                                       int V, float dscale) {
  int scored = 0;
  std::vector<double> p(static_cast<size_t>(V));
  for (int n = 0; n < N; ++n) {
    const float* l = logits + size_t(n) * V;
    float* dl = dlogits + size_t(n) * V;
    if (targets[n] < 0) {
      losses[n] = 0;
      for (int v = 0; v < V; ++v) dl[v] = 0;
      continue;
    }
    double mx = l[0], sum = 0;
    for (int v = 0; v < V; ++v) mx = std::max(mx, double(l[v]));
    for (int v = 0; v < V; ++v) sum += p[size_t(v)] = std::exp(double(l[v]) - mx);
    losses[n] = float(std::log(sum) + mx - l[targets[n]]);
    for (int v = 0; v < V; ++v) dl[v] = float((p[size_t(v)] / sum - (v == targets[n])) * dscale);
    ++scored;
  }
  return scored;
}

// ---- distillation ----

// One scored row of distill_forward_backward (alpha > 0). dl may alias l: every element of l
// the row needs is read before its dl is written (the teacher's terms first, then the
// gradient element by element, then the label's and the top-k ids' corrections).
LM_TARGET_CLONES static float distill_row(float* dl, float* kl_out, const float* l, int target, const float* t,
                                          const int* ids, int K, int V, float alpha, float temp, float dscale) {
  const float inv_t = 1.0f / temp;
  // The teacher: p_k = e^((t_k - tmx) / T) / tsum. A = sum p log p, Bz = sum p z.
  float tmx = t[0];
  for (int k = 1; k < K; ++k) tmx = std::max(tmx, t[k]);
  float tsum = 0;
#pragma omp simd reduction(+ : tsum)
  for (int k = 0; k < K; ++k) tsum += std::exp((t[k] - tmx) * inv_t);
  const float log_tsum = std::log(tsum), inv_tsum = 1.0f / tsum;
  float A = 0, Bz = 0;
  if (ids) {
    for (int k = 0; k < K; ++k) {
      const float lp = (t[k] - tmx) * inv_t - log_tsum;
      const float pk = std::exp(lp);
      A += pk * lp;
      Bz += pk * l[ids[k]];
    }
  } else {
#pragma omp simd reduction(+ : A, Bz)
    for (int v = 0; v < V; ++v) {
      const float lp = (t[v] - tmx) * inv_t - log_tsum;
      const float pk = std::exp(lp);
      A += pk * lp;
      Bz += pk * l[v];
    }
  }
  // The student at temperature 1 and T.
  float mx = l[0];
#pragma omp simd reduction(max : mx)
  for (int v = 0; v < V; ++v) mx = std::max(mx, l[v]);
  const float lt = l[target];
  float sum1 = 0, sumt = 0;
#pragma omp simd reduction(+ : sum1, sumt)
  for (int v = 0; v < V; ++v) {
    sum1 += std::exp(l[v] - mx);
    sumt += std::exp((l[v] - mx) * inv_t);
  }
  const float ce = std::log(sum1) + (mx - lt);
  const float lse_t = mx * inv_t + std::log(sumt);
  const float kl = std::max(0.0f, A - (Bz * inv_t - lse_t));
  // dz = (1 - a) (q1 - onehot) + a T (qT - p), times dscale.
  const float c1 = (1.0f - alpha) * dscale / sum1, ct = alpha * temp * dscale / sumt;
  const float cp = alpha * temp * dscale * inv_tsum;
  if (ids) {
#pragma omp simd
    for (int v = 0; v < V; ++v) dl[v] = c1 * std::exp(l[v] - mx) + ct * std::exp((l[v] - mx) * inv_t);
    for (int k = 0; k < K; ++k) dl[ids[k]] -= cp * std::exp((t[k] - tmx) * inv_t);
  } else {
#pragma omp simd
    for (int v = 0; v < V; ++v)
      dl[v] = c1 * std::exp(l[v] - mx) + ct * std::exp((l[v] - mx) * inv_t) - cp * std::exp((t[v] - tmx) * inv_t);
  }
  dl[target] -= (1.0f - alpha) * dscale;
  if (kl_out) *kl_out = kl;
  return (1.0f - alpha) * ce + alpha * temp * temp * kl;
}

// distill_row with AVX-512 exponentials (exp16): the portable row calls std::exp once per
// exponential, about seven per logit, which made a distillation step cost a third more than the
// student's step and the teacher's forward together.
__attribute__((target("avx512f"))) static float distill_row_avx512(float* dl, float* kl_out, const float* l,
                                                                  int target, const float* t, const int* ids, int K,
                                                                  int V, float alpha, float temp, float dscale) {
  const float inv_t = 1.0f / temp;
  const __m512 it = _mm512_set1_ps(inv_t), zero = _mm512_setzero_ps();
  const float tmx = max_avx512(t, K);
  const __m512 tmxv = _mm512_set1_ps(tmx);
  __m512 acc = zero;
  for (int k = 0; k < K; k += 16) {
    const __mmask16 m = tail_mask(K - k);
    acc = _mm512_mask_add_ps(acc, m, acc, exp16(_mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, t + k), tmxv), it)));
  }
  const float tsum = _mm512_reduce_add_ps(acc);
  const float log_tsum = std::log(tsum), inv_tsum = 1.0f / tsum;
  float A = 0, Bz = 0;
  if (ids) {
    for (int k = 0; k < K; ++k) {
      const float lp = (t[k] - tmx) * inv_t - log_tsum;
      const float pk = std::exp(lp);
      A += pk * lp;
      Bz += pk * l[ids[k]];
    }
  } else {
    const __m512 lts = _mm512_set1_ps(log_tsum);
    __m512 a = zero, bz = zero;
    for (int v = 0; v < V; v += 16) {
      const __mmask16 m = tail_mask(V - v);
      const __m512 lp = _mm512_sub_ps(_mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, t + v), tmxv), it), lts);
      const __m512 pk = exp16(lp);
      a = _mm512_mask3_fmadd_ps(pk, lp, a, m);
      bz = _mm512_mask3_fmadd_ps(pk, _mm512_maskz_loadu_ps(m, l + v), bz, m);
    }
    A = _mm512_reduce_add_ps(a);
    Bz = _mm512_reduce_add_ps(bz);
  }
  const float mx = max_avx512(l, V);
  const __m512 mxv = _mm512_set1_ps(mx);
  const float lt = l[target];
  __m512 s1 = zero, st = zero;
  for (int v = 0; v < V; v += 16) {
    const __mmask16 m = tail_mask(V - v);
    const __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, l + v), mxv);
    s1 = _mm512_mask_add_ps(s1, m, s1, exp16(d));
    st = _mm512_mask_add_ps(st, m, st, exp16(_mm512_mul_ps(d, it)));
  }
  const float sum1 = _mm512_reduce_add_ps(s1), sumt = _mm512_reduce_add_ps(st);
  const float ce = std::log(sum1) + (mx - lt);
  const float lse_t = mx * inv_t + std::log(sumt);
  const float kl = std::max(0.0f, A - (Bz * inv_t - lse_t));
  const float c1 = (1.0f - alpha) * dscale / sum1, ct = alpha * temp * dscale / sumt;
  const float cp = alpha * temp * dscale * inv_tsum;
  const __m512 c1v = _mm512_set1_ps(c1), ctv = _mm512_set1_ps(ct), cpv = _mm512_set1_ps(cp);
  for (int v = 0; v < V; v += 16) {
    const __mmask16 m = tail_mask(V - v);
    const __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, l + v), mxv);
    __m512 g = _mm512_fmadd_ps(c1v, exp16(d), _mm512_mul_ps(ctv, exp16(_mm512_mul_ps(d, it))));
    if (!ids)
      g = _mm512_fnmadd_ps(cpv, exp16(_mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, t + v), tmxv), it)), g);
    _mm512_mask_storeu_ps(dl + v, m, g);
  }
  if (ids)
    for (int k = 0; k < K; ++k) dl[ids[k]] -= cp * std::exp((t[k] - tmx) * inv_t);
  dl[target] -= (1.0f - alpha) * dscale;
  if (kl_out) *kl_out = kl;
  return (1.0f - alpha) * ce + alpha * temp * temp * kl;
}

int distill_forward_backward(float* losses, float* kl, float* dlogits, const float* logits, const int* targets,
                             const float* teacher, const int* ids, int K, int N, int V, float alpha, float temp,
                             float dscale) {
  if (alpha == 0.0f) {  // plain training, bit for bit
    if (kl) std::fill(kl, kl + N, 0.0f);
    return cross_entropy_forward_backward(losses, dlogits, logits, targets, N, V, dscale);
  }
  int scored = 0;
  const bool avx512 = has_avx512f();
#pragma omp parallel for schedule(static) reduction(+ : scored)
  for (int n = 0; n < N; ++n) {
    float* dl = dlogits + size_t(n) * V;
    if (targets[n] < 0) {
      losses[n] = 0;
      if (kl) kl[n] = 0;
      for (int v = 0; v < V; ++v) dl[v] = 0;
      continue;
    }
    losses[n] = (avx512 ? distill_row_avx512 : distill_row)(dl, kl ? kl + n : nullptr, logits + size_t(n) * V,
                                                           targets[n], teacher + size_t(n) * K,
                                                           ids ? ids + size_t(n) * K : nullptr, K, V, alpha, temp,
                                                           dscale);
    ++scored;
  }
  return scored;
}

int distill_forward_backward_ref(float* losses, float* kl, float* dlogits, const float* logits, const int* targets,
                                 const float* teacher, const int* ids, int K, int N, int V, float alpha, float temp,
                                 float dscale) {
  int scored = 0;
  std::vector<double> q1(static_cast<size_t>(V)), qt(static_cast<size_t>(V)), p(static_cast<size_t>(V));
  for (int n = 0; n < N; ++n) {
    const float* z = logits + size_t(n) * V;
    const float* t = teacher + size_t(n) * K;
    float* dl = dlogits + size_t(n) * V;
    if (targets[n] < 0) {
      losses[n] = 0;
      if (kl) kl[n] = 0;
      for (int v = 0; v < V; ++v) dl[v] = 0;
      continue;
    }
    // Softmaxes in double: the student's at 1 and temp, the teacher's at temp over its ids.
    auto softmax = [](std::vector<double>& out, const auto& x, int n, double scale) {
      double mx = -INFINITY, sum = 0;
      for (int i = 0; i < n; ++i) mx = std::max(mx, double(x(i)) * scale);
      for (int i = 0; i < n; ++i) sum += out[size_t(i)] = std::exp(double(x(i)) * scale - mx);
      for (int i = 0; i < n; ++i) out[size_t(i)] /= sum;
    };
    softmax(q1, [&](int v) { return z[v]; }, V, 1.0);
    softmax(qt, [&](int v) { return z[v]; }, V, 1.0 / temp);
    std::fill(p.begin(), p.end(), 0.0);
    std::vector<double> pk(static_cast<size_t>(K));
    softmax(pk, [&](int k) { return t[k]; }, K, 1.0 / temp);
    for (int k = 0; k < K; ++k) p[size_t(ids ? ids[size_t(n) * K + k] : k)] += pk[size_t(k)];
    const double ce = -std::log(q1[size_t(targets[n])]);
    double d = 0;
    for (int v = 0; v < V; ++v)
      if (p[size_t(v)] > 0) d += p[size_t(v)] * (std::log(p[size_t(v)]) - std::log(qt[size_t(v)]));
    const double a = alpha;
    losses[n] = float((1 - a) * ce + a * double(temp) * temp * d);
    if (kl) kl[n] = float(a == 0 ? 0.0 : d);
    for (int v = 0; v < V; ++v)
      dl[v] = float(((1 - a) * (q1[size_t(v)] - (v == targets[n])) + a * temp * (qt[size_t(v)] - p[size_t(v)])) * dscale);
    ++scored;
  }
  return scored;
}

// ---- LSTM cell ----

LM_TARGET_CLONES static void lstm_cell_row(float* h, float* c, float* a, float* tc, const float* g, const float* cp,
                                           int H) {
#pragma omp simd
  for (int j = 0; j < H; ++j) {
    const float i = 1.0f / (1.0f + std::exp(-g[j]));
    const float f = 1.0f / (1.0f + std::exp(-g[H + j]));
    const float gg = std::tanh(g[2 * H + j]);
    const float o = 1.0f / (1.0f + std::exp(-g[3 * H + j]));
    const float cj = f * cp[j] + i * gg;
    const float t = std::tanh(cj);
    a[j] = i, a[H + j] = f, a[2 * H + j] = gg, a[3 * H + j] = o;
    c[j] = cj;
    tc[j] = t;
    h[j] = o * t;
  }
}

// The same row with exp16: sigmoid(x) = 1 / (1 + e^-x), tanh(x) = 2 sigmoid(2x) - 1 (absolute
// error about 1e-7, where std::tanh is exact to an ulp), 16 units at a time. The scalar row calls
// std::exp and std::tanh once per value: five calls per unit, which cost more than the step's
// matrix products at the presets' sizes.
__attribute__((target("avx512f"))) static inline __m512 sigmoid16(__m512 x) {
  const __m512 one = _mm512_set1_ps(1.0f);
  return _mm512_div_ps(one, _mm512_add_ps(one, exp16(_mm512_sub_ps(_mm512_setzero_ps(), x))));
}
__attribute__((target("avx512f"))) static inline __m512 tanh16(__m512 x) {
  const __m512 two = _mm512_set1_ps(2.0f);
  return _mm512_fmsub_ps(two, sigmoid16(_mm512_mul_ps(two, x)), _mm512_set1_ps(1.0f));
}
__attribute__((target("avx512f"))) static void lstm_cell_row_avx512(float* h, float* c, float* a, float* tc,
                                                                    const float* g, const float* cp, int H) {
  auto sig = sigmoid16;
  auto tanh = tanh16;
  for (int j = 0; j < H; j += 16) {
    const __mmask16 m = tail_mask(H - j);
    const __m512 i = sig(_mm512_maskz_loadu_ps(m, g + j)), f = sig(_mm512_maskz_loadu_ps(m, g + H + j));
    const __m512 gg = tanh(_mm512_maskz_loadu_ps(m, g + 2 * H + j)), o = sig(_mm512_maskz_loadu_ps(m, g + 3 * H + j));
    const __m512 cj = _mm512_fmadd_ps(f, _mm512_maskz_loadu_ps(m, cp + j), _mm512_mul_ps(i, gg));
    const __m512 t = tanh(cj);
    _mm512_mask_storeu_ps(a + j, m, i);
    _mm512_mask_storeu_ps(a + H + j, m, f);
    _mm512_mask_storeu_ps(a + 2 * H + j, m, gg);
    _mm512_mask_storeu_ps(a + 3 * H + j, m, o);
    _mm512_mask_storeu_ps(c + j, m, cj);
    _mm512_mask_storeu_ps(tc + j, m, t);
    _mm512_mask_storeu_ps(h + j, m, _mm512_mul_ps(o, t));
  }
}

void lstm_cell_forward(float* h, float* c, float* acts, float* tanh_c, const float* gates, const float* c_prev, int B,
                       int H) {
  const bool avx512 = has_avx512f();
#pragma omp parallel for schedule(static) if (size_t(B) * H >= kParallelMin / 16)
  for (int b = 0; b < B; ++b) {
    const size_t r = size_t(b) * H, r4 = 4 * r;
    (avx512 ? lstm_cell_row_avx512 : lstm_cell_row)(h + r, c + r, acts + r4, tanh_c + r, gates + r4, c_prev + r, H);
  }
}

void lstm_cell_forward_ref(float* h, float* c, float* acts, float* tanh_c, const float* gates, const float* c_prev,
                           int B, int H) {
  auto sig = [](double x) { return 1.0 / (1.0 + std::exp(-x)); };
  for (int b = 0; b < B; ++b)
    for (int j = 0; j < H; ++j) {
      const float* g = gates + size_t(b) * 4 * H;
      float* a = acts + size_t(b) * 4 * H;
      const double i = sig(g[j]), f = sig(g[H + j]), gg = std::tanh(double(g[2 * H + j])), o = sig(g[3 * H + j]);
      const double cj = f * c_prev[size_t(b) * H + j] + i * gg;
      a[j] = float(i), a[H + j] = float(f), a[2 * H + j] = float(gg), a[3 * H + j] = float(o);
      c[size_t(b) * H + j] = float(cj);
      tanh_c[size_t(b) * H + j] = float(std::tanh(cj));
      h[size_t(b) * H + j] = float(o * std::tanh(cj));
    }
}

LM_TARGET_CLONES static void lstm_cell_backward_row(float* dg, float* dc, const float* dh, const float* a,
                                                    const float* tc, const float* cp, int H) {
#pragma omp simd
  for (int j = 0; j < H; ++j) {
    const float i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j], t = tc[j];
    const float d = dc[j] + dh[j] * o * (1.0f - t * t);  // the gradient of c
    dg[j] = d * g * i * (1.0f - i);
    dg[H + j] = d * cp[j] * f * (1.0f - f);
    dg[2 * H + j] = d * i * (1.0f - g * g);
    dg[3 * H + j] = dh[j] * t * o * (1.0f - o);
    dc[j] = d * f;
  }
}

void lstm_cell_backward(float* dgates, float* dc, const float* dh, const float* acts, const float* tanh_c,
                        const float* c_prev, int B, int H) {
#pragma omp parallel for schedule(static) if (size_t(B) * H >= kParallelMin / 16)
  for (int b = 0; b < B; ++b) {
    const size_t r = size_t(b) * H, r4 = 4 * r;
    lstm_cell_backward_row(dgates + r4, dc + r, dh + r, acts + r4, tanh_c + r, c_prev + r, H);
  }
}

void lstm_cell_backward_ref(float* dgates, float* dc, const float* dh, const float* acts, const float* tanh_c,
                            const float* c_prev, int B, int H) {
  for (int b = 0; b < B; ++b)
    for (int j = 0; j < H; ++j) {
      const float* a = acts + size_t(b) * 4 * H;
      float* dg = dgates + size_t(b) * 4 * H;
      const size_t r = size_t(b) * H + j;
      const double i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j], t = tanh_c[r];
      const double d = double(dc[r]) + double(dh[r]) * o * (1 - t * t);
      dg[j] = float(d * g * i * (1 - i));
      dg[H + j] = float(d * c_prev[r] * f * (1 - f));
      dg[2 * H + j] = float(d * i * (1 - g * g));
      dg[3 * H + j] = float(double(dh[r]) * t * o * (1 - o));
      dc[r] = float(d * f);
    }
}

// ---- AdamW ----

LM_TARGET_CLONES static void adamw_chunk(float* p, const float* g, float* m, float* v, size_t n, float lr, float b1,
                                         float b2, float eps, float wd, float c1, float c2) {
#pragma omp simd
  for (size_t i = 0; i < n; ++i) {
    m[i] = b1 * m[i] + (1.0f - b1) * g[i];
    v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
    p[i] -= lr * ((m[i] * c1) / (std::sqrt(v[i] * c2) + eps) + wd * p[i]);
  }
}

void adamw_step(float* p, const float* g, float* m, float* v, size_t n, float lr, float beta1, float beta2, float eps,
                float weight_decay, int t) {
  const float c1 = float(1.0 / (1.0 - std::pow(double(beta1), t)));
  const float c2 = float(1.0 / (1.0 - std::pow(double(beta2), t)));
#pragma omp parallel for schedule(static)
  for (size_t c = 0; c < n; c += kChunk)
    adamw_chunk(p + c, g + c, m + c, v + c, std::min(kChunk, n - c), lr, beta1, beta2, eps, weight_decay, c1, c2);
}

void adamw_step_ref(float* p, const float* g, float* m, float* v, size_t n, float lr, float beta1, float beta2,
                    float eps, float weight_decay, int t) {
  for (size_t i = 0; i < n; ++i) {
    m[i] = float(beta1 * double(m[i]) + (1.0 - beta1) * g[i]);
    v[i] = float(beta2 * double(v[i]) + (1.0 - beta2) * double(g[i]) * g[i]);
    const double mh = m[i] / (1.0 - std::pow(double(beta1), t));
    const double vh = v[i] / (1.0 - std::pow(double(beta2), t));
    p[i] = float(p[i] - lr * (mh / (std::sqrt(vh) + eps) + weight_decay * double(p[i])));
  }
}

// ---- attention ----

__attribute__((target("avx512f"))) static void softmax_inplace_avx512(float* row, int n) {
  scale_avx512(row, n, 1.0f / exp_sum_avx512<true>(row, row, n, max_avx512(row, n)));
}

// Softmax of row[lo, hi) in place (lo < hi); the rest of row[0, width) is set to 0.
LM_TARGET_CLONES static void softmax_row_masked(float* row, int lo, int hi, int width, bool avx512) {
  std::fill(row, row + lo, 0.0f);
  std::fill(row + hi, row + width, 0.0f);
  row += lo;
  const int n = hi - lo;
  if (avx512) {
    softmax_inplace_avx512(row, n);
    return;
  }
  float mx = row[0];
  for (int j = 1; j < n; ++j) mx = std::max(mx, row[j]);
  float sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int j = 0; j < n; ++j) sum += row[j] = std::exp(row[j] - mx);
  const float inv = 1.0f / sum;
#pragma omp simd
  for (int j = 0; j < n; ++j) row[j] *= inv;
}

// Softmax of rows r0 .. r0+rows-1 of a (T, T) score matrix whose row i holds scores for keys
// 0..i (later entries are set to 0). s points at row r0.
static void causal_softmax_block(float* s, int r0, int rows, int T) {
  const bool avx512 = has_avx512f();
  for (int i = r0; i < r0 + rows; ++i) softmax_row_masked(s + size_t(i - r0) * T, 0, i + 1, T, avx512);
}

// Query rows are processed in blocks of kAttnBlock: a block only needs the keys up to its last
// row (the causal mask hides the rest), which skips most of the masked upper triangle.
static constexpr int kAttnBlock = 128;

// Causal attention (lengths unused), or bidirectional over right-padded rows (the encoder):
// query i of row b sees the keys 0 .. i, or 0 .. lengths[b] - 1 (all T without lengths).
static void attention_forward_impl(float* out, float* att, const float* q, const float* k, const float* v,
                                   const int* lengths, bool causal, int B, int T, int H, int Hkv, int D,
                                   float softcap = 0.0f) {
  const float scale = 1.0f / std::sqrt(float(D));
  const int group = H / Hkv;
  const bool avx512 = has_avx512f();
  // One (b, h) per task; sgemm runs single-threaded inside the parallel region.
#pragma omp parallel for collapse(2) schedule(dynamic)
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h) {
      const int g = h / group;
      const float* qb = q + (size_t(b) * T * H + h) * D;
      const float* kb = k + (size_t(b) * T * Hkv + g) * D;
      const float* vb = v + (size_t(b) * T * Hkv + g) * D;
      float* s = att + (size_t(b) * H + h) * T * T;
      float* ob = out + (size_t(b) * T * H + h) * D;
      for (int r0 = 0; r0 < T; r0 += kAttnBlock) {
        const int rows = std::min(kAttnBlock, T - r0), keys = causal ? r0 + rows : lengths ? lengths[b] : T;
        float* sr = s + size_t(r0) * T;
        sgemm(false, true, rows, keys, D, scale, qb + size_t(r0) * H * D, H * D, kb, Hkv * D, 0.0f, sr, T);
        if (softcap > 0.0f)
          for (int i = 0; i < rows; ++i) softcap_forward(sr + size_t(i) * T, size_t(keys), softcap);
        if (causal)
          causal_softmax_block(sr, r0, rows, T);
        else
          for (int i = 0; i < rows; ++i) softmax_row_masked(sr + size_t(i) * T, 0, keys, T, avx512);
        sgemm(false, false, rows, D, keys, 1.0f, sr, T, vb, Hkv * D, 0.0f, ob + size_t(r0) * H * D, H * D);
      }
    }
}

static void attention_forward_ref_impl(float* out, float* att, const float* q, const float* k, const float* v,
                                       const int* lengths, bool causal, int B, int T, int H, int Hkv, int D,
                                       double softcap = 0.0) {
  const double scale = 1.0 / std::sqrt(double(D));
  const int group = H / Hkv;
  std::vector<double> s(static_cast<size_t>(T));
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h)
      for (int i = 0; i < T; ++i) {
        const int keys = causal ? i + 1 : lengths ? lengths[b] : T;
        const float* qi = q + ((size_t(b) * T + i) * H + h) * D;
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j < keys; ++j) {
          const float* kj = k + ((size_t(b) * T + j) * Hkv + h / group) * D;
          double d = 0;
          for (int c = 0; c < D; ++c) d += double(qi[c]) * kj[c];
          s[size_t(j)] = softcap > 0 ? softcap * std::tanh(d * scale / softcap) : d * scale;
          mx = std::max(mx, s[size_t(j)]);
        }
        for (int j = 0; j < keys; ++j) sum += s[size_t(j)] = std::exp(s[size_t(j)] - mx);
        float* a = att + ((size_t(b) * H + h) * T + i) * T;
        for (int j = 0; j < T; ++j) a[j] = j < keys ? float(s[size_t(j)] / sum) : 0.0f;
        float* o = out + ((size_t(b) * T + i) * H + h) * D;
        for (int c = 0; c < D; ++c) {
          double acc = 0;
          for (int j = 0; j < keys; ++j) acc += s[size_t(j)] / sum * v[((size_t(b) * T + j) * Hkv + h / group) * D + c];
          o[c] = float(acc);
        }
      }
}

void attention_forward(float* out, float* att, const float* q, const float* k, const float* v, int B, int T, int H,
                       int Hkv, int D, float softcap) {
  attention_forward_impl(out, att, q, k, v, nullptr, true, B, T, H, Hkv, D, softcap);
}
void attention_forward_ref(float* out, float* att, const float* q, const float* k, const float* v, int B, int T,
                           int H, int Hkv, int D, float softcap) {
  attention_forward_ref_impl(out, att, q, k, v, nullptr, true, B, T, H, Hkv, D, softcap);
}
void attention_encoder_forward(float* out, float* att, const float* q, const float* k, const float* v,
                               const int* lengths, int B, int T, int H, int Hkv, int D) {
  attention_forward_impl(out, att, q, k, v, lengths, false, B, T, H, Hkv, D);
}
void attention_encoder_forward_ref(float* out, float* att, const float* q, const float* k, const float* v,
                                   const int* lengths, int B, int T, int H, int Hkv, int D) {
  attention_forward_ref_impl(out, att, q, k, v, lengths, false, B, T, H, Hkv, D);
}

size_t attention_cached_scratch(int n, int n_keys, int H) {
  return size_t(H) * size_t(std::min(n, kAttnBlock)) * size_t(n_keys);
}

// One query row against `keys` contiguous cached keys (decoding): s = q K^T scale, soft-capped
// when softcap > 0, softmax, out = s V.
// s[j] = scale * q . k_j for `keys` rows of D, a multiple of 16: four keys at a time, whose four
// sums are reduced together (two lane shuffles and two in-lane adds for the four), where one key
// at a time paid a whole horizontal sum (attention was a tenth of a decoding step of 8 sequences).
__attribute__((target("avx512f"))) static void attention_scores_avx512(float* s, const float* q, const float* kc,
                                                                       int keys, int D, float scale) {
  const __m512i pick = _mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
  const __m128 sc = _mm_set1_ps(scale);
  int j = 0;
  for (; j + 4 <= keys; j += 4) {
    const float* k0 = kc + size_t(j) * D;
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
    for (int c = 0; c < D; c += 16) {
      const __m512 qv = _mm512_loadu_ps(q + c);
      a0 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k0 + c), a0);
      a1 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k0 + D + c), a1);
      a2 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k0 + 2 * D + c), a2);
      a3 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k0 + 3 * D + c), a3);
    }
    // 128-bit lanes: a01 = [a0.0 + a0.2, a0.1 + a0.3, a1.0 + a1.2, a1.1 + a1.3], then b = one lane
    // per key, then each lane's four values summed.
    const __m512 a01 = _mm512_add_ps(_mm512_shuffle_f32x4(a0, a1, 0x44), _mm512_shuffle_f32x4(a0, a1, 0xEE));
    const __m512 a23 = _mm512_add_ps(_mm512_shuffle_f32x4(a2, a3, 0x44), _mm512_shuffle_f32x4(a2, a3, 0xEE));
    __m512 b = _mm512_add_ps(_mm512_shuffle_f32x4(a01, a23, 0x88), _mm512_shuffle_f32x4(a01, a23, 0xDD));
    b = _mm512_add_ps(b, _mm512_permute_ps(b, 0x4E));
    b = _mm512_add_ps(b, _mm512_permute_ps(b, 0xB1));
    _mm_storeu_ps(s + j, _mm_mul_ps(_mm512_castps512_ps128(_mm512_permutexvar_ps(pick, b)), sc));
  }
  for (; j < keys; ++j) {
    const float* kj = kc + size_t(j) * D;
    __m512 a = _mm512_setzero_ps();
    for (int c = 0; c < D; c += 16) a = _mm512_fmadd_ps(_mm512_loadu_ps(q + c), _mm512_loadu_ps(kj + c), a);
    s[j] = _mm512_reduce_add_ps(a) * scale;
  }
}

LM_TARGET_CLONES static void attention_row(float* out, float* s, const float* q, const float* kc, const float* vc,
                                           int keys, int D, float scale, float softcap, bool avx512) {
  if (avx512 && D % 16 == 0) {
    attention_scores_avx512(s, q, kc, keys, D, scale);
  } else {
    for (int j = 0; j < keys; ++j) {
      const float* kj = kc + size_t(j) * D;
      float acc = 0;
#pragma omp simd reduction(+ : acc)
      for (int c = 0; c < D; ++c) acc += q[c] * kj[c];
      s[j] = acc * scale;
    }
  }
  if (softcap > 0.0f) softcap_forward(s, size_t(keys), softcap);
  softmax_row_masked(s, 0, keys, keys, avx512);
  // Four keys per pass over out: a quarter of the loads and stores of out.
  std::fill(out, out + D, 0.0f);
  int j = 0;
  for (; j + 4 <= keys; j += 4) {
    const float p0 = s[j], p1 = s[j + 1], p2 = s[j + 2], p3 = s[j + 3];
    const float* v0 = vc + size_t(j) * D;
#pragma omp simd
    for (int c = 0; c < D; ++c) out[c] += p0 * v0[c] + p1 * v0[D + c] + p2 * v0[2 * D + c] + p3 * v0[3 * D + c];
  }
  for (; j < keys; ++j) {
    const float p = s[j];
    const float* vj = vc + size_t(j) * D;
#pragma omp simd
    for (int c = 0; c < D; ++c) out[c] += p * vj[c];
  }
}

void attention_cached(float* out, const float* q, const float* kc, const float* vc, int n, int pos0, int H, int Hkv,
                      int D, int cap, float* scratch) {
  attention_cached_ext(out, q, kc, vc, n, pos0, H, Hkv, D, cap, AttentionOptions{}, scratch);
}

void attention_cached_ext(float* out, const float* q, const float* kc, const float* vc, int n, int pos0, int H,
                          int Hkv, int D, int cap, const AttentionOptions& o, float* scratch) {
  const float scale = o.scale != 0.0f ? o.scale : 1.0f / std::sqrt(float(D));
  const int group = H / Hkv, n_keys = pos0 + n;
  // Query i sees the keys [key_lo(i), key_hi(i)); both grow with i.
  const auto key_lo = [&](int i) { return o.window > 0 ? std::max(0, pos0 + i - o.window + 1) : 0; };
  const auto key_hi = [&](int i) { return o.causal ? pos0 + i + 1 : n_keys; };
  const size_t per_head = size_t(std::min(n, kAttnBlock)) * size_t(n_keys);
  const size_t seen = size_t(o.window > 0 ? std::min(n_keys, o.window) : n_keys);  // keys per query, at most
  const bool avx512 = has_avx512f();
#pragma omp parallel for schedule(dynamic) if (size_t(H) * seen * D * n >= kParallelMin)
  for (int h = 0; h < H; ++h) {
    const int g = h / group;
    const float* kb = kc + size_t(g) * cap * D;
    const float* vb = vc + size_t(g) * cap * D;
    float* s = scratch + size_t(h) * per_head;
    if (n == 1) {
      const int lo = key_lo(0);
      attention_row(out + size_t(h) * D, s, q + size_t(h) * D, kb + size_t(lo) * D, vb + size_t(lo) * D,
                    key_hi(0) - lo, D, scale, o.softcap, avx512);
      continue;
    }
    // Blocks of query rows: a block needs only the keys from its first row's first to its last
    // row's last (with a window, those of the window; causal, none after the last row).
    for (int r0 = 0; r0 < n; r0 += kAttnBlock) {
      const int rows = std::min(kAttnBlock, n - r0), lo = key_lo(r0), keys = key_hi(r0 + rows - 1) - lo;
      sgemm(false, true, rows, keys, D, scale, q + (size_t(r0) * H + h) * D, H * D, kb + size_t(lo) * D, D, 0.0f, s,
            keys);
      for (int r = 0; r < rows; ++r) {
        float* row = s + size_t(r) * keys;
        const int a = key_lo(r0 + r) - lo, b = key_hi(r0 + r) - lo;
        if (o.softcap > 0.0f) softcap_forward(row + a, size_t(b - a), o.softcap);
        softmax_row_masked(row, a, b, keys, avx512);
      }
      sgemm(false, false, rows, D, keys, 1.0f, s, keys, vb + size_t(lo) * D, D, 0.0f, out + (size_t(r0) * H + h) * D,
            H * D);
    }
  }
}

void attention_cached_ref(float* out, const float* q, const float* kc, const float* vc, int n, int pos0, int H,
                          int Hkv, int D, int cap) {
  const double scale = 1.0 / std::sqrt(double(D));
  const int group = H / Hkv;
  std::vector<double> s(size_t(pos0 + n));
  for (int i = 0; i < n; ++i)
    for (int h = 0; h < H; ++h) {
      const float* qi = q + (size_t(i) * H + h) * D;
      const float* kb = kc + size_t(h / group) * cap * D;
      const float* vb = vc + size_t(h / group) * cap * D;
      const int keys = pos0 + i + 1;
      double mx = -INFINITY, sum = 0;
      for (int j = 0; j < keys; ++j) {
        double d = 0;
        for (int c = 0; c < D; ++c) d += double(qi[c]) * kb[size_t(j) * D + c];
        s[size_t(j)] = d * scale;
        mx = std::max(mx, s[size_t(j)]);
      }
      for (int j = 0; j < keys; ++j) sum += s[size_t(j)] = std::exp(s[size_t(j)] - mx);
      for (int c = 0; c < D; ++c) {
        double acc = 0;
        for (int j = 0; j < keys; ++j) acc += s[size_t(j)] / sum * vb[size_t(j) * D + c];
        out[(size_t(i) * H + h) * D + c] = float(acc);
      }
    }
}

void attention_cached_ext_ref(float* out, const float* q, const float* kc, const float* vc, int n, int pos0, int H,
                              int Hkv, int D, int cap, const AttentionOptions& o) {
  const double scale = o.scale != 0.0f ? double(o.scale) : 1.0 / std::sqrt(double(D));
  const int group = H / Hkv, n_keys = pos0 + n;
  std::vector<double> s(static_cast<size_t>(n_keys));
  for (int i = 0; i < n; ++i)
    for (int h = 0; h < H; ++h) {
      const float* qi = q + (size_t(i) * H + h) * D;
      const float* kb = kc + size_t(h / group) * cap * D;
      const float* vb = vc + size_t(h / group) * cap * D;
      const int p = pos0 + i;
      double mx = -INFINITY, sum = 0;
      for (int j = 0; j < n_keys; ++j) {
        const bool seen = (!o.causal || j <= p) && (o.window <= 0 || p - j < o.window);
        if (!seen) {
          s[size_t(j)] = -INFINITY;  // e^-inf = 0
          continue;
        }
        double d = 0;
        for (int c = 0; c < D; ++c) d += double(qi[c]) * kb[size_t(j) * D + c];
        d *= scale;
        if (o.softcap > 0.0f) d = o.softcap * std::tanh(d / o.softcap);
        s[size_t(j)] = d;
        mx = std::max(mx, d);
      }
      for (int j = 0; j < n_keys; ++j) sum += s[size_t(j)] = std::exp(s[size_t(j)] - mx);
      for (int c = 0; c < D; ++c) {
        double acc = 0;
        for (int j = 0; j < n_keys; ++j) acc += s[size_t(j)] / sum * vb[size_t(j) * D + c];
        out[(size_t(i) * H + h) * D + c] = float(acc);
      }
    }
}

// dS = P * (dP - sum(dP * P)) * scale over one row of n entries, in place in d.
LM_TARGET_CLONES static void softmax_backward_row(float* d, const float* p, int n, float scale) {
  float dot = 0;
#pragma omp simd reduction(+ : dot)
  for (int j = 0; j < n; ++j) dot += d[j] * p[j];
#pragma omp simd
  for (int j = 0; j < n; ++j) d[j] = p[j] * (d[j] - dot) * scale;
}

// The backward pass of attention_forward_impl (causal, or bidirectional over padded rows).
static void attention_backward_impl(float* dq, float* dk, float* dv, float* datt, const float* dout, const float* att,
                                    const float* q, const float* k, const float* v, const int* lengths, bool causal,
                                    int B, int T, int H, int Hkv, int D, float softcap = 0.0f) {
  const float scale = 1.0f / std::sqrt(float(D));
  const int group = H / Hkv;
  // Tasks are (b, kv head): the heads of a group add into the same dk and dv rows.
#pragma omp parallel for collapse(2) schedule(dynamic)
  for (int b = 0; b < B; ++b)
    for (int g = 0; g < Hkv; ++g) {
      // Soft-capped scores c = cap tanh(s / cap): their derivative 1 - (c / cap)^2 comes from the
      // scores recomputed here, a block at a time (the forward pass keeps only the probabilities),
      // in a buffer each thread keeps from call to call.
      static thread_local std::vector<float> capped;
      if (softcap > 0.0f && capped.size() < size_t(std::min(kAttnBlock, T)) * T)
        capped.resize(size_t(std::min(kAttnBlock, T)) * T);
      const float* kb = k + (size_t(b) * T * Hkv + g) * D;
      const float* vb = v + (size_t(b) * T * Hkv + g) * D;
      float* dkb = dk + (size_t(b) * T * Hkv + g) * D;
      float* dvb = dv + (size_t(b) * T * Hkv + g) * D;
      for (int t = 0; t < T; ++t) {
        std::fill(dkb + size_t(t) * Hkv * D, dkb + size_t(t) * Hkv * D + D, 0.0f);
        std::fill(dvb + size_t(t) * Hkv * D, dvb + size_t(t) * Hkv * D + D, 0.0f);
      }
      for (int h = g * group; h < (g + 1) * group; ++h) {
        const float* p = att + (size_t(b) * H + h) * T * T;
        float* dp = datt + (size_t(b) * H + h) * T * T;
        const float* dob = dout + (size_t(b) * T * H + h) * D;
        const float* qb = q + (size_t(b) * T * H + h) * D;
        float* dqb = dq + (size_t(b) * T * H + h) * D;
        for (int r0 = 0; r0 < T; r0 += kAttnBlock) {
          const int rows = std::min(kAttnBlock, T - r0), keys = causal ? r0 + rows : lengths ? lengths[b] : T;
          const float* pr = p + size_t(r0) * T;
          float* dpr = dp + size_t(r0) * T;
          const float* dor = dob + size_t(r0) * H * D;
          sgemm(true, false, keys, D, rows, 1.0f, pr, T, dor, H * D, 1.0f, dvb, Hkv * D);  // dV += P^T dO
          sgemm(false, true, rows, keys, D, 1.0f, dor, H * D, vb, Hkv * D, 0.0f, dpr, T);  // dP = dO V^T
          if (softcap > 0.0f) {
            sgemm(false, true, rows, keys, D, scale, qb + size_t(r0) * H * D, H * D, kb, Hkv * D, 0.0f, capped.data(),
                  T);
            for (int i = 0; i < rows; ++i) softcap_forward(capped.data() + size_t(i) * T, size_t(keys), softcap);
          }
          for (int i = r0; i < r0 + rows; ++i) {
            float* d = dpr + size_t(i - r0) * T;
            const int n = causal ? i + 1 : keys;
            softmax_backward_row(d, pr + size_t(i - r0) * T, n, scale);
            if (softcap > 0.0f) {
              const float* c = capped.data() + size_t(i - r0) * T;
              const float inv = 1.0f / softcap;
              for (int j = 0; j < n; ++j) d[j] *= 1.0f - (c[j] * inv) * (c[j] * inv);
            }
            if (causal) std::fill(d + i + 1, d + keys, 0.0f);
          }
          sgemm(false, false, rows, D, keys, 1.0f, dpr, T, kb, Hkv * D, 0.0f, dqb + size_t(r0) * H * D, H * D);  // dQ
          sgemm(true, false, keys, D, rows, 1.0f, dpr, T, qb + size_t(r0) * H * D, H * D, 1.0f, dkb, Hkv * D);  // dK
        }
      }
    }
}

void attention_backward(float* dq, float* dk, float* dv, float* datt, const float* dout, const float* att,
                        const float* q, const float* k, const float* v, int B, int T, int H, int Hkv, int D,
                        float softcap) {
  attention_backward_impl(dq, dk, dv, datt, dout, att, q, k, v, nullptr, true, B, T, H, Hkv, D, softcap);
}
void attention_encoder_backward(float* dq, float* dk, float* dv, float* datt, const float* dout, const float* att,
                                const float* q, const float* k, const float* v, const int* lengths, int B, int T,
                                int H, int Hkv, int D) {
  attention_backward_impl(dq, dk, dv, datt, dout, att, q, k, v, lengths, false, B, T, H, Hkv, D);
}

LM_TARGET_CLONES static double sum_squares_block(const float* x, size_t n) {
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (size_t i = 0; i < n; ++i) s += double(x[i]) * x[i];
  return s;
}

static void attention_backward_ref_impl(float* dq, float* dk, float* dv, const float* dout, const float* q,
                                        const float* k, const float* v, const int* lengths, bool causal, int B, int T,
                                        int H, int Hkv, int D, double softcap = 0.0) {
  const double scale = 1.0 / std::sqrt(double(D));
  const int group = H / Hkv;
  std::vector<double> dkv(size_t(B) * T * Hkv * D * 2, 0.0);  // dk then dv, in double
  double* dka = dkv.data();
  double* dva = dkv.data() + size_t(B) * T * Hkv * D;
  std::vector<double> p(static_cast<size_t>(T)), dp(static_cast<size_t>(T)), dcap(static_cast<size_t>(T), 1.0);
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h)
      for (int i = 0; i < T; ++i) {
        const int keys = causal ? i + 1 : lengths ? lengths[b] : T;
        auto at = [&](size_t t, int heads, int hh) { return ((size_t(b) * T + t) * heads + hh) * D; };
        const float* qi = q + at(size_t(i), H, h);
        const float* doi = dout + at(size_t(i), H, h);
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j < keys; ++j) {
          const float* kj = k + at(size_t(j), Hkv, h / group);
          double s = 0;
          for (int c = 0; c < D; ++c) s += double(qi[c]) * kj[c];
          p[size_t(j)] = s * scale;
          if (softcap > 0) {  // c = cap tanh(s / cap), dc/ds = 1 - tanh^2
            const double th = std::tanh(p[size_t(j)] / softcap);
            p[size_t(j)] = softcap * th, dcap[size_t(j)] = 1.0 - th * th;
          }
          mx = std::max(mx, p[size_t(j)]);
        }
        for (int j = 0; j < keys; ++j) sum += p[size_t(j)] = std::exp(p[size_t(j)] - mx);
        double dot = 0;
        for (int j = 0; j < keys; ++j) {
          p[size_t(j)] /= sum;
          const float* vj = v + at(size_t(j), Hkv, h / group);
          double d = 0;
          for (int c = 0; c < D; ++c) d += double(doi[c]) * vj[c];
          dp[size_t(j)] = d;
          dot += d * p[size_t(j)];
        }
        std::vector<double> dqa(size_t(D), 0.0);
        for (int j = 0; j < keys; ++j) {
          const double ds = p[size_t(j)] * (dp[size_t(j)] - dot) * dcap[size_t(j)] * scale;
          const float* kj = k + at(size_t(j), Hkv, h / group);
          const size_t o = at(size_t(j), Hkv, h / group);
          for (int c = 0; c < D; ++c) {
            dqa[size_t(c)] += ds * kj[c];
            dka[o + size_t(c)] += ds * qi[c];
            dva[o + size_t(c)] += p[size_t(j)] * doi[c];
          }
        }
        for (int c = 0; c < D; ++c) dq[at(size_t(i), H, h) + size_t(c)] = float(dqa[size_t(c)]);
      }
  for (size_t i = 0; i < size_t(B) * T * Hkv * D; ++i) dk[i] = float(dka[i]), dv[i] = float(dva[i]);
}

void attention_backward_ref(float* dq, float* dk, float* dv, float* /*datt*/, const float* dout, const float* /*att*/,
                            const float* q, const float* k, const float* v, int B, int T, int H, int Hkv, int D,
                            float softcap) {
  attention_backward_ref_impl(dq, dk, dv, dout, q, k, v, nullptr, true, B, T, H, Hkv, D, softcap);
}
void attention_encoder_backward_ref(float* dq, float* dk, float* dv, float* /*datt*/, const float* dout,
                                    const float* /*att*/, const float* q, const float* k, const float* v,
                                    const int* lengths, int B, int T, int H, int Hkv, int D) {
  attention_backward_ref_impl(dq, dk, dv, dout, q, k, v, lengths, false, B, T, H, Hkv, D);
}

double sum_squares(const float* x, size_t n) {
  // Fixed blocks summed in block order: an OpenMP reduction would add the threads' partial
  // sums in the order they finish, and the clipping factor would change in the last bit.
  constexpr size_t kBlock = size_t{1} << 16;
  const size_t nb = (n + kBlock - 1) / kBlock;
  std::vector<double> part(nb);
#pragma omp parallel for schedule(static)
  for (size_t b = 0; b < nb; ++b) part[b] = sum_squares_block(x + b * kBlock, std::min(kBlock, n - b * kBlock));
  double s = 0;
  for (double p : part) s += p;
  return s;
}

}  // namespace lm::kernels
