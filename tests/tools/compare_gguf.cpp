// Test helper (not installed) for the tool tests: compares the F32 tensors of two GGUF files.
//   lm_test_compare_gguf A.gguf B.gguf TOL
// Every F32 tensor of A must be in B with as many elements, and its relative L2 difference
// ||a - b|| / ||a|| at most TOL (single elements near zero have no useful relative error).
// Prints the largest of those and the largest max|a - b| / max|a|, with their tensors; exits 0
// when every tensor is within TOL, 1 otherwise.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "format/gguf.hpp"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: lm_test_compare_gguf A.gguf B.gguf TOL\n");
    return 2;
  }
  try {
    const lm::format::GgufFile a = lm::format::GgufFile::open(argv[1]);
    const lm::format::GgufFile b = lm::format::GgufFile::open(argv[2]);
    const double tol = std::atof(argv[3]);
    double worst = 0, worst2 = 0;
    std::string where, where2;
    size_t n_tensors = 0;
    for (const auto& t : a.tensors()) {
      if (t.type != lm::format::GgmlType::F32) continue;
      const lm::format::GgufTensorInfo* u = b.find_tensor(t.name);
      if (!u || u->type != t.type || u->n_elements() != t.n_elements()) {
        std::printf("tensor %s: missing or of another shape in %s\n", t.name.c_str(), argv[2]);
        return 1;
      }
      const float* x = reinterpret_cast<const float*>(t.data);
      const float* y = reinterpret_cast<const float*>(u->data);
      double scale = 0, diff = 0, sq = 0, dsq = 0;
      for (uint64_t k = 0; k < t.n_elements(); ++k) {
        const double d = double(x[k]) - double(y[k]);
        scale = std::max(scale, std::fabs(double(x[k])));
        diff = std::max(diff, std::fabs(d));
        sq += double(x[k]) * x[k], dsq += d * d;
      }
      const double rel = scale > 0 ? diff / scale : diff;
      const double rel2 = sq > 0 ? std::sqrt(dsq / sq) : std::sqrt(dsq);
      if (!(rel <= worst)) worst = rel, where = t.name;
      if (!(rel2 <= worst2)) worst2 = rel2, where2 = t.name;
      ++n_tensors;
    }
    std::printf("%zu tensors, max relative difference %.3g%s%s, relative L2 %.3g%s%s\n", n_tensors, worst,
                where.empty() ? "" : " in ", where.c_str(), worst2, where2.empty() ? "" : " in ", where2.c_str());
    return n_tensors > 0 && worst2 <= tol ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lm_test_compare_gguf: %s\n", e.what());
    return 1;
  }
}
