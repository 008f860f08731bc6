// The engine thread and the job channels (engine.hpp).
#include "serve/engine.hpp"

#include <map>

namespace lm::serve {

void Job::push(JobEvent e) {
  {
    std::lock_guard<std::mutex> g(mu_);
    events_.push_back(std::move(e));
  }
  cv_.notify_one();
}

bool Job::next(JobEvent& e, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lk(mu_);
  if (!cv_.wait_for(lk, timeout, [&] { return !events_.empty(); })) return false;
  e = std::move(events_.front());
  events_.pop_front();
  return true;
}

void Job::cancel() {
  if (!cancelled_.exchange(true) && engine_) engine_->request_cancel(shared_from_this());
}

Engine::Engine(const model::Weights& w, const Tokenizer& tok, int n_seq, int n_ctx, int n_batch, int capacity,
               const Logger& log)
    : log_(log), capacity_(capacity), gen_(w, tok, n_seq, n_ctx, n_batch, log) {
  thread_ = std::thread([this] { loop(); });
}

Engine::~Engine() {
  {
    std::lock_guard<std::mutex> g(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

std::shared_ptr<Job> Engine::submit(std::vector<sample::SequenceSpec> specs) {
  auto job = std::make_shared<Job>();
  job->engine_ = this;
  const int k = int(specs.size());
  job->choices_ = k;
  job->specs_ = std::move(specs);
  {
    std::lock_guard<std::mutex> g(mu_);
    if (stop_ || in_flight_.load() + k > capacity_) return nullptr;
    in_flight_ += k;
    incoming_.push_back(job);
  }
  cv_.notify_all();
  return job;
}

struct Engine::Task {
  std::function<void()> fn;
  std::exception_ptr error;
  bool done = false;
};

bool Engine::run_task(const std::function<void()>& task) {
  auto t = std::make_shared<Task>();
  t->fn = task;
  std::unique_lock<std::mutex> lk(mu_);
  if (stop_ || in_flight_.load() + 1 > capacity_) return false;
  ++in_flight_;
  tasks_.push_back(t);
  cv_.notify_all();
  idle_cv_.wait(lk, [&] { return t->done; });
  if (t->error) std::rethrow_exception(t->error);
  return true;
}

void Engine::request_cancel(std::shared_ptr<Job> job) {
  {
    std::lock_guard<std::mutex> g(mu_);
    // A job the engine has not taken yet is cancelled when it takes it.
    for (const auto& j : incoming_)
      if (j == job) return;
    cancels_.push_back(std::move(job));
  }
  cv_.notify_all();
}

void Engine::drain() {
  std::unique_lock<std::mutex> lk(mu_);
  idle_cv_.wait(lk, [&] { return in_flight_.load() == 0; });
}

void Engine::loop() {
  // Sequences the generator holds, by id: the job and choice their events go to.
  std::map<uint64_t, std::pair<std::shared_ptr<Job>, int>> live;
  std::unique_lock<std::mutex> lk(mu_);
  for (;;) {
    cv_.wait(lk, [&] { return stop_ || !incoming_.empty() || !cancels_.empty() || !tasks_.empty() || !live.empty(); });
    if (stop_) {
      // Whatever is left ends as cancelled (the tool drains before it gets here).
      std::vector<uint64_t> ids;
      for (const auto& [id, jc] : live) ids.push_back(id);
      for (uint64_t id : ids) gen_.cancel(id);  // a queued one's on_done erases it from `live` now
      for (auto& j : incoming_) j->cancelled_ = true;
    }
    std::deque<std::shared_ptr<Job>> incoming = std::move(incoming_);
    incoming_.clear();
    std::vector<std::shared_ptr<Job>> cancels = std::move(cancels_);
    cancels_.clear();
    std::deque<std::shared_ptr<Task>> tasks = std::move(tasks_);
    tasks_.clear();
    const bool stopping = stop_;
    lk.unlock();

    auto finished = [&](const std::shared_ptr<Job>& job, int choice, JobEvent e) {
      job->push(std::move(e));
      {
        std::lock_guard<std::mutex> g(mu_);
        --in_flight_;
      }
      idle_cv_.notify_all();
    };
    for (const auto& job : incoming) {
      for (size_t i = 0; i < job->specs_.size(); ++i) {
        sample::SequenceSpec spec = std::move(job->specs_[i]);
        const int choice = int(i);
        Job* raw = job.get();
        spec.on_token = [raw, choice](const sample::TokenEvent& ev) {
          JobEvent e;
          e.choice = choice;
          e.token = ev;
          raw->push(std::move(e));
          return !raw->cancelled();
        };
        // on_done runs inside step() or cancel(); `live` holds the job until then.
        spec.on_done = [this, &live, &finished, raw, choice](const sample::GenerateResult& r, std::exception_ptr err) {
          JobEvent e;
          e.choice = choice;
          e.done = true;
          e.result = r;
          if (err) {
            try {
              std::rethrow_exception(err);
            } catch (const std::exception& x) {
              e.error = x.what();
            } catch (...) {
              e.error = "unknown error";
            }
          }
          for (auto it = live.begin(); it != live.end(); ++it)
            if (it->second.first.get() == raw && it->second.second == choice) {
              std::shared_ptr<Job> keep = it->second.first;
              live.erase(it);
              finished(keep, choice, std::move(e));
              return;
            }
        };
        try {
          // The id is known only after add(); a sequence cannot end inside add() (a queued one
          // ends in step() or cancel()), so registering it right after is in time.
          const uint64_t id = gen_.add(std::move(spec));
          live[id] = {job, choice};
          job->ids_.push_back(id);
          if (stopping || job->cancelled()) gen_.cancel(id);
        } catch (const std::exception& x) {
          JobEvent e;
          e.choice = choice;
          e.done = true;
          e.result.stop_reason = "error";
          e.error = x.what();
          finished(job, choice, std::move(e));
        }
      }
      job->specs_.clear();
    }
    for (const auto& t : tasks) {
      try {
        t->fn();
      } catch (...) {
        t->error = std::current_exception();
      }
      {
        std::lock_guard<std::mutex> g(mu_);
        t->done = true;
        --in_flight_;
      }
      idle_cv_.notify_all();
    }
    for (const auto& job : cancels)
      for (uint64_t id : job->ids_) gen_.cancel(id);  // finished ids are ignored
    try {
      gen_.step();
    } catch (const std::exception& x) {
      // step() reports a sequence's failure through its on_done; anything else ends them all.
      log_.warn("decoding failed: %s; ending the %zu sequences in flight", x.what(), live.size());
      std::vector<uint64_t> ids;
      for (const auto& [id, jc] : live) ids.push_back(id);
      for (uint64_t id : ids) gen_.cancel(id);
    }
    lk.lock();
    if (stopping && live.empty() && incoming_.empty()) break;
  }
}

}  // namespace lm::serve
