#include "base/threads.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include <dirent.h>

#include <omp.h>

namespace lm {

int resolve_threads(int threads) { return threads > 0 ? threads : omp_get_num_procs(); }

namespace {

// Threads of this process the kernel counts as runnable now (state R in /proc/self/task/*/stat):
// the caller, and workers still spinning after a parallel region. At least 1.
long own_running() {
  DIR* d = opendir("/proc/self/task");
  if (!d) return 1;
  long n = 0;
  char path[64], buf[512];
  while (const dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::snprintf(path, sizeof path, "/proc/self/task/%.20s/stat", e->d_name);
    std::FILE* f = std::fopen(path, "r");
    if (!f) continue;
    const size_t got = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    buf[got] = 0;
    const char* paren = std::strrchr(buf, ')');  // the name may hold spaces and parentheses
    if (paren && paren[1] == ' ' && paren[2] == 'R') ++n;
  }
  closedir(d);
  return std::max(n, 1L);
}

}  // namespace

int idle_cores(int cores) {
  std::FILE* f = std::fopen("/proc/stat", "r");
  if (!f) return cores;
  char line[256];
  long running = -1;
  while (std::fgets(line, sizeof line, f))
    if (std::sscanf(line, "procs_running %ld", &running) == 1) break;
  std::fclose(f);
  if (running < 1) return cores;
  const long others = std::max(0L, running - own_running());
  return int(std::max(1L, std::min(long(cores), long(cores) - others)));
}

}  // namespace lm
