// K-quant dot products as decoding runs them: one q8_K activation row against every row of a
// q4_K, q6_K, q2_K, q3_K, q5_K or iq4_xs weight matrix, one thread, as GB/s of weight bytes
// read, for each path (AVX-512 VNNI, AVX2, portable) and the `_ref` twin. The bar is STREAM
// read: 35 GB/s on one thread (bench/README.md). "32000x1024 x4" cycles through four copies of
// the matrix, so no pass finds the previous one's bytes in the cache.
// Usage: kquant_bench [reps]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "base/rng.hpp"
#include "quant/kquant.hpp"

using namespace lm::quant;

namespace {

using DotFn = float (*)(const void*, const void*, size_t);

struct Type {
  const char* name;
  size_t block_bytes;
  void (*quantize)(const float*, void*, size_t);
  DotFn dot, dot_ref;
};

// rows x C weights, N(0, 0.02): 1024 distinct rows quantized, then repeated (quantizing all of
// them with the reference rules would take longer than the benchmark).
std::vector<uint8_t> make_matrix(const Type& t, int rows, int C, lm::Rng& rng) {
  const size_t row_bytes = size_t(C) / kSuperBlock * t.block_bytes;
  const int distinct = std::min(rows, 1024);
  std::vector<float> w(size_t(distinct) * C);
  for (float& v : w) v = 0.02f * rng.normal();
  std::vector<uint8_t> q(size_t(rows) * row_bytes);
  t.quantize(w.data(), q.data(), w.size());
  for (int r = distinct; r < rows; ++r)
    std::memcpy(q.data() + size_t(r) * row_bytes, q.data() + size_t(r % distinct) * row_bytes, row_bytes);
  return q;
}

}  // namespace

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::atoi(argv[1]) : 15;
  const Type types[] = {{"q4_K", sizeof(BlockQ4_K), quantize_q4_K, vec_dot_q4_K_q8_K, vec_dot_q4_K_q8_K_ref},
                        {"q6_K", sizeof(BlockQ6_K), quantize_q6_K, vec_dot_q6_K_q8_K, vec_dot_q6_K_q8_K_ref},
                        {"q2_K", sizeof(BlockQ2_K), quantize_q2_K, vec_dot_q2_K_q8_K, vec_dot_q2_K_q8_K_ref},
                        {"q3_K", sizeof(BlockQ3_K), quantize_q3_K, vec_dot_q3_K_q8_K, vec_dot_q3_K_q8_K_ref},
                        {"q5_K", sizeof(BlockQ5_K), quantize_q5_K, vec_dot_q5_K_q8_K, vec_dot_q5_K_q8_K_ref},
                        {"iq4_xs", sizeof(BlockIQ4_XS), quantize_iq4_xs, vec_dot_iq4_xs_q8_K, vec_dot_iq4_xs_q8_K_ref}};
  struct Shape {
    int rows, C, copies;
  };
  // The last: a qwen2-0.5B ffn_down (896 x 4864), the K-quant matrix of its files.
  const Shape shapes[] = {{32000, 1024, 1}, {32000, 1024, 4}, {2048, 1024, 1}, {896, 4864, 1}};
  lm::Rng rng(1);
  const DotPath best = dot_path();
  std::printf("best path on this CPU: %s\n", best == DotPath::Avx512Vnni ? "AVX-512 VNNI" : best == DotPath::Avx2 ? "AVX2" : "portable");
  for (const Type& t : types) {
    for (const Shape& s : shapes) {
      std::vector<std::vector<uint8_t>> W;
      for (int c = 0; c < s.copies; ++c) W.push_back(make_matrix(t, s.rows, s.C, rng));
      std::vector<float> x(size_t(s.C));
      for (float& v : x) v = rng.normal();
      std::vector<uint8_t> y(size_t(s.C) / kSuperBlock * sizeof(BlockQ8_K));
      quantize_q8_K(x.data(), y.data(), size_t(s.C));
      const size_t row_bytes = size_t(s.C) / kSuperBlock * t.block_bytes, bytes = W[0].size();
      std::vector<float> out(size_t(s.rows)), first;
      double ms_fast = 0;
      for (int variant = 0; variant < 4; ++variant) {  // AVX-512, AVX2, portable, _ref
        if (variant < 3 && DotPath(2 - variant) > best) continue;
        limit_dot_path(DotPath(std::max(0, 2 - variant)));
        const DotFn dot = variant == 3 ? t.dot_ref : t.dot;
        const int n_reps = variant >= 2 ? std::max(3, reps / 5) : reps;  // the slow ones: fewer
        std::vector<double> secs;
        for (int r = 0; r < n_reps + 1; ++r) {
          const uint8_t* m = W[size_t(r) % W.size()].data();
          const auto t0 = std::chrono::steady_clock::now();
          for (int i = 0; i < s.rows; ++i) out[size_t(i)] = dot(m + size_t(i) * row_bytes, y.data(), size_t(s.C));
          const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          if (r) secs.push_back(sec);  // the first pass warms up
        }
        // Every path must give the same products (up to float summation order).
        if (first.empty()) first = out;
        double max_rel = 0;
        for (size_t i = 0; i < out.size(); ++i)
          max_rel = std::max(max_rel, std::fabs(double(out[i]) - first[i]) / (std::fabs(double(first[i])) + 1e-3));
        std::sort(secs.begin(), secs.end());
        const double med = secs[secs.size() / 2];
        if (variant == 0 || (variant == 1 && ms_fast == 0)) ms_fast = med * 1e3;
        static const char* const names[] = {"AVX-512 VNNI", "AVX2", "portable", "_ref"};
        std::printf("%s %5dx%d%s %-13s %7.2f ms %6.1f GB/s [%.1f-%.1f] %5.2fx of fastest, max rel diff %.1e\n", t.name,
                    s.rows, s.C, s.copies > 1 ? " x4" : "   ", names[variant], med * 1e3, double(bytes) / med / 1e9,
                    double(bytes) / secs.back() / 1e9, double(bytes) / secs.front() / 1e9, ms_fast / (med * 1e3), max_rel);
      }
    }
  }
  limit_dot_path(DotPath::Avx512Vnni);
  return 0;
}
