// Training data: a token file made by `lm-tokenize encode --format bin`, or text tokenized on
// the fly as one whole text per file (the same tokens a token file of it would hold).
#pragma once

#include <string>
#include <vector>

#include "tokenizer/tokenizer.hpp"

namespace lm::train {

// Reads `path` ("-" = stdin) as a token stream for `tok`. A token file must carry tok's
// fingerprint and ids below its vocabulary. Throws IoError, FormatError naming the file.
// `tok_name` names the tokenizer in a fingerprint mismatch.
std::vector<int> load_tokens(const std::string& path, const Tokenizer& tok, const std::string& tok_name, int threads);

// Moves the last `fraction` of the tokens of `train` into the returned vector (held-out data).
// Throws UsageError if fraction is outside [0, 0.5].
std::vector<int> split_validation(std::vector<int>& train, double fraction);

}  // namespace lm::train
