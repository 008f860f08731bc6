// Classifier inference through the training model's forward pass (batches of right-padded rows).
#include "eval/classifier.hpp"

#include <algorithm>
#include <cmath>

#include "base/error.hpp"
#include "dataset/labeled.hpp"
#include "format/gguf.hpp"
#include "model/lora.hpp"
#include "model/tokenizer_loader.hpp"

namespace lm::eval {

namespace {
format::GgufFile open_classifier(const std::string& path) {
  format::GgufFile g = format::GgufFile::open(path);
  if (model::is_adapter(g)) throw FormatError(path, "is a LoRA adapter, not a classifier model");
  if (!g.find_tensor("cls.output.weight"))
    throw FormatError(path, "has no classification head (cls.output.weight); make one with lm-finetune --task classify");
  return g;
}
}  // namespace

Classifier::Classifier(const std::string& path, const std::vector<model::AdapterSpec>& adapters, int batch)
    : Classifier(open_classifier(path), adapters, batch) {}

namespace {
model::Params load_classifier_params(const format::GgufFile& g) {
  return model::read_config(g).is_encoder() ? model::load_encoder_params(g, false) : model::load_params(g, false);
}
}  // namespace

Classifier::Classifier(const format::GgufFile& g, const std::vector<model::AdapterSpec>& adapters, int batch)
    : p_(load_classifier_params(g)), tok_(model::load_tokenizer(g)), B_(std::max(1, batch)) {
  labels_ = model::read_labels(g, p_.cfg);
  for (const auto& a : adapters) {
    model::Lora l = model::load_adapter(format::GgufFile::open(a.path), p_.cfg);
    l.user_scale = a.scale;
    model::merge_lora(p_, l);
  }
  if (p_.cfg.is_encoder()) {
    T_ = p_.cfg.n_ctx;
    enc_ = std::make_unique<model::EncoderModel>(p_.cfg, B_, T_);
    return;
  }
  add_bos_ = tok_.add_bos();
  // The training model computes full causal attention: a model with a sliding window (gemma2)
  // reads at most the window's tokens of a text, as lm-finetune trained it (--context).
  T_ = p_.cfg.arch.sliding_window > 0 ? std::min(p_.cfg.n_ctx, p_.cfg.arch.sliding_window) : p_.cfg.n_ctx;
  const model::ModelBuffers inference{.lm_logits = false, .trunk_backward = false};
  net_ = std::make_unique<model::Model>(p_.cfg, B_, T_, inference);
}

Classifier::~Classifier() = default;

void Classifier::predict(const std::vector<std::string>& texts, std::vector<std::vector<float>>& probs) {
  probs.assign(texts.size(), {});
  const int K = p_.cfg.n_cls;
  std::vector<std::vector<int>> rows(static_cast<size_t>(B_));
  std::vector<int> tokens, lengths(static_cast<size_t>(B_));
  for (size_t start = 0; start < texts.size(); start += size_t(B_)) {
    const int b = int(std::min(texts.size() - start, size_t(B_)));
    std::vector<const std::vector<int>*> batch;
    for (int i = 0; i < b; ++i) {
      std::vector<int>& r = rows[size_t(i)];
      if (enc_) {  // the start token, the text and the end token, as lm-finetune trained it
        r = dataset::classifier_input(tok_, texts[start + size_t(i)], true, T_);
        dataset::finish_encoder_row(tok_, r, T_);
      } else {
        r = dataset::classifier_input(tok_, texts[start + size_t(i)], add_bos_, T_);
      }
      if (r.empty()) r.push_back(tok_.eos_id().value_or(0));  // an empty text
      batch.push_back(&r);
    }
    tokens.resize(size_t(b) * T_);
    const int t = model::pad_rows(batch, T_, tokens.data(), lengths.data());
    if (enc_) enc_->forward_classify(p_, tokens.data(), lengths.data(), nullptr, b, t);
    else net_->forward_classify(p_, tokens.data(), lengths.data(), nullptr, b, t);
    const float* all = enc_ ? enc_->class_probs() : net_->class_probs();
    for (int i = 0; i < b; ++i) {
      const float* pr = all + size_t(i) * K;
      for (int k = 0; k < K; ++k)
        if (!std::isfinite(pr[k]))
          throw Error("the classifier produced a non-finite probability (" + std::to_string(pr[k]) + " for label '" +
                      labels_[size_t(k)] + "'); its weights or adapters may be corrupt");
      probs[start + size_t(i)].assign(pr, pr + K);
    }
  }
}

}  // namespace lm::eval
