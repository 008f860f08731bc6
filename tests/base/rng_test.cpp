// Tests for lib/base/rng: determinism, ranges, state round trip, distribution sanity.
#include <doctest/doctest.h>

#include <cmath>

#include "base/rng.hpp"

using lm::Rng;

TEST_CASE("Rng is deterministic per seed and restorable from its state") {
  Rng a(42), b(42), c(43);
  for (int i = 0; i < 10; ++i) CHECK(a.next_u64() == b.next_u64());
  CHECK(a.next_u64() != c.next_u64());
  Rng::State s = a.state();
  uint64_t x = a.next_u64();
  a.set_state(s);
  CHECK(a.next_u64() == x);
}

TEST_CASE("Rng uniform, below and normal stay in range with sane moments") {
  Rng r(7);
  double sum = 0, sq = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    float u = r.uniform();
    REQUIRE(u >= 0.0f);
    REQUIRE(u < 1.0f);
    REQUIRE(r.below(10) < 10);
    float z = r.normal();
    sum += z;
    sq += double(z) * z;
  }
  CHECK(std::fabs(sum / n) < 0.01);
  CHECK(std::fabs(sq / n - 1.0) < 0.02);
}

TEST_CASE("derive_seed separates streams") {
  CHECK(lm::derive_seed(1, 0) != lm::derive_seed(1, 1));
  CHECK(lm::derive_seed(1, 5) == lm::derive_seed(1, 5));
}
