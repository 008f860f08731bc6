// Inference speed of lm's Session on random-weight models of the PERFORMANCE.md presets, in
// llama-bench's terms: pp512 (a 512-token prompt in one batch) and tg128 (128 tokens decoded one
// at a time from an empty cache, as llama-bench runs it), and tg128 after the 512-token prompt, tokens/s as median [min-max] over `reps` runs, with llama.cpp's F32
// figures from PERFORMANCE.md section 3 (same machine, llama-bench -t 2 -p 512 -n 128 -r 5)
// printed beside them as the ratio. Weight GB/s = F32 weight bytes x tg tokens/s.
// Usage: generate_bench [tiny|small|medium] [reps] [threads]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "kernels/blas.hpp"
#include "model/model.hpp"
#include "model/session.hpp"

using namespace lm;

int main(int argc, char** argv) {
  const std::string name = argc > 1 ? argv[1] : "small";
  const int reps = argc > 2 ? std::atoi(argv[2]) : 5;
  const int threads = kernels::set_threads(argc > 3 ? std::atoi(argv[3]) : 2);
  model::ModelConfig cfg = model::preset(name);
  cfg.n_ctx = std::max(cfg.n_ctx, 640);  // llama-bench's context is p + n, beyond tiny's 256
  // llama.cpp F32, 2 threads: pp512 and tg128 medians (PERFORMANCE.md section 3).
  const double ref_pp = name == "tiny" ? 19788 : name == "small" ? 7354 : 1131;
  const double ref_tg = name == "tiny" ? 2718 : name == "small" ? 771 : 113.1;
  model::Params p(cfg, false);
  Rng rng(1);
  p.init(rng);
  model::Session s(p, cfg.n_ctx, 512);
  std::vector<int> prompt(512);
  for (int& t : prompt) t = int(rng.below(uint64_t(cfg.n_vocab)));
  std::printf("%s: %zu parameters, %.1f MiB F32, %d threads, OpenBLAS core %s\n", name.c_str(), cfg.n_params(),
              double(cfg.n_params()) * 4 / (1 << 20), threads, kernels::blas_info().core.c_str());
  using clock = std::chrono::steady_clock;
  std::vector<double> pp, tg, tg_after;
  for (int r = 0; r < reps + 1; ++r) {  // the first run warms up
    s.keep(0);
    auto t0 = clock::now();
    const float* logits = s.eval(prompt.data(), 512);
    const double pps = 512 / std::chrono::duration<double>(clock::now() - t0).count();
    int next = int(std::max_element(logits, logits + cfg.n_vocab) - logits);
    auto decode = [&] {
      const auto t = clock::now();
      for (int i = 0; i < 128; ++i) {
        logits = s.eval(&next, 1);
        next = int(std::max_element(logits, logits + cfg.n_vocab) - logits);
      }
      return 128 / std::chrono::duration<double>(clock::now() - t).count();
    };
    const double after = decode();  // positions 512..639
    s.keep(0);
    const double tgs = decode();    // positions 0..127
    if (r > 0) pp.push_back(pps), tg.push_back(tgs), tg_after.push_back(after);
  }
  std::sort(pp.begin(), pp.end());
  std::sort(tg.begin(), tg.end());
  std::sort(tg_after.begin(), tg_after.end());
  const double mpp = pp[pp.size() / 2], mtg = tg[tg.size() / 2];
  std::printf("pp512 %.0f tok/s [%.0f-%.0f]  llama.cpp %.0f  ratio %.2fx\n", mpp, pp.front(), pp.back(), ref_pp,
              mpp / ref_pp);
  std::printf("tg128 %.1f tok/s [%.1f-%.1f]  llama.cpp %.1f  ratio %.2fx  weights %.1f GB/s\n", mtg, tg.front(),
              tg.back(), ref_tg, mtg / ref_tg, mtg * double(cfg.n_params()) * 4 / 1e9);
  std::printf("tg128 after pp512 %.1f tok/s [%.1f-%.1f]\n", tg_after[tg_after.size() / 2], tg_after.front(),
              tg_after.back());
  return 0;
}
