// Test helper (not installed) for tests/tools/hf_import_test.sh:
//   lm_test_hf_logits MODEL.gguf FIXTURE_DIR [TOLERANCE]
// evaluates FIXTURE_DIR/tokens.txt (token ids on one line) with MODEL.gguf in one batch and
// compares every position's logits with FIXTURE_DIR/logits.f32 (float32 [T][V], PyTorch's,
// written by tests/model/make_hf_golden.py). Prints "max relative error E": over all positions,
// the largest |lm - torch| in a row divided by the largest |torch| in that row. Exits 1 if E is
// above TOLERANCE (default 1e-4), 2 on bad arguments or files.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "model/model_io.hpp"
#include "model/session.hpp"

int main(int argc, char** argv) {
  if (argc != 3 && argc != 4) {
    std::fprintf(stderr, "usage: lm_test_hf_logits MODEL.gguf FIXTURE_DIR [TOLERANCE]\n");
    return 2;
  }
  try {
    const double tol = argc == 4 ? std::atof(argv[3]) : 1e-4;
    const std::string dir = argv[2];
    std::vector<int> tokens;
    {
      std::ifstream f(dir + "/tokens.txt");
      int id;
      while (f >> id) tokens.push_back(id);
    }
    std::ifstream g(dir + "/logits.f32", std::ios::binary);
    std::stringstream ss;
    ss << g.rdbuf();
    const std::string bytes = ss.str();
    const lm::model::LoadedModel m = lm::model::load_model(argv[1]);
    const int n = int(tokens.size()), V = m.weights.cfg.n_vocab;
    if (n == 0 || bytes.size() != size_t(n) * size_t(V) * sizeof(float)) {
      std::fprintf(stderr, "lm_test_hf_logits: %s: %zu bytes of logits for %d tokens of a %d-token vocabulary\n",
                   dir.c_str(), bytes.size(), n, V);
      return 2;
    }
    std::vector<float> ref(size_t(n) * size_t(V));
    std::copy(bytes.data(), bytes.data() + bytes.size(), reinterpret_cast<char*>(ref.data()));
    lm::model::Session s(m.weights, n, n);
    const float* got = s.eval(tokens.data(), n, true);
    double worst = 0;
    for (int t = 0; t < n; ++t) {
      double diff = 0, scale = 0;
      for (int v = 0; v < V; ++v) {
        const size_t i = size_t(t) * size_t(V) + size_t(v);
        diff = std::max(diff, std::fabs(double(got[i]) - double(ref[i])));
        scale = std::max(scale, std::fabs(double(ref[i])));
      }
      worst = std::max(worst, diff / scale);
    }
    std::printf("max relative error %.3g\n", worst);
    return worst <= tol ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lm_test_hf_logits: %s\n", e.what());
    return 2;
  }
}
