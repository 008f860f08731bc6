// Tests for lib/sample: each sampling step on distributions with known answers, seeded
// reproducibility, option validation, and the generation loop's stop conditions and streaming.
#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "model/session.hpp"
#include "sample/generate.hpp"
#include "sample/sampler.hpp"
#include "test_util.hpp"

using namespace lm;
using namespace lm::sample;

namespace {

// Only the named steps, everything else off.
SamplerOptions only(const std::string& order) {
  SamplerOptions o;
  o.order = order;
  o.temperature = 1.0f, o.top_k = 0, o.top_p = 1.0f, o.min_p = 0.0f;
  return o;
}

std::vector<float> logits_of(const std::vector<double>& probs) {
  std::vector<float> l;
  for (double p : probs) l.push_back(float(std::log(p)));
  return l;
}

// Frequencies of each id over n draws.
std::map<int, double> draw(Sampler& s, const std::vector<float>& logits, int n, const std::vector<int>& history = {}) {
  std::map<int, double> f;
  for (int i = 0; i < n; ++i) f[s.sample(logits.data(), int(logits.size()), history)] += 1.0 / n;
  return f;
}

}  // namespace

TEST_CASE("greedy (temperature 0) picks the most likely token, lowest id on ties") {
  SamplerOptions o;
  o.temperature = 0;
  Sampler s(o, 1);
  std::vector<float> l = {0.1f, 2.0f, -1.0f, 2.0f};
  CHECK(s.sample(l.data(), 4, {}) == 1);
}

TEST_CASE("plain sampling follows the softmax; the same seed gives the same draws") {
  const auto l = logits_of({0.5, 0.3, 0.2});
  Sampler a(only("temperature"), 42), b(only("temperature"), 42);
  std::vector<int> da, db;
  for (int i = 0; i < 200; ++i) da.push_back(a.sample(l.data(), 3, {})), db.push_back(b.sample(l.data(), 3, {}));
  CHECK(da == db);
  Sampler c(only("temperature"), 7);
  const auto f = draw(c, l, 20000);
  CHECK(f.at(0) == doctest::Approx(0.5).epsilon(0.05));
  CHECK(f.at(1) == doctest::Approx(0.3).epsilon(0.05));
  CHECK(f.at(2) == doctest::Approx(0.2).epsilon(0.07));
}

TEST_CASE("top-k, top-p, min-p and typical keep the documented sets") {
  const auto l = logits_of({0.5, 0.3, 0.15, 0.05});
  SUBCASE("top-k 2 keeps ids 0 and 1, renormalised to 0.625 / 0.375") {
    auto o = only("top-k,temperature");
    o.top_k = 2;
    Sampler s(o, 3);
    const auto f = draw(s, l, 20000);
    CHECK(f.size() == 2);
    CHECK(f.at(0) == doctest::Approx(0.625).epsilon(0.04));
  }
  SUBCASE("top-p 0.75: 0.5 is short of it, 0.5 + 0.3 reaches it, so ids 0 and 1") {
    auto o = only("top-p,temperature");
    o.top_p = 0.75f;
    Sampler s(o, 3);
    const auto f = draw(s, l, 5000);
    CHECK(std::set<int>{f.begin()->first, f.rbegin()->first} == std::set<int>{0, 1});
    CHECK(f.size() == 2);
  }
  SUBCASE("min-p 0.25: keeps p >= 0.125, ids 0, 1, 2") {
    auto o = only("min-p,temperature");
    o.min_p = 0.25f;
    Sampler s(o, 3);
    CHECK(draw(s, l, 5000).size() == 3);
  }
  SUBCASE("typical 0.5: entropy H = 1.1429 nats; |-ln p - H| is 0.45 (id 0), 0.06 (id 1), 0.75, 1.85: ids 1 then 0") {
    auto o = only("typical,temperature");
    o.typical_p = 0.5f;
    Sampler s(o, 3);
    const auto f = draw(s, l, 5000);
    CHECK(f.size() == 2);
    CHECK(f.count(0) == 1);
    CHECK(f.count(1) == 1);
  }
  SUBCASE("steps left out of the order do nothing") {
    auto o = only("temperature");
    o.top_k = 1;
    Sampler s(o, 3);
    CHECK(draw(s, l, 5000).size() == 4);
  }
}

TEST_CASE("penalties: repeat divides positive logits, presence and frequency subtract, over the window") {
  std::vector<float> l = {2.0f, 1.9f, -1.0f};
  auto o = only("penalties,temperature");
  o.temperature = 0;  // greedy after penalties
  o.repeat_penalty = 1.1f;  // 2.0 / 1.1 = 1.82 < 1.9
  Sampler s(o, 1);
  CHECK(s.sample(l.data(), 3, {}) == 0);
  CHECK(s.sample(l.data(), 3, {0}) == 1);
  o.repeat_penalty = 1.0f;
  o.frequency_penalty = 0.06f;  // 2.0 - 2 x 0.06 = 1.88 < 1.9; once: 1.94 > 1.9
  Sampler f(o, 1);
  CHECK(f.sample(l.data(), 3, {0}) == 0);
  CHECK(f.sample(l.data(), 3, {0, 0}) == 1);
  o.penalty_last_n = 1;  // only the last token counts
  Sampler w(o, 1);
  CHECK(w.sample(l.data(), 3, {0, 0, 2}) == 0);
  o.frequency_penalty = 0, o.presence_penalty = 0.2f, o.penalty_last_n = 64;
  Sampler pr(o, 1);
  CHECK(pr.sample(l.data(), 3, {0, 1, 1, 1}) == 0);  // both lose 0.2: 1.8 vs 1.7
}

TEST_CASE("top-k straight from the logits draws as the full candidate list does") {
  // "penalties,top-k,..." takes the top-k scan; with a no-op typical step between them the
  // sampler builds all V candidates and cuts them with nth_element. Same seed, same draws.
  for (int penalties = 0; penalties < 2; ++penalties)
    for (int V : {7, 50, 1000, 8195}) {
      SamplerOptions fast;
      fast.order = "penalties,top-k,top-p,min-p,temperature";
      fast.repeat_penalty = penalties ? 1.3f : 1.0f;
      fast.presence_penalty = penalties ? 0.2f : 0.0f;
      fast.frequency_penalty = penalties ? 0.1f : 0.0f;
      SamplerOptions slow = fast;
      slow.order = "penalties,typical,top-k,top-p,min-p,temperature";
      for (int k : {1, 5, 40}) {
        fast.top_k = slow.top_k = k;
        Sampler a(fast, 7), b(slow, 7);
        Rng rng(uint64_t(V) * 131 + uint64_t(k));
        std::vector<float> logits(static_cast<size_t>(V));
        std::vector<int> history;
        for (int step = 0; step < 60; ++step) {
          // Values on a coarse grid, so ties are common; some steps all equal.
          for (float& x : logits) x = step % 17 == 0 ? 0.5f : float(int(rng.uniform_double() * 12)) * 0.25f - 1.5f;
          const int ta = a.sample(logits.data(), V, history), tb = b.sample(logits.data(), V, history);
          REQUIRE(ta == tb);
          history.push_back(ta);
        }
      }
    }
}

TEST_CASE("sampler options and orders are validated") {
  auto bad = [](auto edit) {
    SamplerOptions o;
    edit(o);
    CHECK_THROWS_AS(Sampler(o, 1), UsageError);
  };
  bad([](SamplerOptions& o) { o.top_p = 0; });
  bad([](SamplerOptions& o) { o.min_p = 1.5f; });
  bad([](SamplerOptions& o) { o.top_k = -1; });
  bad([](SamplerOptions& o) { o.repeat_penalty = 0; });
  bad([](SamplerOptions& o) { o.order = "top-k,nucleus"; });
  bad([](SamplerOptions& o) { o.order = "top-k,top-k"; });
  bad([](SamplerOptions& o) { o.penalty_last_n = -2; });
}

TEST_CASE("token log-probabilities and the top-n list") {
  const auto l = logits_of({0.5, 0.3, 0.2});
  CHECK(token_logprob(l.data(), 3, 1) == doctest::Approx(std::log(0.3)));
  const auto top = top_logprobs(l.data(), 3, 2);
  REQUIRE(top.size() == 2);
  CHECK(top[0].id == 0);
  CHECK(top[1].id == 1);
  CHECK(top[1].logprob == doctest::Approx(std::log(0.3)));
  CHECK(top_logprobs(l.data(), 3, 10).size() == 3);
}

TEST_CASE("utf8_complete_prefix holds back only an unfinished character") {
  CHECK(utf8_complete_prefix("abc") == 3);
  CHECK(utf8_complete_prefix("ab\xe6\x9d") == 2);          // 東 = e6 9d b1, two of three bytes
  CHECK(utf8_complete_prefix("ab\xe6\x9d\xb1") == 5);
  CHECK(utf8_complete_prefix("\xf0\x9f\x98") == 0);        // 4-byte emoji, three bytes
  CHECK(utf8_complete_prefix("x\x80") == 2);               // stray continuation: released
  CHECK(utf8_complete_prefix("") == 0);
}

namespace {

struct Fixture {
  Tokenizer tok = test::train_tokenizer(std::vector<std::string>(200, "the jury said the county election was fair"), 300);
  model::Params p;
  Fixture() : p(cfg(), false) {
    Rng rng(17);
    p.init(rng);
    for (auto& w : p.w) w *= 20.0f;
  }
  model::ModelConfig cfg() const {
    model::ModelConfig c;
    c.n_vocab = tok.vocab_size(), c.n_ctx = 64, c.n_layer = 2, c.n_embd = 32, c.n_head = 4, c.n_head_kv = 2;
    c.n_ff = 48;
    return c;
  }
  GenerateResult run(const GenerateOptions& o, std::vector<TokenEvent>* events = nullptr, int n_ctx = 64,
                     uint64_t seed = 1) {
    model::Session s(p, n_ctx, 16);
    Sampler sampler(o.sampler, seed);
    std::vector<int> prompt = {*tok.bos_id()};
    tok.encode("the jury", prompt);
    Logger quiet("test", Logger::Level::Quiet);
    return generate(s, tok, prompt, o, sampler, [&](const TokenEvent& e) { if (events) events->push_back(e); }, quiet);
  }
};

}  // namespace

TEST_CASE("generate: events carry all the text, stop strings cut before themselves, limits are reported") {
  Fixture f;
  GenerateOptions o;
  o.max_tokens = 40;
  o.ignore_eos = true;
  o.sampler.temperature = 0;
  std::vector<TokenEvent> ev;
  const GenerateResult full = f.run(o, &ev);
  CHECK(full.tokens == 40);
  CHECK(full.stop_reason == "length");
  CHECK(ev.size() == 40);
  std::string joined;
  for (const auto& e : ev) joined += e.text;
  CHECK(joined == full.text);
  REQUIRE(full.text.size() > 12);
  // A stop string from the middle of the output: the text ends just before its first occurrence.
  o.stop = {full.text.substr(8, 4)};
  const GenerateResult cut = f.run(o);
  CHECK(cut.stop_reason == "stop");
  CHECK(cut.text == full.text.substr(0, full.text.find(o.stop[0])));
  CHECK(cut.tokens < 40);
  // A small context: Stop ends at its end, Shift goes on to the token limit.
  o.stop.clear();
  o.max_tokens = 100;
  const GenerateResult ended = f.run(o, nullptr, 20);
  CHECK(ended.stop_reason == "context");
  CHECK(ended.prompt_tokens + ended.tokens == 21);  // the last token needs no cache slot
  o.overflow = Overflow::Shift;
  const GenerateResult shifted = f.run(o, nullptr, 20);
  CHECK(shifted.tokens == 100);
  CHECK(shifted.shifts > 0);
  // Too long a prompt is an error under Stop.
  o.overflow = Overflow::Stop;
  CHECK_THROWS_AS(f.run(o, nullptr, 2), UsageError);
}

TEST_CASE("generate: the same seed gives the same text; top alternatives are reported") {
  Fixture f;
  GenerateOptions o;
  o.max_tokens = 20;
  o.top_logprobs = 3;
  std::vector<TokenEvent> ev;
  const auto a = f.run(o, &ev, 64, 9), b = f.run(o, nullptr, 64, 9);
  CHECK(a.text == b.text);
  CHECK(a.tokens == b.tokens);
  REQUIRE(!ev.empty());
  CHECK(ev[0].top.size() == 3);
  CHECK(ev[0].logprob <= 0.0f);
  CHECK(ev[0].top[0].logprob >= ev[0].top[1].logprob);
}

TEST_CASE("line_seed: line 0 is the seed itself, so the seed reported for a line reproduces it alone") {
  CHECK(line_seed(42, 0) == 42);
  CHECK(line_seed(42, 3) == derive_seed(42, 3));
  CHECK(line_seed(42, 1) != line_seed(42, 2));
  CHECK(line_seed(42, 1) != 42);
}
