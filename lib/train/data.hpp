// Training data: a token file made by `lm-tokenize encode --format bin`, or text tokenized on
// the fly as one whole text per file (the same tokens a token file of it would hold).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "tokenizer/tokenizer.hpp"

namespace lm::train {

// Reads `path` ("-" = stdin) as a token stream for `tok`. A token file must carry tok's
// fingerprint and ids below its vocabulary. Throws IoError, FormatError naming the file.
// `tok_name` names the tokenizer in a fingerprint mismatch.
std::vector<int> load_tokens(const std::string& path, const Tokenizer& tok, const std::string& tok_name, int threads);

// Throws UsageError if fraction (--valid-fraction) is outside [0, 0.5].
void check_valid_fraction(double fraction);

// Held-out tokens must fill one window of `context` + 1 (inputs and their next tokens), or be
// none at all (no validation). FormatError naming valid_name, or train_name's held-out share
// when valid_name is empty.
void check_held_out(const std::vector<int>& valid, int context, const std::string& train_name,
                    const std::string& valid_name);

// Moves the last `fraction` of the tokens of `train` into the returned vector (held-out data).
// Throws UsageError if fraction is outside [0, 0.5].
std::vector<int> split_validation(std::vector<int>& train, double fraction);

// Moves floor(n * fraction) of the n examples of `train`, evenly spread (the ones whose
// position crosses a multiple of 1 / fraction), into the returned vector, keeping the order of
// both. Unlike a tail, the held-out examples cover a file sorted by label. Throws UsageError if
// fraction is outside [0, 0.5].
template <class T>
std::vector<T> split_examples(std::vector<T>& train, double fraction) {
  check_valid_fraction(fraction);
  std::vector<T> kept, held;
  for (size_t i = 0; i < train.size(); ++i) {
    const bool out = size_t(double(i + 1) * fraction) > size_t(double(i) * fraction);
    (out ? held : kept).push_back(std::move(train[i]));
  }
  train = std::move(kept);
  return held;
}

}  // namespace lm::train
