// Tests for lib/base/threads: 0 threads means every core, anything else is taken as given.
#include <doctest/doctest.h>
#include <omp.h>

#include "base/threads.hpp"

TEST_CASE("resolve_threads: 0 is every core, a positive count is itself") {
  CHECK(lm::resolve_threads(0) == omp_get_num_procs());
  CHECK(lm::resolve_threads(-1) == omp_get_num_procs());
  CHECK(lm::resolve_threads(3) == 3);
}
