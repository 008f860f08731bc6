#include "base/memory.hpp"

#include <sys/mman.h>

#include <cstdint>
#include <cstdlib>

namespace lm {

void* alloc_large(size_t n) {
  if (n < kHugeMin) {
    void* p = ::operator new(n == 0 ? 1 : n, std::align_val_t(64));
    return p;
  }
  // Map 2 MiB more than needed and unmap the unaligned head and tail.
  const size_t len = (n + kHugeMin - 1) & ~(kHugeMin - 1);
  void* raw = ::mmap(nullptr, len + kHugeMin, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) throw std::bad_alloc();
  const uintptr_t start = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (start + kHugeMin - 1) & ~uintptr_t(kHugeMin - 1);
  if (aligned > start) ::munmap(raw, aligned - start);
  const uintptr_t end = start + len + kHugeMin, aligned_end = aligned + len;
  if (end > aligned_end) ::munmap(reinterpret_cast<void*>(aligned_end), end - aligned_end);
  ::madvise(reinterpret_cast<void*>(aligned), len, MADV_HUGEPAGE);  // advice only: failure is harmless
  return reinterpret_cast<void*>(aligned);
}

void free_large(void* p, size_t n) noexcept {
  if (!p) return;
  if (n < kHugeMin) {
    ::operator delete(p, std::align_val_t(64));
    return;
  }
  ::munmap(p, (n + kHugeMin - 1) & ~(kHugeMin - 1));
}

}  // namespace lm
