// A sequence classifier made by `lm-finetune --task classify`: label probabilities of texts.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "model/encoder.hpp"
#include "model/model.hpp"
#include "model/model_io.hpp"
#include "tokenizer/tokenizer.hpp"

namespace lm::eval {

class Classifier {
 public:
  // Loads a classifier file (a llama-arch model with cls.output.weight, with adapters merged, or
  // a bert encoder with one: docs/encoder.md).
  // Texts longer than the model's context are cut to it. Throws IoError, FormatError naming the
  // file (UsageError-free: a model without a head is a FormatError).
  explicit Classifier(const std::string& path, const std::vector<model::AdapterSpec>& adapters = {}, int batch = 16);
  ~Classifier();
  const std::vector<std::string>& labels() const { return labels_; }
  // probs[i] (labels().size()) for texts[i]; texts are run `batch` at a time. Throws Error if a
  // probability is not finite (corrupt weights or an adapter scaled too far).
  void predict(const std::vector<std::string>& texts, std::vector<std::vector<float>>& probs);

 private:
  Classifier(const format::GgufFile& g, const std::vector<model::AdapterSpec>& adapters, int batch);
  model::Params p_;
  Tokenizer tok_;
  std::vector<std::string> labels_;
  bool add_bos_ = true;
  int B_, T_;
  std::unique_ptr<model::Model> net_;
  std::unique_ptr<model::EncoderModel> enc_;  // an encoder classifier's
};

}  // namespace lm::eval
