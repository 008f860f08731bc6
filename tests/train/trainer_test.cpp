// Tests for lib/train/trainer: schedule, clipping, AdamW's decay mask, the sampler, a
// checkpoint round trip that continues training bit for bit, and early stopping's best weights.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "base/error.hpp"
#include "format/gguf.hpp"
#include "model/model_io.hpp"
#include "test_util.hpp"
#include "train/run.hpp"
#include "train/trainer.hpp"

using namespace lm;
using namespace lm::train;

namespace {

model::ModelConfig tiny(int vocab) {
  model::ModelConfig c;
  c.n_vocab = vocab, c.n_ctx = 16, c.n_layer = 2, c.n_embd = 32, c.n_head = 4, c.n_head_kv = 2, c.n_ff = 64;
  return c;
}

struct Run {
  model::Params p;
  AdamW opt;
  BatchSampler sampler;
  model::Model net;
  TrainState st;
  std::vector<int> in, tgt;
  OptimizerOptions o;
  Run(const model::ModelConfig& c, const std::vector<int>& data, const OptimizerOptions& oo)
      : p(c), opt(p, oo), sampler(data, 16, 42, "data"), net(c, 2, 16), in(32), tgt(32), o(oo) {
    Rng rng(9);
    p.init(rng);
  }
  float step() {
    std::fill(p.grad.begin(), p.grad.end(), 0.0f);
    sampler.next(2, in.data(), tgt.data());
    float loss = net.forward(p, in.data(), tgt.data(), 2, 16);
    net.backward(p);
    clip_grad_norm(p.grad, o.grad_clip);
    opt.step(p, lr_at(st.step, o));
    ++st.step;
    st.tokens_seen += 32;
    return loss;
  }
};

std::vector<int> stream(int vocab, size_t n) {
  std::vector<int> s(n);
  for (size_t i = 0; i < n; ++i) s[i] = int((i % 8) * 11 % size_t(vocab));  // a period-8 pattern to learn
  return s;
}

}  // namespace

TEST_CASE("learning rate: linear warmup, cosine decay to lr_min") {
  OptimizerOptions o;
  o.lr = 1.0f, o.lr_min = 0.1f, o.warmup_steps = 10, o.total_steps = 110;
  CHECK(lr_at(0, o) == doctest::Approx(0.1));
  CHECK(lr_at(9, o) == doctest::Approx(1.0));
  CHECK(lr_at(10, o) == doctest::Approx(1.0));
  CHECK(lr_at(60, o) == doctest::Approx(0.55));
  CHECK(lr_at(110, o) == doctest::Approx(0.1));
  CHECK(lr_at(5000, o) == doctest::Approx(0.1));
  for (uint64_t s = 10; s < 110; ++s) CHECK(lr_at(s + 1, o) <= lr_at(s, o));
}

TEST_CASE("gradient clipping scales to the threshold and reports non-finite norms") {
  std::vector<float> g = {3, 4};
  CHECK(clip_grad_norm(g, 1.0f) == doctest::Approx(5.0));
  CHECK(g[0] == doctest::Approx(0.6));
  CHECK(g[1] == doctest::Approx(0.8));
  std::vector<float> small = {0.3f, 0.4f};
  CHECK(clip_grad_norm(small, 1.0f) == doctest::Approx(0.5));
  CHECK(small[0] == 0.3f);
  std::vector<float> bad = {1, NAN, 2};
  CHECK_FALSE(std::isfinite(clip_grad_norm(bad, 1.0f)));
  CHECK(bad[0] == 1.0f);
}

TEST_CASE("AdamW decays matrices but not norm gains") {
  model::Params p(tiny(40));
  Rng rng(1);
  p.init(rng);
  OptimizerOptions o;
  o.weight_decay = 0.5f;
  AdamW opt(p, o);
  const auto before = p.w;
  opt.step(p, 0.1f);  // zero gradients: only decay moves weights
  const auto& norm = p.views[p.find("blk.0.attn_norm.weight")];
  const auto& mat = p.views[p.find("blk.0.attn_q.weight")];
  CHECK(p.w[norm.offset] == before[norm.offset]);
  CHECK(p.w[mat.offset] == doctest::Approx(before[mat.offset] * (1 - 0.1 * 0.5)));
  CHECK(opt.steps() == 1);
}

TEST_CASE("the sampler is deterministic, windows are shifted by one, short data is refused") {
  std::vector<int> data = stream(50, 1000);
  BatchSampler a(data, 16, 5, "d"), b(data, 16, 5, "d");
  std::vector<int> ia(64), ta(64), ib(64), tb(64);
  a.next(4, ia.data(), ta.data());
  b.next(4, ib.data(), tb.data());
  CHECK(ia == ib);
  CHECK(ta == tb);
  CHECK(std::equal(ia.begin() + 1, ia.begin() + 16, ta.begin()));
  CHECK(a.draws() == 4);
  std::vector<int> tiny_data(16);
  CHECK_THROWS_WITH_AS(BatchSampler(tiny_data, 16, 1, "short.tok"),
                       doctest::Contains("short.tok: has 16 tokens, expected at least 17"), FormatError);
}

TEST_CASE("training lowers the loss, and a checkpoint resumes bit for bit") {
  test::TempDir dir;
  std::vector<std::string> lines;
  for (int i = 0; i < 300; ++i) lines.push_back("alpha beta gamma delta " + std::to_string(i % 13));
  Tokenizer tok = test::train_tokenizer(lines, 280);
  const auto cfg = tiny(tok.vocab_size());
  const auto data = stream(tok.vocab_size(), 5000);
  OptimizerOptions o;
  o.lr = 3e-3f, o.lr_min = 3e-4f, o.warmup_steps = 5, o.total_steps = 60;

  Run straight(cfg, data, o);
  std::vector<float> losses;
  for (int s = 0; s < 60; ++s) losses.push_back(straight.step());
  CHECK(losses.back() < 0.5f * losses.front());

  Run first(cfg, data, o);
  for (int s = 0; s < 40; ++s) CHECK(first.step() == losses[size_t(s)]);
  first.st.sampler_rng = first.sampler.rng().state();
  first.st.sampler_draws = first.sampler.draws();
  format::GgufWriter w;
  model::add_model(w, first.p, tok, "ckpt");
  add_checkpoint(w, first.opt, first.st);
  const std::string path = dir.path() + "/ckpt.gguf";
  w.save(path);

  format::GgufFile g = format::GgufFile::open(path);
  Run resumed(cfg, data, o);
  const model::Params loaded = model::load_params(g, false);
  std::copy(loaded.w.begin(), loaded.w.end(), resumed.p.w.begin());  // into the buffers the optimizer holds
  resumed.st = load_checkpoint(g, resumed.opt);
  Rng r;
  r.set_state(resumed.st.sampler_rng);
  resumed.sampler.set_rng(r);
  resumed.sampler.set_draws(resumed.st.sampler_draws);
  CHECK(resumed.st.step == 40);
  CHECK(resumed.opt.steps() == 40);
  for (int s = 40; s < 60; ++s) CHECK(resumed.step() == losses[size_t(s)]);
  CHECK(resumed.p.w == straight.p.w);
}

TEST_CASE("a model file without optimizer state is not a checkpoint") {
  test::TempDir dir;
  std::vector<std::string> lines(50, "one two three");
  Tokenizer tok = test::train_tokenizer(lines, 270);
  model::Params p(tiny(tok.vocab_size()));
  format::GgufWriter w;
  model::add_model(w, p, tok, "m");
  w.save(dir.path() + "/m.gguf");
  format::GgufFile g = format::GgufFile::open(dir.path() + "/m.gguf");
  AdamW opt(p, OptimizerOptions());
  CHECK_THROWS_WITH_AS(load_checkpoint(g, opt), doctest::Contains("missing key 'lm.train.step'"), FormatError);
}

namespace {
// A job whose one weight walks down by a fixed gradient and whose validation losses are given
// in advance: it records the weight at each validation.
struct ScriptedJob final : Job {
  float w = 1, g = 0;
  std::vector<float> losses;  // validation i returns losses[i]
  std::vector<float> seen;    // w at validation i
  std::vector<Trainable> trainables() override { return {{"w", &w, &g, 1, 1}}; }
  std::vector<std::span<float>> grads() override { return {std::span<float>(&g, 1)}; }
  float micro_step() override {
    g = 1;
    return 1;
  }
  void skip_micro_step() override {}
  uint64_t tokens_per_micro_step() const override { return 1; }
  double flops_per_token() const override { return 1; }
  std::optional<float> validate() override {
    seen.push_back(w);
    return losses.at(seen.size() - 1);
  }
  Rng::State sampler_rng() const override { return {}; }
  uint64_t sampler_draws() const override { return 0; }
  void set_sampler(const Rng::State&, uint64_t) override {}
  void add_to_checkpoint(format::GgufWriter&) override {}
  void restore(const format::GgufFile&) override {}
};
}  // namespace

TEST_CASE("--patience ends with the weights of the best validation, not the last step's") {
  TrainOptions o;
  o.steps = 100;
  o.eval_every = 1;
  o.patience = 2;
  o.opt.warmup_steps = 0;
  o.opt.lr = o.opt.lr_min = 0.01f;
  o.opt.weight_decay = 0;
  Logger log("test");
  log.set_level(Logger::Level::Quiet);
  ScriptedJob job;
  job.losses = {5, 4, 3, 3.5f, 3.2f, 9, 9};  // best at step 3, then two without gain
  const RunResult r = run_loop(o, job, RunHooks{}, log);
  CHECK(r.end == RunEnd::EarlyStop);
  CHECK(r.steps == 5);
  CHECK(r.best_step == 3);
  CHECK(*r.best_valid_loss == 3.0f);
  CHECK(r.kept_best);
  REQUIRE(job.seen.size() == 5);
  CHECK(job.seen[2] != job.seen[4]);
  CHECK(job.w == job.seen[2]);  // the weights validated at step 3

  // Without patience the last weights stay.
  ScriptedJob plain;
  plain.losses = job.losses;
  o.patience = 0;
  o.steps = 5;
  const RunResult q = run_loop(o, plain, RunHooks{}, log);
  CHECK(!q.kept_best);
  CHECK(plain.w == plain.seen[4]);
}
