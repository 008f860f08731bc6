// A Hugging Face model directory's tokenizer, as llama.cpp's converter turns it into GGUF
// keys: tokenizer.json (byte-level BPE or WordPiece) or tokenizer.model (SentencePiece), with
// the special tokens and add_bos/add_eos of tokenizer_config.json. docs/tokenizers.md,
// "Hugging Face tokenizers".
#pragma once

#include <string>

#include "tokenizer/tokenizer.hpp"

namespace lm::tok {

// Reads the tokenizer of the model directory `dir`. A byte-level BPE tokenizer's
// pre-tokenizer is named by matching its expressions with those lm knows (pretokenize.hpp);
// none matching is a FormatError naming the file and listing the expressions found.
// Throws IoError, FormatError naming the file (and the JSON path of a bad value).
Tokenizer load_hf_tokenizer(const std::string& dir);

}  // namespace lm::tok
