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

Classifier::Classifier(const format::GgufFile& g, const std::vector<model::AdapterSpec>& adapters, int batch)
    : p_(model::load_params(g, false)), tok_(model::load_tokenizer(g)), B_(std::max(1, batch)) {
  labels_ = model::read_labels(g, p_.cfg);
  for (const auto& a : adapters) {
    model::Lora l = model::load_adapter(format::GgufFile::open(a.path), p_.cfg);
    l.user_scale = a.scale;
    model::merge_lora(p_, l);
  }
  add_bos_ = tok_.add_bos();
  T_ = p_.cfg.n_ctx;
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
      rows[size_t(i)] = dataset::classifier_input(tok_, texts[start + size_t(i)], add_bos_, T_);
      if (rows[size_t(i)].empty()) rows[size_t(i)].push_back(tok_.eos_id().value_or(0));  // an empty text
      batch.push_back(&rows[size_t(i)]);
    }
    tokens.resize(size_t(b) * T_);
    const int t = model::pad_rows(batch, T_, tokens.data(), lengths.data());
    net_->forward_classify(p_, tokens.data(), lengths.data(), nullptr, b, t);
    for (int i = 0; i < b; ++i) {
      const float* pr = net_->class_probs() + size_t(i) * K;
      for (int k = 0; k < K; ++k)
        if (!std::isfinite(pr[k]))
          throw Error("the classifier produced a non-finite probability (" + std::to_string(pr[k]) + " for label '" +
                      labels_[size_t(k)] + "'); its weights or adapters may be corrupt");
      probs[start + size_t(i)].assign(pr, pr + K);
    }
  }
}

}  // namespace lm::eval
