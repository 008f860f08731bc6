// The finite-difference check of a model's parameter gradients, shared by the model tests.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "base/rng.hpp"

namespace lm::test {

// Checks p.grad against central differences (step 1e-2) of loss() at `per_view` random
// elements of each view of p (or of the views listed in `only`), drawn from rng in view order:
// |fd - grad| <= 2e-2 max|grad| + 1e-4. P is any parameter set with views (offset, rows, cols,
// name), w and grad (model::Params, model::LstmParams).
template <class P, class Loss>
void check_param_grads(P& p, Loss&& loss, Rng& rng, int per_view, const std::vector<size_t>& only = {}) {
  double gmax = 0;
  for (float g : p.grad) gmax = std::max(gmax, double(std::fabs(g)));
  std::vector<size_t> views = only;
  if (views.empty())
    for (size_t v = 0; v < p.views.size(); ++v) views.push_back(v);
  for (size_t v : views) {
    const auto& view = p.views[v];
    CAPTURE(view.name);
    for (int k = 0; k < per_view; ++k) {
      const size_t i = view.offset + size_t(rng.below(uint64_t(view.rows) * view.cols));
      const float keep = p.w[i], step = 1e-2f;
      p.w[i] = keep + step;
      const double up = loss();
      p.w[i] = keep - step;
      const double down = loss();
      p.w[i] = keep;
      CHECK(std::fabs((up - down) / (2 * step) - p.grad[i]) <= 2e-2 * gmax + 1e-4);
    }
  }
}

}  // namespace lm::test
