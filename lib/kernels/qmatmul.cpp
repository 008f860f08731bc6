// Quantized linear layers (qmatmul.hpp). The q8_0 / q4_0 kernels work on a strip of 16 weight
// rows and one block (32 columns) at a time: lane r of a 512-bit vector belongs to row r, and
// chunk k of the packed block holds values 4k..4k+3 of the 16 rows. dpbusd against the
// activation row's values 4k..4k+3, broadcast to every lane (its memory broadcast), adds 4
// products to each row's lane, so 8 dpbusd leave the block's 16 integer dot products in one
// vector; one convert, one multiply (row scales by the activation's scale) and one FMA add them
// to the rows' sums. No lane needs summing with another, and the weights of a block are loaded
// (and for q4_0 unpacked) once for up to 8 activation rows. The layout before (4 rows x 4
// activation rows, each block spread over 4 lanes) ran the small preset's matrices at 110
// GMAC/s on one thread; this one at 175-184 (bench/qgemm_bench, N = 512).
// dpbusd multiplies unsigned by signed bytes: weights are the unsigned side (q + 128 for q8_0,
// the raw nibble for q4_0), so each block's sum over-counts by off * sum(activations), with
// off = 128 or 8; the activations carry -off * sum per block, which seeds the integer
// accumulator.
// Every path (VNNI, AVX2, plain) computes a row's sum over the blocks in order with the same
// float operations (float(block's int sum) * (d_w * d_a) fused into the sum), so each gives the
// same bits, and a row gets the same bits in a batch of any size (lm-generate --parallel writes
// what one sequence at a time writes).
#include "kernels/qmatmul.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include <omp.h>

#include "base/error.hpp"
#include "kernels/blas.hpp"
#include "kernels/kernels.hpp"
#include "base/cpu.hpp"
#include "kernels/simd.hpp"
#include "quant/kquant.hpp"
#include "quant/quant.hpp"

namespace lm::kernels {

using format::GgmlType;

namespace {

constexpr int QB = quant::kBlock;   // 32 values per q8_0 / q4_0 block
constexpr int kStrip = 16;          // weight rows interleaved in the packed layout
constexpr int kBatchRows = 8;       // activation rows per kernel call in a batch
constexpr int kRowBlock = 64;       // weight rows per parallel task
constexpr int kPanel = 256;         // weight rows dequantized per sgemm call (panel path)
constexpr size_t kParallelMin = 16384;
// Activation rows up to which the types with quant::vec_dot take it (dot products per weight row
// and activation row) rather than dequantized panels into sgemm: dot_max_rows().
//   q4_K, q5_K, q6_K on AVX-512 VNNI: always. quant::vec_dot_tile reads a weight row once for 8
//        activation rows, and bench/qgemm_bench on the medium preset's matrices at 2 threads
//        gives 190-200 GMAC/s from N = 8 to 512 for q4_K and q6_K (panels: 169-188 for q4_K and
//        154-166 for q6_K at N = 512, 15 and 7 at N = 8). Every batch then takes the same
//        kernel, so a batch of sequences gets the logits each would get alone, and a prompt the
//        same as in pieces.
//   the others (one pair at a time, about 52 GMAC/s for q5_K): up to 32 rows. N = 8 and 16
//        gained for every type and none lost at 32; q5_K N = 32: 52 / 49, N = 64: 52 / 95.
constexpr int kDotMaxRows = 32, kDotMaxRowsTile = std::numeric_limits<int>::max();
static_assert(kRowBlock % kStrip == 0, "row blocks start on a strip");

size_t align64(size_t n) { return (n + 63) & ~size_t(63); }

// dst = s + beta * dst; with beta 0, dst is not read (it may hold anything, NaN included).
inline void store(float& dst, float s, float beta) { dst = beta == 0.0f ? s : s + beta * dst; }

bool is_packed(GgmlType t) { return t == GgmlType::Q8_0 || t == GgmlType::Q4_0; }
// Types with dot products against quantized activations (quant::vec_dot): the K-quants, iq4_xs,
// q4_1, q5_0, q5_1 and iq4_nl.
bool has_dot(GgmlType t) { return quant::dot_activation_type(t) != GgmlType::F32; }
int offset_of(GgmlType t) { return t == GgmlType::Q8_0 ? 128 : 8; }

// Strips of 16 weight rows in `rows` rows (the last one padded).
int strips_of(int rows) { return (rows + kStrip - 1) / kStrip; }
// Bytes of quants per strip and block: 512 values, one byte each (q8_0) or a nibble (q4_0).
size_t tile_bytes(GgmlType t) { return t == GgmlType::Q8_0 ? 512 : 256; }

bool& vnni_enabled() {
  static bool on = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  }();
  return on;
}
bool& avx2_enabled() {
  static bool on = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c();
  }();
  return on;
}
bool g_allow_vnni = true;
bool use_vnni() { return g_allow_vnni && vnni_enabled(); }

// ---- activations in q8_0 blocks ----

// One quantized activation row: quants in block order (signed), block scales (the f16-rounded
// value, as float) and -off * sum of each block's quants.
struct ActRows {
  int C = 0, nb = 0;
  size_t stride = 0;  // bytes per row
  uint8_t* base = nullptr;
  const int8_t* q(int n) const { return reinterpret_cast<const int8_t*>(base + size_t(n) * stride); }
  const float* d(int n) const { return reinterpret_cast<const float*>(base + size_t(n) * stride + align64(size_t(C))); }
  const int32_t* s(int n) const {
    return reinterpret_cast<const int32_t*>(base + size_t(n) * stride + align64(size_t(C)) + align64(size_t(nb) * 4));
  }
};

size_t act_stride(int C) { return align64(size_t(C)) + 2 * align64(size_t(C / QB) * 4); }

ActRows act_view(void* scratch, int C) {
  ActRows a;
  a.C = C, a.nb = C / QB, a.stride = act_stride(C), a.base = static_cast<uint8_t*>(scratch);
  return a;
}

// Block quantization of activations as ggml's runtime does it: d = amax / 127 rounded to f16,
// q = round-to-nearest-even(x / d) computed as x * (1 / d).
void quantize_act_row_ref(const float* x, const ActRows& a, int n, int off) {
  int8_t* q = const_cast<int8_t*>(a.q(n));
  float* d = const_cast<float*>(a.d(n));
  int32_t* s = const_cast<int32_t*>(a.s(n));
  for (int b = 0; b < a.nb; ++b) {
    const float* xb = x + size_t(b) * QB;
    float amax = 0;
    for (int j = 0; j < QB; ++j) amax = std::max(amax, std::fabs(xb[j]));
    const float db = amax / 127.0f, id = db != 0.0f ? 1.0f / db : 0.0f;
    d[b] = quant::fp16_to_fp32(quant::fp32_to_fp16(db));
    int sum = 0;
    for (int j = 0; j < QB; ++j) {
      const int v = int(std::nearbyint(xb[j] * id));
      q[size_t(b) * QB + j] = int8_t(v);
      sum += v;
    }
    s[b] = -off * sum;
  }
}

__attribute__((target("avx512f,avx512bw,avx512vl,f16c"))) void quantize_act_row_avx512(const float* x,
                                                                                     const ActRows& a, int n,
                                                                                     int off) {
  int8_t* q = const_cast<int8_t*>(a.q(n));
  float* d = const_cast<float*>(a.d(n));
  int32_t* s = const_cast<int32_t*>(a.s(n));
  for (int b = 0; b < a.nb; ++b) {
    const __m512 x0 = _mm512_loadu_ps(x + size_t(b) * QB), x1 = _mm512_loadu_ps(x + size_t(b) * QB + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(x0), _mm512_abs_ps(x1)));
    const float db = amax / 127.0f, id = db != 0.0f ? 1.0f / db : 0.0f;
    d[b] = _cvtsh_ss(_cvtss_sh(db, _MM_FROUND_TO_NEAREST_INT));
    const __m512 vid = _mm512_set1_ps(id);
    const __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(x0, vid));  // MXCSR default: nearest even
    const __m512i q1 = _mm512_cvtps_epi32(_mm512_mul_ps(x1, vid));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + size_t(b) * QB), _mm512_cvtepi32_epi8(q0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + size_t(b) * QB + 16), _mm512_cvtepi32_epi8(q1));
    s[b] = -off * _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
  }
}

void quantize_act(const float* x, int N, int C, const ActRows& a, int off) {
  const bool avx512 = has_avx512f() && vnni_enabled();  // the same CPU check covers bw / vl
#pragma omp parallel for schedule(static) if (N > 1 && size_t(N) * C >= kParallelMin)
  for (int n = 0; n < N; ++n) {
    if (avx512)
      quantize_act_row_avx512(x + size_t(n) * C, a, n, off);
    else
      quantize_act_row_ref(x + size_t(n) * C, a, n, off);
  }
}

// ---- dot products of packed weight strips with activation rows ----

// pack_weight()'s layout: per strip of 16 rows and block, tile_bytes() of quants, strip-major;
// then per strip and block the 16 rows' f16 scales.
struct PackedView {
  const uint8_t* qs;
  const uint16_t* d;
  size_t tb;  // tile_bytes
  int nb;
  const uint8_t* tile(int st, int b) const { return qs + (size_t(st) * nb + b) * tb; }
  const uint16_t* scales(int st, int b) const { return d + (size_t(st) * nb + b) * kStrip; }
};

PackedView packed_view(const QWeight& W) {
  PackedView v;
  v.tb = tile_bytes(W.type);
  v.nb = W.cols / QB;
  v.qs = static_cast<const uint8_t*>(W.data);
  v.d = reinterpret_cast<const uint16_t*>(v.qs + align64(v.tb * size_t(v.nb) * size_t(strips_of(W.rows))));
  return v;
}

// Where value j of a block of row r lies in its strip's tile: chunk k = j / 4 holds values
// 4k..4k+3 of the 16 rows, 4 bytes each. q4_0's chunks k and k + 4 share bytes (low and high
// nibble), as the file's byte i holds values i and i + 16.
template <bool Q4>
size_t weight_pos(int r, int j) {
  const int k = j / 4;
  return size_t(Q4 ? k % 4 : k) * 64 + size_t(r % kStrip) * 4 + size_t(j % 4);
}

// Signed weight value j of block b of row r.
template <bool Q4>
int weight_value(const PackedView& W, int r, int b, int j) {
  const uint8_t w = W.tile(r / kStrip, b)[weight_pos<Q4>(r, j)];
  if (!Q4) return int(w) - 128;
  return (j < 16 ? (w & 0x0f) : (w >> 4)) - 8;
}

float weight_scale(const PackedView& W, int r, int b) { return quant::fp16_to_fp32(W.scales(r / kStrip, b)[r % kStrip]); }

// Strip st against T activation rows t0..: out[16 t + r], in plain loops. Each row's sum runs
// over the blocks in order, float(block's integer sum) * (d_w * d_a) fused into it, as the
// vector kernels' lanes do, so every path gives the same bits.
template <bool Q4>
void strip_ref(const PackedView& W, int st, const ActRows& a, int t0, int T, float* out) {
  for (int t = 0; t < T; ++t)
    for (int r = 0; r < kStrip; ++r) {
      const int row = st * kStrip + r;
      const int8_t* q = a.q(t0 + t);
      float sum = 0;
      for (int b = 0; b < W.nb; ++b) {
        int isum = 0;
        for (int j = 0; j < QB; ++j) isum += weight_value<Q4>(W, row, b, j) * int(q[size_t(b) * QB + j]);
        const float sc = weight_scale(W, row, b) * a.d(t0 + t)[b];
        sum = std::fma(float(isum), sc, sum);
      }
      out[t * kStrip + r] = sum;
    }
}

inline int load_i32(const void* p) {
  int v;
  std::memcpy(&v, p, 4);
  return v;
}

// Strip st against T activation rows t0.. with AVX-512 VNNI: out[16 t + r], lane r of a vector
// for row r. Per block the strip's 8 chunks are loaded (and for q4_0 unpacked) once; each
// activation row broadcasts its 4 values of chunk k to all lanes (dpbusd's memory broadcast),
// so 8 dpbusd leave the block's integer sums of 16 rows in one vector.
template <int T, bool Q4>
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,f16c"))) void strip_vnni(const PackedView& W, int st,
                                                                                   const ActRows& a, int t0,
                                                                                   float* out) {
  const __m512i m4 = _mm512_set1_epi8(0x0f);
  __m512 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm512_setzero_ps();
#pragma GCC unroll 1
  for (int b = 0; b < W.nb; ++b) {
    const uint8_t* w = W.tile(st, b);
    __m512i wk[8];
    if (Q4) {
      for (int c = 0; c < 4; ++c) {
        const __m512i v = _mm512_loadu_si512(w + 64 * c);
        wk[c] = _mm512_and_si512(v, m4);
        wk[c + 4] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
      }
    } else {
      for (int k = 0; k < 8; ++k) wk[k] = _mm512_loadu_si512(w + 64 * k);
    }
    const __m512 sw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(W.scales(st, b))));
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      const int8_t* q = a.q(t0 + t) + size_t(b) * QB;
      __m512i i0 = _mm512_set1_epi32(a.s(t0 + t)[b]);
      __m512i i1 = _mm512_setzero_si512();  // a second chain: decoding (T = 1) waits on dpbusd's latency
      for (int k = 0; k < 4; ++k) {
        i0 = _mm512_dpbusd_epi32(i0, wk[k], _mm512_set1_epi32(load_i32(q + 4 * k)));
        i1 = _mm512_dpbusd_epi32(i1, wk[k + 4], _mm512_set1_epi32(load_i32(q + 16 + 4 * k)));
      }
      const __m512 sc = _mm512_mul_ps(sw, _mm512_set1_ps(a.d(t0 + t)[b]));
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(i0, i1)), sc, acc[t]);
    }
  }
  for (int t = 0; t < T; ++t) _mm512_storeu_ps(out + kStrip * t, acc[t]);
}

// The same lanes with AVX2 (CPUs without VNNI), rows 0-7 and 8-15 of the strip in two halves.
// maddubs multiplies unsigned by signed bytes into saturating int16 pairs: q4_0 nibbles (<= 15)
// cannot saturate; q8_0 weights are made signed again and multiplied as |w| * (a with w's
// sign), as ggml does, so they take no offset.
template <bool Q4>
__attribute__((target("avx2,fma,f16c"))) void strip_avx2(const PackedView& W, int st, const ActRows& a, int t0, int T,
                                                         float* out) {
  const __m256i m4 = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1), flip = _mm256_set1_epi8(char(0x80));
  for (int t = 0; t < T; ++t)
    for (int h = 0; h < 2; ++h) {
      __m256 acc = _mm256_setzero_ps();
      for (int b = 0; b < W.nb; ++b) {
        const uint8_t* w = W.tile(st, b) + 32 * h;
        const int8_t* q = a.q(t0 + t) + size_t(b) * QB;
        __m256i i = Q4 ? _mm256_set1_epi32(a.s(t0 + t)[b]) : _mm256_setzero_si256();
        for (int k = 0; k < 8; ++k) {
          const __m256i ak = _mm256_set1_epi32(load_i32(q + 4 * k));
          __m256i p;
          if (Q4) {
            const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 64 * (k % 4)));
            const __m256i wv = k < 4 ? _mm256_and_si256(v, m4) : _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
            p = _mm256_maddubs_epi16(wv, ak);
          } else {
            const __m256i ws = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 64 * k)), flip);
            p = _mm256_maddubs_epi16(_mm256_sign_epi8(ws, ws), _mm256_sign_epi8(ak, ws));
          }
          i = _mm256_add_epi32(i, _mm256_madd_epi16(p, ones));
        }
        const __m256 sw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(W.scales(st, b) + 8 * h)));
        const __m256 sc = _mm256_mul_ps(sw, _mm256_set1_ps(a.d(t0 + t)[b]));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i), sc, acc);
      }
      _mm256_storeu_ps(out + kStrip * t + 8 * h, acc);
    }
}

template <bool Q4>
void run_strip(const PackedView& W, int st, const ActRows& a, int t0, int T, float* out) {
  if (use_vnni()) {
    switch (T) {
      case 1: strip_vnni<1, Q4>(W, st, a, t0, out); break;
      case 2: strip_vnni<2, Q4>(W, st, a, t0, out); break;
      case 3: strip_vnni<3, Q4>(W, st, a, t0, out); break;
      case 4: strip_vnni<4, Q4>(W, st, a, t0, out); break;
      case 5: strip_vnni<5, Q4>(W, st, a, t0, out); break;
      case 6: strip_vnni<6, Q4>(W, st, a, t0, out); break;
      case 7: strip_vnni<7, Q4>(W, st, a, t0, out); break;
      default: strip_vnni<8, Q4>(W, st, a, t0, out); break;
    }
  } else if (avx2_enabled()) {
    strip_avx2<Q4>(W, st, a, t0, T, out);
  } else {
    strip_ref<Q4>(W, st, a, t0, T, out);
  }
}

// Rows o0..o1 of y (o0 on a strip) for all N activation rows, 8 at a time: each chunk of
// activation rows goes over the block's strips, whose weights stay in cache.
template <bool Q4>
void packed_rows(float* y, const PackedView& W, const ActRows& a, int N, int OC, int o0, int o1, float beta) {
  float out[kBatchRows * kStrip];
  for (int t0 = 0; t0 < N; t0 += kBatchRows) {
    const int T = std::min(kBatchRows, N - t0);
    for (int r0 = o0; r0 < o1; r0 += kStrip) {
      run_strip<Q4>(W, r0 / kStrip, a, t0, T, out);
      const int R = std::min(kStrip, o1 - r0);
      for (int t = 0; t < T; ++t) {
        float* yt = y + size_t(t0 + t) * OC + r0;
        const float* ot = out + t * kStrip;
        if (beta == 0.0f)
          std::memcpy(yt, ot, sizeof(float) * size_t(R));
        else
          for (int r = 0; r < R; ++r) yt[r] = ot[r] + beta * yt[r];
      }
    }
  }
}

void packed_block(float* y, const QWeight& W, const ActRows& a, int N, int o0, int o1, float beta) {
  const PackedView v = packed_view(W);
  if (W.type == GgmlType::Q4_0)
    packed_rows<true>(y, v, a, N, W.rows, o0, o1, beta);
  else
    packed_rows<false>(y, v, a, N, W.rows, o0, o1, beta);
}

// ---- types with quant::vec_dot: activations in q8_K or q8_0 ----

// Bytes of one activation row for weights of type t.
size_t act_row(GgmlType t, int C) { return quant::activation_row_size(t, size_t(C)); }

// Activation rows in groups of 8, the block's weight rows inside (one quant::vec_dot_tile call,
// which reads a q4_K / q6_K weight row once per group); the weight rows stay in cache from one
// group to the next. One row (decoding) calls vec_dot per weight row: the tile's bookkeeping
// cost a q4_K 768-column product 10% there.
void dot_block(float* y, const QWeight& W, const uint8_t* act, int N, int o0, int o1, float beta) {
  const size_t rb = quant::row_size(W.type, size_t(W.cols)), ab = act_row(W.type, W.cols);
  const auto* base = static_cast<const uint8_t*>(W.data);
  if (N == 1) {
    for (int o = o0; o < o1; ++o) store(y[o], quant::vec_dot(W.type, base + size_t(o) * rb, act, size_t(W.cols)), beta);
    return;
  }
  LM_ASSERT(o1 - o0 <= kRowBlock);
  float out[kRowBlock * 8];
  for (int n0 = 0; n0 < N; n0 += 8) {
    const int G = std::min(8, N - n0);
    quant::vec_dot_tile(W.type, base + size_t(o0) * rb, rb, o1 - o0, act + size_t(n0) * ab, ab, G, size_t(W.cols), out);
    for (int o = o0; o < o1; ++o)
      for (int g = 0; g < G; ++g) store(y[size_t(n0 + g) * W.rows + o], out[size_t(o - o0) * G + g], beta);
  }
}

// ---- everything else: dequantized panels of rows into sgemm ----

void panel_forward(float* y, const float* x, const QWeight& W, int N, float beta, float* panel) {
  const int C = W.cols, OC = W.rows;
  // The scratch holds kPanel rows (fewer for a smaller W), shared out among the threads: each
  // dequantizes its own panels and multiplies them in a single-threaded sgemm (OpenBLAS runs one
  // thread inside a parallel region).
  // The task count is a multiple of the team's size, so no thread waits for another's last panel
  // (384 rows on 2 threads: 4 panels of 96, not 128, 128, 128).
  const int cap = std::min(kPanel, OC), threads = std::max(1, omp_get_max_threads());
  int P = cap / threads;
  if (P < 16) P = std::min(cap, 16);
  const int team = std::min({threads, cap / P, (OC + P - 1) / P});
  int tasks = (OC + P - 1) / P;
  tasks = (tasks + team - 1) / team * team;
  P = (OC + tasks - 1) / tasks;
  tasks = (OC + P - 1) / P;
  const bool parallel = team > 1 && double(N) * OC * C >= 64.0 * kParallelMin;
#pragma omp parallel num_threads(team) if (parallel)
  {
    float* mine = panel + size_t(omp_get_thread_num()) * P * C;
#pragma omp for schedule(dynamic, 1)
    for (int t = 0; t < tasks; ++t) {
      const int p0 = t * P, rows = std::min(P, OC - p0);
      for (int r = 0; r < rows; ++r) dequantize_weight_row(W, p0 + r, mine + size_t(r) * C);
      sgemm(false, true, N, rows, C, 1.0f, x, C, mine, C, beta, y + p0, OC);
    }
  }
}

int dot_max_rows(GgmlType t) {
  // The tile is AVX-512 VNNI code; elsewhere these types compute a pair at a time, as the others.
  const bool tile = (t == GgmlType::Q4_K || t == GgmlType::Q5_K || t == GgmlType::Q6_K) &&
                    quant::dot_path() == quant::DotPath::Avx512Vnni;
  return tile ? kDotMaxRowsTile : kDotMaxRows;
}
bool use_kdot(const QWeight& W, int N) { return has_dot(W.type) && N <= dot_max_rows(W.type); }

}  // namespace

void enable_vnni(bool on) { g_allow_vnni = on; }

size_t packed_size(GgmlType t, int rows, int cols) {
  if (!is_packed(t)) return quant::row_size(t, size_t(cols)) * size_t(rows);
  const size_t tiles = size_t(strips_of(rows)) * size_t(cols / QB);
  return align64(tiles * tile_bytes(t)) + tiles * kStrip * 2;
}

void pack_weight(GgmlType t, const void* src, int rows, int cols, void* dst) {
  const size_t in_row = quant::row_size(t, size_t(cols));
  if (!is_packed(t)) {
    std::memcpy(dst, src, in_row * size_t(rows));
    return;
  }
  QWeight W{t, rows, cols, dst};
  const PackedView v = packed_view(W);
  const bool q4 = t == GgmlType::Q4_0;
  const int ns = strips_of(rows);
  const auto* in = static_cast<const uint8_t*>(src);
#pragma omp parallel for schedule(static) if (size_t(rows) * cols >= kParallelMin)
  for (int st = 0; st < ns; ++st) {
    // The padding rows of the last strip: value 0, scale 0.
    if ((st + 1) * kStrip > rows) {
      std::memset(const_cast<uint8_t*>(v.tile(st, 0)), q4 ? 0x88 : 0x80, v.tb * size_t(v.nb));
      std::memset(const_cast<uint16_t*>(v.scales(st, 0)), 0, size_t(v.nb) * kStrip * 2);
    }
    for (int r = st * kStrip; r < std::min(rows, (st + 1) * kStrip); ++r) {
      const uint8_t* row = in + size_t(r) * in_row;
      for (int b = 0; b < v.nb; ++b) {
        uint8_t* tile = const_cast<uint8_t*>(v.tile(st, b));
        uint16_t* d = const_cast<uint16_t*>(v.scales(st, b)) + r % kStrip;
        if (!q4) {
          const uint8_t* blk = row + size_t(b) * sizeof(quant::BlockQ8_0);
          std::memcpy(d, blk, 2);
          for (int j = 0; j < QB; ++j) tile[weight_pos<false>(r, j)] = uint8_t(blk[2 + j] ^ 0x80);
        } else {
          const uint8_t* blk = row + size_t(b) * sizeof(quant::BlockQ4_0);
          std::memcpy(d, blk, 2);
          for (int k = 0; k < 4; ++k) std::memcpy(tile + weight_pos<true>(r, 4 * k), blk + 2 + 4 * k, 4);
        }
      }
    }
  }
}

void dequantize_weight_row(const QWeight& W, int row, float* out) {
  if (!is_packed(W.type)) {
    const size_t rb = quant::row_size(W.type, size_t(W.cols));
    quant::dequantize_row(W.type, static_cast<const uint8_t*>(W.data) + size_t(row) * rb, out, size_t(W.cols));
    return;
  }
  const PackedView v = packed_view(W);
  for (int b = 0; b < v.nb; ++b) {
    const float d = weight_scale(v, row, b);
    for (int j = 0; j < QB; ++j)
      out[size_t(b) * QB + j] = d * float(W.type == GgmlType::Q4_0 ? weight_value<true>(v, row, b, j)
                                                                    : weight_value<false>(v, row, b, j));
  }
}

size_t qmatmul_scratch(const QWeight& W, int N) {
  if (W.type == GgmlType::F32) return 0;
  if (is_packed(W.type)) return act_stride(W.cols) * size_t(N);
  if (use_kdot(W, N)) return align64(act_row(W.type, W.cols) * size_t(N));
  // At least what any shorter batch takes (a type that takes panels takes dot products up to
  // kDotMaxRows rows), so sizing for the longest batch covers them all.
  return std::max(size_t(std::min(kPanel, W.rows)) * size_t(W.cols) * sizeof(float),
                  align64(act_row(W.type, W.cols) * size_t(kDotMaxRows)));
}

// Quantizes x for W's type (when W needs it) into scratch.
static void prepare(const float* x, int N, const QWeight& W, void* scratch) {
  if (is_packed(W.type)) {
    quantize_act(x, N, W.cols, act_view(scratch, W.cols), offset_of(W.type));
  } else if (use_kdot(W, N)) {
    // In parallel, as quantize_act: serial, it held medium-layer q4_K at N = 512 to 150 GMAC/s on
    // two threads against 99 on one.
#pragma omp parallel for schedule(static) if (N > 1 && size_t(N) * W.cols >= kParallelMin)
    for (int n = 0; n < N; ++n)
      quant::quantize_activations(W.type, x + size_t(n) * W.cols,
                                  static_cast<uint8_t*>(scratch) + size_t(n) * act_row(W.type, W.cols), size_t(W.cols));
  }
}

// Rows o0..o1 of W once prepare() has run.
static void block_forward(float* y, const QWeight& W, int N, int o0, int o1, float beta, const void* scratch) {
  if (is_packed(W.type))
    packed_block(y, W, act_view(const_cast<void*>(scratch), W.cols), N, o0, o1, beta);
  else
    dot_block(y, W, static_cast<const uint8_t*>(scratch), N, o0, o1, beta);
}

// Runs f(b) for the row blocks b < blocks of `work` multiply-adds. Decoding (N <= kGemvMaxRows)
// gives each thread one contiguous run of blocks: interleaved 64-row blocks (schedule(dynamic,
// 1)) left each thread's stream of weights broken every few KiB, and a q8_0 32000 x 768 product
// read 45 GB/s on two threads against 66 contiguous (q4_0: 29 against 40). Batches of rows take
// guided scheduling: large contiguous runs first, then smaller ones that even out the tails and
// a thread the scheduler set aside. Interleaved blocks cost batches as much as decoding: each
// thread's 64 columns of the output sat beside the other's in every row, and bench/qgemm_bench
// at 2 threads gave 127 GMAC/s on the small preset's matrices with schedule(dynamic, 1) (as at
// one thread, 113) against 185 guided and 193 static; medium 204 against 259 and 257.
template <typename F>
void parallel_blocks(int blocks, int N, size_t work, const F& f) {
  if (N <= kGemvMaxRows) {
#pragma omp parallel for schedule(static) if (work >= 2 * kParallelMin)
    for (int b = 0; b < blocks; ++b) f(b);
  } else {
#pragma omp parallel for schedule(guided) if (work >= 2 * kParallelMin)
    for (int b = 0; b < blocks; ++b) f(b);
  }
}

void qmatmul_forward(float* y, const float* x, const QWeight& W, int N, float beta, void* scratch) {
  if (W.type == GgmlType::F32) {
    matmul_forward(y, x, static_cast<const float*>(W.data), N, W.cols, W.rows, beta);
    return;
  }
  if (!is_packed(W.type) && !use_kdot(W, N)) {
    panel_forward(y, x, W, N, beta, static_cast<float*>(scratch));
    return;
  }
  prepare(x, N, W, scratch);
  const int blocks = (W.rows + kRowBlock - 1) / kRowBlock;
  parallel_blocks(blocks, N, size_t(W.rows) * W.cols, [&](int b) {
    block_forward(y, W, N, b * kRowBlock, std::min(W.rows, (b + 1) * kRowBlock), beta, scratch);
  });
}

void qmatmul_forward_shared(const float* x, int N, const QLinearOut* outs, int n_outs, void* scratch) {
  LM_ASSERT(n_outs >= 1 && n_outs <= 8);
  const GgmlType t = outs[0].W->type;
  // The activations can be shared by weights of one type, or of types whose dot products take
  // the same activations (q4_K and q6_K in a q4_k_m file: q8_K).
  bool same = true, shared = true;
  for (int i = 1; i < n_outs; ++i) {
    const QWeight& W = *outs[i].W;
    same = same && W.type == t && W.cols == outs[0].W->cols;
    shared = shared && W.cols == outs[0].W->cols &&
             (W.type == t || (has_dot(W.type) && has_dot(t) &&
                              quant::dot_activation_type(W.type) == quant::dot_activation_type(t)));
  }
  if (same && t == GgmlType::F32) {
    LinearOut lo[8];
    for (int i = 0; i < n_outs; ++i) lo[i] = {outs[i].y, static_cast<const float*>(outs[i].W->data), outs[i].W->rows};
    matmul_forward_shared(x, N, outs[0].W->cols, lo, n_outs);
    return;
  }
  // Every weight must take the path it takes alone, so the results equal qmatmul_forward's.
  bool kdot = true;
  for (int i = 0; i < n_outs; ++i) kdot = kdot && use_kdot(*outs[i].W, N);
  if (!shared || !(is_packed(t) || kdot)) {
    for (int i = 0; i < n_outs; ++i) qmatmul_forward(outs[i].y, x, *outs[i].W, N, 0.0f, scratch);
    return;
  }
  prepare(x, N, *outs[0].W, scratch);
  // One parallel region over the row blocks of all the weights.
  int first[8 + 1] = {0};
  size_t work = 0;
  for (int i = 0; i < n_outs; ++i) {
    first[i + 1] = first[i] + (outs[i].W->rows + kRowBlock - 1) / kRowBlock;
    work += size_t(outs[i].W->rows) * outs[i].W->cols;
  }
  parallel_blocks(first[n_outs], N, work, [&](int b) {
    int i = 0;
    while (b >= first[i + 1]) ++i;
    const QWeight& W = *outs[i].W;
    const int o0 = (b - first[i]) * kRowBlock;
    block_forward(outs[i].y, W, N, o0, std::min(W.rows, o0 + kRowBlock), 0.0f, scratch);
  });
}

void qmatmul_forward_ref(float* y, const float* x, const QWeight& W, int N, float beta) {
  const int C = W.cols, OC = W.rows;
  if (is_packed(W.type)) {
    std::vector<uint8_t> buf(act_stride(C) * size_t(N) + 64);
    void* p = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(buf.data()) + 63) & ~uintptr_t(63));
    const ActRows a = act_view(p, C);
    for (int n = 0; n < N; ++n) quantize_act_row_ref(x + size_t(n) * C, a, n, offset_of(W.type));
    const PackedView v = packed_view(W);
    for (int n = 0; n < N; ++n)
      for (int o = 0; o < OC; o += kStrip) {
        float out[kStrip];
        if (W.type == GgmlType::Q4_0)
          strip_ref<true>(v, o / kStrip, a, n, 1, out);
        else
          strip_ref<false>(v, o / kStrip, a, n, 1, out);
        for (int r = 0; r < std::min(kStrip, OC - o); ++r) store(y[size_t(n) * OC + o + r], out[r], beta);
      }
    return;
  }
  if (use_kdot(W, N)) {
    std::vector<uint8_t> act(act_row(W.type, C));
    const size_t rb = quant::row_size(W.type, size_t(C));
    for (int n = 0; n < N; ++n) {
      quant::quantize_activations(W.type, x + size_t(n) * C, act.data(), size_t(C));
      for (int o = 0; o < OC; ++o) {
        const void* w = static_cast<const uint8_t*>(W.data) + size_t(o) * rb;
        store(y[size_t(n) * OC + o], quant::vec_dot_ref(W.type, w, act.data(), size_t(C)), beta);
      }
    }
    return;
  }
  std::vector<float> w(size_t(OC) * C);
  if (W.type == GgmlType::F32)
    std::memcpy(w.data(), W.data, w.size() * sizeof(float));
  else
    for (int o = 0; o < OC; ++o) dequantize_weight_row(W, o, w.data() + size_t(o) * C);
  matmul_forward_ref(y, x, w.data(), N, C, OC, beta);
}

}  // namespace lm::kernels
