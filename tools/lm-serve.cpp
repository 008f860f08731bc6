// lm-serve: an OpenAI-compatible HTTP server for a GGUF model (completions, chat, embeddings,
// models, health). The HTTP is cpp-httplib's (one thread per connection from a fixed pool);
// request bodies are read and responses shaped by lib/serve/openai, and the decoding is
// lib/serve/engine's single engine thread over a sample::BatchGenerator. This file parses the
// command line, wires the endpoints, enforces the connection limits (read deadline, body size,
// API key) and handles SIGINT/SIGTERM. docs/serve.md.
#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <deque>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <thread>

#include "base/error.hpp"
#include "base/json.hpp"
#include "chat/chat_template.hpp"
#include "common/cli.hpp"
#include "eval/embed.hpp"
#include "kernels/blas.hpp"
#include "model/model_io.hpp"
#include "sample/generate.hpp"
#include "serve/engine.hpp"
#include "serve/openai.hpp"

namespace {

using lm::serve::ApiError;
using lm::serve::Endpoint;
using Clock = std::chrono::steady_clock;

// ---- connections ----

// A connection's byte stream, as httplib's own SocketStream but with a deadline: a request
// (request line, headers and body) must arrive within `request_timeout` of the first byte
// awaited for it, however slowly its bytes trickle in, and may not exceed `request_bytes`.
// Handlers end the request's reading (request_read()); their writes have the write timeout.
class ConnStream : public httplib::Stream {
 public:
  ConnStream(int sock, double request_timeout_s, double write_timeout_s, size_t request_bytes)
      : sock_(sock),
        request_timeout_(to_duration(request_timeout_s)),
        write_timeout_(to_duration(write_timeout_s)),
        request_bytes_(request_bytes) {}

  // Starts reading a request: its deadline and byte budget.
  void begin_request() {
    deadline_ = Clock::now() + request_timeout_;
    read_bytes_ = 0;
    reading_ = true;
  }
  void request_read() { reading_ = false; }
  // The response ends the connection (a request refused before its body was read).
  bool close_after = false;

  bool is_readable() const override { return wait(POLLIN, reading_ ? deadline_ : Clock::now() + request_timeout_); }
  bool is_writable() const override { return wait(POLLOUT, Clock::now() + write_timeout_); }

  ssize_t read(char* ptr, size_t size) override {
    if (buf_off_ == buf_len_) {
      if (!is_readable()) return -1;
      ssize_t n;
      do n = ::recv(sock_, buf_, sizeof buf_, 0);
      while (n < 0 && errno == EINTR);
      if (n <= 0) return n;
      buf_off_ = 0, buf_len_ = size_t(n);
      if (reading_ && (read_bytes_ += size_t(n)) > request_bytes_) return -1;
    }
    const size_t k = std::min(size, buf_len_ - buf_off_);
    std::memcpy(ptr, buf_ + buf_off_, k);
    buf_off_ += k;
    return ssize_t(k);
  }

  ssize_t write(const char* ptr, size_t size) override {
    if (!is_writable()) return -1;
    ssize_t n;
    do n = ::send(sock_, ptr, size, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n;
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override { address(true, ip, port); }
  void get_local_ip_and_port(std::string& ip, int& port) const override { address(false, ip, port); }
  socket_t socket() const override { return sock_; }

  // Whether bytes of a next request are already here or arrive within `timeout_s`.
  bool wait_next(double timeout_s) const {
    return buf_off_ < buf_len_ || wait(POLLIN, Clock::now() + to_duration(timeout_s));
  }

 private:
  static Clock::duration to_duration(double s) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
  }
  bool wait(short events, Clock::time_point until) const {
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
      if (left <= 0) {  // the deadline has come: one last look that does not wait
        pollfd p{sock_, events, 0};
        return ::poll(&p, 1, 0) > 0;
      }
      pollfd p{sock_, events, 0};
      const int r = ::poll(&p, 1, int(std::min<long long>(left, 1000)));
      if (r > 0) return true;
      if (r < 0 && errno != EINTR) return false;
    }
  }
  void address(bool peer, std::string& ip, int& port) const {
    sockaddr_storage a{};
    socklen_t len = sizeof a;
    if ((peer ? ::getpeername(sock_, (sockaddr*)&a, &len) : ::getsockname(sock_, (sockaddr*)&a, &len)) != 0) return;
    char buf[INET6_ADDRSTRLEN] = "";
    if (a.ss_family == AF_INET) {
      const auto* in = (const sockaddr_in*)&a;
      ::inet_ntop(AF_INET, &in->sin_addr, buf, sizeof buf);
      port = ntohs(in->sin_port);
    } else if (a.ss_family == AF_INET6) {
      const auto* in = (const sockaddr_in6*)&a;
      ::inet_ntop(AF_INET6, &in->sin6_addr, buf, sizeof buf);
      port = ntohs(in->sin6_port);
    }
    ip = buf;
  }

  int sock_;
  Clock::duration request_timeout_, write_timeout_;
  size_t request_bytes_, read_bytes_ = 0;
  Clock::time_point deadline_{};
  bool reading_ = false;
  char buf_[4096];
  size_t buf_off_ = 0, buf_len_ = 0;
};

// The connection the current thread serves.
thread_local ConnStream* t_conn = nullptr;

// True when the client of the current connection has closed it (read end at EOF or reset).
bool client_gone() {
  if (!t_conn) return false;
  char c;
  const ssize_t n = ::recv(t_conn->socket(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

// Marks the current request as read (its deadline no longer applies): every handler starts so.
void request_read() {
  if (t_conn) t_conn->request_read();
}

// Ends the connection after this response: its request's body was not read, so what follows
// on the connection is not a request.
void close_after(httplib::Response& res) {
  res.set_header("Connection", "close");
  if (t_conn) t_conn->close_after = true;
}

struct ConnLimits {
  double read_timeout_s, write_timeout_s, keep_alive_s;
  size_t request_bytes;
  size_t keep_alive_max = 100;
};

// The connection threads: httplib's ThreadPool, which also says how many accepted connections
// wait for a thread, so that a connection idle between requests gives its thread up to them.
class Pool : public httplib::TaskQueue {
 public:
  explicit Pool(size_t n) {
    for (size_t i = 0; i < n; ++i) threads_.emplace_back([this] { work(); });
  }
  void enqueue(std::function<void()> fn) override {
    {
      std::lock_guard<std::mutex> g(mu_);
      jobs_.push_back(std::move(fn));
      waiting_ = jobs_.size();
    }
    cv_.notify_one();
  }
  void shutdown() override {
    {
      std::lock_guard<std::mutex> g(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  size_t waiting() const { return waiting_.load(); }

 private:
  void work() {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return stop_ || !jobs_.empty(); });
        if (jobs_.empty()) return;
        fn = std::move(jobs_.front());
        jobs_.pop_front();
        waiting_ = jobs_.size();
      }
      fn();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  std::atomic<size_t> waiting_{0};
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

// httplib's server with lm-serve's connection loop: httplib's, with ConnStream, and a
// connection kept open between requests only while no other connection waits for a thread
// and the server is not stopping.
class HttpServer : public httplib::Server {
 public:
  HttpServer(const ConnLimits& lim, size_t threads) : lim_(lim) {
    new_task_queue = [this, threads] { return pool_ = new Pool(threads); };
  }
  std::atomic<bool> closing{false};

 private:
  bool busy() const {
    const Pool* p = pool_.load();
    return closing || (p && p->waiting() > 0);
  }

  bool process_and_close_socket(socket_t sock) override {
    ConnStream strm(sock, lim_.read_timeout_s, lim_.write_timeout_s, lim_.request_bytes);
    t_conn = &strm;
    bool ok = false;
    for (size_t count = lim_.keep_alive_max; count > 0; --count) {
      if (count == lim_.keep_alive_max) {
        if (!strm.wait_next(lim_.read_timeout_s)) break;
      } else {
        // Idle: wait for the next request in short slices, giving up when others need the thread.
        bool next = false;
        for (double waited = 0; !next && waited < lim_.keep_alive_s && !busy(); waited += 0.05)
          next = strm.wait_next(0.05);
        // A request that arrived as the wait gave up is served (and the connection then closed)
        // rather than dropped unanswered: the client sent it on a connection it was told stays open.
        if (!next) next = strm.wait_next(0);
        if (!next) break;
      }
      strm.begin_request();
      bool closed = false;
      ok = process_request(strm, count == 1 || busy(), closed, nullptr);
      if (!ok || closed || strm.close_after) break;
    }
    t_conn = nullptr;
    ::shutdown(sock, SHUT_RDWR);
    ::close(sock);
    return ok;
  }

  ConnLimits lim_;
  std::atomic<Pool*> pool_{nullptr};  // owned by httplib (new_task_queue)
};

// ---- the server ----

std::string read_key_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw lm::IoError(path, "cannot open the API key file", errno);
  std::string key;
  char buf[4097];
  in.read(buf, sizeof buf);
  key.assign(buf, size_t(in.gcount()));
  if (key.size() > 4096) throw lm::UsageError(path + ": the API key file is longer than 4096 bytes");
  key = key.substr(0, key.find_first_of("\r\n"));
  while (!key.empty() && (key.back() == ' ' || key.back() == '\t')) key.pop_back();
  if (key.empty()) throw lm::UsageError(path + ": the API key file's first line is empty");
  return key;
}

std::string base_name(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string hex_id() {
  static std::atomic<uint64_t> counter{0};
  static const uint64_t salt = uint64_t(std::random_device{}()) << 32 | std::random_device{}();
  char buf[40];
  std::snprintf(buf, sizeof buf, "%016llx%llx", (unsigned long long)salt, (unsigned long long)++counter);
  return buf;
}

// HTTP requests being answered (a streaming one until its last byte is written).
std::atomic<int> g_answering{0};
struct Answering {
  Answering() { ++g_answering; }
  ~Answering() { --g_answering; }
  Answering(const Answering&) = delete;
  Answering& operator=(const Answering&) = delete;
};

struct Config {
  std::string model_path, model_id, api_key;
  int n_ctx = 0, parallel = 0, queue = 0;
  bool add_bos = false;
  lm::serve::Limits limits;
};

class Service {
 public:
  Service(const Config& cfg, const lm::model::LoadedModel& m, lm::serve::Engine& engine,
          std::optional<lm::chat::Template> tmpl, std::string tmpl_error, const lm::Logger& log)
      : cfg_(cfg),
        m_(m),
        tok_(m.tok),
        engine_(engine),
        tmpl_(std::move(tmpl)),
        tmpl_error_(std::move(tmpl_error)),
        log_(log) {}

  std::atomic<bool> draining{false};

  static void send_error(httplib::Response& res, const ApiError& e) {
    res.status = e.status;
    res.set_content(lm::dump_json(lm::serve::error_json(e)), "application/json");
  }

  // Runs a handler, answering its exceptions with error objects.
  template <class F>
  void guarded(httplib::Response& res, F&& f) {
    try {
      f();
    } catch (const ApiError& e) {
      send_error(res, e);
    } catch (const lm::UsageError& e) {
      send_error(res, ApiError(400, e.what()));
    } catch (const std::bad_alloc&) {
      send_error(res, ApiError(500, "out of memory", "server_error"));
    } catch (const std::exception& e) {
      send_error(res, ApiError(500, e.what(), "server_error"));
    }
  }

  // Before routing: the API key, and no new work while draining.
  bool refuse(const httplib::Request& req, httplib::Response& res) {
    if (!cfg_.api_key.empty() && req.path != "/health") {
      const std::string auth = req.get_header_value("Authorization");
      const std::string prefix = "Bearer ";
      const bool ok = auth.size() > prefix.size() && auth.compare(0, prefix.size(), prefix) == 0 &&
                      lm::serve::same_key(std::string_view(auth).substr(prefix.size()), cfg_.api_key);
      if (!ok) {
        send_error(res, ApiError(401,
                                 auth.empty() ? "no API key: send it as the header 'Authorization: Bearer KEY'"
                                              : "incorrect API key provided",
                                 "invalid_request_error", "", "invalid_api_key"));
        res.set_header("WWW-Authenticate", "Bearer");
        close_after(res);
        return true;
      }
    }
    if (draining) {
      send_error(res, ApiError(503, "the server is shutting down", "server_error"));
      close_after(res);
      return true;
    }
    return false;
  }

  void health(httplib::Response& res) {
    res.set_content(lm::dump_json(lm::Json{{"status", "ok"},
                                           {"slots", cfg_.parallel},
                                           {"in_flight", engine_.in_flight()},
                                           {"capacity", engine_.capacity()}}),
                    "application/json");
  }

  lm::Json model_json() const {
    return lm::Json{{"id", cfg_.model_id}, {"object", "model"}, {"created", created_}, {"owned_by", "lm"}};
  }
  void models(httplib::Response& res) {
    res.set_content(lm::dump_json(lm::Json{{"object", "list"}, {"data", lm::Json::array({model_json()})}}),
                    "application/json");
  }

  // GET /v1/models/ID: the model, or 404.
  void model(const std::string& id, httplib::Response& res) {
    if (id != cfg_.model_id)
      throw ApiError(404, "the model '" + id + "' does not exist; this server has '" + cfg_.model_id + "'",
                     "invalid_request_error", "model", "model_not_found");
    res.set_content(lm::dump_json(model_json()), "application/json");
  }

  // POST /v1/embeddings: the texts' pooled final hidden states (lm-eval embed's), unit length.
  // They are computed on the engine thread between decoding steps: one evaluation at a time.
  void embeddings(const httplib::Request& req, httplib::Response& res) {
    request_read();
    Answering answering;
    const lm::serve::EmbeddingRequest r = lm::serve::parse_embedding_request(req.body, 256);
    if (!r.model.empty() && r.model != cfg_.model_id)
      throw ApiError(404, "the model '" + r.model + "' does not exist; this server has '" + cfg_.model_id + "'",
                     "invalid_request_error", "model", "model_not_found");
    if (r.dimensions > 0 && r.dimensions != m_.weights.cfg.n_embd)
      throw ApiError(400, "this model's embeddings have " + std::to_string(m_.weights.cfg.n_embd) + " dimensions",
                     "invalid_request_error", "dimensions");
    std::vector<float> out;
    int tokens = 0;
    const bool ran = engine_.run_task([&] {
      if (!embedder_) {
        lm::eval::EmbedOptions o;
        o.pooling = lm::eval::file_pooling(m_.gguf, cfg_.model_path).value_or(lm::eval::Pooling::Mean);
        o.normalize = true;  // OpenAI's embeddings have unit length
        o.n_ctx = cfg_.n_ctx;
        o.n_seq = 4;
        embedder_ = std::make_unique<lm::eval::Embedder>(m_.weights, tok_, o, log_);
      }
      for (size_t i = 0; i < r.input.size(); ++i) {
        const size_t n = embedder_->tokens(r.input[i]).size();
        if (n > size_t(cfg_.n_ctx))
          throw ApiError(400,
                         "input " + std::to_string(i) + " has " + std::to_string(n) +
                             " tokens, more than the context of " + std::to_string(cfg_.n_ctx) +
                             " (lm-serve --ctx-size)",
                         "invalid_request_error", "input", "context_length_exceeded");
        tokens += int(n);
      }
      embedder_->embed(r.input, out, "input");
    });
    if (!ran) {
      send_error(res, busy_error());
      res.set_header("Retry-After", "1");
      return;
    }
    res.set_content(lm::dump_json(lm::serve::embedding_json(r, cfg_.model_id, out, embedder_->dim(), tokens)),
                    "application/json");
  }

  ApiError busy_error() const {
    return ApiError(503,
                    "the server is busy: " + std::to_string(engine_.in_flight()) + " sequences in flight, " +
                        std::to_string(cfg_.parallel) + " slots and a queue of " + std::to_string(cfg_.queue) +
                        "; retry later",
                    "server_error", "", "server_busy");
  }

  void generate(const httplib::Request& req, httplib::Response& res, Endpoint ep) {
    request_read();
    auto answering = std::make_shared<Answering>();
    const auto t0 = Clock::now();
    auto r = std::make_shared<lm::serve::Request>(lm::serve::parse_request(req.body, ep, cfg_.limits));
    if (!r->model.empty() && r->model != cfg_.model_id)
      throw ApiError(404, "the model '" + r->model + "' does not exist; this server has '" + cfg_.model_id + "'",
                     "invalid_request_error", "model", "model_not_found");
    std::vector<std::vector<int>> prompts;
    if (ep == Endpoint::Completions) {
      for (const auto& p : r->prompts) {
        std::vector<int> ids;
        if (p.is_ids) {
          ids = p.ids;
        } else {
          if (cfg_.add_bos) ids.push_back(*tok_.bos_id());
          tok_.encode_text(p.text, ids);  // as lm-generate -p does
        }
        prompts.push_back(std::move(ids));
      }
    } else {
      if (!tmpl_) throw ApiError(400, tmpl_error_, "invalid_request_error", "messages");
      std::vector<lm::chat::Message> msgs;
      for (const auto& m : r->messages) msgs.push_back({m.role, m.content});
      std::string text;
      try {
        text = tmpl_->apply(msgs, true);
      } catch (const lm::UsageError& e) {
        throw ApiError(400, e.what(), "invalid_request_error", "messages");
      }
      // docs/chat.md: control tokens parsed, a BOS per the model unless the template wrote it.
      prompts.push_back(lm::chat::encode_prompt(tok_, text, cfg_.add_bos));
    }
    for (const auto& ids : prompts) {
      if (ids.empty())
        throw ApiError(400, "the prompt is empty (and this model's prompts do not start with BOS)",
                       "invalid_request_error", "prompt");
      if (int(ids.size()) > cfg_.n_ctx)
        throw ApiError(
            400,
            "this model's context is " + std::to_string(cfg_.n_ctx) +
                " tokens (lm-serve --ctx-size), but the prompt has " + std::to_string(ids.size()) + " tokens",
            "invalid_request_error", ep == Endpoint::Chat ? "messages" : "prompt", "context_length_exceeded");
    }

    // One sequence per choice: prompt i's choice j is choice i * n + j.
    const uint64_t seed = r->seed ? *r->seed : (uint64_t(std::random_device{}()) << 32 | std::random_device{}());
    std::vector<lm::sample::SequenceSpec> specs;
    int prompt_tokens = 0;
    for (const auto& ids : prompts) {
      prompt_tokens += int(ids.size());
      for (int j = 0; j < r->n; ++j) {
        lm::sample::SequenceSpec s;
        s.prompt = ids;
        s.opts = r->opts;
        s.seed = lm::sample::line_seed(seed, specs.size());
        specs.push_back(std::move(s));
      }
    }
    const int k = int(specs.size());
    std::shared_ptr<lm::serve::Job> job = engine_.submit(std::move(specs));
    if (!job) {
      send_error(res, busy_error());
      res.set_header("Retry-After", "1");
      return;
    }
    const lm::serve::ResponseHead head{(ep == Endpoint::Chat ? "chatcmpl-" : "cmpl-") + hex_id(), created_now(),
                                       cfg_.model_id};

    if (!r->stream) {
      std::vector<lm::serve::Choice> choices(static_cast<size_t>(k));
      lm::serve::Usage usage{prompt_tokens, 0};
      std::string error;
      int done = 0;
      lm::serve::JobEvent e;
      for (long polls = 0; done < k;) {
        const bool got = job->next(e, std::chrono::milliseconds(100));
        if ((!got || ++polls % 64 == 0) && client_gone()) {
          job->cancel();
          log_.debug("%s: the client went away; cancelled", head.id.c_str());
          res.status = 499;  // nginx's "client closed request"; nobody reads it
          return;
        }
        if (!got) continue;
        lm::serve::Choice& c = choices[size_t(e.choice)];
        if (!e.done) {
          if (r->logprobs) c.logprobs.push_back({e.token.id, e.token.logprob, e.token.top});
          continue;
        }
        ++done;
        c.index = e.choice;
        c.text = e.result.text;
        c.finish_reason = lm::serve::finish_reason(e.result.stop_reason);
        usage.completion_tokens += e.result.tokens;
        if (!e.error.empty()) error = e.error;
      }
      if (!error.empty()) throw ApiError(500, error, "server_error");
      res.set_content(lm::dump_json(lm::serve::response_json(*r, head, choices, usage, tok_)), "application/json");
      log_.debug("%s: %d prompt tokens, %d completion tokens, %.3f s", head.id.c_str(), usage.prompt_tokens,
                 usage.completion_tokens, std::chrono::duration<double>(Clock::now() - t0).count());
      return;
    }

    // Streaming: the provider runs on this connection's thread once the headers are written.
    res.set_header("Cache-Control", "no-cache");
    auto provider = [this, job, r, head, k, prompt_tokens, answering, t0](size_t, httplib::DataSink& sink) {
      std::vector<bool> started(static_cast<size_t>(k), false);
      std::vector<std::vector<lm::serve::TokenLogprobs>> lps(static_cast<size_t>(k));
      lm::serve::Usage usage{prompt_tokens, 0};
      int done = 0;
      lm::serve::JobEvent e;
      auto write = [&](const std::string& s) {
        if (sink.write(s.data(), s.size())) return true;
        job->cancel();
        log_.debug("%s: the client went away; cancelled", head.id.c_str());
        return false;
      };
      while (done < k) {
        if (!job->next(e, std::chrono::milliseconds(100))) {
          if (client_gone()) {
            job->cancel();
            log_.debug("%s: the client went away; cancelled", head.id.c_str());
            return false;
          }
          continue;
        }
        const size_t c = size_t(e.choice);
        std::string text;
        std::string finish;
        if (!e.done) {
          text = e.token.text;
          if (r->logprobs) lps[c].push_back({e.token.id, e.token.logprob, e.token.top});
          if (text.empty() && lps[c].empty() && started[c]) continue;
        } else {
          ++done;
          usage.completion_tokens += e.result.tokens;
          if (!e.error.empty()) {
            if (!write(lm::serve::sse_event(lm::serve::error_json(ApiError(500, e.error, "server_error")))))
              return false;
            continue;
          }
          finish = lm::serve::finish_reason(e.result.stop_reason);
        }
        const bool first = !started[c];
        started[c] = true;
        if (!write(lm::serve::sse_event(lm::serve::chunk_json(*r, head, e.choice, text, first, lps[c], finish, tok_))))
          return false;
        lps[c].clear();
      }
      if (r->include_usage && !write(lm::serve::sse_event(lm::serve::usage_chunk_json(*r, head, usage)))) return false;
      if (!write(std::string(lm::serve::kSseDone))) return false;
      sink.done();
      log_.debug("%s: %d prompt tokens, %d completion tokens, %.3f s (streamed)", head.id.c_str(), usage.prompt_tokens,
                 usage.completion_tokens, std::chrono::duration<double>(Clock::now() - t0).count());
      return true;
    };
    res.set_chunked_content_provider("text/event-stream", provider, [job](bool ok) {
      if (!ok) job->cancel();  // the stream was cut: nobody reads the rest
    });
  }

 private:
  static int64_t created_now() { return int64_t(std::time(nullptr)); }
  const Config& cfg_;
  const lm::model::LoadedModel& m_;
  const lm::Tokenizer& tok_;
  std::unique_ptr<lm::eval::Embedder> embedder_;  // made and used on the engine thread
  lm::serve::Engine& engine_;
  std::optional<lm::chat::Template> tmpl_;
  std::string tmpl_error_;
  const lm::Logger& log_;
  const int64_t created_ = int64_t(std::time(nullptr));
};

// The body of an error httplib answered itself (a bad request line, an oversized body, no route).
ApiError http_error(const httplib::Request& req, const httplib::Response& res, size_t max_body) {
  switch (res.status) {
    case 404:
      return ApiError(404, "no endpoint " + req.method + " " + req.path, "invalid_request_error", "", "not_found");
    case 413:
      return ApiError(413,
                      "the request body is larger than " + std::to_string(max_body) + " bytes (lm-serve --max-body)",
                      "invalid_request_error", "", "request_too_large");
    case 414:
      return ApiError(414, "the request line is too long");
    default:
      return ApiError(res.status, res.status < 500 ? "malformed HTTP request" : "internal error",
                      res.status < 500 ? "invalid_request_error" : "server_error");
  }
}

}  // namespace

int main(int argc, char** argv) {
  lm::Logger log("lm-serve");
  std::string model, host = "127.0.0.1", api_key, api_key_file, chat_template, read_timeout = "10s",
                     write_timeout = "10s";
  int port = 8080, parallel = 4, queue = 16, n_ctx = 0, n_batch = 512, max_tokens = 4096, threads = 0;
  size_t max_body = size_t(1) << 20;

  CLI::App app{"Serve a GGUF model over HTTP with the OpenAI API (completions, chat, models)"};
  lm::tools::init_app(app, "lm-serve");
  lm::tools::doc(app.add_option("-m,--model", model, "Model file (GGUF)")->type_name("FILE")->required())
      .group("Model")
      .man(R"(The model (required), as
.BR lm-generate (1)
reads it. Its file name is the model id that
.B /v1/models
lists and requests may name.)");
  lm::tools::doc(app.add_option("-c,--ctx-size", n_ctx, "Context of each slot in tokens (0 = the model's)")
                     ->check(CLI::Range(0, 1 << 20)))
      .group("Model")
      .man(R"(Context of each slot in tokens: a request's prompt and completion together (0: the
model's context length, which is also the largest allowed). A longer prompt is refused with
400 and the code
.BR context_length_exceeded ;
a completion that fills the context ends with finish_reason
.BR length .
The cache of a slot grows with the longest sequence it has held, up to this size.)");
  lm::tools::doc(
      app.add_option("-b,--batch", n_batch, "Tokens evaluated per decoding step")->check(CLI::Range(1, 1 << 16)))
      .group("Model")
      .man(R"(Tokens evaluated together in one step: prompt chunks of starting requests share it with
the decoding tokens of running ones.)");
  lm::tools::doc(app.add_option("--chat-template", chat_template, "Chat template family (default: the model's)")
                     ->type_name("NAME"))
      .group("Model")
      .man(R"(The chat template family for
.BR /v1/chat/completions ,
instead of the one recognised from the model's
.BR tokenizer.chat_template :
one of the names
.B lm-generate \-\-chat
knows (chatml, llama2, llama3, mistral-v7, phi3, gemma, zephyr, ...). An unknown name is a usage
error that lists the known ones. Without a template, chat requests are refused with 400
and completions are served.)");
  lm::tools::doc(app.add_option("--host", host, "Address to listen on")->type_name("ADDR"))
      .group("Network")
      .man(R"(The address to listen on. The default takes connections from this machine only;
.B 0.0.0.0
exposes the server to the network, where
.B \-\-api\-key
should be set.)");
  lm::tools::doc(
      app.add_option("--port", port, "TCP port (0 = any free port, printed at start)")->check(CLI::Range(0, 65535)))
      .group("Network")
      .man(R"(The TCP port; 0 picks a free one. The line
.B lm-serve: listening on http://HOST:PORT
on standard error says which, once the server takes requests.)");
  lm::tools::doc(
      app.add_option("--api-key", api_key, "Require this key as 'Authorization: Bearer KEY'")->type_name("KEY"))
      .group("Network")
      .man(R"(Require
.I KEY
on every request but
.B /health
as the header
.BR "Authorization: Bearer KEY" ;
others get 401. The comparison takes the same time wherever the keys differ. A key given
here is visible to other users of the machine in the process list; prefer
.BR \-\-api\-key\-file .)");
  lm::tools::doc(
      app.add_option("--api-key-file", api_key_file, "Read the API key from FILE's first line")->type_name("FILE"))
      .group("Network")
      .man(R"(Read the key of
.B \-\-api\-key
from the first line of
.IR FILE .)");
  lm::tools::doc(app.add_option("--parallel", parallel, "Requests decoded together (slots)")->check(CLI::Range(1, 256)))
      .group("Limits")
      .man(R"(Sequences decoded together: each has a slot of the KV cache, and every decoding step
evaluates all of them in one pass over the weights. A request with
.B n
> 1 choices takes one slot per choice.)");
  lm::tools::doc(
      app.add_option("--queue", queue, "Sequences that may wait for a slot; more get 503")->check(CLI::Range(0, 4096)))
      .group("Limits")
      .man(R"(Sequences that may wait for a free slot. A request that would take the sequences in
flight beyond
.B \-\-parallel
plus this is answered at once with 503 and
.BR "Retry-After: 1" .)");
  lm::tools::doc(app.add_option("--max-tokens", max_tokens, "Largest max_tokens a request may ask for")
                     ->check(CLI::Range(1, 1 << 24)))
      .group("Limits")
      .man(R"(The largest
.B max_tokens
a request may ask for (more is refused with 400), and the length of a chat completion whose
request does not say.)");
  lm::tools::doc(app.add_option("--max-body", max_body, "Largest request body in bytes")
                     ->check(CLI::Range(size_t(1024), size_t(1) << 30)))
      .group("Limits")
      .man(R"(The largest request body; a larger one is answered with 413.)");
  lm::tools::doc(app.add_option("--read-timeout", read_timeout, "Time a client has to send a whole request")
                     ->type_name("DURATION"))
      .group("Limits")
      .man(R"(The time a connection has to deliver a whole request (headers and body), counted from
when it opens and again from the end of each response; a slower one is closed. Accepts
90, 90s, 10m, 1.5h.)");
  lm::tools::doc(app.add_option("--write-timeout", write_timeout, "Time a client may stop reading a response")
                     ->type_name("DURATION"))
      .group("Limits")
      .man(R"(How long a write to a client may block (a client that stops reading a stream); then
the connection is closed and its request cancelled.)");
  lm::tools::add_threads(app, threads);
  lm::tools::add_verbosity(app, log, R"(Also log each request: method, path, status and client, and for a completion its
token counts and time.)");

  return lm::tools::run_main(app, argc, argv, [&]() -> int {
    const double read_s = lm::tools::parse_duration(read_timeout, "--read-timeout");
    const double write_s = lm::tools::parse_duration(write_timeout, "--write-timeout");
    if (!api_key.empty() && !api_key_file.empty()) throw lm::UsageError("give --api-key or --api-key-file, not both");
    if (!api_key_file.empty()) api_key = read_key_file(api_key_file);
    // Signals go to the main thread alone (sigwait below); every thread started from here on
    // inherits the mask. A client that closes its connection must not kill the server.
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
    std::signal(SIGPIPE, SIG_IGN);

    lm::kernels::set_threads(threads);
    lm::model::LoadedModel m = lm::model::load_model(model);
    log.debug("%s: %s", model.c_str(), lm::model::describe_model(m.gguf).c_str());
    if (n_ctx > m.weights.cfg.max_context())
      throw lm::UsageError("--ctx-size " + std::to_string(n_ctx) + " is larger than the model's context length " +
                           std::to_string(m.weights.cfg.n_ctx));
    Config cfg;
    cfg.model_path = model;
    cfg.model_id = base_name(model);
    cfg.api_key = api_key;
    cfg.n_ctx = n_ctx > 0 ? n_ctx : m.weights.cfg.default_context();
    cfg.parallel = parallel;
    cfg.queue = queue;
    cfg.add_bos = m.add_bos && m.tok.bos_id().has_value();
    cfg.limits.n_vocab = m.tok.vocab_size();
    cfg.limits.max_tokens = max_tokens;
    cfg.limits.max_choices = std::min(16, parallel + queue);

    std::optional<lm::chat::Template> tmpl;
    std::string tmpl_error;
    if (!chat_template.empty()) {
      tmpl = lm::chat::Template::named(chat_template);  // UsageError listing the names
    } else {
      try {
        tmpl = lm::chat::for_model(m.gguf, model, "");
      } catch (const lm::Error& e) {
        tmpl_error = std::string("chat is not available: ") + e.what();
        log.warn("%s; /v1/chat/completions answers 400", tmpl_error.c_str());
      }
    }
    if (host != "127.0.0.1" && host != "localhost" && host != "::1" && api_key.empty())
      log.warn("listening on %s without --api-key: anyone who can reach it can use the model", host.c_str());

    lm::serve::Engine engine(m.weights, m.tok, parallel, cfg.n_ctx, n_batch, parallel + queue, log);
    Service svc(cfg, m, engine, tmpl, tmpl_error, log);
    // Connection threads: every sequence in flight may hold one, and a few more answer /health,
    // errors and slow clients meanwhile.
    HttpServer http(ConnLimits{read_s, write_s, std::min(5.0, read_s), max_body + (size_t(64) << 10)},
                    size_t(parallel + queue + 8));
    // SO_REUSEADDR (a restart need not wait for TIME_WAIT) but not httplib's default
    // SO_REUSEPORT, with which a second server on the same port would silently share it.
    http.set_socket_options([](socket_t sock) {
      const int yes = 1;
      ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    });
    http.set_payload_max_length(max_body);
    http.set_tcp_nodelay(true);
    http.set_pre_routing_handler([&](const httplib::Request& req, httplib::Response& res) {
      return svc.refuse(req, res) ? httplib::Server::HandlerResponse::Handled
                                  : httplib::Server::HandlerResponse::Unhandled;
    });
    http.set_logger([&](const httplib::Request& req, const httplib::Response& res) {
      log.debug("%s %s %d (%s:%d)", req.method.c_str(), req.path.c_str(), res.status, req.remote_addr.c_str(),
                req.remote_port);
    });
    http.set_error_handler(
        httplib::Server::HandlerWithResponse([&](const httplib::Request& req, httplib::Response& res) {
          if (!res.body.empty() || res.content_provider_) return httplib::Server::HandlerResponse::Unhandled;
          Service::send_error(res, http_error(req, res, max_body));
          return httplib::Server::HandlerResponse::Handled;
        }));
    http.set_exception_handler([&](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        Service::send_error(res, ApiError(500, e.what(), "server_error"));
      } catch (...) {
        Service::send_error(res, ApiError(500, "internal error", "server_error"));
      }
    });
    http.Get("/health", [&](const httplib::Request&, httplib::Response& res) {
      request_read();
      svc.health(res);
    });
    http.Get("/v1/models", [&](const httplib::Request&, httplib::Response& res) {
      request_read();
      svc.models(res);
    });
    http.Get(R"(/v1/models/(.+))", [&](const httplib::Request& req, httplib::Response& res) {
      request_read();
      svc.guarded(res, [&] { svc.model(req.matches[1].str(), res); });
    });
    http.Post("/v1/completions", [&](const httplib::Request& req, httplib::Response& res) {
      svc.guarded(res, [&] { svc.generate(req, res, Endpoint::Completions); });
    });
    http.Post("/v1/chat/completions", [&](const httplib::Request& req, httplib::Response& res) {
      svc.guarded(res, [&] { svc.generate(req, res, Endpoint::Chat); });
    });
    http.Post("/v1/embeddings", [&](const httplib::Request& req, httplib::Response& res) {
      svc.guarded(res, [&] { svc.embeddings(req, res); });
    });

    int bound = port;
    if (port == 0)
      bound = http.bind_to_any_port(host);
    else if (!http.bind_to_port(host, port))
      bound = -1;
    if (bound < 0)
      throw lm::Error(host + ":" + std::to_string(port) +
                      ": cannot listen there (in use, or not an address of this machine)");
    std::thread listener([&] { http.listen_after_bind(); });
    log.info("listening on http://%s:%d (model %s, %d slots of %d tokens, queue %d)",
             host.find(':') != std::string::npos ? ("[" + host + "]").c_str() : host.c_str(), bound,
             cfg.model_id.c_str(), parallel, cfg.n_ctx, queue);

    int sig = 0;
    sigwait(&sigs, &sig);
    // Stop taking connections, answer what was taken, then leave without waiting for idle
    // keep-alive connections (the kernel closes them).
    svc.draining = true;
    http.closing = true;
    http.stop();
    log.info("%s: finishing %d requests in flight", sig == SIGINT ? "SIGINT" : "SIGTERM", g_answering.load());
    // A second signal ends the wait: the requests still in flight are cut.
    const timespec tick{0, 20 * 1000 * 1000};
    while (g_answering.load() > 0 || engine.in_flight() > 0) {
      const int again = sigtimedwait(&sigs, nullptr, &tick);
      if (again > 0) {
        log.warn("%s again: exiting with %d requests unfinished", again == SIGINT ? "SIGINT" : "SIGTERM",
                 g_answering.load());
        sig = again;
        break;
      }
    }
    std::fflush(nullptr);
    std::_Exit(128 + sig);
  });
}
