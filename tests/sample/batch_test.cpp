// Tests for lib/sample/batch: sequences generated together give, token for token, what
// generate() gives each alone with the same options and seed; cancelling; refused prompts.
#include <doctest/doctest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "base/rng.hpp"
#include "model/model.hpp"
#include "model/session.hpp"
#include "model/weights.hpp"
#include "sample/batch.hpp"
#include "sample/generate.hpp"
#include "test_util.hpp"

using namespace lm;
using namespace lm::sample;

namespace {

struct Run {
  std::vector<int> ids;
  std::string text;  // the concatenated TokenEvent texts
  GenerateResult res;
  bool done = false;
};

const Logger quiet("test", Logger::Level::Quiet);

struct Fixture {
  Tokenizer tok = test::train_tokenizer(std::vector<std::string>(200, "the jury said the county election was fair"), 300);
  model::ModelConfig cfg;
  model::Params params;
  Fixture() : cfg(make_cfg(tok.vocab_size())), params(cfg, false) {
    Rng rng(3);
    params.init(rng);
    for (auto& w : params.w) w *= 8.0f;  // spread the logits so the samplers have choices to make
  }
  static model::ModelConfig make_cfg(int V) {
    model::ModelConfig c;
    c.n_vocab = V, c.n_ctx = 64, c.n_layer = 2, c.n_embd = 128, c.n_head = 4, c.n_head_kv = 2, c.n_ff = 256;
    return c;
  }
};

}  // namespace

TEST_CASE("BatchGenerator: every sequence equals generate() alone, token for token") {
  Fixture f;
  const int n_ctx = 24, n_batch = 8;
  std::vector<std::vector<int>> prompts;
  for (const char* t : {"the jury", "said the county election", "fair", "the", "was fair said the jury county election"})
    f.tok.encode(t, prompts.emplace_back());
  std::vector<int> longp;  // longer than the context: shifted
  for (int i = 0; i < 5; ++i) longp.insert(longp.end(), prompts[1].begin(), prompts[1].end());
  REQUIRE(int(longp.size()) > n_ctx);
  prompts.push_back(longp);
  std::vector<GenerateOptions> opts(prompts.size());
  for (size_t i = 0; i < opts.size(); ++i) {
    opts[i].max_tokens = 10 + int(i);
    opts[i].ignore_eos = true;
  }
  opts[1].sampler.temperature = 0;  // greedy
  opts[3].top_logprobs = 3;
  opts[3].max_tokens = 0;  // nothing to generate
  opts[4].max_tokens = 40, opts[4].overflow = Overflow::Shift;  // past the context: shifts
  opts[5].overflow = Overflow::Shift;
  opts[5].sampler.repeat_penalty = 1.3f;

  for (auto type : {format::GgmlType::Q8_0, format::GgmlType::Q4_0}) {
    CAPTURE(int(type));
    const model::Weights w = model::quantize_weights(f.params, type, type);
    std::vector<Run> alone(prompts.size()), together(prompts.size());
    {  // sequence 2 stops at a byte from the middle of its output (a random model's text)
      model::Session s(w, n_ctx, n_batch);
      Sampler sampler(opts[2].sampler, 102);
      opts[2].stop.clear();
      const std::string text = generate(s, f.tok, prompts[2], opts[2], sampler, [](const TokenEvent&) {}, quiet).text;
      REQUIRE(text.size() >= 2);
      opts[2].stop = {text.substr(text.size() / 2, 1)};
    }
    for (size_t i = 0; i < prompts.size(); ++i) {
      model::Session s(w, n_ctx, n_batch);
      Sampler sampler(opts[i].sampler, 100 + i);
      alone[i].res = generate(s, f.tok, prompts[i], opts[i], sampler, [&](const TokenEvent& e) {
        alone[i].ids.push_back(e.id);
        alone[i].text += e.text;
      }, quiet);
    }
    for (int n_seq : {1, 3, 8}) {
      CAPTURE(n_seq);
      BatchGenerator g(w, f.tok, n_seq, n_ctx, n_batch, quiet);
      together.assign(prompts.size(), Run());
      for (size_t i = 0; i < prompts.size(); ++i) {
        SequenceSpec s;
        s.prompt = prompts[i], s.opts = opts[i], s.seed = 100 + i;
        s.on_token = [&, i](const TokenEvent& e) {
          CHECK(!together[i].done);
          together[i].ids.push_back(e.id);
          together[i].text += e.text;
          return true;
        };
        s.on_done = [&, i](const GenerateResult& r, std::exception_ptr err) {
          CHECK(!err);
          CHECK(!together[i].done);
          together[i].res = r, together[i].done = true;
        };
        CHECK(g.add(std::move(s)) == i + 1);
      }
      CHECK(g.queued() == prompts.size());
      int steps = 0;
      while (g.step()) {
        CHECK(g.running() <= n_seq);
        ++steps;
      }
      CHECK(g.running() == 0);
      CHECK(g.queued() == 0);
      for (size_t i = 0; i < prompts.size(); ++i) {
        CAPTURE(i);
        CHECK(together[i].done);
        CHECK(together[i].ids == alone[i].ids);
        CHECK(together[i].text == alone[i].text);
        CHECK(together[i].res.text == alone[i].res.text);
        CHECK(together[i].res.stop_reason == alone[i].res.stop_reason);
        CHECK(together[i].res.tokens == alone[i].res.tokens);
        CHECK(together[i].res.prompt_tokens == alone[i].res.prompt_tokens);
        CHECK(together[i].res.shifts == alone[i].res.shifts);
      }
    }
    CHECK(alone[2].res.stop_reason == "stop");
    CHECK(alone[3].res.tokens == 0);
    CHECK(alone[4].res.shifts > 0);
  }
}

TEST_CASE("BatchGenerator: cancelling, refused prompts, sizes") {
  Fixture f;
  const model::Weights w = model::view_weights(f.params);
  BatchGenerator g(w, f.tok, 1, 16, 8, quiet);
  std::map<uint64_t, GenerateResult> done;
  auto spec = [&](int max_tokens, int stop_after) {
    SequenceSpec s;
    f.tok.encode("the jury said", s.prompt);
    s.opts.max_tokens = max_tokens, s.opts.ignore_eos = true;
    auto n = std::make_shared<int>(0);
    s.on_token = [n, stop_after](const TokenEvent&) { return ++*n < stop_after; };
    return s;
  };
  auto track = [&](SequenceSpec s, uint64_t expect_id) {
    s.on_done = [&, expect_id](const GenerateResult& r, std::exception_ptr err) {
      CHECK(!err);
      done[expect_id] = r;
    };
    CHECK(g.add(std::move(s)) == expect_id);
  };
  track(spec(10, 3), 1);    // the client goes away after 3 tokens
  track(spec(10, 100), 2);  // cancelled while queued
  track(spec(4, 100), 3);   // runs to its length
  g.cancel(2);
  REQUIRE(done.count(2));
  CHECK(done[2].stop_reason == "cancelled");
  CHECK(done[2].tokens == 0);
  g.cancel(99);  // unknown: ignored
  g.run();
  CHECK(done[1].stop_reason == "cancelled");
  CHECK(done[1].tokens == 3);
  CHECK(done[3].stop_reason == "length");
  CHECK(done[3].tokens == 4);
  CHECK(!g.step());

  // A running sequence cancelled between steps ends before its next token.
  track(spec(10, 100), 4);
  g.step();
  g.step();
  g.cancel(4);
  g.step();
  CHECK(done[4].stop_reason == "cancelled");
  CHECK(done[4].tokens == 2);  // one token per step before the cancel

  SequenceSpec big = spec(4, 100);
  big.prompt.assign(17, big.prompt[0]);
  CHECK_THROWS_AS(g.add(big), UsageError);  // longer than the context, no shift
  SequenceSpec bad = spec(4, 100);
  bad.prompt = {f.cfg.n_vocab};
  CHECK_THROWS_AS(g.add(bad), UsageError);
  bad.prompt.clear();
  CHECK_THROWS_AS(g.add(bad), UsageError);
  bad = spec(4, 100);
  bad.opts.sampler.top_p = 2;
  CHECK_THROWS_AS(g.add(bad), UsageError);
  CHECK(g.queued() == 0);
  // The cache grows by at least half (each growth copies every slot), up to n_ctx.
  BatchGenerator grow(w, f.tok, 2, 64, 8, quiet);
  auto need = [&](int prompt, int max_tokens) {
    SequenceSpec s = spec(max_tokens, 100);
    s.prompt.assign(size_t(prompt), s.prompt[0]);
    grow.add(std::move(s));
    grow.run();
    return grow.capacity();
  };
  CHECK(need(10, 10) == 20);   // the first sequence's need
  CHECK(need(10, 12) == 30);   // 22 is more: 1.5 x 20
  CHECK(need(10, 15) == 30);   // 25 fits
  CHECK(need(20, 20) == 45);   // 40 > 30: 1.5 x 30
  CHECK(need(30, 20) == 64);   // 50 > 45: 67, capped at n_ctx
  CHECK_THROWS_AS(BatchGenerator(w, f.tok, 0, 16, 8, quiet), UsageError);
  CHECK_THROWS_AS(BatchGenerator(w, f.tok, 2, 16, 0, quiet), UsageError);
}
