// CPU features the kernels choose their paths by, where the compiler's builtins fall short.
#pragma once

#include <cpuid.h>

namespace lm {

// F16C from CPUID leaf 1: clang before 16 rejects __builtin_cpu_supports("f16c") at compile time.
inline bool cpu_has_f16c() {
  unsigned a, b, c, d;
  return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C) != 0;
}

}  // namespace lm
