// The q8_0 / q4_0 integer tile kernels on batches of rows: a decoding step of 8 sequences
// (N = 8), a prompt chunk (N = 64) and pp512 (N = 512), over one layer's matrices of the small
// (384 columns) and medium (768) presets and their heads, on one thread and two. Prints the
// multiply-adds per second (GMAC/s, median [min-max] of `reps` timed passes after a warm-up). A
// pass repeats the products for at least 20 ms: one layer's products at N = 8 take tens of
// microseconds, where a pass of one repetition timed the threads' wake-up more than the kernel
// (two threads read slower than one).
// One core's VNNI peak for comparison: bench/dot_throughput_bench (int8 quads, GFLOP/s / 2).
// Usage: qgemm_bench [reps] [small|medium|small-layer|small-head|medium-layer|all] [TYPE,...]
//   (without a name, or with `all`: small and medium; types default to q8_0,q4_0; f32 runs sgemm)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "base/memory.hpp"
#include "base/rng.hpp"
#include "kernels/blas.hpp"
#include "kernels/qmatmul.hpp"
#include "quant/quant.hpp"

using namespace lm::kernels;
using lm::format::GgmlType;

namespace {

struct Shape {
  int C, OC;
};

struct Model {
  const char* name;
  std::vector<Shape> shapes;  // one layer (q, k, v, o, gate, up, down) and the head
};

}  // namespace

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::max(1, std::atoi(argv[1])) : 7;
  const std::vector<Model> models = {
      {"small", {{384, 384}, {384, 384}, {384, 384}, {384, 384}, {384, 1024}, {384, 1024}, {1024, 384}, {384, 8192}}},
      {"medium", {{768, 768}, {768, 768}, {768, 768}, {768, 768}, {768, 2048}, {768, 2048}, {2048, 768}, {768, 32000}}},
      // The presets' parts, by name only: their layer matrices, and the small head alone.
      {"small-layer", {{384, 384}, {384, 384}, {384, 384}, {384, 384}, {384, 1024}, {384, 1024}, {1024, 384}}},
      {"small-head", {{384, 8192}}},
      {"medium-layer", {{768, 768}, {768, 768}, {768, 768}, {768, 768}, {768, 2048}, {768, 2048}, {2048, 768}}},
  };
  const std::string only = argc > 2 && std::string(argv[2]) != "all" ? argv[2] : "";
  std::vector<GgmlType> types;
  for (std::string list = argc > 3 ? argv[3] : "q8_0,q4_0"; !list.empty();) {
    const size_t comma = list.find(',');
    const std::string name = list.substr(0, comma);
    list = comma == std::string::npos ? "" : list.substr(comma + 1);
    bool found = false;
    for (int t = 0; t < 64 && !found; ++t) {
      const lm::format::GgmlTypeInfo* info = lm::format::ggml_type_info(uint32_t(t));
      if (info && name == info->name) types.push_back(GgmlType(t)), found = true;
    }
    if (!found) {
      std::fprintf(stderr, "qgemm_bench: unknown type '%s'\n", name.c_str());
      return 2;
    }
  }
  lm::Rng rng(1);
  for (const Model& m : models) {
    if (only.empty() ? std::string(m.name).find('-') != std::string::npos : only != m.name) continue;
    for (GgmlType t : types) {
      std::vector<lm::LargeVector<uint8_t>> bufs;
      std::vector<QWeight> W;
      size_t macs_per_row = 0, max_c = 0, max_oc = 0;
      for (const Shape& s : m.shapes) {
        std::vector<float> w(size_t(s.C) * s.OC);
        for (float& v : w) v = 0.02f * rng.normal();
        const size_t rb = lm::quant::row_size(t, size_t(s.C));
        std::vector<uint8_t> file(rb * size_t(s.OC));
        if (t == GgmlType::F32)
          std::memcpy(file.data(), w.data(), file.size());
        else
          for (int r = 0; r < s.OC; ++r)
            lm::quant::quantize_row(t, w.data() + size_t(r) * s.C, file.data() + r * rb, size_t(s.C));
        bufs.emplace_back(packed_size(t, s.OC, s.C));
        pack_weight(t, file.data(), s.OC, s.C, bufs.back().data());
        W.push_back({t, s.OC, s.C, bufs.back().data()});
        macs_per_row += size_t(s.C) * size_t(s.OC);
        max_c = std::max(max_c, size_t(s.C));
        max_oc = std::max(max_oc, size_t(s.OC));
      }
      for (int N : {1, 4, 8, 16, 32, 64, 128, 256, 512}) {
        lm::LargeVector<float> x(size_t(N) * max_c), y(size_t(N) * max_oc);  // aligned as Session's buffers
        for (float& v : x) v = rng.normal();
        size_t scratch_bytes = 0;
        for (const QWeight& w : W) scratch_bytes = std::max(scratch_bytes, qmatmul_scratch(w, N));
        lm::LargeVector<uint8_t> scratch(scratch_bytes);
        for (int threads : {1, 2}) {
          set_threads(threads);
          std::vector<double> rates;
          int iters = 1;  // set by the warm-up pass
          for (int r = 0; r < reps + 1; ++r) {
            const auto t0 = std::chrono::steady_clock::now();
            for (int i = 0; i < iters; ++i)
              for (const QWeight& w : W) qmatmul_forward(y.data(), x.data(), w, N, 0.0f, scratch.data());
            const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            if (r) rates.push_back(double(macs_per_row) * N * iters / s / 1e9);
            else iters = std::max(1, int(0.02 / std::max(s, 1e-7)));
          }
          std::sort(rates.begin(), rates.end());
          std::printf("%-11s %-4s N=%-3d %dT %7.1f GMAC/s [%.1f-%.1f]\n", m.name, lm::format::ggml_type_info(t).name, N,
                      threads, rates[rates.size() / 2], rates.front(), rates.back());
        }
      }
    }
  }
  return 0;
}
