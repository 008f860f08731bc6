// Decoding's quantized matrix-vector product at the medium preset's shapes (one layer's seven
// matrices x 12 and the 32000 x 768 head), as GB/s of packed weights read per token, for q8_0
// and q4_0 through qmatmul_forward (VNNI and AVX2 paths), at 1 and 2 threads. The bar is
// the STREAM read of docs/performance.md (the machine): 35 GB/s on 1 thread, 68 on 2.
// Usage: qgemv_bench [reps]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "base/memory.hpp"
#include "base/rng.hpp"
#include "kernels/blas.hpp"
#include "kernels/qmatmul.hpp"
#include "kernels/simd.hpp"
#include "quant/quant.hpp"

using namespace lm::kernels;
using lm::format::GgmlType;

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::atoi(argv[1]) : 20;
  struct Shape {
    int C, OC;
  };
  std::vector<Shape> shapes;
  for (int l = 0; l < 12; ++l)
    for (Shape s : {Shape{768, 768}, {768, 768}, {768, 768}, {768, 768}, {768, 2048}, {768, 2048}, {2048, 768}})
      shapes.push_back(s);
  shapes.push_back({768, 32000});
  lm::Rng rng(1);
  std::vector<float> x(2048), y(32000);
  for (float& v : x) v = rng.normal();
  for (GgmlType t : {GgmlType::Q8_0, GgmlType::Q4_0}) {
    std::vector<lm::LargeVector<uint8_t>> bufs;
    std::vector<QWeight> W;
    size_t bytes = 0, scratch_bytes = 0;
    for (const Shape& s : shapes) {
      std::vector<float> w(size_t(s.C) * s.OC);
      for (float& v : w) v = 0.02f * rng.normal();
      const size_t rb = lm::quant::row_size(t, size_t(s.C));
      std::vector<uint8_t> file(rb * size_t(s.OC));
      for (int r = 0; r < s.OC; ++r) lm::quant::quantize_row(t, w.data() + size_t(r) * s.C, file.data() + r * rb, size_t(s.C));
      bufs.emplace_back(packed_size(t, s.OC, s.C));
      pack_weight(t, file.data(), s.OC, s.C, bufs.back().data());
      W.push_back({t, s.OC, s.C, bufs.back().data()});
      bytes += bufs.back().size();
      scratch_bytes = std::max(scratch_bytes, qmatmul_scratch(W.back(), 1));
    }
    lm::LargeVector<uint8_t> scratch(scratch_bytes);
    std::printf("%s: %.1f MiB of weights per pass\n", lm::format::ggml_type_info(t).name, double(bytes) / (1 << 20));
    for (int threads : {1, 2}) {
      set_threads(threads);
      for (bool vnni : {true, false}) {
        enable_vnni(vnni);
        std::vector<double> gbs;
        for (int r = 0; r < reps + 1; ++r) {
          const auto t0 = std::chrono::steady_clock::now();
          for (const QWeight& w : W) qmatmul_forward(y.data(), x.data(), w, 1, 0.0f, scratch.data());
          const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          if (r) gbs.push_back(double(bytes) / s / 1e9);
        }
        std::sort(gbs.begin(), gbs.end());
        std::printf("%dT %-5s %6.1f GB/s [%.1f-%.1f]\n", threads, vnni ? "VNNI" : "AVX2", gbs[gbs.size() / 2], gbs.front(),
                    gbs.back());
      }
      enable_vnni(true);
    }
  }
  return 0;
}
