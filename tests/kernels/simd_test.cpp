// Tests for lib/kernels/simd.hpp: the AVX-512 e^x against double-precision exp over the whole
// float range, special values, and the switch that makes kernels take their portable paths.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/simd.hpp"

using namespace lm::kernels;

namespace {

__attribute__((target("avx512f"))) void exp_all(float* y, const float* x, size_t n) {
  for (size_t i = 0; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, exp16(_mm512_loadu_ps(x + i)));
}

// Distance in units in the last place between two finite non-negative floats.
int64_t ulps(float a, float b) {
  int32_t ia, ib;
  std::memcpy(&ia, &a, 4);
  std::memcpy(&ib, &b, 4);
  return std::llabs(int64_t(ia) - int64_t(ib));
}

}  // namespace

TEST_CASE("exp16 is within 2 ulp of exp over the float range, and 0, inf and NaN where exp has them") {
  if (!__builtin_cpu_supports("avx512f")) return;
  std::vector<float> x;
  for (double v = -110.0; v < 95.0; v += 0.00731) x.push_back(float(v));
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  for (float v : {0.0f, -0.0f, 1.0f, -1.0f, 88.72f, 88.73f, -87.33f, -103.97f, -104.5f, 1e-30f, -1e-30f, inf, -inf, nan,
                  1e30f, -1e30f, std::numeric_limits<float>::denorm_min()})
    x.push_back(v);
  while (x.size() % 16) x.push_back(0.5f);
  std::vector<float> y(x.size());
  exp_all(y.data(), x.data(), x.size());
  int64_t worst = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const float want = float(std::exp(double(x[i])));
    CAPTURE(x[i]);
    if (std::isnan(x[i])) {
      CHECK(std::isnan(y[i]));
    } else if (std::isinf(want) || want == 0.0f) {
      CHECK(y[i] == want);
    } else if (want < std::numeric_limits<float>::min()) {
      CHECK(std::fabs(double(y[i]) - want) <= 2.0 * std::numeric_limits<float>::denorm_min());
    } else {
      worst = std::max(worst, ulps(y[i], want));
    }
  }
  CHECK(worst <= 2);
}

TEST_CASE("enable_avx512(false) switches the AVX-512 paths off, and true restores what the CPU has") {
  enable_avx512(false);
  CHECK_FALSE(has_avx512f());
  enable_avx512(true);
  CHECK(has_avx512f() == (__builtin_cpu_supports("avx512f") != 0));
}
