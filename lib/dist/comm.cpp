// The communicator: MPI when built with it (LM_HAVE_MPI) and started by a launcher, else one
// process.
#include "dist/comm.hpp"

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <utility>

#include "base/error.hpp"

#ifdef LM_HAVE_MPI
// The C API only: the deprecated C++ bindings would need libmpi_cxx.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#endif

namespace lm::dist {

namespace {
Comm g_world;

int env_int(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : 0;
}

#ifdef LM_HAVE_MPI
bool g_mpi = false;  // MPI started by a Session
int g_thread_level = MPI_THREAD_SINGLE;  // what MPI_Init_thread provided

// A failed MPI call: one line naming it and MPI's reason.
void check(int rc, const char* call) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING] = "";
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  throw Error(std::string(call) + " failed on rank " + std::to_string(g_world.rank()) + ": " + msg +
              " (has another rank died?)");
}

// Large buffers go in pieces: MPI counts are ints.
constexpr size_t kChunk = size_t(1) << 28;
// Reductions go in pieces of at most 1M elements (4 MiB of floats). OpenMPI's reductions allocate
// a scratch buffer the size of the message on every call; past glibc's largest mmap threshold
// (32 MiB) each one is a fresh mmap whose pages fault in, which costs more than the sum itself:
// measured on 2 ranks of one 2-core machine, the sum of 13.7M floats (the small preset's
// gradients) took 121 ms in one call and 7.2 ms in pieces of 1M (scratch buffers that malloc
// keeps and reuses).
constexpr size_t kReducePiece = size_t(1) << 20;

template <class T>
void allreduce(T* x, size_t n, MPI_Datatype type, MPI_Op op, const char* call) {
  for (size_t at = 0; at < n; at += kReducePiece) {
    const int count = int(std::min(kReducePiece, n - at));
    check(MPI_Allreduce(MPI_IN_PLACE, x + at, count, type, op, MPI_COMM_WORLD), call);
  }
}
#endif
}  // namespace

bool built_with_mpi() {
#ifdef LM_HAVE_MPI
  return true;
#else
  return false;
#endif
}

int launcher_size(std::string* var) {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"}) {
    if (const char* v = std::getenv(name); v && *v) {
      if (var) *var = std::string(name) + "=" + v;
      // PMIX_RANK says a launcher started us, not how many: at least one rank.
      return std::max(1, std::strcmp(name, "PMIX_RANK") == 0 ? env_int("PMIX_SIZE") : std::atoi(v));
    }
  }
  return 0;
}

int local_size() { return std::max(1, env_int("OMPI_COMM_WORLD_LOCAL_SIZE")); }

const Comm& world() { return g_world; }

void Comm::sum(float* x, size_t n) const {
#ifdef LM_HAVE_MPI
  if (g_mpi && size_ > 1) allreduce(x, n, MPI_FLOAT, MPI_SUM, "MPI_Allreduce");
#endif
  (void)x, (void)n;
}

void Comm::sum(double* x, size_t n) const {
#ifdef LM_HAVE_MPI
  if (g_mpi && size_ > 1) allreduce(x, n, MPI_DOUBLE, MPI_SUM, "MPI_Allreduce");
#endif
  (void)x, (void)n;
}

void Comm::max(double* x, size_t n) const {
#ifdef LM_HAVE_MPI
  if (g_mpi && size_ > 1) allreduce(x, n, MPI_DOUBLE, MPI_MAX, "MPI_Allreduce");
#endif
  (void)x, (void)n;
}

void Comm::broadcast(void* data, size_t bytes, int root) const {
#ifdef LM_HAVE_MPI
  if (g_mpi && size_ > 1)
    for (size_t at = 0; at < bytes; at += kChunk)
      check(MPI_Bcast(static_cast<char*>(data) + at, int(std::min(kChunk, bytes - at)), MPI_BYTE, root, MPI_COMM_WORLD),
            "MPI_Bcast");
#endif
  (void)data, (void)bytes, (void)root;
}

void Comm::sum_to(float* x, size_t n, int root) const {
#ifdef LM_HAVE_MPI
  if (g_mpi && size_ > 1)
    for (size_t at = 0; at < n; at += kReducePiece) {
      const int count = int(std::min(kReducePiece, n - at));
      void* send = rank_ == root ? MPI_IN_PLACE : static_cast<void*>(x + at);
      check(MPI_Reduce(send, x + at, count, MPI_FLOAT, MPI_SUM, root, MPI_COMM_WORLD), "MPI_Reduce");
    }
#endif
  (void)x, (void)n, (void)root;
}

std::vector<uint64_t> Comm::all_gather(uint64_t x) const {
  std::vector<uint64_t> all(size_t(size_), x);
#ifdef LM_HAVE_MPI
  if (g_mpi && size_ > 1)
    check(MPI_Allgather(&x, 1, MPI_UINT64_T, all.data(), 1, MPI_UINT64_T, MPI_COMM_WORLD), "MPI_Allgather");
#endif
  return all;
}

void Comm::barrier() const {
#ifdef LM_HAVE_MPI
  if (g_mpi && size_ > 1) check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
#endif
}

struct PendingSums::State {
  const Comm* comm;
  std::mutex m;
  std::condition_variable cv;
  std::deque<std::pair<float*, size_t>> queue;
  bool busy = false, stop = false;
  std::exception_ptr error;
  std::thread thread;
};

// The summing thread: takes the queued ranges in order; after a failure it drops the rest.
void PendingSums::run(std::shared_ptr<State> st) {
  std::unique_lock lock(st->m);
  for (;;) {
    st->cv.wait(lock, [&] { return st->stop || !st->queue.empty(); });
    if (st->queue.empty()) return;  // stop
    auto [x, n] = st->queue.front();
    st->queue.pop_front();
    st->busy = true;
    lock.unlock();
    std::exception_ptr e;
    try {
      st->comm->sum(x, n);
    } catch (...) {
      e = std::current_exception();
    }
    lock.lock();
    st->busy = false;
    if (e) {
      if (!st->error) st->error = e;
      st->queue.clear();
    }
    st->cv.notify_all();
  }
}

PendingSums::PendingSums(const Comm& comm) : comm_(comm) {
#ifdef LM_HAVE_MPI
  if (g_mpi && comm.size() > 1 && g_thread_level >= MPI_THREAD_SERIALIZED) {
    state_ = std::make_shared<State>();
    state_->comm = &comm;
    state_->thread = std::thread(run, state_);
  }
#endif
}

PendingSums::~PendingSums() {
  if (!state_) return;
  bool idle;
  {
    std::lock_guard lock(state_->m);
    idle = !state_->busy && state_->queue.empty();
    state_->stop = true;
    state_->queue.clear();
  }
  state_->cv.notify_all();
  if (idle) state_->thread.join();
  else state_->thread.detach();
}

void PendingSums::start(float* x, size_t n) {
  if (!state_) {  // no thread: at once (nothing on one rank)
    comm_.sum(x, n);
    return;
  }
  {
    std::lock_guard lock(state_->m);
    state_->queue.emplace_back(x, n);
  }
  state_->cv.notify_all();
}

void PendingSums::wait() {
  if (!state_) return;
  std::unique_lock lock(state_->m);
  state_->cv.wait(lock, [&] { return !state_->busy && state_->queue.empty(); });
  if (std::exception_ptr e = std::exchange(state_->error, nullptr)) std::rethrow_exception(e);
}

Session::Session(int* argc, char*** argv) {
  std::string var;
  const int n = launcher_size(&var);
  if (n == 0) return;
#ifdef LM_HAVE_MPI
  int provided = 0;
  if (MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS)
    throw Error("MPI_Init_thread failed (" + var + ")");
  g_thread_level = provided;
  g_mpi = active_ = true;
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &g_world.rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &g_world.size_);
#else
  (void)argc, (void)argv;
  if (n > 1 || var.starts_with("OMPI_COMM_WORLD_SIZE"))
    throw UsageError("started by mpirun (" + var +
                     ") but built without MPI; rebuild with -DLM_MPI=ON (apt-get install libopenmpi-dev)");
#endif
}

Session::~Session() {
#ifdef LM_HAVE_MPI
  if (active_) MPI_Finalize();
  g_mpi = false;
#endif
  g_world = Comm();
}

void Session::abort(int code) {
#ifdef LM_HAVE_MPI
  if (active_ && g_world.size() > 1) MPI_Abort(MPI_COMM_WORLD, code);
#endif
  (void)code;
}

}  // namespace lm::dist
