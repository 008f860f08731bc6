// BERT's masking (mlm_mask.hpp; docs/encoder.md).
#include "dataset/mlm_mask.hpp"

#include "base/error.hpp"
#include "dataset/labeled.hpp"

namespace lm::dataset {

void check_mlm_options(const MlmOptions& o) {
  if (!(o.mask_prob > 0 && o.mask_prob < 1))
    throw UsageError("--mask-prob " + std::to_string(o.mask_prob) + " is out of range (0, 1)");
}

std::optional<int> find_mask_token(const Tokenizer& tok) {
  if (auto m = tok.mask_id()) return m;
  for (int id = 0; id < tok.vocab_size(); ++id)
    if (tok.piece(id) == "[MASK]" || tok.piece(id) == "<mask>") return id;
  return std::nullopt;
}

MlmMasker::MlmMasker(const Tokenizer& tok, const std::string& tok_name, const MlmOptions& o, int T)
    : o_(o), T_(T), V_(tok.vocab_size()) {
  check_mlm_options(o);
  const std::optional<int> mask = find_mask_token(tok);
  if (!mask)
    throw UsageError("the vocabulary of " + tok_name +
                     " has no mask token, which masked-language-model training needs: train one with "
                     "lm-tokenize train --control-symbols '<mask>' (or use a vocabulary with [MASK])");
  mask_ = *mask;
  if (auto b = tok.bos_id()) start_ = *b;
  if (auto e = encoder_end_token(tok)) end_ = *e;
  K_ = T - (start_ >= 0) - (end_ >= 0);
  if (K_ < 1) throw UsageError("--context " + std::to_string(T) + " leaves no room for text between the start and end tokens");
  // Never chosen: control pieces (BOS, EOS, SEP, CLS, PAD, the mask). Words start at a piece
  // with SentencePiece's space (U+2581; also a GGUF WordPiece vocabulary's word-initial pieces,
  // whose converters turn BERT's ## continuations into bare pieces) or byte-level BPE's (U+0120).
  special_.assign(size_t(V_), 0);
  word_start_.assign(size_t(V_), 1);
  for (int id = 0; id < V_; ++id) {
    special_[size_t(id)] = tok.type(id) == PieceType::Control || id == mask_;
    const std::string& p = tok.piece(id);
    word_start_[size_t(id)] = special_[size_t(id)] || p.starts_with("\xe2\x96\x81") || p.starts_with("\xc4\xa0");
  }
}

int MlmMasker::make_row(const int* stream, int k, Rng& rng, int* tokens, int* targets) const {
  LM_ASSERT(k >= 1 && k <= K_);
  int j = 0;
  if (start_ >= 0) tokens[j] = start_, targets[j] = -1, ++j;
  bool chosen = false;  // whole words: whether the current word was chosen
  for (int i = 0; i < k; ++i, ++j) {
    const int id = stream[i];
    tokens[j] = id;
    targets[j] = -1;
    if (special_[size_t(id)]) {
      chosen = false;
      continue;
    }
    if (!o_.whole_word || word_start_[size_t(id)] || i == 0) chosen = rng.uniform() < o_.mask_prob;
    if (!chosen) continue;
    targets[j] = id;
    const float r = rng.uniform();
    if (r < 0.8f) tokens[j] = mask_;
    else if (r < 0.9f) tokens[j] = int(rng.below(uint64_t(V_)));
  }
  if (end_ >= 0) tokens[j] = end_, targets[j] = -1, ++j;
  return j;
}

int MlmMasker::plain_row(const int* stream, int k, int* tokens, int* first) const {
  LM_ASSERT(k >= 1 && k <= K_);
  int j = 0;
  if (start_ >= 0) tokens[j++] = start_;
  *first = j;
  for (int i = 0; i < k; ++i) tokens[j++] = stream[i];
  if (end_ >= 0) tokens[j++] = end_;
  return j;
}

}  // namespace lm::dataset
