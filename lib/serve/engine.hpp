// lm-serve's decoding side: one engine thread owns a sample::BatchGenerator and takes every
// running sequence one step further at a time; request threads submit jobs (one sequence per
// choice) and read their tokens back from the job's channel. Admission is bounded: a job whose
// sequences would take the sequences in flight (running or waiting for a slot) beyond the
// capacity is refused, and the caller answers 503. docs/serve.md.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/log.hpp"
#include "model/weights.hpp"
#include "sample/batch.hpp"
#include "sample/generate.hpp"
#include "tokenizer/tokenizer.hpp"

namespace lm::serve {

// What a job's channel carries: a token of choice `choice`, or the end of that choice.
struct JobEvent {
  int choice = 0;
  bool done = false;
  sample::TokenEvent token;       // !done
  sample::GenerateResult result;  // done
  std::string error;              // done: why the sequence failed ("" if it did not)
};

class Engine;

// One request's sequences and the channel their events come through. Made by Engine::submit;
// the request thread reads it, the engine thread writes it.
class Job : public std::enable_shared_from_this<Job> {
 public:
  // Waits up to `timeout` for the next event; false if none came.
  bool next(JobEvent& e, std::chrono::milliseconds timeout);
  // Ends every sequence of the job that has not finished (the client went away). Safe from any
  // thread, more than once.
  void cancel();
  bool cancelled() const { return cancelled_.load(); }
  int choices() const { return choices_; }

 private:
  friend class Engine;
  Engine* engine_ = nullptr;
  int choices_ = 0;
  std::vector<sample::SequenceSpec> specs_;  // until the engine takes them
  std::vector<uint64_t> ids_;                // the generator's ids, once added
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<JobEvent> events_;
  std::atomic<bool> cancelled_{false};
  void push(JobEvent e);
};

class Engine {
 public:
  // A generator of n_seq slots of n_ctx tokens and a capacity of `capacity` sequences in flight
  // (n_seq running plus those waiting). Starts the engine thread. `w`, `tok`, `log` outlive it.
  Engine(const model::Weights& w, const Tokenizer& tok, int n_seq, int n_ctx, int n_batch, int capacity,
         const Logger& log);
  // Cancels what is left and joins the thread.
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Queues one sequence per spec (prompt, options and seed; the callbacks are the engine's).
  // Returns nullptr, queueing nothing, if they do not fit in the capacity now.
  std::shared_ptr<Job> submit(std::vector<sample::SequenceSpec> specs);
  // Runs `task` on the engine thread between two steps (work that must not overlap the
  // decoding, such as another evaluation of the model: lm-serve's embeddings), counted as one
  // sequence in flight until it returns. Returns false, running nothing, when it does not fit
  // in the capacity; otherwise waits for it and rethrows what it threw.
  bool run_task(const std::function<void()>& task);
  // Sequences in flight (running or waiting for a slot).
  int in_flight() const { return in_flight_.load(); }
  int capacity() const { return capacity_; }
  // Waits until no sequence is in flight (after the server stopped taking requests).
  void drain();

 private:
  friend class Job;
  void loop();
  void request_cancel(std::shared_ptr<Job> job);

  const Logger& log_;
  const int capacity_;
  sample::BatchGenerator gen_;
  std::mutex mu_;
  std::condition_variable cv_, idle_cv_;
  std::deque<std::shared_ptr<Job>> incoming_;
  std::vector<std::shared_ptr<Job>> cancels_;  // jobs cancelled after the engine took them
  struct Task;
  std::deque<std::shared_ptr<Task>> tasks_;
  std::atomic<int> in_flight_{0};
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace lm::serve
