// Quantized linear layers (qmatmul.hpp). The q8_0 / q4_0 kernels work on groups of 4 blocks:
// one 64-byte vector holds values 0..15 of the 4 weight blocks ("lo") and one holds values
// 16..31 ("hi"), the activations are stored in the same order, so a VNNI dpbusd over lo and hi
// leaves block b's integer dot product in lanes 4b..4b+3. dpbusd multiplies unsigned by signed
// bytes: weights are the unsigned side (q + 128 for q8_0, the raw nibble for q4_0), so each
// block's sum over-counts by off * sum(activations), with off = 128 or 8; the activations carry
// -off * sum per block, which seeds the integer accumulator.
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
constexpr int kGroup = 4;           // blocks per group
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

size_t align64(size_t n) { return (n + 63) & ~size_t(63); }

static_assert(kGemvMaxRows <= 4, "the decoding kernels take up to 4 activation rows");

// dst = s + beta * dst; with beta 0, dst is not read (it may hold anything, NaN included).
inline void store(float& dst, float s, float beta) { dst = beta == 0.0f ? s : s + beta * dst; }

bool is_packed(GgmlType t) { return t == GgmlType::Q8_0 || t == GgmlType::Q4_0; }
// Types with dot products against quantized activations (quant::vec_dot): the K-quants, iq4_xs,
// q4_1, q5_0, q5_1 and iq4_nl.
bool has_dot(GgmlType t) { return quant::dot_activation_type(t) != GgmlType::F32; }
int offset_of(GgmlType t) { return t == GgmlType::Q8_0 ? 128 : 8; }

// Bytes of quants per row in the packed layout.
size_t qs_row(GgmlType t, int C) { return t == GgmlType::Q8_0 ? size_t(C) : size_t(C) / 2; }

// Where value j (0..31) of block b lands in a packed q8_0 row or in the activations.
size_t q8_pos(int nb, int b, int j) {
  const int full = nb / kGroup * kGroup;
  if (b >= full) return size_t(b) * QB + j;
  return size_t(b / kGroup) * 128 + (j < 16 ? 0 : 64) + size_t(b % kGroup) * 16 + (j & 15);
}

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

// One quantized activation row: quants in the packed order (signed), block scales (the
// f16-rounded value, as float) and -off * sum of each block's quants, stored as int32 lane 0 of
// four (s[4b], then three zeros) so a kernel loads block sums straight into its accumulator
// lanes: a masked vpexpandd was the slowest instruction of the inner loop on Zen 5.
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

size_t act_stride(int C) { return align64(size_t(C)) + align64(size_t(C / QB) * 4) + align64(size_t(C / QB) * 16); }

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
      q[q8_pos(a.nb, b, j)] = int8_t(v);
      sum += v;
    }
    s[4 * b] = -off * sum;
    s[4 * b + 1] = s[4 * b + 2] = s[4 * b + 3] = 0;
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
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + q8_pos(a.nb, b, 0)), _mm512_cvtepi32_epi8(q0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + q8_pos(a.nb, b, 16)), _mm512_cvtepi32_epi8(q1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(s + 4 * b),
                     _mm_cvtsi32_si128(-off * _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1))));
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

// ---- dot products of packed weight rows with activation rows ----

struct PackedView {
  const uint8_t* qs;
  const uint16_t* d;
  size_t row_qs;
  int nb;
  const uint8_t* row(int r) const { return qs + size_t(r) * row_qs; }
  const uint16_t* scales(int r) const { return d + size_t(r) * nb; }
};

PackedView packed_view(const QWeight& W) {
  PackedView v;
  v.row_qs = qs_row(W.type, W.cols);
  v.nb = W.cols / QB;
  v.qs = static_cast<const uint8_t*>(W.data);
  v.d = reinterpret_cast<const uint16_t*>(v.qs + align64(v.row_qs * size_t(W.rows)));
  return v;
}

// Signed weight value j of block b in a packed row.
template <bool Q4>
int weight_value(const uint8_t* w, int nb, int b, int j) {
  if (!Q4) return int(w[q8_pos(nb, b, j)]) - 128;
  const int full = nb / kGroup * kGroup;
  const size_t at = b >= full ? size_t(b) * 16 + (j & 15) : size_t(b / kGroup) * 64 + size_t(b % kGroup) * 16 + (j & 15);
  return (j < 16 ? (w[at] & 0x0f) : (w[at] >> 4)) - 8;
}

// Blocks b0.. of one weight row against one activation row, in plain loops.
template <bool Q4>
float dot_blocks_ref(const uint8_t* w, const uint16_t* wd, const int8_t* q, const float* d, int nb, int b0) {
  float sum = 0;
  for (int b = b0; b < nb; ++b) {
    int isum = 0;
    for (int j = 0; j < QB; ++j) isum += weight_value<Q4>(w, nb, b, j) * int(q[q8_pos(nb, b, j)]);
    sum += quant::fp16_to_fp32(wd[b]) * d[b] * float(isum);
  }
  return sum;
}

// The sums of a, b, c and d's lanes, in that order: a transposing add tree, 19 instructions
// where four _mm512_reduce_add_ps take 40 (a fifth of a 4 x 4 tile's work at 768 columns).
__attribute__((target("avx512f,avx512dq"))) inline __m128 sum4(__m512 a, __m512 b, __m512 c, __m512 d) {
  const __m256 a8 = _mm256_add_ps(_mm512_castps512_ps256(a), _mm512_extractf32x8_ps(a, 1));
  const __m256 b8 = _mm256_add_ps(_mm512_castps512_ps256(b), _mm512_extractf32x8_ps(b, 1));
  const __m256 c8 = _mm256_add_ps(_mm512_castps512_ps256(c), _mm512_extractf32x8_ps(c, 1));
  const __m256 d8 = _mm256_add_ps(_mm512_castps512_ps256(d), _mm512_extractf32x8_ps(d, 1));
  const __m256 abcd = _mm256_hadd_ps(_mm256_hadd_ps(a8, b8), _mm256_hadd_ps(c8, d8));
  return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

// R weight rows x T activation rows over all whole groups; the tail blocks in plain loops.
template <int R, int T, bool Q4>
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,f16c"))) void tile_vnni(const PackedView& W, int r0,
                                                                                  const ActRows& a, int t0,
                                                                                  float* out) {
  const int ng = W.nb / kGroup;
  const __m512i idx = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
  const __m512i m4 = _mm512_set1_epi8(0x0f);
  __m512 acc[R][T];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_ps();
  for (int g = 0; g < ng; ++g) {
    __m512i alo[T], ahi[T], init[T];
    __m512 sa[T];
    for (int t = 0; t < T; ++t) {
      const int8_t* q = a.q(t0 + t) + size_t(g) * 128;
      alo[t] = _mm512_loadu_si512(q);
      ahi[t] = _mm512_loadu_si512(q + 64);
      sa[t] = _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(_mm_loadu_ps(a.d(t0 + t) + 4 * g)));
      init[t] = _mm512_loadu_si512(a.s(t0 + t) + 16 * g);
    }
    for (int r = 0; r < R; ++r) {
      __m512i lo, hi;
      if (Q4) {
        const __m512i v = _mm512_loadu_si512(W.row(r0 + r) + size_t(g) * 64);
        lo = _mm512_and_si512(v, m4);
        hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
      } else {
        lo = _mm512_loadu_si512(W.row(r0 + r) + size_t(g) * 128);
        hi = _mm512_loadu_si512(W.row(r0 + r) + size_t(g) * 128 + 64);
      }
      const __m128i dh = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(W.scales(r0 + r) + 4 * g));
      const __m512 sw = _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(_mm_cvtph_ps(dh)));
      for (int t = 0; t < T; ++t) {
        __m512i i = _mm512_dpbusd_epi32(init[t], lo, alo[t]);
        i = _mm512_dpbusd_epi32(i, hi, ahi[t]);
        acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i), _mm512_mul_ps(sw, sa[t]), acc[r][t]);
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    float sums[4];
    _mm_storeu_ps(sums, sum4(acc[r][0], T > 1 ? acc[r][1 % T] : _mm512_setzero_ps(),
                             T > 2 ? acc[r][2 % T] : _mm512_setzero_ps(), T > 3 ? acc[r][3 % T] : _mm512_setzero_ps()));
    for (int t = 0; t < T; ++t) {
      float s = sums[t];
      if (ng * kGroup < W.nb)
        s += dot_blocks_ref<Q4>(W.row(r0 + r), W.scales(r0 + r), a.q(t0 + t), a.d(t0 + t), W.nb, ng * kGroup);
      out[r * T + t] = s;
    }
  }
}

// Decoding: one weight row (one sequential stream of weights) against T <= 4 activation rows
// with 256-bit VNNI (on this Zen 5 VM, streaming with 256-bit loads outruns 512-bit ones, see
// kernels.cpp); each half of a group has its own FMA chain. Half h of group g holds blocks
// 4g + 2h and 4g + 2h + 1. In qgemv_bench one row at a time read q8_0 at 24-31 GB/s on one
// thread, where two rows sharing the activation loads read 10-12 and four 21-24 (q4_0: 19-20,
// 16-17, 13-17).
template <int T, bool Q4>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c"))) void row_vnni(const PackedView& W, int r,
                                                                                 const ActRows& a, float* out) {
  const int ng = W.nb / kGroup;
  const uint8_t* w = W.row(r);
  const uint16_t* wd = W.scales(r);
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  const __m256i idx0 = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1), idx1 = _mm256_setr_epi32(2, 2, 2, 2, 3, 3, 3, 3);
  __m256 acc[T][2];
  for (int t = 0; t < T; ++t) acc[t][0] = acc[t][1] = _mm256_setzero_ps();
  for (int g = 0; g < ng; ++g) {
    const __m128 sw = _mm_cvtph_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(wd + 4 * g)));
    __m256i lo[2], hi[2];
    if (Q4) {
      const __m256i v0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + size_t(g) * 64));
      const __m256i v1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + size_t(g) * 64 + 32));
      lo[0] = _mm256_and_si256(v0, m4), hi[0] = _mm256_and_si256(_mm256_srli_epi16(v0, 4), m4);
      lo[1] = _mm256_and_si256(v1, m4), hi[1] = _mm256_and_si256(_mm256_srli_epi16(v1, 4), m4);
    } else {
      const uint8_t* p = w + size_t(g) * 128;
      lo[0] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
      lo[1] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32));
      hi[0] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 64));
      hi[1] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 96));
    }
    for (int t = 0; t < T; ++t) {
      const int8_t* q = a.q(t) + size_t(g) * 128;
      const int32_t* sp = a.s(t) + 16 * g;
      const __m256 sc = _mm256_castps128_ps256(_mm_mul_ps(sw, _mm_loadu_ps(a.d(t) + 4 * g)));
      for (int h = 0; h < 2; ++h) {
        const __m256i init = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(sp + 8 * h));
        __m256i i = _mm256_dpbusd_epi32(init, lo[h], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 32 * h)));
        i = _mm256_dpbusd_epi32(i, hi[h], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 64 + 32 * h)));
        acc[t][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i), _mm256_permutevar8x32_ps(sc, h ? idx1 : idx0), acc[t][h]);
      }
    }
  }
  for (int t = 0; t < T; ++t) {
    // The lanes are tile_vnni's and are added in its order (sum4), so a row decoded alone and
    // the same row in a batch of any size get the same bits (lm-generate --parallel).
    const __m256 at = _mm256_add_ps(acc[t][0], acc[t][1]);
    const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(at, at), _mm256_hadd_ps(at, at));
    float sum = _mm_cvtss_f32(_mm_add_ss(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
    if (ng * kGroup < W.nb) sum += dot_blocks_ref<Q4>(w, wd, a.q(t), a.d(t), W.nb, ng * kGroup);
    out[t] = sum;
  }
}

// One weight row against one activation row with AVX2 (CPUs without VNNI). maddubs multiplies
// unsigned by signed bytes into saturating int16 pairs: q4_0 nibbles (<= 15) cannot saturate;
// q8_0 weights are made signed again and multiplied as |w| * (a with w's sign), as ggml does.
template <bool Q4>
__attribute__((target("avx2,fma,f16c"))) float dot_avx2(const uint8_t* w, const uint16_t* wd, const int8_t* q,
                                                        const float* d, const int32_t* s, int nb) {
  const int ng = nb / kGroup;
  const __m256i m4 = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1), flip = _mm256_set1_epi8(char(0x80));
  const __m256i idx = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
  __m256 acc = _mm256_setzero_ps();
  for (int g = 0; g < ng; ++g) {
    const __m256 sw4 = _mm256_castps128_ps256(_mm_cvtph_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(wd + 4 * g))));
    const __m256 sa4 = _mm256_castps128_ps256(_mm_loadu_ps(d + 4 * g));
    const __m256 sc4 = _mm256_mul_ps(sw4, sa4);
    for (int h = 0; h < 2; ++h) {  // blocks 4g + 2h and 4g + 2h + 1
      const __m256i alo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + size_t(g) * 128 + 32 * h));
      const __m256i ahi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + size_t(g) * 128 + 64 + 32 * h));
      __m256i i;
      if (Q4) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + size_t(g) * 64 + 32 * h));
        const __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
        i = _mm256_add_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(lo, alo), ones),
                             _mm256_madd_epi16(_mm256_maddubs_epi16(hi, ahi), ones));
        // -8 * sum of each block, in lanes 0 and 4.
        i = _mm256_add_epi32(i, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + 16 * g + 8 * h)));
      } else {
        const __m256i lo = _mm256_xor_si256(
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + size_t(g) * 128 + 32 * h)), flip);
        const __m256i hi = _mm256_xor_si256(
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + size_t(g) * 128 + 64 + 32 * h)), flip);
        i = _mm256_add_epi32(
            _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(lo, lo), _mm256_sign_epi8(alo, lo)), ones),
            _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(hi, hi), _mm256_sign_epi8(ahi, hi)), ones));
      }
      // Lanes 0..3 belong to block 4g + 2h, lanes 4..7 to the next.
      const __m256 sc = _mm256_permutevar8x32_ps(sc4, _mm256_add_epi32(idx, _mm256_set1_epi32(2 * h)));
      acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i), sc, acc);
    }
  }
  __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  s4 = _mm_add_ss(s4, _mm_movehdup_ps(s4));
  float sum = _mm_cvtss_f32(s4);
  if (ng * kGroup < nb) sum += dot_blocks_ref<Q4>(w, wd, q, d, nb, ng * kGroup);
  return sum;
}

template <bool Q4, int R, int T>
void run_tile(const PackedView& W, int r0, const ActRows& a, int t0, float* out) {
  if (use_vnni()) {
    tile_vnni<R, T, Q4>(W, r0, a, t0, out);
    return;
  }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t)
      out[r * T + t] = avx2_enabled() ? dot_avx2<Q4>(W.row(r0 + r), W.scales(r0 + r), a.q(t0 + t), a.d(t0 + t),
                                                      a.s(t0 + t), W.nb)
                                      : dot_blocks_ref<Q4>(W.row(r0 + r), W.scales(r0 + r), a.q(t0 + t),
                                                           a.d(t0 + t), W.nb, 0);
}

template <bool Q4, int R>
void run_tile_t(const PackedView& W, int r0, const ActRows& a, int t0, int T, float* out) {
  switch (T) {
    case 1: run_tile<Q4, R, 1>(W, r0, a, t0, out); break;
    case 2: run_tile<Q4, R, 2>(W, r0, a, t0, out); break;
    case 3: run_tile<Q4, R, 3>(W, r0, a, t0, out); break;
    default: run_tile<Q4, R, 4>(W, r0, a, t0, out); break;
  }
}

template <bool Q4>
void run_row(const PackedView& W, int r, const ActRows& a, int T, float* out) {
  switch (T) {
    case 1: row_vnni<1, Q4>(W, r, a, out); break;
    case 2: row_vnni<2, Q4>(W, r, a, out); break;
    case 3: row_vnni<3, Q4>(W, r, a, out); break;
    default: row_vnni<4, Q4>(W, r, a, out); break;
  }
}

// Rows o0..o1 of y for all N activation rows: tiles of up to 4 x 4, or row by row when decoding.
template <bool Q4>
void packed_rows(float* y, const PackedView& W, const ActRows& a, int N, int OC, int o0, int o1, float beta) {
  float out[16];
  if (N <= kGemvMaxRows && use_vnni()) {
    for (int r = o0; r < o1; ++r) {
      run_row<Q4>(W, r, a, N, out);
      for (int t = 0; t < N; ++t) store(y[size_t(t) * OC + r], out[t], beta);
    }
    return;
  }
  for (int t0 = 0; t0 < N; t0 += 4) {
    const int T = std::min(4, N - t0);
    for (int r0 = o0; r0 < o1; r0 += 4) {
      const int R = std::min(4, o1 - r0);
      switch (R) {
        case 1: run_tile_t<Q4, 1>(W, r0, a, t0, T, out); break;
        case 2: run_tile_t<Q4, 2>(W, r0, a, t0, T, out); break;
        case 3: run_tile_t<Q4, 3>(W, r0, a, t0, T, out); break;
        default: run_tile_t<Q4, 4>(W, r0, a, t0, T, out); break;
      }
      for (int r = 0; r < R; ++r)
        for (int t = 0; t < T; ++t) store(y[size_t(t0 + t) * OC + r0 + r], out[r * T + t], beta);
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
  return align64(qs_row(t, cols) * size_t(rows)) + size_t(rows) * size_t(cols / QB) * 2;
}

void pack_weight(GgmlType t, const void* src, int rows, int cols, void* dst) {
  const size_t in_row = quant::row_size(t, size_t(cols));
  if (!is_packed(t)) {
    std::memcpy(dst, src, in_row * size_t(rows));
    return;
  }
  QWeight W{t, rows, cols, dst};
  const PackedView v = packed_view(W);
  auto* qs = const_cast<uint8_t*>(v.qs);
  auto* d = const_cast<uint16_t*>(v.d);
  const int nb = cols / QB, full = nb / kGroup * kGroup;
  const auto* in = static_cast<const uint8_t*>(src);
#pragma omp parallel for schedule(static) if (size_t(rows) * cols >= kParallelMin)
  for (int r = 0; r < rows; ++r) {
    const uint8_t* row = in + size_t(r) * in_row;
    uint8_t* out = qs + size_t(r) * v.row_qs;
    for (int b = 0; b < nb; ++b) {
      if (t == GgmlType::Q8_0) {
        const uint8_t* blk = row + size_t(b) * sizeof(quant::BlockQ8_0);
        std::memcpy(d + size_t(r) * nb + b, blk, 2);
        for (int j = 0; j < QB; ++j) out[q8_pos(nb, b, j)] = uint8_t(blk[2 + j] ^ 0x80);
      } else {
        const uint8_t* blk = row + size_t(b) * sizeof(quant::BlockQ4_0);
        std::memcpy(d + size_t(r) * nb + b, blk, 2);
        const size_t at = b >= full ? size_t(b) * 16 : size_t(b / kGroup) * 64 + size_t(b % kGroup) * 16;
        std::memcpy(out + at, blk + 2, 16);
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
  const uint8_t* w = v.row(row);
  const uint16_t* wd = v.scales(row);
  for (int b = 0; b < v.nb; ++b) {
    const float d = quant::fp16_to_fp32(wd[b]);
    for (int j = 0; j < QB; ++j)
      out[size_t(b) * QB + j] = d * float(W.type == GgmlType::Q4_0 ? weight_value<true>(w, v.nb, b, j)
                                                                    : weight_value<false>(w, v.nb, b, j));
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
      for (int o = 0; o < OC; ++o) {
        store(y[size_t(n) * OC + o],
              W.type == GgmlType::Q4_0 ? dot_blocks_ref<true>(v.row(o), v.scales(o), a.q(n), a.d(n), v.nb, 0)
                                       : dot_blocks_ref<false>(v.row(o), v.scales(o), a.q(n), a.d(n), v.nb, 0),
              beta);
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
