// Sentence embeddings: one vector per text from a model's final hidden states, pooled as
// llama.cpp pools them (its pooling_type numbers), for encoders (bert) and decoders alike.
// Texts are evaluated several at a time as independent sequences of one Session batch.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "base/log.hpp"
#include "format/gguf.hpp"
#include "model/weights.hpp"
#include "tokenizer/tokenizer.hpp"

namespace lm::eval {

// llama.cpp's pooling_type values (none and rank are not sentence embeddings).
enum class Pooling { Mean = 1, Cls = 2, Last = 3 };

// "mean", "cls", "last"; throws UsageError naming the choices.
Pooling parse_pooling(const std::string& name);
const char* pooling_name(Pooling p);
// The pooling a model file declares (`<arch>.pooling_type`): mean, cls or last; none when the
// key is absent; FormatError naming the file for another value.
std::optional<Pooling> file_pooling(const format::GgufFile& g, const std::string& path);

struct EmbedOptions {
  Pooling pooling = Pooling::Mean;
  bool normalize = false;  // scale each embedding to unit Euclidean length
  int n_ctx = 0;           // tokens per text at most (longer ones are cut); 0 = 512 or the model's context if shorter
  int n_batch = 512;       // tokens evaluated together (several texts per evaluation)
  int n_seq = 16;          // texts per evaluation at most
};

class Embedder {
 public:
  // `w`, `tok` and `log` must outlive the embedder. Throws UsageError for bad sizes.
  Embedder(const model::Weights& w, const Tokenizer& tok, const EmbedOptions& o, const Logger& log);
  ~Embedder();
  int dim() const;
  // Token ids of a text as the model reads it: BOS/CLS and EOS/SEP as the vocabulary asks.
  std::vector<int> tokens(const std::string& text) const;
  // The embeddings of texts (dim() floats each, in order) into out (resized). A text longer
  // than n_ctx tokens is cut to its first n_ctx (with one warning naming `what` and the text's
  // index); an empty one (no tokens at all) gets zeros.
  void embed(const std::vector<std::string>& texts, std::vector<float>& out, const std::string& what = "text");

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Cosine similarity of two vectors of n floats (0 when either is zero).
double cosine(const float* a, const float* b, int n);

}  // namespace lm::eval
