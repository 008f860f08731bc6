// Training an LSTM (docs/lstm.md): truncated backpropagation through time over contiguous
// streams of the token file, the state of every stream carried from window to window and kept
// in checkpoints; or, fine-tuning on prompt/completion pairs, each example from a zero state.
// The loop itself is run_loop's.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>

#include "base/error.hpp"
#include "base/hash.hpp"
#include "dist/comm.hpp"
#include "kernels/blas.hpp"
#include "model/model_io.hpp"
#include "train/data.hpp"
#include "train/finetune.hpp"
#include "train/run.hpp"

namespace lm::train {

namespace {

// The carried states of all streams, in checkpoints: (groups, L, B, O) and (groups, L, B, H),
// F32, groups = the micro-batches of a step over all ranks.
constexpr const char* kStateH = "lm.lstm.state_h";
constexpr const char* kStateC = "lm.lstm.state_c";

// The LSTM's shape is part of its run, like the decoder's (docs/reliability.md E4).
void check_same_lstm(const format::GgufFile& g, const model::LstmConfig& now, bool train) {
  const model::ModelConfig c = model::read_config(g);
  if (!c.is_lstm())
    throw FormatError(g.path(), "checkpoint holds a '" + c.arch.name + "' model, not an LSTM" +
                                    (train ? "; resume without --arch lstm" : ""));
  const model::LstmConfig was = model::to_lstm_config(c);
  std::string diff;
  auto cmp = [&](const char* name, int64_t checkpoint, int64_t n) { diff_option(diff, name, checkpoint, n); };
  cmp("vocabulary", was.n_vocab, now.n_vocab);
  cmp("context", was.n_ctx, now.n_ctx);
  cmp("layers", was.n_layer, now.n_layer);
  cmp("embedding", was.n_embd, now.n_embd);
  cmp("hidden", was.n_hidden, now.n_hidden);
  cmp("projection", was.n_proj, now.n_proj);
  cmp("untied", !was.tied, !now.tied);
  if (!diff.empty())
    throw FormatError(g.path(), "checkpoint belongs to another run: " + diff + "; resume with the same options");
}

// What an LstmJob trains on: token streams (lm-train; lm-finetune --task text) or
// prompt/completion examples (lm-finetune --task prompt-completion).
struct LstmData {
  const Tokenizer* tok = nullptr;
  const std::vector<int>* train = nullptr;            // streams
  const std::vector<int>* valid = nullptr;            // may be null or short: no validation
  const std::vector<Sequence>* seqs = nullptr;        // examples
  const std::vector<Sequence>* seqs_valid = nullptr;  // may be null or empty
  std::string train_name, valid_name;
  // lm-finetune's run: its checkpoints also hold the task, the context and the checksum of the
  // model it started from, and a resume compares them (finetune.hpp's keys).
  std::optional<Task> finetune;
};

class LstmJob final : public Job {
 public:
  LstmJob(const TrainOptions& o, LstmData d, model::LstmParams& p)
      : o_(o), d_(std::move(d)), p_(p), B_(o.batch), T_(p.cfg.n_ctx), parts_(o.grad_accum * dist::world().size()),
        net_(p.cfg, B_, T_), inputs_(size_t(B_) * T_), targets_(size_t(B_) * T_), reset_(size_t(B_) * T_),
        rng_(derive_seed(o.seed, 1)) {
    if (d_.tok->vocab_size() != p.cfg.n_vocab)
      throw UsageError("the tokenizer has " + std::to_string(d_.tok->vocab_size()) + " pieces but the model " +
                       std::to_string(p.cfg.n_vocab) + " embeddings");
    if (d_.finetune) base_checksum_ = fnv1a64_words(p.w.data(), p.w.size() * sizeof(float));
    if (streams()) {
      const size_t streams = size_t(B_) * size_t(parts_);
      seg_ = d_.train->size() / streams;
      if (seg_ < size_t(T_) + 1)
        throw FormatError(d_.train_name, "has " + std::to_string(d_.train->size()) + " tokens, too few for " +
                                             std::to_string(streams) + " streams (--batch x --grad-accum x ranks) of " +
                                             std::to_string(T_ + 1) + " tokens (--context + 1); lower them or add data");
      if (d_.valid) check_held_out(*d_.valid, T_, d_.train_name, d_.valid_name);
      states_.resize(size_t(parts_));
      for (model::LstmState& s : states_) s.resize(p.cfg, B_);
    } else {
      FinetuneData fd;
      fd.seqs = d_.seqs, fd.seqs_valid = d_.seqs_valid, fd.train_name = d_.train_name, fd.valid_name = d_.valid_name;
      unscored_ = check_completions(fd, T_);
      double sum = 0;
      for (const Sequence& s : *d_.seqs) sum += std::min(T_, int(s.tokens.size()) - 1);
      mean_tokens_ = sum / double(d_.seqs->size());
    }
    vstate_.resize(p.cfg, B_);
    if (const auto b = d_.tok->bos_id()) bos_ = *b;
    net_.set_dropout(o.dropout);
    net_.set_weight_drop(o.weight_drop);
  }
  size_t unscored() const { return unscored_; }
  size_t memory_bytes() const {
    size_t n = p_.w.size() * 4 * sizeof(float) + net_.activation_bytes();  // weights, gradients, AdamW
    n += (states_.size() + 1) * (vstate_.h.size() + vstate_.c.size()) * sizeof(float);
    return n;
  }
  std::vector<Trainable> trainables() override { return train::trainables(p_); }
  std::vector<std::span<float>> grads() override { return {std::span<float>(p_.grad.data(), p_.grad.size())}; }
  float micro_step() override {
    net_.set_training(true, derive_seed(o_.seed ^ 0xd0, draws_));  // the same masks after a resume
    if (!streams()) {
      std::vector<const Sequence*> batch;
      for (int i = 0; i < B_; ++i, ++draws_) batch.push_back(&(*d_.seqs)[size_t(rng_.below(d_.seqs->size()))]);
      return run_sequences(batch, true);
    }
    const uint64_t d = draws_++;
    const int k = int(d % uint64_t(parts_));
    fill(k, d / uint64_t(parts_));
    const float loss = net_.forward(p_, inputs_.data(), targets_.data(), B_, T_, states_[size_t(k)], reset_.data());
    net_.backward(p_);
    return loss;
  }
  void skip_micro_step() override {
    if (streams()) {
      ++draws_;
      return;
    }
    for (int i = 0; i < B_; ++i, ++draws_) rng_.below(d_.seqs->size());
  }
  uint64_t tokens_per_micro_step() const override {
    if (streams()) return uint64_t(B_) * uint64_t(T_);
    return std::max<uint64_t>(1, uint64_t(std::llround(B_ * mean_tokens_)));
  }
  uint64_t last_tokens() const override { return streams() ? tokens_per_micro_step() : last_tokens_; }
  double flops_per_token() const override {
    // Every matrix once forward and twice backward; the embedding lookup is no product.
    const double untied_embd = p_.cfg.tied ? 0.0 : double(p_.cfg.n_vocab) * p_.cfg.n_embd;
    return 6.0 * (double(p_.cfg.n_params()) - untied_embd);
  }
  // Streams: the held-out tokens as up to B contiguous streams from a zero state, eval_batches
  // windows each, the state carried; every rank computes all of it (the same value on each).
  // Examples: the first eval_batches x B held-out examples, each from a zero state, in batches
  // spread over the ranks.
  std::optional<float> validate() override {
    net_.set_training(false);
    if (!streams()) {
      if (!d_.seqs_valid || d_.seqs_valid->empty()) return std::nullopt;
      return mean_over_batches(*d_.seqs_valid, size_t(B_), size_t(o_.eval_batches) * size_t(B_),
                               [&](const std::vector<const Sequence*>& batch) { return run_sequences(batch, false); });
    }
    if (!d_.valid || d_.valid->size() <= size_t(T_)) return std::nullopt;
    const std::vector<int>& v = *d_.valid;
    const int b = int(std::min<size_t>(size_t(B_), (v.size() - 1) / size_t(T_)));
    const size_t seg = (v.size() - 1) / size_t(b);
    const size_t windows = std::min<size_t>(size_t(std::max(o_.eval_batches, 1)), seg / size_t(T_));
    vstate_.zero();
    double sum = 0;
    for (size_t w = 0; w < windows; ++w) {
      for (int i = 0; i < b; ++i) {
        const size_t pos = size_t(i) * seg + w * size_t(T_);
        stream_window(v, pos, i);
      }
      sum += net_.forward(p_, inputs_.data(), targets_.data(), b, T_, vstate_, reset_.data());
    }
    return float(sum / double(windows));
  }
  Rng::State sampler_rng() const override { return rng_.state(); }  // streams: the position is draws alone
  uint64_t sampler_draws() const override { return draws_; }
  void set_sampler(const Rng::State& s, uint64_t draws) override {
    rng_.set_state(s);
    draws_ = draws;
  }
  void before_checkpoint() override {
    const dist::Comm& comm = dist::world();
    if (!comm.distributed()) return;
    for (size_t k = 0; k < states_.size(); ++k) {  // group k runs on rank k / grad_accum
      model::LstmState& s = states_[k];
      comm.broadcast(s.h.data(), s.h.size() * sizeof(float), int(k) / o_.grad_accum);
      comm.broadcast(s.c.data(), s.c.size() * sizeof(float), int(k) / o_.grad_accum);
    }
  }
  void add_to_checkpoint(format::GgufWriter& w) override {
    model::add_lstm_model(w, p_, *d_.tok, d_.finetune ? "lm-finetune checkpoint" : "lm-train checkpoint");
    if (d_.finetune) {
      w.set_string(kTaskKey, task_name(*d_.finetune));
      w.set_u32(kContextKey, uint32_t(T_));
      w.set_u64(kBaseKey, base_checksum_);
    }
    if (!streams()) return;
    ckpt_h_.clear();
    ckpt_c_.clear();
    for (const model::LstmState& s : states_) {
      ckpt_h_.insert(ckpt_h_.end(), s.h.begin(), s.h.end());
      ckpt_c_.insert(ckpt_c_.end(), s.c.begin(), s.c.end());
    }
    w.add_tensor(kStateH, format::GgmlType::F32, {int64_t(ckpt_h_.size())}, ckpt_h_.data());
    w.add_tensor(kStateC, format::GgmlType::F32, {int64_t(ckpt_c_.size())}, ckpt_c_.data());
  }
  std::string options_diff(const format::GgufFile& g) const override {
    std::string diff;
    if (!d_.finetune) return diff;
    if (auto v = g.try_get_u32(kContextKey)) diff_option(diff, "--context", int64_t(*v), int64_t(T_));
    if (auto v = g.try_get_u64(kBaseKey); v && *v != base_checksum_)
      diff += std::string(diff.empty() ? "" : ", ") + "-m is not the model the checkpoint's run started from";
    return diff;
  }
  void restore(const format::GgufFile& g) override {
    if (d_.finetune) {
      const std::string task = g.try_get_string(kTaskKey).value_or("");
      if (task != task_name(*d_.finetune))
        throw FormatError(g.path(), "is not a checkpoint of an lm-finetune " + std::string(task_name(*d_.finetune)) +
                                        " run (lm.finetune.task is '" + task + "')");
    }
    check_same_lstm(g, p_.cfg, !d_.finetune);
    const model::LstmParams loaded = model::load_lstm_params(g, false);
    std::copy(loaded.w.begin(), loaded.w.end(), p_.w.begin());  // into the buffers the optimizer holds
    if (!streams()) return;
    const size_t nh = states_[0].h.size(), nc = states_[0].c.size();
    const format::GgufTensorInfo *h = g.find_tensor(kStateH), *c = g.find_tensor(kStateC);
    if (!h || !c) throw FormatError(g.path(), "checkpoint has no carried LSTM state (" + std::string(kStateH) + ")");
    if (h->type != format::GgmlType::F32 || c->type != format::GgmlType::F32 || h->n_elements() % nh != 0 ||
        c->n_elements() != h->n_elements() / nh * nc)
      throw FormatError(g.path(), "checkpoint's carried LSTM state is damaged");
    const uint64_t groups = h->n_elements() / nh;
    if (groups != uint64_t(parts_))
      throw FormatError(g.path(), "checkpoint carries the states of " + std::to_string(groups * uint64_t(B_)) +
                                      " streams, this run has " + std::to_string(parts_ * B_) +
                                      " (--batch x --grad-accum x ranks); resume with the same values");
    for (int k = 0; k < parts_; ++k) {
      std::memcpy(states_[size_t(k)].h.data(), h->data + size_t(k) * nh * sizeof(float), nh * sizeof(float));
      std::memcpy(states_[size_t(k)].c.data(), c->data + size_t(k) * nc * sizeof(float), nc * sizeof(float));
    }
  }

 private:
  bool streams() const { return d_.train != nullptr; }
  // Row i of the micro-batch: tokens pos .. pos + T - 1 of v and their next tokens, with a reset
  // before every BOS token (a document starts).
  void stream_window(const std::vector<int>& v, size_t pos, int i) {
    for (int j = 0; j < T_; ++j) {
      const size_t r = size_t(i) * size_t(T_) + size_t(j);
      inputs_[r] = v[pos + size_t(j)];
      targets_[r] = v[pos + size_t(j) + 1];
      reset_[r] = bos_ >= 0 && inputs_[r] == bos_;
    }
  }
  // Micro-batch group k's window w: stream s = k B + i reads window w mod n of its share (n
  // windows fit in it), from the start again (state zeroed) when w mod n is 0.
  void fill(int k, uint64_t w) {
    const uint64_t n = (seg_ - 1) / uint64_t(T_);
    const uint64_t wi = w % n;
    for (int i = 0; i < B_; ++i) {
      const size_t s = size_t(k) * size_t(B_) + size_t(i);
      if (wi == 0) states_[size_t(k)].zero_row(p_.cfg, B_, i);
      stream_window(*d_.train, s * seg_ + wi * size_t(T_), i);
    }
  }
  // Examples from a zero state, padded to the longest (at most T tokens; padding unscored),
  // scored from their completion; backward adds the gradients. Returns the mean loss.
  float run_sequences(const std::vector<const Sequence*>& batch, bool backward) {
    const int b = int(batch.size());
    const int t = pad_examples(batch, T_, inputs_.data(), targets_.data(), &last_tokens_);
    vstate_.zero();
    const float loss = net_.forward(p_, inputs_.data(), targets_.data(), b, t, vstate_);
    if (backward) net_.backward(p_);
    return loss;
  }

  const TrainOptions& o_;
  const LstmData d_;
  model::LstmParams& p_;
  int B_, T_, parts_;
  size_t seg_ = 0;  // tokens in each stream's share
  model::LstmModel net_;
  std::vector<model::LstmState> states_;  // streams: per micro-batch group of a step
  model::LstmState vstate_;               // validation's, and the examples' zero state
  std::vector<int> inputs_, targets_;
  std::vector<uint8_t> reset_;
  std::vector<float> ckpt_h_, ckpt_c_;
  int bos_ = -1;
  Rng rng_;             // examples: the draws
  uint64_t draws_ = 0;  // streams: micro-batches drawn; examples: examples drawn
  uint64_t last_tokens_ = 0, base_checksum_ = 0;
  double mean_tokens_ = 0;  // examples: tokens fed per example, the training data's mean
  size_t unscored_ = 0;
};

}  // namespace

model::LstmConfig make_lstm_config(const ModelShape& o, int n_vocab) {
  if (o.heads || o.kv_heads || o.ff)
    throw UsageError("--heads, --kv-heads and --ff are a transformer's; an LSTM takes --hidden and --proj");
  model::LstmConfig c;
  const std::string preset = o.preset == "small" ? "lstm-small" : o.preset;  // the default preset
  if (preset == "lstm-tiny") {
    c.n_ctx = 64, c.n_layer = 2, c.n_embd = 256, c.n_hidden = 768, c.n_proj = 256;
  } else if (preset == "lstm-small") {
    c.n_ctx = 128, c.n_layer = 2, c.n_embd = 384, c.n_hidden = 1536, c.n_proj = 384;
  } else if (preset == "lstm-medium") {
    c.n_ctx = 256, c.n_layer = 4, c.n_embd = 768, c.n_hidden = 3072, c.n_proj = 768;
  } else {
    throw UsageError("preset '" + o.preset + "' is a transformer's; an LSTM takes lstm-tiny, lstm-small or lstm-medium");
  }
  c.n_vocab = n_vocab;
  if (o.context) c.n_ctx = *o.context;
  if (o.layers) c.n_layer = *o.layers;
  if (o.embd) c.n_embd = *o.embd;
  if (o.hidden) c.n_hidden = *o.hidden;
  if (o.proj) c.n_proj = *o.proj;
  c.tied = !o.untied && c.out_width() == c.n_embd;
  c.validate();
  return c;
}

DryRun dry_run_lstm(const ModelShape& shape, const TrainOptions& o, int n_vocab) {
  DryRun d;
  const model::LstmConfig cfg = make_lstm_config(shape, n_vocab);
  d.cfg = model::to_model_config(cfg);
  kernels::set_threads(o.threads);
  const int B = o.batch, T = cfg.n_ctx;
  d.n_params = cfg.n_params();
  d.tokens_per_step = uint64_t(B) * T * uint64_t(o.grad_accum);
  const double untied_embd = cfg.tied ? 0.0 : double(cfg.n_vocab) * cfg.n_embd;
  d.flops_per_step = double(d.tokens_per_step) * 6.0 * (double(d.n_params) - untied_embd);
  d.state_bytes = d.n_params * 4 * sizeof(float);
  model::LstmParams p(cfg);
  Rng rng(o.seed);
  p.init(rng);
  model::LstmModel net(cfg, B, T);
  net.set_dropout(o.dropout);
  net.set_weight_drop(o.weight_drop);
  net.set_training(true, o.seed);
  model::LstmState st;
  st.resize(cfg, B);
  std::vector<int> in(size_t(B) * T), tgt(size_t(B) * T);
  for (size_t i = 0; i < in.size(); ++i) in[i] = int(rng.below(uint64_t(n_vocab))), tgt[i] = int(rng.below(uint64_t(n_vocab)));
  net.forward(p, in.data(), tgt.data(), B, T, st);  // warm-up: first touch of the buffers
  net.backward(p);
  d.activation_bytes = net.activation_bytes() + st.h.size() * sizeof(float) * 2 * size_t(o.grad_accum);
  const auto t0 = std::chrono::steady_clock::now();
  net.forward(p, in.data(), tgt.data(), B, T, st);
  net.backward(p);
  d.step_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() * o.grad_accum;
  d.student_seconds = d.step_seconds;
  d.steps = o.steps ? o.steps : o.tokens ? (o.tokens + d.tokens_per_step - 1) / d.tokens_per_step : 0;
  return d;
}

RunResult run_lstm_training(const ModelShape& shape, const TrainOptions& o, const RunInputs& in,
                            std::optional<model::LstmParams>& params, const Logger& log) {
  if (o.steps == 0 && o.tokens == 0 && o.time_s <= 0)
    throw UsageError("no training budget: give --steps, --tokens or --time");
  if (o.batch < 1 || o.grad_accum < 1) throw UsageError("--batch and --grad-accum must be at least 1");
  if (in.distill.enabled()) throw UsageError("--teacher trains a transformer student; an LSTM student is not supported");
  const model::LstmConfig cfg = make_lstm_config(shape, in.tokenizer->vocab_size());
  kernels::set_threads(o.threads);
  params.emplace(cfg);
  Rng init_rng(derive_seed(o.seed, 0));
  params->init(init_rng);
  LstmData d;
  d.tok = in.tokenizer;
  d.train = in.train, d.valid = in.valid;
  d.train_name = in.train_name, d.valid_name = in.valid_name;
  LstmJob job(o, std::move(d), *params);
  return run_loop(o, job, in, log);
}

void check_lstm_finetune(const FinetuneOptions& f) {
  if (f.lora)
    throw UsageError("an LSTM is fine-tuned in full: LoRA adapts a transformer's projections (leave out --lora)");
  if (f.task == Task::Classify || f.head_only)
    throw UsageError("--task classify puts a head on a transformer; an LSTM fine-tunes on text or prompt-completion");
  if (f.distill.enabled()) throw UsageError("--teacher trains a transformer student; an LSTM student is not supported");
}

LstmFinetune make_lstm_finetune(const TrainOptions& o, const FinetuneOptions& f, model::LstmParams& p,
                                const Tokenizer& tok, const FinetuneData& data) {
  check_lstm_finetune(f);
  if (o.batch < 1 || o.grad_accum < 1) throw UsageError("--batch and --grad-accum must be at least 1");
  LstmData d;
  d.tok = &tok;
  d.train_name = data.train_name, d.valid_name = data.valid_name;
  d.finetune = f.task;
  if (f.task == Task::Text) {
    d.train = data.text, d.valid = data.text_valid;
  } else {
    d.seqs = data.seqs, d.seqs_valid = data.seqs_valid;
  }
  auto job = std::make_unique<LstmJob>(o, std::move(d), p);
  LstmFinetune r;
  r.unscored = job->unscored();
  r.memory_bytes = job->memory_bytes();
  r.job = std::move(job);
  return r;
}

}  // namespace lm::train
