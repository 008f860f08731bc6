// The one rule for a thread count given by a user (-t/--threads): 0 means every core.
#pragma once

namespace lm {

// `threads` itself when it is positive, else the number of cores OpenMP sees.
int resolve_threads(int threads);

// Cores not taken by other programs' runnable threads now: `cores` less the runnable threads
// /proc/stat counts (procs_running) beyond this process's own (its threads in state R: the
// caller, workers still spinning after a parallel region), at least 1; `cores` when it cannot
// be read. A snapshot, not a measurement (ThreadTuner measures); about 30 us.
int idle_cores(int cores);

}  // namespace lm
