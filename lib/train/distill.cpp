// The teacher of a distillation run (docs/distillation.md).
#include "train/distill.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <optional>

#include "base/error.hpp"
#include "base/hash.hpp"
#include "model/lora.hpp"
#include "model/model_io.hpp"
#include "model/session.hpp"
#include "model/tokenizer_loader.hpp"
#include "train/run.hpp"

namespace lm::train {

namespace {

constexpr const char* kTeacher = "lm.distill.teacher";
constexpr const char* kTeacherSum = "lm.distill.teacher_checksum";
constexpr const char* kAlpha = "lm.distill.alpha";
constexpr const char* kTemp = "lm.distill.temp";
constexpr const char* kTopK = "lm.distill.top_k";

uint64_t tensor_checksum(const format::GgufFile& g) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (const auto& t : g.tensors()) h = fnv1a64_words(t.data, t.n_bytes, h);
  return h;
}

// One tokenizer for teacher and student: the same fingerprint, or the same pieces in the same
// order (a vocabulary carried by GGUF arrays in one file and a SentencePiece model in the other).
void check_vocabulary(const Tokenizer& teacher, const std::string& teacher_path, const Tokenizer& student,
                      const std::string& student_name) {
  bool same = teacher.fingerprint() == student.fingerprint();
  if (!same && teacher.vocab_size() == student.vocab_size()) {
    same = true;
    for (int i = 0; i < teacher.vocab_size() && same; ++i) same = teacher.piece(i) == student.piece(i);
  }
  if (!same)
    throw FormatError(teacher_path, "the teacher's vocabulary (" + std::to_string(teacher.vocab_size()) +
                                        " tokens) is not the student's, '" + student_name + "' (" +
                                        std::to_string(student.vocab_size()) +
                                        " tokens); distillation needs one tokenizer for both");
}

void check_context(const std::string& path, int teacher_ctx, int T) {
  if (T > teacher_ctx)
    throw UsageError("teacher '" + path + "' has a context of " + std::to_string(teacher_ctx) +
                     " tokens, shorter than the student's windows of " + std::to_string(T) +
                     "; lower --context to at most " + std::to_string(teacher_ctx));
}

}  // namespace

void DistillOptions::validate() const {
  if (!(alpha >= 0.0f && alpha <= 1.0f))
    throw UsageError("--distill-alpha must be in [0, 1] (the weight of the teacher's term), not " + std::to_string(alpha));
  if (!(temp > 0.0f) || !std::isfinite(temp))
    throw UsageError("--distill-temp must be a positive number, not " + std::to_string(temp));
  if (top_k < 0) throw UsageError("--distill-top-k must be 0 (every id) or more, not " + std::to_string(top_k));
}

struct Teacher::Impl {
  // A language-model teacher: a session with one slot per row of the micro-batch.
  std::unique_ptr<model::LoadedModel> lm;
  std::unique_ptr<model::Session> session;
  std::vector<model::Session::Chunk> chunks;
  // A classifier teacher.
  std::unique_ptr<format::GgufFile> gguf;
  std::unique_ptr<model::Params> params;
  std::unique_ptr<model::Model> net;
  std::vector<float> log_probs;
};

Teacher::Teacher(const DistillOptions& o, const Tokenizer& student_tok, const std::string& student_name, int B, int T)
    : o_(o), impl_(std::make_unique<Impl>()), B_(B), T_(T) {
  o_.validate();
  impl_->lm = std::make_unique<model::LoadedModel>(model::load_model(o.teacher));
  const model::LoadedModel& m = *impl_->lm;
  check_vocabulary(m.tok, o.teacher, student_tok, student_name);
  check_context(o.teacher, m.weights.cfg.n_ctx, T);
  const int V = m.weights.cfg.n_vocab;
  if (o_.top_k > V)
    throw UsageError("--distill-top-k " + std::to_string(o_.top_k) + " is above the vocabulary of " + std::to_string(V));
  if (o_.top_k == V) o_.top_k = 0;
  checksum_ = tensor_checksum(m.gguf);
  impl_->session = std::make_unique<model::Session>(m.weights, T, B * T, B);
  impl_->session->reserve(T);
  impl_->chunks.resize(size_t(B));
  soft_.k = V;
  soft_.alpha = o_.alpha;
  soft_.temp = o_.temp;
}

Teacher::Teacher(const DistillOptions& o, const Tokenizer& student_tok, const std::string& student_name,
                 const std::vector<std::string>& labels, int B, int T)
    : o_(o), impl_(std::make_unique<Impl>()), B_(B), T_(T) {
  o_.validate();
  impl_->gguf = std::make_unique<format::GgufFile>(format::GgufFile::open(o.teacher));
  const format::GgufFile& g = *impl_->gguf;
  if (model::is_adapter(g)) throw FormatError(o.teacher, "is a LoRA adapter; --teacher needs a classifier model");
  const Tokenizer tok = model::load_tokenizer(g);
  check_vocabulary(tok, o.teacher, student_tok, student_name);
  impl_->params = std::make_unique<model::Params>(model::load_params(g, false));
  const model::ModelConfig& cfg = impl_->params->cfg;
  if (cfg.n_cls == 0)
    throw FormatError(o.teacher, "has no classifier head (cls.output.weight); a classify run's teacher is a classifier "
                                 "made by lm-finetune --task classify");
  const std::vector<std::string> theirs = model::read_labels(g, cfg);
  if (theirs != labels) {
    auto join = [](const std::vector<std::string>& v) {
      std::string s;
      for (const auto& x : v) s += (s.empty() ? "" : ",") + x;
      return s;
    };
    throw FormatError(o.teacher, "the teacher's labels (" + join(theirs) + ") are not the student's (" + join(labels) +
                                     "), in the same order");
  }
  check_context(o.teacher, cfg.n_ctx, T);
  const int K = cfg.n_cls;
  if (o_.top_k > K)
    throw UsageError("--distill-top-k " + std::to_string(o_.top_k) + " is above the teacher's " + std::to_string(K) +
                     " labels");
  if (o_.top_k == K) o_.top_k = 0;
  checksum_ = tensor_checksum(g);
  model::ModelBuffers buffers;
  buffers.lm_logits = false;
  buffers.trunk_backward = false;
  impl_->net = std::make_unique<model::Model>(cfg, B, T, buffers);
  impl_->log_probs.resize(size_t(B) * K);
  soft_.k = K;
  soft_.alpha = o_.alpha;
  soft_.temp = o_.temp;
}

Teacher::~Teacher() = default;

bool Teacher::classifier() const { return impl_->net != nullptr; }

void Teacher::select_top_k(const float* rows, int n_rows, int k) {
  const int K = o_.top_k;
  top_logits_.resize(size_t(n_rows) * K);
  top_ids_.resize(size_t(n_rows) * K);
  // Rows in parallel: one nth_element over the vocabulary per row is the selection's cost.
#pragma omp parallel
  {
  std::vector<int> order(static_cast<size_t>(k));
#pragma omp for schedule(static)
  for (int r = 0; r < n_rows; ++r) {
    const float* x = rows + size_t(r) * k;
    std::iota(order.begin(), order.end(), 0);
    // The K largest, ties to the lower id, so that the selection does not depend on the sort.
    std::nth_element(order.begin(), order.begin() + (K - 1), order.end(),
                     [x](int a, int b) { return x[a] > x[b] || (x[a] == x[b] && a < b); });
    for (int i = 0; i < K; ++i) {
      top_ids_[size_t(r) * K + i] = order[size_t(i)];
      top_logits_[size_t(r) * K + i] = x[order[size_t(i)]];
    }
  }
  }
  soft_.logits = top_logits_.data();
  soft_.ids = top_ids_.data();
  soft_.k = K;
}

const model::SoftTargets& Teacher::run(const int* tokens, int b, int t) {
  LM_ASSERT(impl_->session && b >= 1 && b <= B_ && t >= 1 && t <= T_);
  const auto t0 = std::chrono::steady_clock::now();
  model::Session& s = *impl_->session;
  for (int i = 0; i < b; ++i) {
    s.keep(0, i);
    impl_->chunks[size_t(i)] = model::Session::Chunk{i, tokens + size_t(i) * t, t, 0};
  }
  const float* logits = s.eval_batch(impl_->chunks.data(), b);
  if (o_.top_k > 0) {
    select_top_k(logits, b * t, s.n_vocab());
  } else {
    soft_.logits = logits;
    soft_.ids = nullptr;
    soft_.k = s.n_vocab();
  }
  seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return soft_;
}

const model::SoftTargets& Teacher::run_classify(const int* tokens, const int* lengths, int b, int t) {
  LM_ASSERT(impl_->net && b >= 1 && b <= B_ && t >= 1 && t <= T_);
  const auto t0 = std::chrono::steady_clock::now();
  impl_->net->forward_classify(*impl_->params, tokens, lengths, nullptr, b, t);
  const int K = impl_->params->cfg.n_cls;
  const float* pr = impl_->net->class_probs();
  // Log-probabilities are logits up to a constant per row: softmax(log p / T) = softmax(z / T).
  for (size_t i = 0; i < size_t(b) * K; ++i) impl_->log_probs[i] = std::log(std::max(pr[i], 1e-30f));
  if (o_.top_k > 0) {
    select_top_k(impl_->log_probs.data(), b, K);
  } else {
    soft_.logits = impl_->log_probs.data();
    soft_.ids = nullptr;
    soft_.k = K;
  }
  seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return soft_;
}

size_t Teacher::bytes() const {
  size_t n = (top_logits_.capacity() + impl_->log_probs.capacity()) * sizeof(float) + top_ids_.capacity() * sizeof(int);
  if (impl_->lm) n += impl_->lm->weights.bytes() + impl_->session->bytes();
  if (impl_->params) n += impl_->params->w.size() * sizeof(float) + impl_->net->activation_bytes();
  return n;
}

double Teacher::measure() {
  std::vector<int> tokens(size_t(B_) * T_, 0), lengths(size_t(B_), T_);
  const double before = seconds_;
  double one = 0;
  for (int rep = 0; rep < 2; ++rep) {  // the first touches every buffer
    const double s0 = seconds_;
    if (classifier()) run_classify(tokens.data(), lengths.data(), B_, T_);
    else run(tokens.data(), B_, T_);
    one = seconds_ - s0;
  }
  seconds_ = before;
  return one;
}

void add_distill_keys(format::GgufWriter& w, const Teacher* t) {
  if (!t) return;
  w.set_string(kTeacher, t->options().teacher);
  w.set_u64(kTeacherSum, t->checksum());
  w.set_f32(kAlpha, t->options().alpha);
  w.set_f32(kTemp, t->options().temp);
  w.set_u32(kTopK, uint32_t(t->options().top_k));
}

std::string distill_diff(const format::GgufFile& g, const Teacher* t) {
  std::string diff;
  const std::optional<std::string> was = g.try_get_string(kTeacher);
  auto add = [&](const std::string& s) { diff += (diff.empty() ? "" : ", ") + s; };
  if (!was && !t) return diff;
  if (!was) {
    add("--teacher none in the checkpoint but '" + t->options().teacher + "' now");
    return diff;
  }
  if (!t) {
    add("--teacher '" + *was + "' in the checkpoint but none now");
    return diff;
  }
  if (g.get_u64(kTeacherSum) != t->checksum())
    add("--teacher '" + *was + "' in the checkpoint but '" + t->options().teacher + "' now (other weights)");
  diff_option(diff, "--distill-alpha", g.get_f32(kAlpha), t->options().alpha);
  diff_option(diff, "--distill-temp", g.get_f32(kTemp), t->options().temp);
  diff_option(diff, "--distill-top-k", uint64_t(g.get_u32(kTopK)), uint64_t(t->options().top_k));
  return diff;
}

}  // namespace lm::train
