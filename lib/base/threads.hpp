// The one rule for a thread count given by a user (-t/--threads): 0 means every core.
#pragma once

namespace lm {

// `threads` itself when it is positive, else the number of cores OpenMP sees.
int resolve_threads(int threads);

// Cores not taken by other runnable threads now: `cores` less the runnable threads
// /proc/stat counts (procs_running) beyond the caller's one, at least 1; `cores` when it cannot
// be read. A guess for where to start, not a measurement (ThreadTuner measures).
int idle_cores(int cores);

}  // namespace lm
