// Options of the encode, decode, vocab and stats verbs of lm-tokenize. Defaults live here and
// are what --help shows. (Training options: TokenizerTrainOptions in tokenizer.hpp.)
#pragma once

#include <string>

namespace lm {

struct EncodeOptions {
  std::string format = "ids";  // ids | pieces | bin (token file, see lm-tokens(5))
  bool bos = false;            // add the BOS id before each line (ids/pieces) or input (bin)
  bool eos = false;            // add the EOS id after each line (ids/pieces) or input (bin)
  bool parse_special = false;  // control pieces written in the text (<s>, <|im_end|>) become their ids
  bool whole = false;          // each input is one text, tokenized as one string (ids/pieces: one line out)
  int threads = 0;             // 0 = all cores
};

struct DecodeOptions {
  std::string format = "auto";  // auto (bin if the input is a token file, else ids) | ids | pieces | bin
};

struct VocabOptions {
  bool json = false;  // JSON Lines instead of tab-separated text
};

struct StatsOptions {
  bool json = false;  // one JSON object instead of "key value" lines
  int threads = 0;
};

}  // namespace lm
