// Test helper (not installed): the sentence embedding of an encoder model, as llama.cpp's
// llama-embedding computes it by default, to compare the two (tests/tools/arch_test.sh).
//   lm_test_embed MODEL.gguf TEXT
// The text is tokenized with the model's BOS ([CLS]) and SEP, run through the encoder in one
// pass, mean-pooled over its tokens and scaled to unit length; prints the values, %9.6f each.
#include <cmath>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "model/model_io.hpp"
#include "model/session.hpp"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s MODEL.gguf TEXT\n", argv[0]);
    return 2;
  }
  try {
    lm::model::LoadedModel m = lm::model::load_model(argv[1], {}, true);
    const lm::Tokenizer& tok = m.tok;
    std::vector<int> ids;
    if (tok.add_bos()) ids.push_back(*tok.bos_id());
    tok.encode_text(argv[2], ids);
    if (tok.add_sep()) ids.push_back(*tok.sep_id());
    const int n = int(ids.size()), C = m.weights.cfg.n_embd;
    lm::model::Session s(m.weights, n, n);
    const float* h = s.eval_rows(ids.data(), n, 0);
    std::vector<double> mean(size_t(C), 0.0);
    for (int i = 0; i < n; ++i)
      for (int c = 0; c < C; ++c) mean[size_t(c)] += h[size_t(i) * C + c] / n;
    double norm = 0;
    for (double v : mean) norm += v * v;
    norm = std::sqrt(norm);
    for (int c = 0; c < C; ++c) std::printf("%9.6f%s", mean[size_t(c)] / norm, c + 1 < C ? " " : "\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lm_test_embed: %s\n", e.what());
    return 1;
  }
  return 0;
}
