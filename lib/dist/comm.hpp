// The communicator of data-parallel training (docs/distributed.md): the ranks an MPI launcher
// started, or this process alone. Built without MPI (LM_MPI off) or run without a launcher, it
// is the one-process communicator, on which every collective is the identity: the N = 1 case
// of the same code, not a separate path. Only comm.cpp includes <mpi.h>.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace lm::dist {

// True when this build has MPI (CMake option LM_MPI).
bool built_with_mpi();

// The launcher's world size when the process was started by mpirun or another MPI launcher
// (OMPI_COMM_WORLD_SIZE, PMI_SIZE or PMIX_RANK in the environment), with the variable that said
// so in `var`; 0 when not.
int launcher_size(std::string* var = nullptr);

// Ranks started by the launcher on this machine (OMPI_COMM_WORLD_LOCAL_SIZE), 1 without one.
int local_size();

class Comm {
 public:
  int rank() const { return rank_; }
  int size() const { return size_; }
  bool root() const { return rank_ == 0; }
  bool distributed() const { return size_ > 1; }
  // Element-wise sums over the ranks, in place; every rank gets the result.
  void sum(float* x, size_t n) const;
  void sum(double* x, size_t n) const;
  // Element-wise maximum over the ranks, in place.
  void max(double* x, size_t n) const;
  // Rank `root`'s bytes into every rank's buffer.
  void broadcast(void* data, size_t bytes, int root = 0) const;
  // Element-wise sum over the ranks into rank `root`'s x (the others' x are left as they were).
  void sum_to(float* x, size_t n, int root) const;
  // Every rank's x, by rank.
  std::vector<uint64_t> all_gather(uint64_t x) const;
  // Returns when every rank has called it.
  void barrier() const;

 private:
  friend class Session;
  int rank_ = 0, size_ = 1;
};

// Sums over the ranks that run while the caller goes on computing: backward hands each layer's
// gradients to start() as soon as they are final and goes on with the layers below; a thread of
// this object sums them (blocking MPI_Allreduce, in pieces of at most 1M elements) meanwhile, and
// the step's wait() returns when all are done (docs/distributed.md, "Overlap"). Non-blocking
// collectives would not do: MPI moves them only inside MPI calls, and between two layers there
// are none. Every rank must start the same ranges in the same order, and the caller makes no
// other MPI call between the first start() and wait() (MPI_THREAD_SERIALIZED). Without that
// thread level, without MPI or on one rank, start() sums at once (or does nothing).
class PendingSums {
 public:
  explicit PendingSums(const Comm& comm);
  // With sums still running (an error mid-step) the thread is left to the job's end (MPI_Abort),
  // not joined: it may wait for a rank that will never send.
  ~PendingSums();
  PendingSums(const PendingSums&) = delete;
  PendingSums& operator=(const PendingSums&) = delete;
  // Queues the sum of x[0 .. n) in place; x must stay untouched until wait().
  void start(float* x, size_t n);
  // Returns when every queued sum is complete (then x holds the sums); rethrows the Error of a
  // failed one.
  void wait();

 private:
  struct State;
  static void run(std::shared_ptr<State> st);  // the thread
  const Comm& comm_;
  std::shared_ptr<State> state_;  // shared with the thread
};

// The process's communicator: the launcher's ranks inside a Session that started MPI, else
// this process alone.
const Comm& world();

// Starts MPI (MPI_Init_thread, serialized: one thread at a time calls MPI, PendingSums' while a
// step's sums run, else the main thread) if the build has it
// and a launcher started the process; ends it on destruction. Collectives that fail throw
// lm::Error naming the call and MPI's message (MPI_ERRORS_RETURN, not MPI's abort). Without a
// launcher, or without MPI, nothing is started and world() has one rank. Throws UsageError
// when a launcher started a build without MPI.
class Session {
 public:
  Session(int* argc, char*** argv);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  // Ends the job on every rank now (MPI_Abort with `code`); used after an error on one rank,
  // which would otherwise leave the others waiting in a collective. Returns only without MPI.
  void abort(int code);
  bool active() const { return active_; }

 private:
  bool active_ = false;
};

}  // namespace lm::dist
