// Quantized linear layers (qmatmul.hpp). The kernels of the types with blocks of 32 (q8_0,
// q4_0, q4_1, q5_0, q5_1, iq4_nl) work on a strip of 16 weight rows and one block (32 columns)
// at a time: lane r of a 512-bit vector belongs to row r, and chunk k of the packed block holds
// values 4k..4k+3 of the 16 rows. dpbusd against the activation row's values 4k..4k+3,
// broadcast to every lane, adds 4 products to each row's lane, so 8 dpbusd leave the block's 16
// integer dot products in one vector; one convert, one multiply (row scales by the
// activation's scale) and one FMA add them to the rows' sums (one more FMA adds the mins of
// q4_1 / q5_1). No lane needs summing with another, and the weights of a block are loaded (and
// unpacked) once for up to 8 activation rows. The q8_0 / q4_0 layout before (4 rows x 4
// activation rows, each block spread over 4 lanes) ran the small preset's matrices at 110
// GMAC/s on one thread; this one at 175-184 (bench/qgemm_bench, N = 512).
// dpbusd multiplies unsigned by signed bytes: weights are the unsigned side (a level + off, see
// Kind below), so each block's sum over-counts by off * sum(activations); the activations carry
// -off * sum per block, which seeds the integer accumulator.
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
#include <type_traits>
#include <vector>

#include <omp.h>

#include "base/error.hpp"
#include "kernels/blas.hpp"
#include "kernels/kernels.hpp"
#include "base/cpu.hpp"
#include "kernels/simd.hpp"
#include "quant/kquant.hpp"
#include "quant/quant.hpp"
#include "quant/rules.hpp"

namespace lm::kernels {

using format::GgmlType;

namespace {

constexpr int QB = quant::kBlock;   // 32 values per block of the repacked types
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
//   q3_K from AVX2 up: always. Its tile (quant::vec_dot_tile, AVX-512 on VNNI) unpacks a
//        weight block once for 8 activation rows: qgemm_bench on the medium layer at 2 threads,
//        N = 8 / 64 / 512, 96-113 / 116 / 116-117 GMAC/s, against 47-50 / 56-63 / 84-94 before
//        (pairs to 32 rows, panels beyond).
//   iq4_xs on AVX-512 VNNI: always. Its AVX-512 tile at 2 threads on the medium layer, N = 8 /
//        64 / 128 / 256 / 512: 103 / 124 / 124 / 123 / 123 GMAC/s. Before, the AVX2 tile gave
//        68-79 / 67-86 at N = 8 / 64, and the panels 67 / 81 / 90 at N = 128 / 256 / 512.
//   q2_K, and iq4_xs off AVX-512 VNNI, from AVX2 up: to 64 rows (kDotMaxRowsAvx2Tile). Their
//        tiles are AVX2 walks: N = 8 and 64 gain (q2_K 65-74 / 79-85 against 45-66 / 54-61,
//        iq4_xs 68-79 / 67-86 against 34-47 / 42-50), but at N = 512 the panels stay ahead for
//        q2_K (91-94 against 80-83) and level for iq4_xs (77-90 against 79-83).
//   q4_K, q5_K, q6_K off AVX-512 VNNI (one pair at a time, about 52 GMAC/s for q5_K): up to 32
//        rows. N = 8 and 16 gained for every type and none lost at 32; q5_K N = 32: 52 / 49,
//        N = 64: 52 / 95.
constexpr int kDotMaxRows = 32, kDotMaxRowsAvx2Tile = 64, kDotMaxRowsTile = std::numeric_limits<int>::max();
static_assert(kRowBlock % kStrip == 0, "row blocks start on a strip");

size_t align64(size_t n) { return (n + 63) & ~size_t(63); }

// dst = s + beta * dst; with beta 0, dst is not read (it may hold anything, NaN included).
inline void store(float& dst, float s, float beta) { dst = beta == 0.0f ? s : s + beta * dst; }

// The types repacked into strips (pack_weight), and what their kernels need: a weight's value
// is lvl * d (+ m for the types with a min), lvl an integer level the kernels hold unsigned as
// lvl + off in a byte (so a block's sum over-counts by off * sum(activations), which the
// activations' seed takes back).
//   q8_0    lvl = q (-128..127), off 128; a byte per value.
//   q4_0    lvl = nibble - 8, off 8; iq4_nl: lvl = level[nibble] (-127..113), off 128, the
//           nibble looked up in the kernel (vpshufb); q4_1: lvl = nibble, off 0, and a min.
//   q5_0    lvl = q - 16 (q = nibble + 16 * fifth bit), off 16; q5_1: lvl = q, off 0, a min.
//           The fifth bits ride in 64-bit masks, one per chunk (bit 4r + i: row r, value i).
enum class Kind { Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL };
bool is_packed(GgmlType t) {
  switch (t) {
    case GgmlType::Q8_0: case GgmlType::Q4_0: case GgmlType::Q4_1: case GgmlType::Q5_0: case GgmlType::Q5_1:
    case GgmlType::IQ4_NL:
      return true;
    default:
      return false;
  }
}
Kind kind_of(GgmlType t) {
  switch (t) {
    case GgmlType::Q4_0: return Kind::Q4_0;
    case GgmlType::Q4_1: return Kind::Q4_1;
    case GgmlType::Q5_0: return Kind::Q5_0;
    case GgmlType::Q5_1: return Kind::Q5_1;
    case GgmlType::IQ4_NL: return Kind::IQ4_NL;
    default: return Kind::Q8_0;
  }
}
constexpr bool nibbles(Kind k) { return k != Kind::Q8_0; }
constexpr bool fifth_bit(Kind k) { return k == Kind::Q5_0 || k == Kind::Q5_1; }
constexpr bool has_min(Kind k) { return k == Kind::Q4_1 || k == Kind::Q5_1; }
// Kinds whose AVX2 product takes signed levels (|w| * (a with w's sign)) and no seed.
constexpr bool signed_avx2(Kind k) { return k == Kind::Q8_0 || k == Kind::IQ4_NL; }
constexpr int offset_of(Kind k) {
  return k == Kind::Q8_0 || k == Kind::IQ4_NL ? 128 : k == Kind::Q4_0 ? 8 : k == Kind::Q5_0 ? 16 : 0;
}
int offset_of(GgmlType t) { return offset_of(kind_of(t)); }
// Types with dot products against quantized activations (quant::vec_dot) that are not
// repacked: the K-quants and iq4_xs.
bool has_dot(GgmlType t) { return !is_packed(t) && quant::dot_activation_type(t) != GgmlType::F32; }

// Strips of 16 weight rows in `rows` rows (the last one padded).
int strips_of(int rows) { return (rows + kStrip - 1) / kStrip; }
// Bytes of quants per strip and block (512 values): a byte each (q8_0) or a nibble, and for
// q5_0 / q5_1 8 masks of fifth bits.
size_t tile_bytes(GgmlType t) {
  const Kind k = kind_of(t);
  return !nibbles(k) ? 512 : fifth_bit(k) ? 256 + 64 : 256;
}
// f16 values per strip and block: 16 scales, and 16 mins for q4_1 / q5_1.
int scales_per_tile(GgmlType t) { return has_min(kind_of(t)) ? 2 * kStrip : kStrip; }

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
bool g_allow_vnni = true, g_allow_avx2 = true;
bool use_vnni() { return g_allow_vnni && vnni_enabled(); }
bool use_avx2() { return g_allow_avx2 && avx2_enabled(); }

// 1 / d of an activation block, or 0 where it is 0 or past a float's range (amax below about
// 3.7e-37): the quants are then all 0 and the block adds nothing (its f16 scale is 0 too).
// x * inf would make them inf or NaN, whose conversion to int is undefined in C++ (the vector
// conversion gives INT_MIN, which the narrowing to bytes cuts to 0: the same bytes).
inline float inverse_scale(float db) {
  const float id = db != 0.0f ? 1.0f / db : 0.0f;
  return id <= std::numeric_limits<float>::max() ? id : 0.0f;
}

// ---- activations in q8_0 blocks ----

// One quantized activation row: quants in block order (signed), block scales (the f16-rounded
// value, as float), the seed -off * sum of each block's quants (off: the weight type's), and
// d * sum (for the mins of q4_1 / q5_1).
struct ActRows {
  int C = 0, nb = 0;
  size_t stride = 0;  // bytes per row
  uint8_t* base = nullptr;
  const int8_t* q(int n) const { return reinterpret_cast<const int8_t*>(base + size_t(n) * stride); }
  const float* d(int n) const { return reinterpret_cast<const float*>(base + size_t(n) * stride + align64(size_t(C))); }
  const int32_t* s(int n) const {
    return reinterpret_cast<const int32_t*>(base + size_t(n) * stride + align64(size_t(C)) + align64(size_t(nb) * 4));
  }
  const float* ds(int n) const {
    return reinterpret_cast<const float*>(base + size_t(n) * stride + align64(size_t(C)) + 2 * align64(size_t(nb) * 4));
  }
};

size_t act_stride(int C) { return align64(size_t(C)) + 3 * align64(size_t(C / QB) * 4); }

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
  float* ds = const_cast<float*>(a.ds(n));
  for (int b = 0; b < a.nb; ++b) {
    const float* xb = x + size_t(b) * QB;
    float amax = 0;
    for (int j = 0; j < QB; ++j) amax = std::max(amax, std::fabs(xb[j]));
    const float db = amax / 127.0f, id = inverse_scale(db);
    d[b] = quant::fp16_to_fp32(quant::fp32_to_fp16(db));
    int sum = 0;
    for (int j = 0; j < QB; ++j) {
      const int v = int(std::nearbyint(xb[j] * id));
      q[size_t(b) * QB + j] = int8_t(v);
      sum += v;
    }
    s[b] = -off * sum;
    ds[b] = d[b] * float(sum);
  }
}

__attribute__((target("avx512f,avx512bw,avx512vl,f16c"))) void quantize_act_row_avx512(const float* x,
                                                                                     const ActRows& a, int n,
                                                                                     int off) {
  int8_t* q = const_cast<int8_t*>(a.q(n));
  float* d = const_cast<float*>(a.d(n));
  int32_t* s = const_cast<int32_t*>(a.s(n));
  float* ds = const_cast<float*>(a.ds(n));
  for (int b = 0; b < a.nb; ++b) {
    const __m512 x0 = _mm512_loadu_ps(x + size_t(b) * QB), x1 = _mm512_loadu_ps(x + size_t(b) * QB + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(x0), _mm512_abs_ps(x1)));
    const float db = amax / 127.0f, id = inverse_scale(db);
    d[b] = _cvtsh_ss(_cvtss_sh(db, _MM_FROUND_TO_NEAREST_INT));
    const __m512 vid = _mm512_set1_ps(id);
    const __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(x0, vid));  // MXCSR default: nearest even
    const __m512i q1 = _mm512_cvtps_epi32(_mm512_mul_ps(x1, vid));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + size_t(b) * QB), _mm512_cvtepi32_epi8(q0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + size_t(b) * QB + 16), _mm512_cvtepi32_epi8(q1));
    const int sum = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
    s[b] = -off * sum;
    ds[b] = d[b] * float(sum);
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
// then per strip and block the 16 rows' f16 scales (and mins).
struct PackedView {
  const uint8_t* qs;
  const uint16_t* d;
  size_t tb;  // tile_bytes
  int nb, sc;  // sc: scales_per_tile
  const uint8_t* tile(int st, int b) const { return qs + (size_t(st) * nb + b) * tb; }
  const uint16_t* scales(int st, int b) const { return d + (size_t(st) * nb + b) * sc; }
  const uint16_t* mins(int st, int b) const { return scales(st, b) + kStrip; }
};

PackedView packed_view(const QWeight& W) {
  PackedView v;
  v.tb = tile_bytes(W.type);
  v.sc = scales_per_tile(W.type);
  v.nb = W.cols / QB;
  v.qs = static_cast<const uint8_t*>(W.data);
  v.d = reinterpret_cast<const uint16_t*>(v.qs + align64(v.tb * size_t(v.nb) * size_t(strips_of(W.rows))));
  return v;
}

// Where value j of a block of row r lies in its strip's tile: chunk k = j / 4 holds values
// 4k..4k+3 of the 16 rows, 4 bytes each. The nibble types' chunks k and k + 4 share bytes (low
// and high nibble), as the file's byte i holds values i and i + 16; their fifth bits are bit
// 4r + j % 4 of the 64-bit mask k after the nibbles.
template <Kind K>
size_t weight_pos(int r, int j) {
  const int k = j / 4;
  return size_t(nibbles(K) ? k % 4 : k) * 64 + size_t(r % kStrip) * 4 + size_t(j % 4);
}

// The integer level of value j of block b of row r.
template <Kind K>
int weight_level(const PackedView& W, int r, int b, int j) {
  const uint8_t* tile = W.tile(r / kStrip, b);
  const uint8_t w = tile[weight_pos<K>(r, j)];
  if (K == Kind::Q8_0) return int(w) - 128;
  int u = j < 16 ? (w & 0x0f) : (w >> 4);
  if (K == Kind::IQ4_NL) return quant::rules::kIq4Levels[u];
  if (fifth_bit(K)) {
    uint64_t mask;
    std::memcpy(&mask, tile + 256 + 8 * (j / 4), 8);
    u += int((mask >> ((r % kStrip) * 4 + j % 4)) & 1) << 4;
  }
  return u - offset_of(K);
}

float weight_scale(const PackedView& W, int r, int b) { return quant::fp16_to_fp32(W.scales(r / kStrip, b)[r % kStrip]); }
float weight_min(const PackedView& W, int r, int b) { return quant::fp16_to_fp32(W.mins(r / kStrip, b)[r % kStrip]); }

// Strip st against T activation rows t0..: out[16 t + r], in plain loops. Each row's sum runs
// over the blocks in order, float(block's integer sum) * (d_w * d_a) fused into it (and then
// m_w * (d_a * sum(a)) for the types with a min), as the vector kernels' lanes do, so every
// path gives the same bits.
template <Kind K>
void strip_ref(const PackedView& W, int st, const ActRows& a, int t0, int T, float* out) {
  for (int t = 0; t < T; ++t)
    for (int r = 0; r < kStrip; ++r) {
      const int row = st * kStrip + r;
      const int8_t* q = a.q(t0 + t);
      float sum = 0;
      for (int b = 0; b < W.nb; ++b) {
        int isum = 0;
        for (int j = 0; j < QB; ++j) isum += weight_level<K>(W, row, b, j) * int(q[size_t(b) * QB + j]);
        const float sc = weight_scale(W, row, b) * a.d(t0 + t)[b];
        sum = std::fma(float(isum), sc, sum);
        if (has_min(K)) sum = std::fma(weight_min(W, row, b), a.ds(t0 + t)[b], sum);
      }
      out[t * kStrip + r] = sum;
    }
}

inline int load_i32(const void* p) {
  int v;
  std::memcpy(&v, p, 4);
  return v;
}

// iq4_nl's 16 levels + 128 (unsigned, for dpbusd) and as they are (signed, for AVX2).
alignas(16) constexpr uint8_t kNlUnsigned[16] = {1, 24, 45, 63, 79, 93, 106, 118, 129, 141, 153, 166, 181, 197, 217, 241};
static_assert(kNlUnsigned[0] == quant::rules::kIq4Levels[0] + 128 && kNlUnsigned[15] == quant::rules::kIq4Levels[15] + 128);

// Strip st against T activation rows t0.. with AVX-512 VNNI: out[16 t + r], lane r of a vector
// for row r. Per block the strip's 8 chunks are loaded (and for the nibble types unpacked) once;
// each activation row broadcasts its 4 values of chunk k to all lanes, so 8 dpbusd leave the
// block's integer sums of 16 rows in one vector.
template <int T, Kind K>
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,f16c"))) void strip_vnni(const PackedView& W, int st,
                                                                                   const ActRows& a, int t0,
                                                                                   float* out) {
  const __m512i m4 = _mm512_set1_epi8(0x0f), sixteen = _mm512_set1_epi8(16);
  const __m512i lut = _mm512_broadcast_i32x4(_mm_load_si128(reinterpret_cast<const __m128i*>(kNlUnsigned)));
  __m512 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm512_setzero_ps();
#pragma GCC unroll 1
  for (int b = 0; b < W.nb; ++b) {
    const uint8_t* w = W.tile(st, b);
    __m512i wk[8];
    if (nibbles(K)) {
      for (int c = 0; c < 4; ++c) {
        const __m512i v = _mm512_loadu_si512(w + 64 * c);
        wk[c] = _mm512_and_si512(v, m4);
        wk[c + 4] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
      }
      for (int k = 0; k < 8; ++k) {
        if (K == Kind::IQ4_NL) wk[k] = _mm512_shuffle_epi8(lut, wk[k]);
        if (fifth_bit(K)) {
          uint64_t bits;
          std::memcpy(&bits, w + 256 + 8 * k, 8);
          wk[k] = _mm512_mask_add_epi8(wk[k], _cvtu64_mask64(bits), wk[k], sixteen);
        }
      }
    } else {
      for (int k = 0; k < 8; ++k) wk[k] = _mm512_loadu_si512(w + 64 * k);
    }
    const __m512 sw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(W.scales(st, b))));
    const __m512 mw = has_min(K) ? _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(W.mins(st, b))))
                                 : _mm512_setzero_ps();
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
      if (has_min(K)) acc[t] = _mm512_fmadd_ps(mw, _mm512_set1_ps(a.ds(t0 + t)[b]), acc[t]);
    }
  }
  for (int t = 0; t < T; ++t) _mm512_storeu_ps(out + kStrip * t, acc[t]);
}

// The same lanes with AVX2 (CPUs without VNNI), rows 0-7 and 8-15 of the strip in two halves.
// maddubs multiplies unsigned by signed bytes into saturating int16 pairs: unsigned levels
// (<= 31) cannot saturate; q8_0 and iq4_nl take signed levels, multiplied as |w| * (a with w's
// sign) as ggml does, so they take no seed.
template <Kind K>
__attribute__((target("avx2,fma,f16c"))) void strip_avx2(const PackedView& W, int st, const ActRows& a, int t0, int T,
                                                         float* out) {
  const __m256i m4 = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1), flip = _mm256_set1_epi8(char(0x80));
  const __m256i lut = _mm256_xor_si256(
      _mm256_broadcastsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(kNlUnsigned))), flip);
  // Bit i of a 32-bit mask to byte i: byte i takes mask byte i / 8, then tests bit i % 8.
  const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3,
                                          3, 3, 3, 3, 3, 3, 3);
  const __m256i bit = _mm256_set1_epi64x(int64_t(0x8040201008040201));
  const __m256i sixteen = _mm256_set1_epi8(16);
  for (int t = 0; t < T; ++t)
    for (int h = 0; h < 2; ++h) {
      __m256 acc = _mm256_setzero_ps();
      for (int b = 0; b < W.nb; ++b) {
        const uint8_t* tile = W.tile(st, b);
        const uint8_t* w = tile + 32 * h;
        const int8_t* q = a.q(t0 + t) + size_t(b) * QB;
        __m256i i = signed_avx2(K) ? _mm256_setzero_si256() : _mm256_set1_epi32(a.s(t0 + t)[b]);
        for (int k = 0; k < 8; ++k) {
          const __m256i ak = _mm256_set1_epi32(load_i32(q + 4 * k));
          __m256i p;
          if (!nibbles(K)) {
            const __m256i ws = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 64 * k)), flip);
            p = _mm256_maddubs_epi16(_mm256_sign_epi8(ws, ws), _mm256_sign_epi8(ak, ws));
          } else {
            const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 64 * (k % 4)));
            __m256i u = k < 4 ? _mm256_and_si256(v, m4) : _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
            if (K == Kind::IQ4_NL) {
              const __m256i ws = _mm256_shuffle_epi8(lut, u);
              p = _mm256_maddubs_epi16(_mm256_sign_epi8(ws, ws), _mm256_sign_epi8(ak, ws));
            } else {
              if (fifth_bit(K)) {
                const __m256i m = _mm256_shuffle_epi8(_mm256_set1_epi32(load_i32(tile + 256 + 8 * k + 4 * h)), spread);
                u = _mm256_or_si256(u, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(m, bit), bit), sixteen));
              }
              p = _mm256_maddubs_epi16(u, ak);
            }
          }
          i = _mm256_add_epi32(i, _mm256_madd_epi16(p, ones));
        }
        const __m256 sw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(W.scales(st, b) + 8 * h)));
        const __m256 sc = _mm256_mul_ps(sw, _mm256_set1_ps(a.d(t0 + t)[b]));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i), sc, acc);
        if (has_min(K)) {
          const __m256 mw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(W.mins(st, b) + 8 * h)));
          acc = _mm256_fmadd_ps(mw, _mm256_set1_ps(a.ds(t0 + t)[b]), acc);
        }
      }
      _mm256_storeu_ps(out + kStrip * t + 8 * h, acc);
    }
}

template <Kind K>
void run_strip(const PackedView& W, int st, const ActRows& a, int t0, int T, float* out) {
  if (use_vnni()) {
    switch (T) {
      case 1: strip_vnni<1, K>(W, st, a, t0, out); break;
      case 2: strip_vnni<2, K>(W, st, a, t0, out); break;
      case 3: strip_vnni<3, K>(W, st, a, t0, out); break;
      case 4: strip_vnni<4, K>(W, st, a, t0, out); break;
      case 5: strip_vnni<5, K>(W, st, a, t0, out); break;
      case 6: strip_vnni<6, K>(W, st, a, t0, out); break;
      case 7: strip_vnni<7, K>(W, st, a, t0, out); break;
      default: strip_vnni<8, K>(W, st, a, t0, out); break;
    }
  } else if (use_avx2()) {
    strip_avx2<K>(W, st, a, t0, T, out);
  } else {
    strip_ref<K>(W, st, a, t0, T, out);
  }
}

// Rows o0..o1 of y (o0 on a strip) for all N activation rows, 8 at a time: each chunk of
// activation rows goes over the block's strips, whose weights stay in cache.
template <Kind K>
void packed_rows(float* y, const PackedView& W, const ActRows& a, int N, int OC, int o0, int o1, float beta) {
  float out[kBatchRows * kStrip];
  for (int t0 = 0; t0 < N; t0 += kBatchRows) {
    const int T = std::min(kBatchRows, N - t0);
    for (int r0 = o0; r0 < o1; r0 += kStrip) {
      run_strip<K>(W, r0 / kStrip, a, t0, T, out);
      const int R = std::min(kStrip, o1 - r0);
      for (int t = 0; t < T; ++t) {
        float* yt = y + size_t(t0 + t) * OC + r0;
        const float* ot = out + t * kStrip;
        if (beta == 0.0f)
          std::memcpy(yt, ot, sizeof(float) * size_t(R));
        else
          for (int r = 0; r < R; ++r) store(yt[r], ot[r], beta);
      }
    }
  }
}

// f(std::integral_constant<Kind, K>) for W's kind.
template <typename F>
void with_kind(GgmlType t, const F& f) {
  switch (kind_of(t)) {
    case Kind::Q8_0: f(std::integral_constant<Kind, Kind::Q8_0>()); break;
    case Kind::Q4_0: f(std::integral_constant<Kind, Kind::Q4_0>()); break;
    case Kind::Q4_1: f(std::integral_constant<Kind, Kind::Q4_1>()); break;
    case Kind::Q5_0: f(std::integral_constant<Kind, Kind::Q5_0>()); break;
    case Kind::Q5_1: f(std::integral_constant<Kind, Kind::Q5_1>()); break;
    case Kind::IQ4_NL: f(std::integral_constant<Kind, Kind::IQ4_NL>()); break;
  }
}

void packed_block(float* y, const QWeight& W, const ActRows& a, int N, int o0, int o1, float beta) {
  const PackedView v = packed_view(W);
  with_kind(W.type, [&](auto k) { packed_rows<decltype(k)::value>(y, v, a, N, W.rows, o0, o1, beta); });
}

// ---- types with quant::vec_dot: activations in q8_K ----

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
  // q4_K, q5_K, q6_K: the tile is AVX-512 VNNI code; elsewhere they compute a pair at a time.
  // q3_K: tiles from AVX2 up, for every batch; iq4_xs too on AVX-512 VNNI. q2_K, and iq4_xs
  // on AVX2: tiles to 64 rows.
  const quant::DotPath path = quant::dot_path();
  if ((t == GgmlType::Q4_K || t == GgmlType::Q5_K || t == GgmlType::Q6_K) && path == quant::DotPath::Avx512Vnni)
    return kDotMaxRowsTile;
  if (t == GgmlType::Q3_K && path >= quant::DotPath::Avx2) return kDotMaxRowsTile;
  if (t == GgmlType::IQ4_XS && path == quant::DotPath::Avx512Vnni) return kDotMaxRowsTile;
  if ((t == GgmlType::Q2_K || t == GgmlType::IQ4_XS) && path >= quant::DotPath::Avx2) return kDotMaxRowsAvx2Tile;
  return kDotMaxRows;
}
bool use_kdot(const QWeight& W, int N) { return has_dot(W.type) && N <= dot_max_rows(W.type); }

}  // namespace

void enable_vnni(bool on) { g_allow_vnni = on; }
void enable_avx2(bool on) { g_allow_avx2 = on; }

size_t packed_size(GgmlType t, int rows, int cols) {
  if (!is_packed(t)) return quant::row_size(t, size_t(cols)) * size_t(rows);
  const size_t tiles = size_t(strips_of(rows)) * size_t(cols / QB);
  return align64(tiles * tile_bytes(t)) + tiles * size_t(scales_per_tile(t)) * 2;
}

void pack_weight(GgmlType t, const void* src, int rows, int cols, void* dst) {
  const size_t in_row = quant::row_size(t, size_t(cols));
  if (!is_packed(t)) {
    std::memcpy(dst, src, in_row * size_t(rows));
    return;
  }
  const size_t in_block = in_row / size_t(cols / QB);  // cols is a multiple of QB
  QWeight W{t, rows, cols, dst};
  const PackedView v = packed_view(W);
  const Kind kind = kind_of(t);
  // Where the block's f16 d, min, qh and nibbles are (ggml's block structs).
  const size_t at_m = 2, at_qh = has_min(kind) ? 4 : 2, at_qs = at_qh + (fifth_bit(kind) ? 4 : 0);
  const int ns = strips_of(rows);
  const auto* in = static_cast<const uint8_t*>(src);
#pragma omp parallel for schedule(static) if (size_t(rows) * cols >= kParallelMin)
  for (int st = 0; st < ns; ++st) {
    // A strip's tiles from zero (no fifth bits). The padding rows of the last strip keep
    // these bytes (nibble 0, or q8_0's level 0) and scale 0, so their lanes add 0 and are not
    // stored.
    auto* tiles = const_cast<uint8_t*>(v.tile(st, 0));
    if (nibbles(kind)) {
      std::memset(tiles, 0, v.tb * size_t(v.nb));
    } else {
      std::memset(tiles, 0x80, v.tb * size_t(v.nb));
    }
    std::memset(const_cast<uint16_t*>(v.scales(st, 0)), 0, size_t(v.nb) * size_t(v.sc) * 2);
    for (int r = st * kStrip; r < std::min(rows, (st + 1) * kStrip); ++r) {
      const uint8_t* row = in + size_t(r) * in_row;
      for (int b = 0; b < v.nb; ++b) {
        const uint8_t* blk = row + size_t(b) * in_block;
        uint8_t* tile = const_cast<uint8_t*>(v.tile(st, b));
        std::memcpy(const_cast<uint16_t*>(v.scales(st, b)) + r % kStrip, blk, 2);
        if (has_min(kind)) std::memcpy(const_cast<uint16_t*>(v.mins(st, b)) + r % kStrip, blk + at_m, 2);
        if (!nibbles(kind)) {
          for (int j = 0; j < QB; ++j) tile[weight_pos<Kind::Q8_0>(r, j)] = uint8_t(blk[2 + j] ^ 0x80);
          continue;
        }
        // The file's nibble byte i holds values i and i + 16: chunks k and k + 4, 4 bytes each.
        for (int k = 0; k < 4; ++k) std::memcpy(tile + weight_pos<Kind::Q4_0>(r, 4 * k), blk + at_qs + 4 * k, 4);
        if (fifth_bit(kind)) {
          uint32_t qh;
          std::memcpy(&qh, blk + at_qh, 4);
          for (int j = 0; j < QB; ++j)
            if ((qh >> j) & 1) tile[256 + 8 * (j / 4) + ((r % kStrip) * 4 + j % 4) / 8] |= uint8_t(1u << (((r % kStrip) * 4 + j % 4) % 8));
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
  with_kind(W.type, [&](auto k) {
    constexpr Kind K = decltype(k)::value;
    for (int b = 0; b < v.nb; ++b) {
      const float d = weight_scale(v, row, b);
      if (has_min(K)) {
        const float m = weight_min(v, row, b);
        for (int j = 0; j < QB; ++j) out[size_t(b) * QB + j] = float(weight_level<K>(v, row, b, j)) * d + m;
      } else {
        for (int j = 0; j < QB; ++j) out[size_t(b) * QB + j] = d * float(weight_level<K>(v, row, b, j));
      }
    }
  });
}

size_t qmatmul_scratch(const QWeight& W, int N) {
  if (W.type == GgmlType::F32) return 0;
  if (is_packed(W.type)) return act_stride(W.cols) * size_t(N);
  if (use_kdot(W, N)) return align64(act_row(W.type, W.cols) * size_t(N));
  // At least what any shorter batch takes (a type that takes panels takes dot products up to
  // dot_max_rows() rows), so sizing for the longest batch covers them all.
  return std::max(size_t(std::min(kPanel, W.rows)) * size_t(W.cols) * sizeof(float),
                  align64(act_row(W.type, W.cols) * size_t(dot_max_rows(W.type))));
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
    with_kind(W.type, [&](auto k) {
      for (int n = 0; n < N; ++n)
        for (int o = 0; o < OC; o += kStrip) {
          float out[kStrip];
          strip_ref<decltype(k)::value>(v, o / kStrip, a, n, 1, out);
          for (int r = 0; r < std::min(kStrip, OC - o); ++r) store(y[size_t(n) * OC + o + r], out[r], beta);
        }
    });
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
