#include "base/threads.hpp"

#include <omp.h>

namespace lm {

int resolve_threads(int threads) { return threads > 0 ? threads : omp_get_num_procs(); }

}  // namespace lm
