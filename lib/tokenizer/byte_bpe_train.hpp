// Training a byte-level BPE vocabulary (GPT-2 style): `lm-tokenize train --model-type bytebpe`.
#pragma once

#include <functional>
#include <string>

#include "base/log.hpp"
#include "tokenizer/tokenizer.hpp"

namespace lm::tok {

// Splits each line from `next_line` (returns false at the end) into words with the
// pre-tokenizer `o.pre_tokenizer`, counts them, and learns merges of adjacent symbols, most
// frequent pair first (ties broken by the pair's text, so training is deterministic), until
// the vocabulary holds o.vocab_size pieces: the 256 byte symbols in GPT-2's byte-to-unicode
// order, then one piece per merge, then the control pieces o.control_symbols (default
// "<|endoftext|>", which is BOS and EOS). Lines are seen with their newline, as in a text.
// Returns a VocabSpec of family "gpt2". Throws UsageError for bad options, Error for no data.
VocabSpec train_byte_bpe(const TokenizerTrainOptions& o, const std::function<bool(std::string&)>& next_line,
                         const Logger& log);

}  // namespace lm::tok
