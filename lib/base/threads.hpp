// The one rule for a thread count given by a user (-t/--threads): 0 means every core.
#pragma once

namespace lm {

// `threads` itself when it is positive, else the number of cores OpenMP sees.
int resolve_threads(int threads);

}  // namespace lm
