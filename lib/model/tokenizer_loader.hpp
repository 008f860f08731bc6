// Loads a tokenizer from any model file a user can pass with -m: a SentencePiece .model file,
// or a GGUF file that carries a tokenizer (embedded SentencePiece bytes, or only the
// tokenizer.ggml.* arrays, from which the model is rebuilt). Writes a tokenizer into GGUF keys.
#pragma once

#include <string>

#include "format/gguf.hpp"
#include "tokenizer/tokenizer.hpp"

namespace lm::model {

// Detects the file type by its first bytes. Throws IoError, FormatError naming the file
// (e.g. "has no tokenizer (no tokenizer.ggml.tokens key)").
Tokenizer load_tokenizer(const std::string& path);

// Builds the tokenizer of an open GGUF file. Throws FormatError naming the file and key.
Tokenizer load_tokenizer(const format::GgufFile& gguf);

// Adds the tokenizer keys llama.cpp reads (tokenizer.ggml.model "llama", tokens, scores,
// token types, special ids, add_space_prefix) and, if `embed_model`, the exact SentencePiece
// model bytes under kKeySpmModel so that lm tools rebuild the identical tokenizer.
void add_tokenizer(const Tokenizer& tok, format::GgufWriter& out, bool embed_model = true);

}  // namespace lm::model
