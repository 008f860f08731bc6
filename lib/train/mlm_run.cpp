// Masked-language-model training of an encoder (docs/encoder.md). The loop is run_loop's.
#include <algorithm>
#include <chrono>
#include <cmath>

#include "base/error.hpp"
#include "kernels/blas.hpp"
#include "model/encoder.hpp"
#include "model/model_io.hpp"
#include "train/data.hpp"
#include "train/mlm.hpp"

namespace lm::train {

namespace {

constexpr const char* kMaskProbKey = "lm.mlm.mask_prob";
constexpr const char* kWholeWordKey = "lm.mlm.whole_word";
// The validation masks: one seed for every run, so that runs compare on the same positions; it
// is lm-eval mlm's default --seed, so that lm-eval mlm scores held-out text as validation does.
constexpr uint64_t kValidSeed = 0;

}  // namespace

namespace {

class MlmJob final : public Job {
 public:
  MlmJob(const TrainOptions& o, const MlmOptions& mlm, const RunInputs& in, model::Params& p)
      : o_(o), mlm_(mlm), in_(in), p_(p), B_(o.batch), T_(p.cfg.n_ctx),
        masker_(*in.tokenizer, in.tokenizer_name.empty() ? "the tokenizer" : in.tokenizer_name, mlm, T_),
        net_(p.cfg, B_, T_), tokens_(size_t(B_) * T_), targets_(size_t(B_) * T_), lengths_(size_t(B_)) {
    if (in.tokenizer->vocab_size() != p.cfg.n_vocab)
      throw UsageError("the tokenizer has " + std::to_string(in.tokenizer->vocab_size()) + " pieces but the model " +
                       std::to_string(p.cfg.n_vocab) + " embeddings");
    const int K = masker_.content();
    if (in.train->size() < size_t(K))
      throw FormatError(in.train_name, "has " + std::to_string(in.train->size()) + " tokens, fewer than one row of " +
                                           std::to_string(K) + " (--context less the start and end tokens)");
    net_.set_dropout(o.dropout);
  }
  std::vector<Trainable> trainables() override { return train::trainables(p_); }
  std::vector<std::span<float>> grads() override { return {std::span<float>(p_.grad.data(), p_.grad.size())}; }
  float micro_step() override {
    net_.set_training(true, derive_seed(o_.seed ^ 0xd0, draws_));  // the same masks after a resume
    for (int i = 0; i < B_; ++i, ++draws_) {
      Rng rng(derive_seed(derive_seed(o_.seed, 1), draws_));
      const size_t off = size_t(rng.below(in_.train->size() - size_t(masker_.content()) + 1));
      masker_.make_row(in_.train->data() + off, masker_.content(), rng, tokens_.data() + size_t(i) * T_,
                       targets_.data() + size_t(i) * T_);
    }
    const float loss = net_.forward(p_, tokens_.data(), nullptr, targets_.data(), B_, T_);
    net_.backward(p_);
    return loss;
  }
  void skip_micro_step() override { draws_ += uint64_t(B_); }
  uint64_t tokens_per_micro_step() const override { return uint64_t(B_) * uint64_t(T_); }
  double flops_per_token() const override {
    // The layers' matrices (6 per weight: forward, and backward's two products), attention
    // (12 L C T), and the tied head on the predicted share of the tokens.
    const model::ModelConfig& c = p_.cfg;
    const double C = c.n_embd, layer = 4 * C * C + 2 * C * c.n_ff;
    return 6.0 * c.n_layer * layer + 12.0 * c.n_layer * C * T_ + 6.0 * mlm_.mask_prob * C * c.n_vocab;
  }
  // The first eval_batches x B rows of the held-out stream, one after another (the last one
  // shorter when the stream ends), with masks from a fixed seed: the mean loss over all their
  // predicted tokens. Every rank computes all of it (the same value on each).
  std::optional<float> validate() override {
    if (!in_.valid || in_.valid->empty()) return std::nullopt;
    net_.set_training(false);
    const std::vector<int>& v = *in_.valid;
    const size_t K = size_t(masker_.content());
    const size_t windows = std::min((v.size() + K - 1) / K, size_t(std::max(o_.eval_batches, 1)) * size_t(B_));
    double sum = 0;
    size_t scored = 0;
    for (size_t w0 = 0; w0 < windows; w0 += size_t(B_)) {
      const int b = int(std::min(size_t(B_), windows - w0));
      for (int i = 0; i < b; ++i) {
        const size_t off = (w0 + size_t(i)) * K;
        const int k = int(std::min(K, v.size() - off));
        Rng rng(derive_seed(kValidSeed, w0 + size_t(i)));
        int* t = tokens_.data() + size_t(i) * T_;
        int* g = targets_.data() + size_t(i) * T_;
        lengths_[size_t(i)] = masker_.make_row(v.data() + off, k, rng, t, g);
        std::fill(t + lengths_[size_t(i)], t + T_, 0);  // padding
        std::fill(g + lengths_[size_t(i)], g + T_, -1);
      }
      const float loss = net_.forward(p_, tokens_.data(), lengths_.data(), targets_.data(), b, T_);
      sum += double(loss) * net_.scored();
      scored += size_t(net_.scored());
    }
    if (scored == 0) return std::nullopt;
    return float(sum / double(scored));
  }
  Rng::State sampler_rng() const override { return Rng(0).state(); }  // the position is draws alone
  uint64_t sampler_draws() const override { return draws_; }
  void set_sampler(const Rng::State&, uint64_t draws) override { draws_ = draws; }
  void add_to_checkpoint(format::GgufWriter& w) override {
    model::add_encoder_model(w, p_, *in_.tokenizer, "lm-train checkpoint");
    w.set_f32(kMaskProbKey, mlm_.mask_prob);
    w.set_bool(kWholeWordKey, mlm_.whole_word);
  }
  std::string options_diff(const format::GgufFile& g) const override {
    std::string diff;
    if (auto v = g.try_get_f32(kMaskProbKey)) diff_option(diff, "--mask-prob", *v, mlm_.mask_prob);
    if (auto v = g.try_get_bool(kWholeWordKey)) diff_option(diff, "--whole-word", int64_t(*v), int64_t(mlm_.whole_word));
    return diff;
  }
  void restore(const format::GgufFile& g) override {
    const model::ModelConfig c = model::read_config(g);
    if (!c.is_encoder())
      throw FormatError(g.path(), "checkpoint holds a '" + c.arch.name + "' model, not an encoder; resume without --arch bert");
    check_same_model(g, p_.cfg);
    const model::Params loaded = model::load_encoder_params(g, false);
    std::copy(loaded.w.begin(), loaded.w.end(), p_.w.begin());  // into the buffers the optimizer holds
  }

 private:
  const TrainOptions& o_;
  const MlmOptions mlm_;
  const RunInputs& in_;
  model::Params& p_;
  int B_, T_;
  MlmMasker masker_;
  model::EncoderModel net_;
  std::vector<int> tokens_, targets_, lengths_;
  uint64_t draws_ = 0;  // rows drawn
};

}  // namespace

RunResult run_mlm_training(const ModelShape& shape, const TrainOptions& o, const MlmOptions& mlm, const RunInputs& in,
                           std::optional<model::Params>& params, const Logger& log) {
  refuse_weight_drop(o);
  if (o.steps == 0 && o.tokens == 0 && o.time_s <= 0)
    throw UsageError("no training budget: give --steps, --tokens or --time");
  if (o.batch < 1 || o.grad_accum < 1) throw UsageError("--batch and --grad-accum must be at least 1");
  if (in.distill.enabled()) throw UsageError("--teacher trains a decoder student; an encoder student is not supported");
  const model::ModelConfig cfg = make_config(shape, in.tokenizer->vocab_size());
  kernels::set_threads(o.threads);
  params.emplace(cfg);
  Rng init_rng(derive_seed(o.seed, 0));
  params->init(init_rng);
  MlmJob job(o, mlm, in, *params);
  return run_loop(o, job, in, log);
}

DryRun dry_run_mlm(const ModelShape& shape, const TrainOptions& o, const MlmOptions& mlm, const Tokenizer& tok,
                   const std::string& tok_name) {
  refuse_weight_drop(o);
  DryRun d;
  d.cfg = make_config(shape, tok.vocab_size());
  kernels::set_threads(o.threads);
  const int B = o.batch, T = d.cfg.n_ctx;
  const MlmMasker masker(tok, tok_name, mlm, T);
  d.n_params = d.cfg.n_params();
  d.tokens_per_step = uint64_t(B) * T * uint64_t(o.grad_accum);
  const double C = d.cfg.n_embd, layer = 4 * C * C + 2 * C * d.cfg.n_ff;
  d.flops_per_step = double(d.tokens_per_step) * (6.0 * d.cfg.n_layer * layer + 12.0 * d.cfg.n_layer * C * T +
                                                  6.0 * mlm.mask_prob * C * d.cfg.n_vocab);
  d.state_bytes = d.n_params * 4 * sizeof(float);
  model::Params p(d.cfg);
  Rng rng(o.seed);
  p.init(rng);
  model::EncoderModel net(d.cfg, B, T);
  net.set_dropout(o.dropout);
  net.set_training(true, o.seed);
  std::vector<int> stream(size_t(masker.content())), tokens(size_t(B) * T), targets(size_t(B) * T);
  for (int& t : stream) t = int(rng.below(uint64_t(d.cfg.n_vocab)));
  for (int i = 0; i < B; ++i)
    masker.make_row(stream.data(), masker.content(), rng, tokens.data() + size_t(i) * T, targets.data() + size_t(i) * T);
  net.forward(p, tokens.data(), nullptr, targets.data(), B, T);  // warm-up: first touch of the buffers
  net.backward(p);
  d.activation_bytes = net.activation_bytes();
  const auto t0 = std::chrono::steady_clock::now();
  net.forward(p, tokens.data(), nullptr, targets.data(), B, T);
  net.backward(p);
  d.step_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() * o.grad_accum;
  d.student_seconds = d.step_seconds;
  d.steps = o.steps ? o.steps : o.tokens ? (o.tokens + d.tokens_per_step - 1) / d.tokens_per_step : 0;
  return d;
}

}  // namespace lm::train
