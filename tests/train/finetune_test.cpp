// Tests for lib/train/finetune: prompt/completion examples (the boundary of the scored part),
// the masked loss equal to a hand-masked forward pass (a transformer's and an LSTM's job),
// labeled files, and a LoRA job whose base weights stay untouched.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "dataset/labeled.hpp"
#include "model/lstm.hpp"
#include "model/model.hpp"
#include "test_util.hpp"
#include "train/data.hpp"
#include "train/finetune.hpp"

using namespace lm;
using namespace lm::train;

namespace {

std::vector<std::string> corpus() {
  std::vector<std::string> lines;
  for (int i = 0; i < 200; ++i)
    lines.push_back("question " + std::to_string(i % 7) + " is answered by " + std::to_string(i % 5) + " words");
  return lines;
}

model::ModelConfig config(int vocab) {
  model::ModelConfig c;
  c.n_vocab = vocab, c.n_ctx = 32, c.n_layer = 2, c.n_embd = 32, c.n_head = 4, c.n_head_kv = 2, c.n_ff = 48;
  return c;
}

// Two examples (a blank line between them, the members in either order), loaded.
std::vector<Sequence> two_examples(const std::string& path, const Tokenizer& tok) {
  std::ofstream(path) << "{\"prompt\": \"question 3 is\", \"completion\": \" answered by 2 words\"}\n\n"
                      << "{\"completion\": \" by 4\", \"prompt\": \"question 1 is answered\"}\n";
  return load_prompt_completion(path, tok, true, 1);
}

// -log softmax(row)[target] over V logits.
double token_nll(const float* row, int V, int target) {
  double mx = row[0], z = 0;
  for (int v = 1; v < V; ++v) mx = std::max(mx, double(row[v]));
  for (int v = 0; v < V; ++v) z += std::exp(row[v] - mx);
  return mx + std::log(z) - row[target];
}

}  // namespace

TEST_CASE("prompt/completion: BOS, prompt, completion, EOS; scored from the completion; loss masked to it") {
  test::TempDir dir;
  Tokenizer tok = test::train_tokenizer(corpus(), 300);
  const std::string path = dir.path() + "/pc.jsonl";
  const std::vector<Sequence> seqs = two_examples(path, tok);
  REQUIRE(seqs.size() == 2);
  for (size_t i = 0; i < 2; ++i) {
    const Sequence& s = seqs[i];
    CHECK(s.tokens.front() == *tok.bos_id());
    CHECK(s.tokens.back() == *tok.eos_id());
    std::vector<int> prompt;
    tok.encode_text(i == 0 ? "question 3 is" : "question 1 is answered", prompt);
    // Everything before loss_from is the prompt's own tokenization.
    CHECK(s.loss_from >= 1);
    CHECK(size_t(s.loss_from) <= prompt.size() + 1);
    for (int j = 1; j < s.loss_from; ++j) CHECK(s.tokens[size_t(j)] == prompt[size_t(j) - 1]);
    const std::vector<int> completion(s.tokens.begin() + s.loss_from, s.tokens.end() - 1);
    CHECK(tok.decode_text(completion).find(i == 0 ? "2 words" : "4") != std::string::npos);
  }

  // The job's validation loss is the mean loss over completion tokens only.
  model::ModelConfig cfg = config(tok.vocab_size());
  model::Params p(cfg, false);
  Rng rng(1);
  p.init(rng);
  TrainOptions o;
  o.batch = 2;
  o.eval_batches = 1;
  FinetuneOptions f;
  f.task = Task::PromptCompletion;
  FinetuneData d;
  d.seqs = &seqs;
  d.seqs_valid = &seqs;
  d.train_name = path;
  model::Params copy = p;
  FinetuneJob job(o, f, std::move(copy), tok, d);
  // The --tokens budget counts the tokens the examples feed the model, not the padded batch.
  const double mean = (int(seqs[0].tokens.size()) - 1 + int(seqs[1].tokens.size()) - 1) / 2.0;
  CHECK(int(seqs[0].tokens.size()) - 1 < job.context());
  CHECK(job.tokens_per_micro_step() == uint64_t(std::llround(2 * mean)));
  const float job_loss = *job.validate();
  model::Model m(cfg, 1, 32);
  double per_seq[2] = {0, 0};
  int counts[2] = {0, 0};
  for (size_t i = 0; i < 2; ++i) {
    const Sequence& s = seqs[i];
    const int t = int(s.tokens.size()) - 1;
    m.forward(p, s.tokens.data(), nullptr, 1, t);
    for (int j = s.loss_from - 1; j < t; ++j) {
      per_seq[i] += token_nll(m.logits() + size_t(j) * cfg.n_vocab, cfg.n_vocab, s.tokens[size_t(j) + 1]);
      ++counts[i];
    }
  }
  // One batch of both sequences: the mean over all their completion tokens.
  CHECK(counts[0] > 0);
  CHECK(job_loss == doctest::Approx((per_seq[0] + per_seq[1]) / (counts[0] + counts[1])).epsilon(1e-4));
}

TEST_CASE("an LSTM's prompt/completion job scores each example from a zero state, on its completion only") {
  test::TempDir dir;
  Tokenizer tok = test::train_tokenizer(corpus(), 300);
  const std::string path = dir.path() + "/pc.jsonl";
  const std::vector<Sequence> seqs = two_examples(path, tok);
  REQUIRE(seqs.size() == 2);
  model::LstmConfig cfg;
  cfg.n_vocab = tok.vocab_size(), cfg.n_ctx = 32, cfg.n_embd = 16, cfg.n_hidden = 24, cfg.n_layer = 2, cfg.n_proj = 16;
  model::LstmParams p(cfg);
  Rng rng(2);
  p.init(rng);
  const model::LstmParams start = p;
  TrainOptions o;
  o.batch = 2;
  o.eval_batches = 1;
  o.dropout = 0.2f;       // off in validation
  o.weight_drop = 0.3f;
  FinetuneOptions f;
  f.task = Task::PromptCompletion;
  FinetuneData d;
  d.seqs = &seqs;
  d.seqs_valid = &seqs;
  d.train_name = path;
  LstmFinetune job = make_lstm_finetune(o, f, p, tok, d);
  CHECK(job.unscored == 0);
  const double mean = (int(seqs[0].tokens.size()) - 1 + int(seqs[1].tokens.size()) - 1) / 2.0;
  CHECK(job.job->tokens_per_micro_step() == uint64_t(std::llround(2 * mean)));
  const float job_loss = *job.job->validate();
  // By hand: each example alone, from a zero state, its completion tokens scored.
  model::LstmModel m(cfg, 1, 32);
  double sum = 0;
  int count = 0;
  for (const Sequence& s : seqs) {
    const int t = int(s.tokens.size()) - 1;
    model::LstmState st;
    st.resize(cfg, 1);
    m.forward(start, s.tokens.data(), nullptr, 1, t, st);
    for (int j = s.loss_from - 1; j < t; ++j) {
      sum += token_nll(m.logits() + size_t(j) * cfg.n_vocab, cfg.n_vocab, s.tokens[size_t(j) + 1]);
      ++count;
    }
  }
  CHECK(count > 0);
  CHECK(job_loss == doctest::Approx(sum / count).epsilon(1e-4));
  // A training step changes every kind of weight (no gradient is lost on the way).
  for (auto& g : job.job->grads()) std::fill(g.begin(), g.end(), 0.0f);
  job.job->micro_step();
  for (size_t v = 0; v < p.views.size(); ++v) {
    const float* g = p.grad.data() + p.views[v].offset;
    const size_t n = size_t(p.views[v].rows) * p.views[v].cols;
    CAPTURE(p.views[v].name);
    CHECK(std::any_of(g, g + n, [](float x) { return x != 0.0f; }));
  }
  // What an LSTM cannot do here, refused before any data is read.
  for (int k = 0; k < 3; ++k) {
    FinetuneOptions bad = f;
    if (k == 0) bad.lora = true;
    if (k == 1) bad.task = Task::Classify;
    if (k == 2) bad.distill.teacher = "t.gguf";
    CHECK_THROWS_AS(check_lstm_finetune(bad), UsageError);
  }
}

TEST_CASE("held-out examples are spread over the file, so a file sorted by label holds out every label") {
  std::vector<int> v(100);
  for (int i = 0; i < 100; ++i) v[size_t(i)] = i / 25;  // four labels, sorted
  std::vector<int> held = split_examples(v, 0.1);
  CHECK(held.size() == 10);
  CHECK(v.size() == 90);
  for (int label = 0; label < 4; ++label) CHECK(std::count(held.begin(), held.end(), label) >= 2);
  CHECK(std::is_sorted(held.begin(), held.end()));
  CHECK(std::is_sorted(v.begin(), v.end()));
  std::vector<int> none{1, 2, 3};
  CHECK(split_examples(none, 0.0).empty());
  CHECK(none.size() == 3);
  CHECK_THROWS_AS(split_examples(none, 0.6), UsageError);
}

TEST_CASE("labeled files: both forms, sorted labels, cut to the context; a LoRA classifier leaves the base frozen") {
  test::TempDir dir;
  Tokenizer tok = test::train_tokenizer(corpus(), 300);
  const std::string path = dir.path() + "/l.txt";
  std::ofstream(path) << "b\tquestion 3 is answered\n__label__a question 1 words\n\na\tby 2 words\n";
  LabeledData d = load_labeled(path, tok, true, 4, nullptr, 1);
  CHECK(d.labels == std::vector<std::string>{"a", "b"});
  REQUIRE(d.examples.size() == 3);
  CHECK(d.examples[0].label == 1);
  CHECK(d.examples[1].label == 0);
  CHECK(d.examples[0].tokens.size() == 4);
  CHECK(d.examples[0].tokens[0] == *tok.bos_id());
  std::ofstream(dir.path() + "/bad.txt") << "a\tone\nno label here\n";
  CHECK_THROWS_WITH_AS(load_labeled(dir.path() + "/bad.txt", tok, true, 8, nullptr, 1),
                       doctest::Contains("bad.txt:2: has no label"), FormatError);
  std::ofstream(dir.path() + "/notext.txt") << "a\tone\nb\t  \n";
  CHECK_THROWS_WITH_AS(load_labeled(dir.path() + "/notext.txt", tok, true, 8, nullptr, 1),
                       doctest::Contains("notext.txt:2: has a label but no text"), FormatError);
  // Labels given (a classifier's, or the training data's for held-out data): others are errors.
  const std::vector<std::string> known{"a", "c"};
  CHECK_THROWS_WITH_AS(load_labeled(path, tok, true, 4, &known, 1),
                       doctest::Contains("l.txt:1: has the label 'b', which the classifier does not have (a, c)"),
                       FormatError);
  // Labels become GGUF strings, so they must be UTF-8.
  std::ofstream(dir.path() + "/latin1.txt") << "a\tone\ncaf\xe9\ttwo\n";
  CHECK_THROWS_WITH_AS(load_labeled(dir.path() + "/latin1.txt", tok, true, 8, nullptr, 1),
                       doctest::Contains("latin1.txt:2: has a label that is not valid UTF-8 (byte 4 of it)"),
                       FormatError);
  // A UTF-8 byte order mark is not part of the first label.
  std::ofstream(dir.path() + "/bom.txt") << "\xEF\xBB\xBF" "b\tone\na\ttwo\n";
  CHECK(load_labeled(dir.path() + "/bom.txt", tok, true, 8, nullptr, 1).labels == std::vector<std::string>{"a", "b"});

  model::ModelConfig cfg = config(tok.vocab_size());
  model::Params p(cfg, false);
  Rng rng(2);
  p.init(rng);
  const std::vector<float> before(p.w.begin(), p.w.end());
  TrainOptions o;
  o.batch = 2;
  o.steps = 5;
  o.opt.warmup_steps = 1;
  FinetuneOptions f;
  f.task = Task::Classify;
  f.lora = true;
  FinetuneData fd;
  fd.labeled = &d;
  fd.train_name = path;
  FinetuneJob job(o, f, p, tok, fd);
  CHECK(job.params().cfg.n_cls == 2);
  // Three examples of at most 4 tokens (the context here is longer): the --tokens budget
  // converts with their mean, and a budget of 5 micro-batches' tokens runs 5 steps.
  double mean = 0;
  for (const LabeledExample& e : d.examples) mean += double(e.tokens.size()) / 3;
  CHECK(job.tokens_per_micro_step() == uint64_t(std::llround(2 * mean)));
  {
    TrainOptions by_tokens = o;
    by_tokens.steps = 0;
    by_tokens.tokens = 5 * job.tokens_per_micro_step();
    FinetuneJob counted(by_tokens, f, p, tok, fd);
    RunHooks quiet_hooks;
    Logger quiet("test");
    quiet.set_level(Logger::Level::Quiet);
    CHECK(run_loop(by_tokens, counted, quiet_hooks, quiet).steps == 5);
  }
  // Only the head holds a gradient (2 labels x (width + 1)), not every frozen base weight.
  CHECK(job.params().grad.size() == 2 * (size_t(cfg.n_embd) + 1));
  RunHooks hooks;
  Logger log("test");
  log.set_level(Logger::Level::Quiet);
  run_loop(o, job, hooks, log);
  // The trunk is frozen: only the head and the adapters moved.
  CHECK(std::equal(before.begin(), before.end(), job.params().w.begin()));
  bool head_moved = false;
  const float* head = job.params().get(model::cls_param(job.params().cfg) + 1);
  for (int k = 0; k < 2; ++k) head_moved |= head[k] != 0.0f;
  CHECK(head_moved);

  // --head-only: a linear probe trains the head's weights and biases and nothing else.
  f.lora = false;
  f.head_only = true;
  FinetuneJob probe(o, f, p, tok, fd);
  size_t trained = 0;
  for (const Trainable& t : probe.trainables()) trained += t.size();
  CHECK(trained == 2 * (size_t(cfg.n_embd) + 1));
  CHECK(probe.params().grad.size() == trained);
  run_loop(o, probe, hooks, log);
  CHECK(std::equal(before.begin(), before.end(), probe.params().w.begin()));
  const float* probe_head = probe.params().get(model::cls_param(probe.params().cfg) + 1);
  CHECK((probe_head[0] != 0.0f || probe_head[1] != 0.0f));
  f.lora = true;
  CHECK_THROWS_WITH_AS(FinetuneJob(o, f, p, tok, fd), doctest::Contains("--head-only"), UsageError);
  f.lora = false;
  f.task = Task::Text;
  CHECK_THROWS_WITH_AS(FinetuneJob(o, f, p, tok, fd), doctest::Contains("--head-only"), UsageError);
}

TEST_CASE("classifier_input encodes a long text from a prefix, with the tokens of the whole text") {
  Tokenizer tok = test::train_tokenizer(corpus(), 300);
  std::string text;
  for (int i = 0; text.size() < 300000; ++i) text += corpus()[size_t(i) % corpus().size()] + " ";
  std::string spaces = std::string(200000, ' ') + text;  // normalisation folds the run: few tokens per byte
  for (const std::string* t : {&text, &spaces})
    for (int max_tokens : {1, 7, 64, 512}) {
      std::vector<int> whole{*tok.bos_id()};
      tok.encode_text(*t, whole);
      whole.resize(size_t(max_tokens));
      CAPTURE(max_tokens);
      CHECK(lm::dataset::classifier_input(tok, *t, true, max_tokens) == whole);
    }
  std::vector<int> short_text = lm::dataset::classifier_input(tok, "a b", false, 100);
  std::vector<int> want;
  tok.encode_text("a b", want);
  CHECK(short_text == want);
}
