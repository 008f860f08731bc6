// Tests for lib/serve/engine: jobs submitted from other threads come back through their
// channels with generate()'s tokens, the capacity refuses what does not fit, cancelling ends a
// job, and drain() waits for everything in flight.
#include "serve/engine.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "base/rng.hpp"
#include "model/model.hpp"
#include "model/session.hpp"
#include "model/weights.hpp"
#include "sample/generate.hpp"
#include "test_util.hpp"

using namespace lm;
using namespace lm::serve;

namespace {

const Logger quiet("test", Logger::Level::Quiet);

struct Fixture {
  Tokenizer tok =
      test::train_tokenizer(std::vector<std::string>(200, "the jury said the county election was fair"), 300);
  model::ModelConfig cfg;
  model::Params params;
  explicit Fixture(int width = 64) : cfg(make_cfg(tok.vocab_size(), width)), params(cfg, false) {
    Rng rng(5);
    params.init(rng);
    for (auto& w : params.w) w *= 8.0f;  // spread the logits so sampling has choices to make
  }
  static model::ModelConfig make_cfg(int V, int width) {
    model::ModelConfig c;
    c.n_vocab = V, c.n_ctx = 64, c.n_layer = 2, c.n_embd = width, c.n_head = 4, c.n_head_kv = 2, c.n_ff = 2 * width;
    return c;
  }
};

sample::SequenceSpec spec(const std::vector<int>& prompt, int max_tokens, float temperature, uint64_t seed) {
  sample::SequenceSpec s;
  s.prompt = prompt;
  s.opts.max_tokens = max_tokens;
  s.opts.ignore_eos = true;
  s.opts.sampler.temperature = temperature;
  s.seed = seed;
  return s;
}

// Reads a job's events until every choice ended (at most 20 s): texts, token ids and results.
struct Collected {
  std::vector<std::string> text;
  std::vector<std::vector<int>> ids;
  std::vector<sample::GenerateResult> result;
  std::vector<std::string> error;
  int done = 0;
};
Collected collect(Job& job) {
  Collected c;
  c.text.resize(size_t(job.choices()));
  c.ids.resize(size_t(job.choices()));
  c.result.resize(size_t(job.choices()));
  c.error.resize(size_t(job.choices()));
  JobEvent e;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (c.done < job.choices() && std::chrono::steady_clock::now() < until) {
    if (!job.next(e, std::chrono::milliseconds(50))) continue;
    if (e.done) {
      c.result[size_t(e.choice)] = e.result;
      c.error[size_t(e.choice)] = e.error;
      ++c.done;
    } else {
      c.text[size_t(e.choice)] += e.token.text;
      c.ids[size_t(e.choice)].push_back(e.token.id);
    }
  }
  return c;
}

}  // namespace

TEST_CASE("Engine: jobs from several threads get generate()'s tokens back") {
  Fixture f;
  const model::Weights w = model::view_weights(f.params);
  std::vector<std::vector<int>> prompts;
  for (const char* t : {"the jury", "said the county election", "fair", "was fair said"})
    f.tok.encode(t, prompts.emplace_back());
  // Alone, through generate(): the reference.
  std::vector<std::vector<int>> want(prompts.size());
  std::vector<std::string> want_text(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    model::Session s(w, 32, 8);
    sample::SequenceSpec sp = spec(prompts[i], 12, i % 2 ? 0.0f : 0.9f, 100 + i);
    sample::Sampler sampler(sp.opts.sampler, sp.seed);
    want_text[i] = sample::generate(
                       s, f.tok, prompts[i], sp.opts, sampler,
                       [&](const sample::TokenEvent& e) { want[i].push_back(e.id); }, quiet)
                       .text;
  }
  Engine engine(w, f.tok, 2, 32, 8, 8, quiet);
  std::vector<Collected> got(2);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < 2; ++t)  // two requests of two choices each, from two threads
    threads.emplace_back([&, t] {
      std::vector<sample::SequenceSpec> specs;
      for (size_t i = 2 * t; i < 2 * t + 2; ++i) specs.push_back(spec(prompts[i], 12, i % 2 ? 0.0f : 0.9f, 100 + i));
      auto job = engine.submit(std::move(specs));
      REQUIRE(job);
      got[t] = collect(*job);
    });
  for (auto& th : threads) th.join();
  for (size_t i = 0; i < prompts.size(); ++i) {
    CAPTURE(i);
    const Collected& c = got[i / 2];
    REQUIRE(c.done == 2);
    CHECK(c.ids[i % 2] == want[i]);
    CHECK(c.text[i % 2] == want_text[i]);
    CHECK(c.result[i % 2].text == want_text[i]);
    CHECK(c.result[i % 2].stop_reason == "length");
  }
  engine.drain();
  CHECK(engine.in_flight() == 0);
}

TEST_CASE("Engine: the capacity refuses a job that does not fit; cancelling ends a job") {
  Fixture f(256);  // wide enough that 3 x 60 decoding steps take long past the cancel
  const model::Weights w = model::view_weights(f.params);
  std::vector<int> prompt;
  f.tok.encode("the jury said", prompt);
  Engine engine(w, f.tok, 1, 64, 8, 3, quiet);
  CHECK(engine.capacity() == 3);
  std::vector<sample::SequenceSpec> four;
  for (int i = 0; i < 4; ++i) four.push_back(spec(prompt, 4, 0, 1));
  CHECK(engine.submit(std::move(four)) == nullptr);
  CHECK(engine.in_flight() == 0);

  // Three long sequences on one slot: cancelled at once, they end as "cancelled" well before
  // the end of their context, and the capacity is free again.
  std::vector<sample::SequenceSpec> three;
  for (int i = 0; i < 3; ++i) three.push_back(spec(prompt, -1, 0, 1));
  auto job = engine.submit(std::move(three));
  REQUIRE(job);
  job->cancel();
  job->cancel();  // twice is harmless
  const Collected c = collect(*job);
  REQUIRE(c.done == 3);
  int cancelled = 0;
  for (const auto& r : c.result) cancelled += r.stop_reason == "cancelled";
  CHECK(cancelled >= 2);  // the running one may have finished first on a fast machine; the queued two cannot
  engine.drain();
  CHECK(engine.in_flight() == 0);
  auto again = engine.submit({spec(prompt, 3, 0, 1)});
  REQUIRE(again);
  CHECK(collect(*again).result[0].tokens == 3);
}

TEST_CASE("Engine: a sequence the generator refuses ends with its error") {
  Fixture f;
  const model::Weights w = model::view_weights(f.params);
  Engine engine(w, f.tok, 1, 8, 8, 2, quiet);
  std::vector<int> long_prompt(20, 5);  // longer than the context of 8 under Overflow::Stop
  auto job = engine.submit({spec(long_prompt, 2, 0, 1)});
  REQUIRE(job);
  const Collected c = collect(*job);
  REQUIRE(c.done == 1);
  CHECK(c.error[0].find("the prompt has 20 tokens") != std::string::npos);
  CHECK(c.result[0].tokens == 0);
  engine.drain();
  CHECK(engine.in_flight() == 0);
}
