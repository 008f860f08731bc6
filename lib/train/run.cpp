// The training loop: one optimizer step = grad_accum micro-batches of `batch` windows.
#include "train/run.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>

#include "base/error.hpp"
#include "base/hash.hpp"
#include "dist/comm.hpp"
#include "format/gguf.hpp"
#include "kernels/blas.hpp"
#include "kernels/kernels.hpp"
#include "kernels/thread_tuner.hpp"
#include "model/encoder.hpp"
#include "model/model_io.hpp"
#include "train/data.hpp"

namespace lm::train {

namespace {

constexpr const char* kBatch = "lm.train.batch";
constexpr const char* kAccum = "lm.train.grad_accum";
// The ranks of the run (docs/distributed.md; absent: one process). The global batch is batch x
// grad_accum x ranks.
constexpr const char* kRanks = "lm.train.ranks";
constexpr const char* kSeed = "lm.train.seed";
constexpr const char* kTotal = "lm.train.total_steps";
// The optimizer and regularisation options, compared on resume (absent from older checkpoints).
constexpr const char* kLr = "lm.train.lr";
constexpr const char* kLrMin = "lm.train.lr_min";
constexpr const char* kWarmup = "lm.train.warmup_steps";
constexpr const char* kDecay = "lm.train.weight_decay";
constexpr const char* kClip = "lm.train.grad_clip";
constexpr const char* kDropout = "lm.train.dropout";
constexpr const char* kWeightDrop = "lm.train.weight_drop";
// A checkpoint's tensors' checksums, fnv1a64_words of each tensor's bytes, 8 little-endian bytes
// each, in tensor order (docs/reliability.md E2).
constexpr const char* kChecksums = "lm.train.tensor_checksums";

void add_checksums(format::GgufWriter& w) {
  std::string bytes(w.n_tensors() * 8, '\0');
  for (size_t i = 0; i < w.n_tensors(); ++i) {
    const uint64_t h = fnv1a64_words(w.tensor_data(i), w.tensor_bytes(i));
    for (int b = 0; b < 8; ++b) bytes[i * 8 + size_t(b)] = char(uint8_t(h >> (8 * b)));
  }
  w.set_array_u8(kChecksums, bytes);
}

// A run never writes a non-finite weight (docs/reliability.md E6): Error naming the tensor.
void check_finite_weights(const std::vector<Trainable>& tensors, uint64_t step) {
  for (const Trainable& t : tensors)
    for (size_t k = 0; k < t.size(); ++k)
      if (!std::isfinite(t.w[k]))
        throw Error("training produced " + std::to_string(t.w[k]) + " in '" + t.name + "' by step " +
                    std::to_string(step) + ", so nothing is written; lower --lr or raise --warmup");
}

// Every rank applies the same update to the same weights, so they stay equal; a difference means
// other input files on some machine, or a kernel that is not deterministic. Error naming the rank.
void check_same_weights(const std::vector<Trainable>& tensors, const dist::Comm& comm, uint64_t step) {
  if (!comm.distributed()) return;
  uint64_t h = 0;
  for (const Trainable& t : tensors) h = h * 1099511628211ull ^ fnv1a64_words(t.w, t.size() * sizeof(float));
  const std::vector<uint64_t> all = comm.all_gather(h);
  for (size_t r = 1; r < all.size(); ++r)
    if (all[r] != all[0])
      throw Error("the weights of rank " + std::to_string(r) + " differ from rank 0's at step " + std::to_string(step) +
                  "; every rank needs the same model, data and checkpoint files");
}

// Checksums (checkpoints written before they had them are not checked) and finite f32 values:
// a damaged checkpoint is a FormatError naming the tensor, never a run that continues from it.
void verify_checkpoint(const format::GgufFile& g) {
  const auto& ts = g.tensors();
  if (g.has(kChecksums)) {
    const std::string_view sums = g.get_u8_array(kChecksums);
    if (sums.size() != ts.size() * 8)
      throw FormatError(g.path(), "key '" + std::string(kChecksums) + "' has " + std::to_string(sums.size()) +
                                      " bytes for " + std::to_string(ts.size()) + " tensors; the file is damaged");
    for (size_t i = 0; i < ts.size(); ++i) {
      uint64_t want = 0;
      for (int b = 7; b >= 0; --b) want = (want << 8) | uint8_t(sums[i * 8 + size_t(b)]);
      if (fnv1a64_words(ts[i].data, ts[i].n_bytes) != want)
        throw FormatError(g.path(), "checkpoint tensor '" + ts[i].name + "' fails its checksum; the file is damaged");
    }
  }
  for (const auto& t : ts) {
    if (t.type != format::GgmlType::F32) continue;
    const float* x = reinterpret_cast<const float*>(t.data);
    for (uint64_t k = 0; k < t.n_elements(); ++k)
      if (!std::isfinite(x[k]))
        throw FormatError(g.path(), "checkpoint tensor '" + t.name + "' holds " + std::to_string(x[k]) +
                                        " at element " + std::to_string(k) + "; the file is damaged");
  }
}

}  // namespace

void check_same_model(const format::GgufFile& g, const model::ModelConfig& cfg) {
  const model::ModelConfig c = model::read_config(g);
  std::string diff;
  if (c.arch.name != cfg.arch.name)
    diff = "architecture " + c.arch.name + " in the checkpoint but " + cfg.arch.name + " now";
  auto cmp = [&](const char* name, int now, int checkpoint) {
    diff_option(diff, name, int64_t(checkpoint), int64_t(now));
  };
  cmp("vocabulary", cfg.n_vocab, c.n_vocab);
  cmp("context", cfg.n_ctx, c.n_ctx);
  cmp("layers", cfg.n_layer, c.n_layer);
  cmp("embedding", cfg.n_embd, c.n_embd);
  cmp("heads", cfg.n_head, c.n_head);
  cmp("kv heads", cfg.n_head_kv, c.n_head_kv);
  cmp("feed-forward", cfg.n_ff, c.n_ff);
  cmp("untied", !cfg.tied, !c.tied);
  if (!diff.empty())
    throw FormatError(g.path(), "checkpoint belongs to another run: " + diff + "; resume with the same options");
}

namespace {

// The batch, accumulation, seed, optimizer and dropout of a run, as its checkpoint has them. The
// micro-batches per step are compared across ranks: --grad-accum x N, so that a run resumes on
// another number of ranks with the same global batch.
std::string loop_diff(const format::GgufFile& g, const TrainOptions& o, int ranks) {
  std::string diff;
  diff_option(diff, "--batch", int64_t(g.get_u32(kBatch)), int64_t(o.batch));
  const int64_t was_ranks = g.try_get_u32(kRanks).value_or(1);
  if (was_ranks == 1 && ranks == 1)
    diff_option(diff, "--grad-accum", int64_t(g.get_u32(kAccum)), int64_t(o.grad_accum));
  else
    diff_option(diff, "--grad-accum x ranks", int64_t(g.get_u32(kAccum)) * was_ranks, int64_t(o.grad_accum) * ranks);
  diff_option(diff, "--seed", g.get_u64(kSeed), o.seed);
  auto f32 = [&](const char* key, const char* name, float now) {
    if (auto v = g.try_get_f32(key)) diff_option(diff, name, *v, now);
  };
  f32(kLr, "--lr", o.opt.lr);
  f32(kLrMin, "--lr-min", o.opt.lr_min);
  f32(kDecay, "--weight-decay", o.opt.weight_decay);
  f32(kClip, "--grad-clip", o.opt.grad_clip);
  f32(kDropout, "--dropout", o.dropout);
  f32(kWeightDrop, "--weight-drop", o.weight_drop);
  if (auto v = g.try_get_u64(kWarmup)) diff_option(diff, "--warmup", *v, o.opt.warmup_steps);
  return diff;
}

// A decoder's training FLOPs per token of windows of T: 6 per parameter (forward and backward)
// and attention's 12 L Q T (Q = heads x head size).
double decoder_flops_per_token(const model::ModelConfig& c, int T) {
  return 6.0 * double(c.n_params()) + 12.0 * c.n_layer * c.q_dim() * double(T);
}

// Pretraining: random windows of a token stream through a freshly initialised model.
class PretrainJob final : public Job {
 public:
  PretrainJob(const TrainOptions& o, const RunInputs& in, model::Params& p, Teacher* teacher)
      : o_(o), in_(in), p_(p), T_(p.cfg.n_ctx), sampler_(*in.train, T_, derive_seed(o.seed, 1), in.train_name),
        net_(p.cfg, o.batch, T_), teacher_(teacher), inputs_(size_t(o.batch) * T_), targets_(size_t(o.batch) * T_) {
    if (in.valid) check_held_out(*in.valid, T_, in.train_name, in.valid_name);
    net_.set_dropout(o.dropout);
  }
  std::vector<Trainable> trainables() override { return train::trainables(p_); }
  std::vector<std::span<float>> grads() override { return {std::span<float>(p_.grad.data(), p_.grad.size())}; }
  float micro_step() override {
    // Dropout masks follow the sampler's position, so a resumed run draws the same ones.
    net_.set_training(true, derive_seed(o_.seed ^ 0xd0, sampler_.draws()));
    sampler_.next(o_.batch, inputs_.data(), targets_.data());
    // alpha = 0 is plain training: the teacher is not run (docs/distillation.md).
    const model::SoftTargets* soft =
        distilling() ? &teacher_->run(inputs_.data(), o_.batch, T_) : nullptr;
    const float loss = net_.forward(p_, inputs_.data(), targets_.data(), o_.batch, T_, soft);
    net_.backward(p_);
    return loss;
  }
  // Layer l's views are contiguous in p_.grad (param_layout's order): one range per layer.
  bool set_on_grads_ready(std::function<void(size_t, size_t, size_t)> f) override {
    if (!f) {
      net_.set_on_layer_grads(nullptr);
      return true;
    }
    net_.set_on_layer_grads([this, f = std::move(f)](int l) {
      size_t lo = SIZE_MAX, hi = 0;
      const auto [first, end] = model::layer_views(p_.cfg, l);
      for (size_t view = first; view < end; ++view) {
        if (const float* g = p_.grad_of(view)) {
          const model::ParamView& pv = p_.views[view];
          lo = std::min(lo, size_t(g - p_.grad.data()));
          hi = std::max(hi, size_t(g - p_.grad.data()) + size_t(pv.rows) * size_t(pv.cols));
        }
      }
      if (lo < hi) f(0, lo, hi);
    });
    return true;
  }
  bool distilling() const override { return teacher_ && teacher_->options().alpha > 0; }
  double teacher_seconds() const override { return teacher_ ? teacher_->seconds() : 0; }
  float last_kl() const override { return net_.last_kl(); }
  std::string options_diff(const format::GgufFile& g) const override { return distill_diff(g, teacher_); }
  void skip_micro_step() override { sampler_.skip(o_.batch); }
  uint64_t tokens_per_micro_step() const override { return uint64_t(o_.batch) * T_; }
  double flops_per_token() const override { return decoder_flops_per_token(p_.cfg, T_); }
  std::optional<float> validate() override {
    if (!in_.valid || in_.valid->size() <= size_t(T_)) return std::nullopt;
    net_.set_training(false);
    return evaluate(net_, p_, *in_.valid, o_.batch, T_, o_.eval_batches * o_.batch);
  }
  Rng::State sampler_rng() const override { return sampler_.rng().state(); }
  uint64_t sampler_draws() const override { return sampler_.draws(); }
  void set_sampler(const Rng::State& s, uint64_t draws) override {
    Rng r;
    r.set_state(s);
    sampler_.set_rng(r);
    sampler_.set_draws(draws);
  }
  void add_to_checkpoint(format::GgufWriter& w) override {
    model::add_model(w, p_, *in_.tokenizer, "lm-train checkpoint");
    add_distill_keys(w, teacher_);
  }
  void restore(const format::GgufFile& g) override {
    check_same_model(g, p_.cfg);
    const model::Params loaded = model::load_params(g, false);
    std::copy(loaded.w.begin(), loaded.w.end(), p_.w.begin());  // into the buffers the optimizer holds
  }

 private:
  const TrainOptions& o_;
  const RunInputs& in_;
  model::Params& p_;
  int T_;
  BatchSampler sampler_;
  model::Model net_;
  Teacher* teacher_;  // nullptr: no distillation
  std::vector<int> inputs_, targets_;
};

}  // namespace

model::ModelConfig make_config(const ModelShape& o, int n_vocab) {
  if (is_lstm(o)) return model::to_model_config(make_lstm_config(o, n_vocab));
  if (is_encoder(o) && (o.kv_heads || o.untied))
    throw UsageError("--kv-heads and --untied are a decoder's: an encoder has as many key/value heads as heads and "
                     "predicts through its embeddings");
  if (o.arch == "gpt2" && o.kv_heads) throw UsageError("--kv-heads is llama's: gpt2 has as many key/value heads as heads");
  if (o.hidden || o.proj) throw UsageError("--hidden and --proj are an LSTM's (--arch lstm)");
  if (o.preset.starts_with("lstm-"))
    throw UsageError("preset '" + o.preset + "' is an LSTM's: add --arch lstm, or choose tiny, small or medium");
  model::ModelConfig c = model::preset(o.preset);
  c.n_vocab = n_vocab;
  if (o.context) c.n_ctx = *o.context;
  if (o.layers) c.n_layer = *o.layers;
  if (o.embd) c.n_embd = *o.embd;
  if (o.heads) c.n_head = *o.heads, c.n_head_kv = *o.heads;
  if (o.kv_heads) c.n_head_kv = *o.kv_heads;
  if (o.ff) c.n_ff = *o.ff;
  c.tied = !o.untied;
  if (is_encoder(o)) c = model::encoder_config(c);
  if (o.arch == "gpt2") c = model::gpt2_config(c);
  c.validate();
  return c;
}

DryRun dry_run(const ModelShape& shape, const TrainOptions& o, int n_vocab, const DistillOptions& distill,
               const Tokenizer* tok, const std::string& tok_name) {
  if (is_lstm(shape)) {
    if (distill.enabled()) throw UsageError("--teacher trains a transformer student; an LSTM student is not supported");
    return dry_run_lstm(shape, o, n_vocab);
  }
  refuse_weight_drop(o);
  DryRun d;
  d.cfg = make_config(shape, n_vocab);
  kernels::set_threads(o.threads);
  const int B = o.batch, T = d.cfg.n_ctx;
  d.n_params = d.cfg.n_params();
  d.tokens_per_step = uint64_t(B) * T * uint64_t(o.grad_accum);
  d.flops_per_step = double(d.tokens_per_step) * decoder_flops_per_token(d.cfg, T);
  d.state_bytes = d.n_params * 4 * sizeof(float);
  model::Params p(d.cfg);
  Rng rng(o.seed);
  p.init(rng);
  model::Model net(d.cfg, B, T);
  net.set_dropout(o.dropout);
  net.set_training(true, o.seed);
  d.activation_bytes = net.activation_bytes();
  std::vector<int> in(size_t(B) * T), tgt(size_t(B) * T);
  for (size_t i = 0; i < in.size(); ++i) in[i] = int(rng.below(uint64_t(n_vocab))), tgt[i] = int(rng.below(uint64_t(n_vocab)));
  net.forward(p, in.data(), tgt.data(), B, T);  // warm-up: first touch of the buffers
  net.backward(p);
  const auto t0 = std::chrono::steady_clock::now();
  net.forward(p, in.data(), tgt.data(), B, T);
  net.backward(p);
  d.step_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() * o.grad_accum;
  d.student_seconds = d.step_seconds;
  if (distill.enabled() && tok) {
    // The teacher's forward alone, then a whole distillation step (teacher, student forward with
    // soft targets, backward), each the second of two runs.
    Teacher teacher(distill, *tok, tok_name, B, T);
    d.teacher_seconds = teacher.measure() * o.grad_accum;
    d.teacher_bytes = teacher.bytes();
    if (distill.alpha > 0) {
      for (int rep = 0; rep < 2; ++rep) {
        const auto t1 = std::chrono::steady_clock::now();
        const model::SoftTargets& soft = teacher.run(in.data(), B, T);
        net.forward(p, in.data(), tgt.data(), B, T, &soft);
        net.backward(p);
        d.step_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count() * o.grad_accum;
      }
    }
  }
  d.steps = o.steps ? o.steps : o.tokens ? (o.tokens + d.tokens_per_step - 1) / d.tokens_per_step : 0;
  return d;
}

float evaluate(model::Model& net, const model::Params& p, const std::vector<int>& tokens, int B, int T,
               int max_windows) {
  const size_t n_windows = std::min<size_t>(size_t(max_windows), tokens.size() > size_t(T) ? (tokens.size() - 1) / size_t(T) : 0);
  if (n_windows == 0) return NAN;
  std::vector<int> in(size_t(B) * T), tgt(size_t(B) * T);
  const dist::Comm& comm = dist::world();
  double sum = 0;
  size_t done = 0;
  for (size_t j = 0; done < n_windows; ++j, done += size_t(B)) {
    const int b = int(std::min<size_t>(size_t(B), n_windows - done));
    if (int(j % size_t(comm.size())) != comm.rank()) continue;  // another rank's micro-batch
    for (int i = 0; i < b; ++i) {
      const int* src = tokens.data() + (done + size_t(i)) * size_t(T);
      std::copy(src, src + T, in.begin() + long(i) * T);
      std::copy(src + 1, src + T + 1, tgt.begin() + long(i) * T);
    }
    sum += double(net.forward(p, in.data(), tgt.data(), b, T)) * b;
  }
  comm.sum(&sum, 1);
  return float(sum / double(n_windows));
}

void refuse_weight_drop(const TrainOptions& o) {
  if (o.weight_drop > 0)
    throw UsageError("--weight-drop masks an LSTM's recurrent matrices; a transformer has none (use --dropout)");
}

RunResult run_training(const ModelShape& shape, const TrainOptions& o, const RunInputs& in,
                       std::optional<model::Params>& params, const Logger& log) {
  refuse_weight_drop(o);
  if (o.steps == 0 && o.tokens == 0 && o.time_s <= 0)
    throw UsageError("no training budget: give --steps, --tokens or --time");
  if (o.batch < 1 || o.grad_accum < 1) throw UsageError("--batch and --grad-accum must be at least 1");
  const model::ModelConfig cfg = make_config(shape, in.tokenizer->vocab_size());
  kernels::set_threads(o.threads);
  params.emplace(cfg);
  Rng init_rng(derive_seed(o.seed, 0));
  params->init(init_rng);
  std::unique_ptr<Teacher> teacher;
  if (in.distill.enabled()) {
    teacher = std::make_unique<Teacher>(in.distill, *in.tokenizer, in.tokenizer_name, o.batch, cfg.n_ctx);
    if (in.distill.alpha == 0)
      log.warn("--distill-alpha 0 trains on the labels alone: the teacher is not run");
  }
  PretrainJob job(o, in, *params, teacher.get());
  return run_loop(o, job, in, log);
}

static void add_difference(std::string& diff, const char* name, const std::string& checkpoint,
                           const std::string& now) {
  diff += std::string(diff.empty() ? "" : ", ") + name + " " + checkpoint + " in the checkpoint but " + now + " now";
}

void diff_option(std::string& diff, const char* name, uint64_t checkpoint, uint64_t now) {
  if (checkpoint != now) add_difference(diff, name, std::to_string(checkpoint), std::to_string(now));
}
void diff_option(std::string& diff, const char* name, int64_t checkpoint, int64_t now) {
  if (checkpoint != now) add_difference(diff, name, std::to_string(checkpoint), std::to_string(now));
}
void diff_option(std::string& diff, const char* name, float checkpoint, float now) {
  if (checkpoint == now) return;
  // 7 digits show a float as it was typed (0.001, not 0.00100000005); 9 tell apart any two.
  char a[32], b[32];
  for (int digits : {7, 9}) {
    std::snprintf(a, sizeof a, "%.*g", digits, double(checkpoint));
    std::snprintf(b, sizeof b, "%.*g", digits, double(now));
    if (std::strcmp(a, b) != 0) break;
  }
  add_difference(diff, name, a, b);
}

RunResult run_loop(const TrainOptions& o, Job& job, const RunHooks& in, const Logger& log) {
  if (o.steps == 0 && o.tokens == 0 && o.time_s <= 0)
    throw UsageError("no training budget: give --steps, --tokens or --time");
  if (o.batch < 1 || o.grad_accum < 1) throw UsageError("--batch and --grad-accum must be at least 1");
  kernels::set_threads(o.threads);
  const dist::Comm& comm = dist::world();
  // One step: grad_accum micro-batches on each of the N ranks (docs/distributed.md).
  const int parts = o.grad_accum * comm.size();
  OptimizerOptions oo = o.opt;
  const uint64_t tokens_per_step = job.tokens_per_micro_step() * uint64_t(parts);
  uint64_t total = o.steps ? o.steps : o.tokens ? (o.tokens + tokens_per_step - 1) / tokens_per_step : 0;
  TrainState st;
  // Every trained tensor; with --zero 1 the optimizer holds the moments of this rank's share only
  // (whole tensors, balanced by size; docs/distributed.md, ZeRO-1).
  const std::vector<Trainable> all = job.trainables();
  const bool zero = o.zero > 0 && comm.distributed();
  std::vector<int> owner(all.size(), 0);
  if (zero) {
    std::vector<size_t> load(size_t(comm.size()), 0);
    for (size_t i = 0; i < all.size(); ++i) {
      owner[i] = int(std::min_element(load.begin(), load.end()) - load.begin());
      load[size_t(owner[i])] += all[i].size();
    }
  }
  std::vector<Trainable> mine;
  for (size_t i = 0; i < all.size(); ++i)
    if (owner[i] == comm.rank() || !zero) mine.push_back(all[i]);
  AdamW opt(mine, oo);
  const std::vector<std::span<float>> grads = job.grads();
  // Overlap of the gradient sums with backward (--overlap; not with --zero, whose sums go to
  // one owner per tensor): the ranges the job reports as final start at once; started[s] lists
  // those of grads[s] in this step.
  const bool overlap = o.overlap && comm.distributed() && !zero && job.set_on_grads_ready(nullptr);
  std::optional<dist::PendingSums> pending;  // its summing thread, only when overlapping
  if (overlap) pending.emplace(comm);
  std::vector<std::vector<std::pair<size_t, size_t>>> started(grads.size());
  const std::function<void(size_t, size_t, size_t)> start_sum = [&](size_t s, size_t b, size_t e) {
    pending->start(grads[s].data() + b, e - b);
    started[s].emplace_back(b, e);
  };
  if (in.resume_path) {
    format::GgufFile g = format::GgufFile::open(*in.resume_path);
    verify_checkpoint(g);
    job.restore(g);  // what cannot be resumed at all: FormatError
    std::string diff = loop_diff(g, o, comm.size());
    if (std::string d = job.options_diff(g); !d.empty()) diff += (diff.empty() ? "" : ", ") + d;
    // The budget sets the length of the cosine schedule: another --steps or --tokens would
    // stretch or squeeze what is left of it, so it is a changed option like the others. A time
    // budget keeps the schedule the checkpoint's run estimated (0: it had not estimated one yet).
    const uint64_t checkpoint_total = g.get_u64(kTotal);
    if ((o.steps || o.tokens) && checkpoint_total)
      diff_option(diff, o.steps ? "--steps" : "--tokens (as steps)", checkpoint_total, total);
    st = load_checkpoint(g, opt);
    job.set_sampler(st.sampler_rng, st.sampler_draws);
    // A checkpoint at the budget's last step (saved by --checkpoint-every or an interrupt just
    // before the model was written, e.g. a run killed while writing it) runs no step and writes
    // the model; only one beyond the budget is refused.
    if ((o.steps || o.tokens) && st.step > total)  // before the differences: the budget itself is wrong
      throw UsageError("checkpoint '" + *in.resume_path + "' is at step " + std::to_string(st.step) +
                       ", already past this budget of " + std::to_string(total) + " steps");
    if (!diff.empty() && !o.force_resume)
      throw FormatError(g.path(), "checkpoint belongs to another run: " + diff +
                                      "; resume with the same options, or add --force-resume");
    if (!diff.empty()) log.warn("resuming with other options than the checkpoint's: %s", diff.c_str());
    if (!total) total = checkpoint_total;
    log.info("resuming %s at step %llu", in.resume_path->c_str(), (unsigned long long)st.step);
  }
  // A warmup as long as the run never gets past it: the rate climbs to --lr at best on the last
  // step and never decays.
  auto check_warmup = [&](const char* about) {
    if (total && oo.warmup_steps >= total)
      log.warn("--warmup %llu is not shorter than the run (%s%llu steps): the learning rate never gets past its "
               "warmup to the cosine decay; lower --warmup",
               (unsigned long long)oo.warmup_steps, about, (unsigned long long)total);
  };
  check_warmup("");
  check_same_weights(all, comm, st.step);  // other files on some machine fail now, not at the end
  const double flops_per_token = job.flops_per_token();
  RunResult res;
  int consecutive_skips = 0, evals_without_gain = 0;
  const auto t0 = std::chrono::steady_clock::now();
  auto local_elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  // The clock of the --time budget: the slowest rank's, so that all ranks end after the same step
  // and estimate the same schedule.
  auto elapsed = [&] {
    double t = local_elapsed();
    comm.max(&t, 1);
    return t;
  };
  // --zero 1: the moments of the tensors other ranks own, sent to rank 0's `whole` (the owner
  // broadcasts; ranks that neither own nor write take them in a scratch buffer).
  std::vector<float> scratch;
  auto gather_moments = [&](AdamW* whole) {
    if (!zero) return;
    size_t k = 0;  // index into opt (this rank's tensors)
    for (size_t i = 0; i < all.size(); ++i) {
      const bool own = owner[i] == comm.rank();
      for (int mv = 0; mv < 2; ++mv) {
        float* buf = own ? (mv ? opt.v(k) : opt.m(k)) : whole ? (mv ? whole->v(i) : whole->m(i)) : nullptr;
        if (!buf) {
          scratch.resize(all[i].size());
          buf = scratch.data();
        }
        if (own && whole) std::copy_n(buf, all[i].size(), mv ? whole->v(i) : whole->m(i));
        if (owner[i] != 0) comm.broadcast(buf, all[i].size() * sizeof(float), owner[i]);
      }
      if (own) ++k;
    }
  };
  auto checkpoint = [&] {
    if (in.checkpoint_path.empty()) return;
    job.before_checkpoint();
    check_finite_weights(all, st.step);
    check_same_weights(all, comm, st.step);
    if (!comm.root()) {  // rank 0 writes; the others wait until the file is in place
      gather_moments(nullptr);
      comm.barrier();
      return;
    }
    st.sampler_rng = job.sampler_rng();
    st.sampler_draws = job.sampler_draws();
    format::GgufWriter w;
    job.add_to_checkpoint(w);
    std::optional<AdamW> whole;  // --zero 1: every rank's moments, gathered here for the file
    if (zero) {
      whole.emplace(all, oo);
      whole->set_steps(opt.steps());
    }
    gather_moments(whole ? &*whole : nullptr);
    add_checkpoint(w, whole ? *whole : opt, st);
    w.set_u32(kBatch, uint32_t(o.batch));
    w.set_u32(kAccum, uint32_t(o.grad_accum));
    if (comm.size() > 1) w.set_u32(kRanks, uint32_t(comm.size()));
    w.set_u64(kSeed, o.seed);
    w.set_u64(kTotal, total);
    w.set_f32(kLr, o.opt.lr);
    w.set_f32(kLrMin, o.opt.lr_min);
    w.set_u64(kWarmup, o.opt.warmup_steps);
    w.set_f32(kDecay, o.opt.weight_decay);
    w.set_f32(kClip, o.opt.grad_clip);
    w.set_f32(kDropout, o.dropout);
    w.set_f32(kWeightDrop, o.weight_drop);
    add_checksums(w);
    w.save(in.checkpoint_path);
    if (in.on_checkpoint) in.on_checkpoint(in.checkpoint_path);
    comm.barrier();
  };
  // Early stopping keeps the weights of the best validation (Hugging Face's
  // load_best_model_at_end): a copy of what is trained, taken at each new best and put back at
  // the end, so the model written is the best one seen, not the one `patience` evaluations on.
  std::vector<float> best;
  auto copy_weights = [&](bool to_best) {
    size_t at = 0;
    for (const Trainable& t : all) {
      if (to_best) std::copy_n(t.w, t.size(), best.data() + at);
      else std::copy_n(best.data() + at, t.size(), t.w);
      at += t.size();
    }
  };
  if (o.patience > 0) {
    size_t n = 0;
    for (const Trainable& t : all) n += t.size();
    best.resize(n);
  }
  const uint64_t first_step = st.step;
  double after_first = 0, now = 0;  // `now`: elapsed() at the end of the last step
  bool estimating = false;          // a time budget's schedule length is re-estimated each step
  if (total && st.step >= total) {
    // Nothing left to train: the result reports the weights as they are (no training loss).
    log.info("%s is at the budget's last step, %llu: no step left to run", in.resume_path->c_str(),
             (unsigned long long)st.step);
    res.last_loss = std::numeric_limits<float>::quiet_NaN();
    res.last_valid_loss = res.best_valid_loss = job.validate();
    res.best_step = st.step;
  }
  // With -t 0, each optimizer step runs at the thread count measured fastest now (validation
  // too, at that count): the results are the same bits at any count, so the count may follow
  // the load (docs/architecture.md, thread count by measurement).
  kernels::ThreadTuner* tuner = kernels::training_tuner();
  while (total == 0 || st.step < total) {
    if (o.time_s > 0 && now >= o.time_s) break;
    if (tuner) tuner->begin(1);
    const double step_start = local_elapsed();
    for (auto g : grads) std::fill(g.begin(), g.end(), 0.0f);
    // The step's micro-batches k = 0 .. parts-1, in the order one process draws them: this rank
    // computes k = rank * grad_accum .. + grad_accum - 1 and draws past the others.
    double sums[3] = {0, 0, 0};  // loss, tokens, KL term (distillation)
    const int mine = comm.rank() * o.grad_accum;
    const double teacher_before = job.teacher_seconds();
    for (int k = 0; k < parts; ++k) {
      if (k < mine || k >= mine + o.grad_accum) {
        job.skip_micro_step();
        continue;
      }
      // Overlap: during this rank's last micro-batch, each range of gradients the backward
      // completes starts its sum while the backward goes on.
      const bool hook = overlap && k == mine + o.grad_accum - 1;
      if (hook) job.set_on_grads_ready(start_sum);
      sums[0] += job.micro_step();
      if (hook) job.set_on_grads_ready(nullptr);
      sums[1] += double(job.last_tokens());
      sums[2] += job.last_kl();
    }
    // The gradient sum over the ranks, then the mean over the step's micro-batches. comm_s is
    // the time from the end of backward to the sums' end: with overlap, what was left of them.
    const double comm_start = local_elapsed();
    if (zero) {  // each tensor's sum goes to its owner alone
      for (size_t i = 0; i < all.size(); ++i) comm.sum_to(all[i].g, all[i].size(), owner[i]);
    } else if (overlap) {  // the ranges not started yet (head, embeddings), then the wait
      for (size_t s = 0; s < grads.size(); ++s) {
        std::sort(started[s].begin(), started[s].end());
        size_t at = 0;
        for (auto [b, e] : started[s]) {
          if (b > at) pending->start(grads[s].data() + at, b - at);
          at = std::max(at, e);
        }
        if (at < grads[s].size()) pending->start(grads[s].data() + at, grads[s].size() - at);
        started[s].clear();
      }
      pending->wait();
    } else {
      for (auto g : grads) comm.sum(g.data(), g.size());
    }
    comm.sum(sums, 3);
    const double comm_s = local_elapsed() - comm_start;
    const double loss = sums[0] / parts;
    const uint64_t step_tokens = uint64_t(sums[1]);
    if (parts > 1)
      for (auto grad : grads)
        for (float& g : grad) g /= float(parts);
    StepInfo info;
    if (comm.distributed()) info.comm_s = comm_s;
    if (job.distilling()) {
      info.distilling = true;
      info.teacher_s = job.teacher_seconds() - teacher_before;
      info.kl = float(sums[2] / parts);
    }
    // Clipping on the global norm; rank 0's, so that every rank takes the same decision.
    if (zero) {  // the owners' shares of the squared norm
      double sq = 0;
      for (const Trainable& t : opt.tensors()) sq += kernels::sum_squares(t.g, t.size());
      comm.sum(&sq, 1);
      info.grad_norm = std::sqrt(sq);
    } else {
      info.grad_norm = grad_norm(grads);
      comm.broadcast(&info.grad_norm, sizeof info.grad_norm);
    }
    clip_to_norm(grads, info.grad_norm, oo.grad_clip);
    oo.total_steps = total ? total : st.step + 1000;
    info.lr = lr_at(st.step, oo);
    if (!std::isfinite(info.grad_norm) || !std::isfinite(loss)) {
      info.skipped = true;
      ++st.skipped_steps;
      if (++consecutive_skips >= o.max_skipped)
        throw Error("training diverged: " + std::to_string(consecutive_skips) +
                    " consecutive steps with non-finite loss or gradients at step " + std::to_string(st.step) +
                    (in.checkpoint_path.empty() || ::access(in.checkpoint_path.c_str(), F_OK) != 0
                         ? ""
                         : "; the last checkpoint is " + in.checkpoint_path) +
                    "; lower --lr or raise --warmup");
    } else {
      consecutive_skips = 0;
      opt.step(info.lr);
      if (zero)  // each owner's updated tensors to every rank
        for (size_t i = 0; i < all.size(); ++i) comm.broadcast(all[i].w, all[i].size() * sizeof(float), owner[i]);
    }
    ++st.step;
    st.tokens_seen += step_tokens;
    const double step_s = local_elapsed() - step_start;
    if (tuner) {
      tuner->end();
      kernels::set_active_threads(tuner->current(1));
    }
    now = o.time_s > 0 ? elapsed() : local_elapsed();  // a collective only for a time budget
    if (st.step - first_step == 1) after_first = now;
    // Time budget: the schedule's length, first from steps 2 to 4 (the first one touches every
    // buffer for the first time and is slower), then again after every step from the mean step
    // time since step 2, so that a run whose first steps were slowed (or sped up) by other work
    // on the machine still spends its budget and ends its cosine at --lr-min when the time is
    // up. A resumed run keeps the checkpoint's schedule. Every rank sees the same clock (`now`
    // is agreed), so every rank computes the same length.
    const uint64_t done = st.step - first_step;
    if ((total == 0 && done == 4) || (estimating && done > 4)) {
      const double per_step = (now - after_first) / double(done - 1);
      total = st.step + uint64_t(std::max(0.0, o.time_s - now) / per_step);
      if (done == 4) {
        estimating = true;
        log.debug("time budget: about %llu steps", (unsigned long long)total);
        check_warmup("about ");
      }
    }
    info.step = st.step;
    info.total_steps = total;
    info.loss = float(loss);
    info.tokens_per_s = double(step_tokens) / step_s;
    info.gflops = info.tokens_per_s * flops_per_token / 1e9 / comm.size();  // per rank, for its MFU
    info.elapsed_s = now;
    info.step_s = step_s;
    info.tokens_seen = st.tokens_seen;
    res.last_loss = info.loss;
    const bool last = (total && st.step >= total) || (o.time_s > 0 && now >= o.time_s);
    if ((o.eval_every && st.step % o.eval_every == 0) || last) {
      info.valid_loss = job.validate();
      if (info.valid_loss) {
        res.last_valid_loss = info.valid_loss;
        if (!res.best_valid_loss || *info.valid_loss < *res.best_valid_loss) {
          res.best_valid_loss = info.valid_loss;
          res.best_step = st.step;
          evals_without_gain = 0;
          if (o.patience > 0) copy_weights(true);
        } else {
          ++evals_without_gain;
        }
      }
    }
    if (in.on_step && comm.root()) in.on_step(info);
    if (o.checkpoint_every && st.step % o.checkpoint_every == 0) checkpoint();
    // A signal may reach the ranks at different moments: any rank's stops them all after this
    // step. With a time budget, the clock is agreed here as well.
    double flags[2] = {in.stop ? double(in.stop->load()) : 0.0, 0.0};
    if (o.time_s > 0) flags[1] = local_elapsed();
    comm.max(flags, 2);
    if (o.time_s > 0) now = flags[1];
    if (flags[0] != 0) {
      checkpoint();
      res.end = RunEnd::Interrupted;
      res.signal = int(flags[0]);
      break;
    }
    if (o.patience && evals_without_gain >= o.patience) {
      res.end = RunEnd::EarlyStop;
      break;
    }
  }
  res.steps = st.step;
  check_finite_weights(all, st.step);
  check_same_weights(all, comm, st.step);
  if (o.patience > 0 && res.end != RunEnd::Interrupted && res.best_valid_loss && res.best_step != st.step) {
    copy_weights(false);
    res.kept_best = true;
  }
  return res;
}

}  // namespace lm::train
