// Fine-tuning data and the FinetuneJob.
#include "train/finetune.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>

#include "base/error.hpp"
#include "base/file.hpp"
#include "base/hash.hpp"
#include "base/json.hpp"
#include "base/utf8.hpp"
#include "base/threads.hpp"
#include "dataset/labeled.hpp"
#include "dist/comm.hpp"
#include "format/gguf.hpp"
#include "model/model_io.hpp"
#include "tokenizer/text_batch.hpp"
#include "train/data.hpp"


namespace lm::train {

namespace {

constexpr const char* kLabelsKey = "lm.finetune.labels";
// What a checkpoint's run trained, and with which options (compared on resume).
constexpr const char* kTrainedKey = "lm.finetune.trained";
constexpr const char* kLoraAlphaKey = "lm.finetune.lora_alpha";
constexpr const char* kLoraDropoutKey = "lm.finetune.lora_dropout";

// Lines of a file (or stdin), without their newline; a trailing '\r' is dropped.
std::vector<std::string> read_lines(const std::string& path) {
  std::vector<std::string> lines;
  LineReader r(path);
  std::string line;
  while (r.next(line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(line);
  }
  return lines;
}

}  // namespace

const char* task_name(Task t) {
  return t == Task::Text ? "text" : t == Task::PromptCompletion ? "prompt-completion" : "classify";
}

int pad_examples(const std::vector<const Sequence*>& batch, int T, int* inputs, int* targets, uint64_t* fed) {
  int t = 1;
  for (const Sequence* s : batch) t = std::max(t, std::min(T, int(s->tokens.size()) - 1));
  *fed = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    const Sequence& s = *batch[i];
    const int n = std::min(t, int(s.tokens.size()) - 1);
    *fed += uint64_t(n);
    int* in = inputs + i * size_t(t);
    int* tg = targets + i * size_t(t);
    for (int j = 0; j < t; ++j) {
      in[j] = j < n ? s.tokens[size_t(j)] : s.tokens.back();
      // Position j predicts token j + 1, scored when that token is past the prompt.
      tg[j] = j < n && j + 1 >= s.loss_from ? s.tokens[size_t(j) + 1] : -1;
    }
  }
  return t;
}

size_t check_completions(const FinetuneData& data, int T) {
  if (data.seqs->empty()) throw FormatError(data.train_name, "has no training examples");
  // Position j predicts token j + 1, so an example is scored only if its completion starts
  // within the first T tokens.
  auto unscored = [&](const std::vector<Sequence>& v) {
    return size_t(std::count_if(v.begin(), v.end(), [&](const Sequence& s) { return s.loss_from > T; }));
  };
  const std::string why = " of " + std::to_string(T) + " tokens: raise --context or shorten the prompts";
  const size_t n = unscored(*data.seqs);
  if (n == data.seqs->size())
    throw FormatError(data.train_name, "has no example whose completion starts within the context" + why);
  if (data.seqs_valid && !data.seqs_valid->empty() && unscored(*data.seqs_valid) == data.seqs_valid->size())
    throw FormatError(data.valid_name.empty() ? data.train_name : data.valid_name,
                      "has no held-out example whose completion starts within the context" + why);
  return n;
}

std::vector<Sequence> load_prompt_completion(const std::string& path, const Tokenizer& tok, bool add_bos, int threads) {
  const std::vector<std::string> lines = read_lines(path);
  std::vector<std::string> prompts, fulls;
  std::vector<size_t> line_no;
  std::map<std::string, std::string> m;
  std::string err;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].find_first_not_of(" \t") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(i + 1);
    if (!parse_json_strings(lines[i], m, err)) throw FormatError(where, "is not a JSON object: " + err);
    auto pr = m.find("prompt"), co = m.find("completion");
    if (pr == m.end() || co == m.end())
      throw FormatError(where, std::string("has no string member '") + (pr == m.end() ? "prompt" : "completion") + "'");
    if (co->second.empty()) throw FormatError(where, "has an empty completion");
    prompts.push_back(pr->second);
    fulls.push_back(pr->second + co->second);
    line_no.push_back(i + 1);
  }
  if (prompts.empty()) throw FormatError(path, "has no prompt/completion pairs");
  std::vector<std::vector<int>> p_ids, f_ids;
  auto encode_all = [&](const std::vector<std::string>& texts, std::vector<std::vector<int>>& out) {
    out.resize(texts.size());
#pragma omp parallel for schedule(dynamic, 16) num_threads(resolve_threads(threads))
    for (size_t i = 0; i < texts.size(); ++i) tok.encode_text(texts[i], out[i]);
  };
  encode_all(prompts, p_ids);
  encode_all(fulls, f_ids);
  std::vector<Sequence> seqs(prompts.size());
  const int bos = add_bos && tok.bos_id() ? *tok.bos_id() : -1;
  for (size_t i = 0; i < seqs.size(); ++i) {
    Sequence& s = seqs[i];
    if (bos >= 0) s.tokens.push_back(bos);
    s.tokens.insert(s.tokens.end(), f_ids[i].begin(), f_ids[i].end());
    if (tok.eos_id()) s.tokens.push_back(*tok.eos_id());
    size_t common = 0;
    while (common < p_ids[i].size() && common < f_ids[i].size() && p_ids[i][common] == f_ids[i][common]) ++common;
    s.loss_from = int(common + (bos >= 0 ? 1 : 0));
    if (s.loss_from < 1) s.loss_from = 1;  // the first token has nothing to condition on
    if (s.loss_from >= int(s.tokens.size()))
      throw FormatError(path + ":" + std::to_string(line_no[i]), "completion adds no tokens");
  }
  return seqs;
}

LabeledData load_labeled(const std::string& path, const Tokenizer& tok, bool add_bos, int max_tokens,
                         const std::vector<std::string>* labels, int threads) {
  const std::vector<std::string> lines = read_lines(path);
  std::vector<std::string> names, texts;
  std::set<std::string, std::less<>> distinct;  // without `labels`: at most kMaxLabels
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].find_first_not_of(" \t") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(i + 1);
    const std::string_view label = dataset::line_label(lines[i]), text = dataset::line_text(lines[i]);
    if (!dataset::has_label_field(lines[i]) || label.empty())
      throw FormatError(where, "has no label; expected 'label<TAB>text' or '__label__NAME text'");
    if (text.empty()) throw FormatError(where, "has a label but no text");
    // Labels are written as GGUF strings, which are UTF-8.
    if (size_t bad = 0; !valid_utf8(label, &bad))
      throw FormatError(where, "has a label that is not valid UTF-8 (byte " + std::to_string(bad + 1) + " of it)");
    if (labels && std::find(labels->begin(), labels->end(), label) == labels->end()) {
      std::string known;
      for (const std::string& l : *labels) known += (known.empty() ? "" : ", ") + l;
      throw FormatError(where, "has the label '" + std::string(label) + "', which the classifier does not have (" +
                                   known + ")");
    }
    if (!labels && distinct.find(label) == distinct.end()) {
      if (distinct.size() == size_t(model::kMaxLabels))
        throw FormatError(where, "has the file's " + std::to_string(model::kMaxLabels + 1) + "th distinct label '" +
                                     escape_bytes(label) + "'; a classifier has at most " +
                                     std::to_string(model::kMaxLabels) + " labels");
      distinct.emplace(label);
    }
    names.emplace_back(label);
    texts.emplace_back(text);
  }
  if (texts.empty()) throw FormatError(path, "has no labeled lines");
  LabeledData d;
  if (labels) {
    d.labels = *labels;
  } else {
    d.labels.assign(distinct.begin(), distinct.end());
    if (d.labels.size() < 2)
      throw FormatError(path, "has only the label '" + d.labels[0] + "'; a classifier needs at least 2");
  }
  std::map<std::string, int> index;
  for (size_t i = 0; i < d.labels.size(); ++i) index[d.labels[i]] = int(i);
  d.examples.resize(texts.size());
#pragma omp parallel for schedule(dynamic, 16) num_threads(resolve_threads(threads))
  for (size_t i = 0; i < texts.size(); ++i)
    d.examples[i].tokens = dataset::classifier_input(tok, texts[i], add_bos, max_tokens);
  for (size_t i = 0; i < texts.size(); ++i) {
    auto it = index.find(names[i]);
    d.examples[i].label = it == index.end() ? -1 : it->second;
  }
  return d;
}

FinetuneJob::FinetuneJob(const TrainOptions& o, const FinetuneOptions& f, model::Params base, const Tokenizer& tok,
                         const FinetuneData& data)
    : o_(o), f_(f), p_(std::move(base)), tok_(tok), data_(data), rng_(derive_seed(o.seed, 1)) {
  refuse_weight_drop(o);
  base_checksum_ = fnv1a64_words(p_.w.data(), p_.w.size() * sizeof(float));  // before a new head is added
  model::ModelConfig cfg = p_.cfg;
  if (tok.vocab_size() != cfg.n_vocab)
    throw UsageError("the tokenizer has " + std::to_string(tok.vocab_size()) + " pieces but the model " +
                     std::to_string(cfg.n_vocab) + " embeddings");
  if (f.head_only && (f.task != Task::Classify || f.lora))
    throw UsageError("--head-only trains a classifier's head alone: it needs --task classify and no --lora");
  const bool encoder = cfg.is_encoder();
  if (encoder && f.task != Task::Classify)
    throw UsageError("an encoder (bert) fine-tunes as a classifier (--task classify); continue its masked-language-"
                     "model training with lm-train --arch bert");
  if (encoder && f.distill.enabled())
    throw UsageError("--teacher trains a decoder or a decoder classifier; an encoder student is not supported");
  T_ = f.context > 0 ? f.context : cfg.n_ctx;
  if (T_ > cfg.n_ctx)
    throw UsageError("--context " + std::to_string(T_) + " is longer than the model's " + std::to_string(cfg.n_ctx));
  if (f.task == Task::Classify && !encoder && !cfg.trainable_decoder() && !cfg.is_gpt2())
    throw UsageError("--task classify fine-tunes a llama, qwen2, phi3, gemma2, gpt2 or bert model; a " + cfg.arch.name +
                     " classifier is not supported yet");
  if (f.task == Task::Classify) {
    const int n = int(data.labeled->labels.size());
    if (cfg.n_cls == 0) {
      // A new head: the base weights, then N(0, 0.02) rows and zero biases.
      model::ModelConfig c2 = cfg;
      c2.n_cls = n;
      c2.cls_pooling = f.pooling;
      model::Params p2(c2, false);
      std::copy(p_.w.begin(), p_.w.end(), p2.w.begin());
      Rng head_rng(derive_seed(o.seed, 2));
      float* w = p2.get(model::cls_param(c2));
      for (size_t i = 0; i < size_t(n) * c2.n_embd; ++i) w[i] = 0.02f * head_rng.normal();
      p_ = std::move(p2);
      cfg = c2;
    } else if (cfg.n_cls != n) {
      throw UsageError("the model's classifier has " + std::to_string(cfg.n_cls) + " labels but the data " +
                       std::to_string(n));
    }
  }
  // What is trained among the base tensors.
  const size_t nv = p_.views.size();
  trained_.assign(nv, f.lora || f.head_only ? 0 : 1);
  const size_t head = model::head_param(cfg);
  if (f.lora) {
    for (size_t i = 0; i < nv; ++i) {
      // The norms' gains, and a LayerNorm's biases (an encoder's): the views named *norm*.
      const bool norm = p_.views[i].rows == 1 && p_.views[i].name.find("norm") != std::string::npos;
      if (norm && f.train_norms) trained_[i] = 1;
    }
    if (f.train_embeddings) trained_[0] = 1;
    if (f.train_head) trained_[head] = 1;
  }
  if (f.task == Task::Classify) {
    trained_[model::cls_param(cfg)] = trained_[model::cls_param(cfg) + 1] = 1;
    if (!cfg.tied) trained_[head] = 0;  // the LM head plays no part in classifying
  }
  const bool base_grads = std::find(trained_.begin(), trained_.end(), 1) != trained_.end();
  if (base_grads) p_.alloc_grad(trained_);  // only the trained tensors hold a gradient
  // A probe's backward stops at the head, so the layers need not keep their activations.
  if (encoder) {
    enc_ = std::make_unique<model::EncoderModel>(cfg, o.batch, T_);
    enc_->set_dropout(o.dropout);
  } else {
    net_ = std::make_unique<model::Model>(
        cfg, o.batch, T_, model::ModelBuffers{.lm_logits = f.task != Task::Classify, .trunk_backward = !f.head_only});
    net_->set_dropout(o.dropout);
  }
  if (f.lora) {
    lora_ = std::make_unique<model::Lora>(cfg, f.lora_opt);
    Rng lr(derive_seed(o.seed, 0));
    lora_->init(lr);
    if (enc_)
      enc_->set_lora(lora_.get());
    else
      net_->set_lora(lora_.get());
  }
  if (f.distill.enabled())
    teacher_ = f.task == Task::Classify
                   ? std::make_unique<Teacher>(f.distill, tok, f.model_name, data.labeled->labels, o.batch, T_)
                   : std::make_unique<Teacher>(f.distill, tok, f.model_name, o.batch, T_);
  inputs_.resize(size_t(o.batch) * T_);
  targets_.resize(size_t(o.batch) * T_);
  lengths_.resize(size_t(o.batch));
  labels_.resize(size_t(o.batch));
  switch (f.task) {
    case Task::Text:
      text_sampler_ = std::make_unique<BatchSampler>(*data.text, T_, derive_seed(o.seed, 1), data.train_name);
      if (data.text_valid) check_held_out(*data.text_valid, T_, data.train_name, data.valid_name);
      break;
    case Task::PromptCompletion:
      unscored_ = check_completions(data, T_);
      break;
    case Task::Classify:
      if (data.labeled->examples.empty()) throw FormatError(data.train_name, "has no training examples");
      break;
  }
  // Padded tasks: the tokens an example feeds the model, on average over the training data.
  double sum = 0;
  if (f.task == Task::PromptCompletion) {
    for (const Sequence& s : *data.seqs) sum += std::min(T_, int(s.tokens.size()) - 1);
    mean_tokens_ = sum / double(data.seqs->size());
  } else if (f.task == Task::Classify) {
    for (const LabeledExample& e : data.labeled->examples) sum += std::min(T_, int(e.tokens.size()));
    mean_tokens_ = sum / double(data.labeled->examples.size());
  }
}

FinetuneJob::~FinetuneJob() = default;

std::vector<Trainable> FinetuneJob::trainables() {
  std::vector<Trainable> t;
  if (lora_)
    for (const auto& v : lora_->views)
      t.push_back({v.name, lora_->w.data() + v.offset, lora_->grad.data() + v.offset, v.rows, v.cols});
  if (!p_.grad.empty())
    for (auto& x : train::trainables(p_, trained_)) t.push_back(x);
  return t;
}

std::vector<std::span<float>> FinetuneJob::grads() {
  std::vector<std::span<float>> g;
  for (const Trainable& t : trainables()) g.emplace_back(t.g, t.size());
  return g;
}

bool FinetuneJob::set_on_grads_ready(std::function<void(size_t, size_t, size_t)> f) {
  if (!net_) return false;
  if (!f) {
    net_->set_on_layer_grads(nullptr);
    return true;
  }
  // Per layer, the indices into grads() of its trained tensors, and every tensor's size.
  std::vector<std::vector<size_t>> of_layer(size_t(p_.cfg.n_layer));
  std::vector<size_t> sizes;
  for (const Trainable& t : trainables()) {
    int l = -1, n = 0;
    if (std::sscanf(t.name.c_str(), "blk.%d.%n", &l, &n) == 1 && n > 0 && l >= 0 && l < p_.cfg.n_layer)
      of_layer[size_t(l)].push_back(sizes.size());
    sizes.push_back(t.size());
  }
  net_->set_on_layer_grads([f = std::move(f), of_layer = std::move(of_layer), sizes = std::move(sizes)](int l) {
    for (size_t i : of_layer[size_t(l)]) f(i, 0, sizes[i]);
  });
  return true;
}

float FinetuneJob::run_sequences(const std::vector<const Sequence*>& batch, bool backward) {
  const int b = int(batch.size());
  const int t = pad_examples(batch, T_, inputs_.data(), targets_.data(), &last_tokens_);
  const model::SoftTargets* soft = backward && distilling() ? &teacher_->run(inputs_.data(), b, t) : nullptr;
  const float loss = net_->forward(p_, inputs_.data(), targets_.data(), b, t, soft);
  if (backward) net_->backward(p_);
  return loss;
}

float FinetuneJob::run_labeled(const std::vector<const LabeledExample*>& batch, bool backward, int* correct) {
  const int b = int(batch.size());
  std::vector<const std::vector<int>*> rows;
  for (int i = 0; i < b; ++i) {
    rows.push_back(&batch[size_t(i)]->tokens);
    labels_[size_t(i)] = batch[size_t(i)]->label;
  }
  const int t = model::pad_rows(rows, T_, inputs_.data(), lengths_.data());
  last_tokens_ = 0;
  for (int i = 0; i < b; ++i) last_tokens_ += uint64_t(lengths_[size_t(i)]);
  if (!correct) {
    if (enc_) {
      const float loss = enc_->forward_classify(p_, inputs_.data(), lengths_.data(), labels_.data(), b, t);
      if (backward) enc_->backward(p_);
      return loss;
    }
    const model::SoftTargets* soft =
        backward && distilling() ? &teacher_->run_classify(inputs_.data(), lengths_.data(), b, t) : nullptr;
    const float loss = net_->forward_classify(p_, inputs_.data(), lengths_.data(), labels_.data(), b, t, soft);
    if (backward) net_->backward(p_);
    return loss;
  }
  // Evaluation: probabilities, then the mean loss and the number of correct argmaxes.
  if (enc_) enc_->forward_classify(p_, inputs_.data(), lengths_.data(), nullptr, b, t);
  else net_->forward_classify(p_, inputs_.data(), lengths_.data(), nullptr, b, t);
  const int K = p_.cfg.n_cls;
  const float* pr = enc_ ? enc_->class_probs() : net_->class_probs();
  double loss = 0;
  int scored = 0;
  for (int i = 0; i < b; ++i) {
    const int gold = labels_[size_t(i)];
    if (gold < 0) continue;
    const float* row = pr + size_t(i) * K;
    loss -= std::log(std::max(1e-30f, row[gold]));
    ++scored;
    *correct += int(std::max_element(row, row + K) - row) == gold;
  }
  return scored ? float(loss / scored) : 0.0f;
}

float FinetuneJob::micro_step() {
  const int B = o_.batch;
  set_training(true, derive_seed(o_.seed ^ 0x10a, sampler_draws()));
  switch (f_.task) {
    case Task::Text: {
      text_sampler_->next(B, inputs_.data(), targets_.data());
      last_tokens_ = uint64_t(B) * uint64_t(T_);
      const model::SoftTargets* soft = distilling() ? &teacher_->run(inputs_.data(), B, T_) : nullptr;
      const float loss = net_->forward(p_, inputs_.data(), targets_.data(), B, T_, soft);
      net_->backward(p_);
      return loss;
    }
    case Task::PromptCompletion: {
      std::vector<const Sequence*> batch;
      for (int i = 0; i < B; ++i, ++draws_) batch.push_back(&(*data_.seqs)[size_t(rng_.below(data_.seqs->size()))]);
      return run_sequences(batch, true);
    }
    case Task::Classify: {
      std::vector<const LabeledExample*> batch;
      const auto& ex = data_.labeled->examples;
      for (int i = 0; i < B; ++i, ++draws_) batch.push_back(&ex[size_t(rng_.below(ex.size()))]);
      return run_labeled(batch, true, nullptr);
    }
  }
  return 0;
}

void FinetuneJob::skip_micro_step() {
  const int B = o_.batch;
  if (f_.task == Task::Text) return text_sampler_->skip(B);
  const size_t n = f_.task == Task::PromptCompletion ? data_.seqs->size() : data_.labeled->examples.size();
  for (int i = 0; i < B; ++i, ++draws_) rng_.below(n);
}

uint64_t FinetuneJob::tokens_per_micro_step() const {
  if (f_.task == Task::Text) return uint64_t(o_.batch) * uint64_t(T_);
  return std::max<uint64_t>(1, uint64_t(std::llround(o_.batch * mean_tokens_)));
}

double FinetuneJob::flops_per_token() const {
  // Matrix products per token: forward 2 per weight, backward 2 for the input gradient and 2
  // more for each trained weight; the head is the vocabulary (LM tasks) or the labels. LoRA
  // pairs cost 6 r (in + out) each; attention 12 L Q T as in lm-train (Q = heads x head size). A
  // linear probe (--head-only) runs no backward below the head: forward 2 per weight, attention 4 L Q T.
  const model::ModelConfig& c = p_.cfg;
  const bool classify = f_.task == Task::Classify;
  double used = 0, trained = 0;
  for (size_t i = 1; i < p_.views.size(); ++i) {  // the embedding is a lookup, not a product
    const auto& v = p_.views[i];
    if (v.rows == 1) continue;
    const bool lm_head = i == model::head_param(c) && !c.tied;
    const bool cls = i == model::cls_param(c) && classify;
    if ((lm_head && classify) || (i >= model::cls_param(c) && c.n_cls > 0 && !cls)) continue;
    used += double(v.rows) * v.cols;
    if (!p_.grad.empty() && trained_[i]) trained += double(v.rows) * v.cols;
  }
  if (!classify && c.tied) {
    used += double(c.n_vocab) * c.n_embd;
    if (!p_.grad.empty() && trained_[0]) trained += double(c.n_vocab) * c.n_embd;
  }
  double lora = 0;
  if (lora_)
    for (const auto& v : lora_->views) lora += double(v.rows) * v.cols;
  const bool probe = f_.head_only;
  return (probe ? 2.0 : 4.0) * used + 2.0 * trained + 6.0 * lora +
         (probe ? 4.0 : 12.0) * c.n_layer * c.q_dim() * double(T_);
}

void FinetuneJob::set_training(bool on, uint64_t seed) {
  if (enc_) enc_->set_training(on, seed);
  else net_->set_training(on, seed);
}

std::optional<float> FinetuneJob::validate() {
  set_training(false);
  std::optional<float> r;
  const int B = o_.batch;
  const size_t max_examples = size_t(o_.eval_batches) * size_t(B);
  switch (f_.task) {
    case Task::Text:
      if (data_.text_valid && data_.text_valid->size() > size_t(T_))
        r = evaluate(*net_, p_, *data_.text_valid, B, T_, int(max_examples));
      break;
    case Task::PromptCompletion:
      if (data_.seqs_valid && !data_.seqs_valid->empty())
        r = mean_over_batches(*data_.seqs_valid, size_t(B), max_examples,
                              [&](const std::vector<const Sequence*>& batch) { return run_sequences(batch, false); });
      break;
    case Task::Classify:
      if (data_.labeled_valid && !data_.labeled_valid->examples.empty())
        r = mean_over_batches(data_.labeled_valid->examples, size_t(B), max_examples,
                              [&](const std::vector<const LabeledExample*>& batch) {
                                int correct = 0;
                                return run_labeled(batch, false, &correct);
                              });
      break;
  }
  return r;
}

std::optional<double> FinetuneJob::valid_accuracy() {
  if (f_.task != Task::Classify || !data_.labeled_valid || data_.labeled_valid->examples.empty()) return std::nullopt;
  set_training(false);
  const auto& ex = data_.labeled_valid->examples;
  const dist::Comm& comm = dist::world();
  int correct = 0;
  size_t scored = 0;
  size_t j = 0;
  for (size_t i = 0; i < ex.size(); i += size_t(o_.batch), ++j) {
    if (int(j % size_t(comm.size())) != comm.rank()) continue;  // another rank's batch
    std::vector<const LabeledExample*> batch;
    for (size_t j = i; j < std::min(ex.size(), i + size_t(o_.batch)); ++j) {
      batch.push_back(&ex[j]);
      scored += ex[j].label >= 0;
    }
    run_labeled(batch, false, &correct);
  }
  double counts[2] = {double(correct), double(scored)};
  comm.sum(counts, 2);
  return counts[1] > 0 ? counts[0] / counts[1] : 0.0;
}

Rng::State FinetuneJob::sampler_rng() const { return text_sampler_ ? text_sampler_->rng().state() : rng_.state(); }
uint64_t FinetuneJob::sampler_draws() const { return text_sampler_ ? text_sampler_->draws() : draws_; }

void FinetuneJob::set_sampler(const Rng::State& s, uint64_t draws) {
  Rng r;
  r.set_state(s);
  if (text_sampler_) {
    text_sampler_->set_rng(r);
    text_sampler_->set_draws(draws);
  } else {
    rng_ = r;
    draws_ = draws;
  }
}

void FinetuneJob::add_to_checkpoint(format::GgufWriter& w) {
  // Full fine-tuning: the model (a checkpoint is a usable model); LoRA: the adapter and the
  // base tensors trained beside it.
  if (!lora_ && enc_) {
    model::add_encoder_model(w, p_, tok_, "lm-finetune checkpoint", labels());
  } else if (!lora_) {
    model::add_model(w, p_, tok_, "lm-finetune checkpoint", labels());
  } else {
    model::add_adapter(w, *lora_, "lm-finetune checkpoint");
    for (size_t i = 0; i < p_.views.size(); ++i) {
      if (!trained_[i]) continue;
      const auto& v = p_.views[i];
      std::vector<int64_t> ne = v.rows == 1 ? std::vector<int64_t>{v.cols} : std::vector<int64_t>{v.cols, v.rows};
      w.add_tensor(v.name, format::GgmlType::F32, ne, p_.w.data() + v.offset);
    }
  }
  w.set_string(kTaskKey, task_name(f_.task));
  if (f_.task == Task::Classify) w.set_array_string(kLabelsKey, data_.labeled->labels);
  w.set_string(kTrainedKey, trained_description());
  w.set_u32(kContextKey, uint32_t(T_));
  w.set_u64(kBaseKey, base_checksum_);
  if (lora_) {
    w.set_f32(kLoraAlphaKey, f_.lora_opt.alpha);
    w.set_f32(kLoraDropoutKey, f_.lora_opt.dropout);
  }
  add_distill_keys(w, teacher_.get());
}

std::string FinetuneJob::trained_description() const {
  std::string s = lora_ ? "lora" : f_.head_only ? "head" : "full";
  if (lora_) {
    if (f_.train_norms) s += "+norms";
    if (f_.train_embeddings) s += "+embeddings";
    if (f_.train_head) s += "+head";
  }
  return s;
}

std::string FinetuneJob::options_diff(const format::GgufFile& g) const {
  std::string diff;
  if (auto v = g.try_get_u32(kContextKey)) diff_option(diff, "--context", int64_t(*v), int64_t(T_));
  if (auto v = g.try_get_f32(kLoraAlphaKey); v && lora_) diff_option(diff, "--lora-alpha", *v, f_.lora_opt.alpha);
  if (auto v = g.try_get_f32(kLoraDropoutKey); v && lora_)
    diff_option(diff, "--lora-dropout", *v, f_.lora_opt.dropout);
  if (auto v = g.try_get_u64(kBaseKey); v && *v != base_checksum_)
    diff += std::string(diff.empty() ? "" : ", ") + "-m is not the model the checkpoint's run started from";
  if (std::string d = distill_diff(g, teacher_.get()); !d.empty()) diff += (diff.empty() ? "" : ", ") + d;
  return diff;
}

void FinetuneJob::restore(const format::GgufFile& g) {
  const std::string task = g.try_get_string(kTaskKey).value_or("");
  if (task != task_name(f_.task))
    throw FormatError(g.path(), "is not a checkpoint of an lm-finetune " + std::string(task_name(f_.task)) +
                                    " run (lm.finetune.task is '" + task + "')");
  if (f_.task == Task::Classify && g.get_string_array(kLabelsKey) != data_.labeled->labels)
    throw FormatError(g.path(), "checkpoint was trained with other labels than the data's");
  if (auto t = g.try_get_string(kTrainedKey); t && *t != trained_description())
    throw FormatError(g.path(), "checkpoint trained '" + *t + "' but this run trains '" + trained_description() +
                                    "' (--lora, --head-only, --train-*); resume with the same options");
  // Every trained tensor comes back by name, with its shape checked.
  for (const Trainable& t : trainables()) {
    const format::GgufTensorInfo* x = g.find_tensor(t.name);
    if (!x || x->type != format::GgmlType::F32 || x->n_elements() != t.size())
      throw FormatError(g.path(), "checkpoint tensor '" + t.name + "' is missing or not f32 of " +
                                      std::to_string(t.size()) + " elements; resume with the same model and options");
    std::copy_n(reinterpret_cast<const float*>(x->data), t.size(), t.w);
  }
}

const std::vector<std::string>& FinetuneJob::labels() const {
  return f_.task == Task::Classify ? data_.labeled->labels : f_.model_labels;
}

size_t FinetuneJob::memory_bytes() const {
  size_t n = (p_.w.size() + p_.grad.size()) * sizeof(float) + (enc_ ? enc_->activation_bytes() : net_->activation_bytes());
  if (teacher_) n += teacher_->bytes();
  if (lora_) n += (lora_->w.size() + lora_->grad.size()) * sizeof(float);
  // AdamW's two moments per trained value.
  size_t trained = lora_ ? lora_->w.size() : 0;
  for (size_t i = 0; i < p_.views.size() && !p_.grad.empty(); ++i)
    if (trained_[i]) trained += size_t(p_.views[i].rows) * p_.views[i].cols;
  return n + 2 * trained * sizeof(float);
}

}  // namespace lm::train
