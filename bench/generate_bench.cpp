// Inference speed of lm's Session on random-weight models of the presets, in
// llama-bench's terms: pp512 (a 512-token prompt in one batch) and tg128 (128 tokens decoded one
// at a time from an empty cache, as llama-bench runs it), and tg128 after the 512-token prompt, tokens/s as median [min-max] over `reps` runs, with llama.cpp's F32
// figures from docs/performance.md, reference figures (same machine, llama-bench -t 2 -p 512 -n 128 -r 5)
// printed beside them as the ratio. Weight GB/s = weight bytes x tg tokens/s.
// With a type (q8_0, q4_0, q4_k, q6_k) the matrices are quantized in memory the way
// lm-quantize types them for a tied model (q4_0 and the K-quants put the head in q6_K, q8_0
// keeps it q8_0), and the ratio is against llama.cpp's figure for that type where
// docs/performance.md has one.
// Decoding is bound by memory bandwidth: the bench prints the bytes a decoded token reads (every
// matrix, the embeddings only when they are the output layer) and a read test of a 1 GiB buffer
// at the same thread count in the same run, with tg128's weight reads as a share of it. The
// read test is a plain sum of 64-byte loads; the decoding kernels read faster than it here (see
// bench/README.md), so it is a reference, not a bound.
// The LSTM presets (lstm-tiny, lstm-small, lstm-medium; docs/lstm.md) run random F32 LSTMs.
// Usage: generate_bench [tiny|small|medium|lstm-*] [reps] [threads] [f32|q8_0|q4_0|q4_k|q6_k]
//        generate_bench MODEL.gguf [reps] [threads]     a model file, as llama-bench reads it
//        generate_bench --write PRESET VOCAB.gguf OUT.gguf
//            writes a random-weight F32 llama model of the preset's shape with VOCAB's tokenizer
//            (the files bench/vs_llama.sh compares on); an lstm-* preset writes an LSTM
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "kernels/blas.hpp"
#include "kernels/simd.hpp"
#include "format/gguf.hpp"
#include "model/model.hpp"
#include "model/model_io.hpp"
#include "model/tokenizer_loader.hpp"
#include "model/session.hpp"
#include "model/weights.hpp"
#include "train/run.hpp"

using namespace lm;

namespace {

model::LstmConfig lstm_preset(const std::string& name, int n_vocab) {
  train::ModelShape shape;
  shape.arch = "lstm";
  shape.preset = name;
  return train::make_lstm_config(shape, n_vocab);
}

// GB/s of a read of a 1 GiB buffer on the OpenMP threads (the best of 3 passes): 64-byte loads
// from 8 rows of 16 KiB at once, as the decoding kernels read 8 or more rows of a matrix
// together (one stream per thread reads markedly slower here), into integer accumulators (the
// default build targets SSE2 only, whose 16-byte loads do not reach the memory's rate).
__attribute__((target("avx512f"))) static uint32_t sum_rows_avx512(const uint32_t* p, size_t row, int rows) {
  __m512i acc[8];
  for (int r = 0; r < 8; ++r) acc[r] = _mm512_setzero_si512();
  for (size_t i = 0; i < row; i += 16)
    for (int r = 0; r < rows; ++r) acc[r] = _mm512_add_epi32(acc[r], _mm512_loadu_si512(p + size_t(r) * row + i));
  __m512i t = acc[0];
  for (int r = 1; r < 8; ++r) t = _mm512_add_epi32(t, acc[r]);
  return uint32_t(_mm512_reduce_add_epi32(t));
}

double read_bandwidth() {
  const size_t n = size_t(1) << 28, row = 4096, block = 8 * row;
  std::vector<uint32_t> buf(n, 1u);
  if (!kernels::has_avx512f()) return 0;
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    uint32_t total = 0;
#pragma omp parallel for reduction(+ : total) schedule(static)
    for (size_t b = 0; b < n / block; ++b) total += sum_rows_avx512(buf.data() + b * block, row, 8);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (total != uint32_t(n)) std::printf("read_bandwidth: sum %u\n", total);
    best = std::max(best, double(n) * sizeof(uint32_t) / secs / 1e9);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 5 && std::string(argv[1]) == "--write" && std::string(argv[2]).starts_with("lstm-")) {
    Tokenizer tok = model::load_tokenizer(std::string(argv[3]));
    model::LstmParams p(lstm_preset(argv[2], tok.vocab_size()), false);
    Rng rng(1);
    p.init(rng);
    format::GgufWriter w;
    model::add_lstm_model(w, p, tok, std::string("random ") + argv[2]);
    w.save(argv[4]);
    return 0;
  }
  if (argc == 5 && std::string(argv[1]) == "--write") {
    model::ModelConfig cfg = model::preset(argv[2]);
    cfg.n_ctx = std::max(cfg.n_ctx, 640);  // pp512 + tg128
    Tokenizer tok = model::load_tokenizer(std::string(argv[3]));
    cfg.n_vocab = tok.vocab_size();
    model::Params p(cfg, false);
    Rng rng(1);
    p.init(rng);
    format::GgufWriter w;
    model::add_model(w, p, tok, std::string("random ") + argv[2]);
    w.save(argv[4]);
    return 0;
  }
  const std::string name = argc > 1 ? argv[1] : "small";
  const bool from_file = name.size() > 5 && name.compare(name.size() - 5, 5, ".gguf") == 0;
  const int reps = argc > 2 ? std::atoi(argv[2]) : 5;
  const int threads = kernels::set_threads(argc > 3 ? std::atoi(argv[3]) : 2);
  const std::string type = argc > 4 ? argv[4] : "f32";
  const bool lstm = name.starts_with("lstm-");
  model::ModelConfig cfg = from_file || lstm ? model::ModelConfig{} : model::preset(name);
  cfg.n_ctx = std::max(cfg.n_ctx, 640);  // llama-bench's context is p + n, beyond tiny's 256
  // llama.cpp, 2 threads: pp512 and tg128 medians (docs/performance.md, reference figures; 0 = not measured).
  struct Ref {
    const char *model, *type;
    double pp, tg;
  };
  const Ref refs[] = {{"tiny", "f32", 19788, 2718},   {"small", "f32", 7354, 771},    {"medium", "f32", 1131, 113.1},
                      {"small", "q8_0", 7538, 1576},  {"small", "q4_0", 10265, 1763}, {"medium", "q8_0", 1118, 243.9},
                      {"medium", "q4_0", 1809, 344.0}};
  double ref_pp = 0, ref_tg = 0;
  for (const Ref& r : refs)
    if (name == r.model && type == r.type) ref_pp = r.pp, ref_tg = r.tg;
  Rng rng(1);
  model::Params p(from_file || lstm ? model::ModelConfig{} : cfg, false);
  if (!from_file && !lstm) p.init(rng);
  std::optional<model::LstmParams> lp;
  if (lstm) {
    lp.emplace(lstm_preset(name, name == "lstm-tiny" ? 4096 : name == "lstm-small" ? 8192 : 32000), false);
    lp->init(rng);
    cfg = model::to_model_config(lp->cfg);
  }
  using format::GgmlType;
  const GgmlType qt = type == "q8_0" ? GgmlType::Q8_0 : type == "q4_0" ? GgmlType::Q4_0 : type == "q4_k" ? GgmlType::Q4_K
                      : type == "q6_k" ? GgmlType::Q6_K : GgmlType::F32;
  if (qt == GgmlType::F32 && type != "f32") {
    std::fprintf(stderr, "generate_bench: unknown type '%s'\n", type.c_str());
    return 2;
  }
  const GgmlType head = qt == GgmlType::F32 || qt == GgmlType::Q8_0 ? qt : GgmlType::Q6_K;
  if (lstm && qt != GgmlType::F32) {
    std::fprintf(stderr, "generate_bench: an LSTM preset runs in f32; quantize a --write file with lm-quantize\n");
    return 2;
  }
  const model::Weights w = lstm                   ? model::view_weights(*lp)
                           : from_file            ? model::load_weights(format::GgufFile::open(name))
                           : qt == GgmlType::F32 ? model::view_weights(p)
                                                 : model::quantize_weights(p, qt, head);
  if (from_file) {
    cfg = w.cfg;
    if (cfg.max_context() < 640) {
      std::fprintf(stderr, "generate_bench: %s: context %d, need 640 (pp512 + tg128)\n", name.c_str(), cfg.n_ctx);
      return 1;
    }
  }
  model::Session s(w, 640, 512);
  std::vector<int> prompt(512);
  for (int& t : prompt) t = int(rng.below(uint64_t(cfg.n_vocab)));
  std::printf("%s %s: %zu parameters, %.1f MiB of weights, %d threads, OpenBLAS core %s\n", name.c_str(), type.c_str(),
              cfg.n_params(), double(w.bytes()) / (1 << 20), threads, kernels::blas_info().core.c_str());
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
  // What a decoded token reads: every matrix, the embeddings only as the output layer.
  double token_bytes = double(w.bytes());
  if (w.get(-1, model::Role::Head)) {
    const kernels::QWeight& e = *w.get(-1, model::Role::TokEmbd);
    token_bytes -= double(kernels::packed_size(e.type, e.rows, e.cols));
  }
  const double bw = read_bandwidth();
  // " llama.cpp X  ratio Yx", or nothing where docs/performance.md has no figure for this model and type
  auto vs = [](double ours, double ref) {
    static char buf[64];
    buf[0] = 0;
    if (ref > 0) std::snprintf(buf, sizeof buf, "  llama.cpp %.1f  ratio %.2fx", ref, ours / ref);
    return buf;
  };
  std::printf("pp512 %.0f tok/s [%.0f-%.0f]%s\n", mpp, pp.front(), pp.back(), vs(mpp, ref_pp));
  std::printf("tg128 %.1f tok/s [%.1f-%.1f]%s  weights %.1f GB/s\n", mtg, tg.front(), tg.back(), vs(mtg, ref_tg),
              mtg * double(w.bytes()) / 1e9);
  std::printf("tg128 after pp512 %.1f tok/s [%.1f-%.1f]\n", tg_after[tg_after.size() / 2], tg_after.front(),
              tg_after.back());
  std::printf("read test %.1f GB/s; a token reads %.1f MB; tg128 reads weights at %.1f GB/s, %.0f%% of the read test\n",
              bw, token_bytes / 1e6, mtg * token_bytes / 1e9, 100.0 * mtg * token_bytes / 1e9 / bw);
  return 0;
}
