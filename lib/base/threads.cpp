#include "base/threads.hpp"

#include <algorithm>
#include <cstdio>

#include <omp.h>

namespace lm {

int resolve_threads(int threads) { return threads > 0 ? threads : omp_get_num_procs(); }

int idle_cores(int cores) {
  std::FILE* f = std::fopen("/proc/stat", "r");
  if (!f) return cores;
  char line[256];
  long running = -1;
  while (std::fgets(line, sizeof line, f))
    if (std::sscanf(line, "procs_running %ld", &running) == 1) break;
  std::fclose(f);
  if (running < 1) return cores;
  return int(std::max(1L, std::min(long(cores), long(cores) - (running - 1))));
}

}  // namespace lm
