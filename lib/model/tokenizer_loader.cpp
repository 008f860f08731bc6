// Tokenizer from a .model or GGUF file: detects the format by its first bytes, prefers the
// embedded SentencePiece bytes, else rebuilds the model from the tokenizer.ggml.* arrays.
#include "model/tokenizer_loader.hpp"

#include <cstring>

#include "base/error.hpp"
#include "base/file.hpp"

namespace lm::model {

Tokenizer load_tokenizer(const std::string& path) {
  MappedFile file(path, MappedFile::Accept::Regular);  // not a device or FIFO: see MappedFile::Accept
  if (file.size() >= 4 && std::memcmp(file.data(), "GGUF", 4) == 0) {
    return load_tokenizer(format::GgufFile::open(path));
  }
  return Tokenizer::from_model_proto(std::string(file.view()), file.path());
}

Tokenizer load_tokenizer(const format::GgufFile& gguf) {
  const std::string& path = gguf.path();
  if (auto spm = gguf.try_get_u8_array(format::kKeySpmModel))
    return Tokenizer::from_model_proto(std::string(*spm), path + " (key '" + std::string(format::kKeySpmModel) + "')");
  if (!gguf.has(format::kKeyTokenizerModel) || !gguf.has(format::kKeyTokens))
    throw FormatError(path, "has no tokenizer (no '" + std::string(format::kKeyTokens) +
                                "' key); pass a file that carries one, or a SentencePiece .model");
  std::string kind = gguf.get_string(format::kKeyTokenizerModel);
  if (kind != "llama")
    throw FormatError(path, "tokenizer model '" + kind +
                                "' is not supported, expected 'llama' (a SentencePiece vocabulary)");
  VocabSpec v;
  v.pieces = gguf.get_string_array(format::kKeyTokens);
  const size_t n = v.pieces.size();
  if (gguf.has(format::kKeyScores)) {
    v.scores = gguf.get_f32_array(format::kKeyScores);
  } else {  // without scores, earlier tokens merge first, as in llama.cpp's loader
    for (size_t i = 0; i < n; ++i) v.scores.push_back(-float(i));
  }
  if (gguf.has(format::kKeyTokenType)) {
    std::vector<int32_t> types = gguf.get_i32_array(format::kKeyTokenType);
    for (size_t i = 0; i < types.size(); ++i) {
      if (types[i] < 1 || types[i] > 6)
        throw FormatError(path, "key '" + std::string(format::kKeyTokenType) + "': token " + std::to_string(i) +
                                    " has type " + std::to_string(types[i]) + ", expected 1 to 6");
      v.types.push_back(PieceType(types[i]));
    }
  } else {
    v.types.assign(n, PieceType::Normal);
  }
  if (v.scores.size() != n || v.types.size() != n)
    throw FormatError(path, "tokenizer arrays differ in length: " + std::to_string(n) + " tokens, " +
                                std::to_string(v.scores.size()) + " scores, " + std::to_string(v.types.size()) +
                                " token types; expected equal lengths");
  auto id = [&](std::string_view key) -> std::optional<int> {
    auto value = gguf.try_get_u32(key);
    if (!value) return std::nullopt;
    if (*value >= n)
      throw FormatError(path, "key '" + std::string(key) + "' is " + std::to_string(*value) + ", expected less than " +
                                  "the vocabulary size " + std::to_string(n));
    return int(*value);
  };
  // llama.cpp's defaults for a "llama" vocabulary: unk 0, bos 1, eos 2.
  v.unk_id = id(format::kKeyUnkId).value_or(0);
  v.bos_id = id(format::kKeyBosId).value_or(1);
  v.eos_id = id(format::kKeyEosId).value_or(2);
  v.pad_id = id(format::kKeyPadId);
  for (int k : {*v.unk_id, *v.bos_id, *v.eos_id})
    if (size_t(k) >= n) throw FormatError(path, "vocabulary of " + std::to_string(n) + " tokens is too small for the special ids");
  v.add_dummy_prefix = gguf.try_get_bool(format::kKeyAddSpacePrefix).value_or(true);
  v.byte_fallback = false;
  for (PieceType t : v.types) v.byte_fallback |= t == PieceType::Byte;
  // Special pieces must be control (or unknown) pieces for SentencePiece to treat them so.
  if (v.types[size_t(*v.unk_id)] != PieceType::Unknown)
    for (size_t i = 0; i < n; ++i)
      if (v.types[i] == PieceType::Unknown) v.unk_id = int(i);
  return Tokenizer::from_vocab(v, path);
}

void add_tokenizer(const Tokenizer& tok, format::GgufWriter& out, bool embed_model) {
  const int n = tok.vocab_size();
  std::vector<std::string> pieces(static_cast<size_t>(n));
  std::vector<float> scores(static_cast<size_t>(n));
  std::vector<int32_t> types(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    pieces[size_t(i)] = tok.piece(i);
    scores[size_t(i)] = tok.score(i);
    types[size_t(i)] = int32_t(tok.type(i));
  }
  out.set_string(format::kKeyTokenizerModel, "llama");
  out.set_array_string(format::kKeyTokens, pieces);
  out.set_array_f32(format::kKeyScores, scores);
  out.set_array_i32(format::kKeyTokenType, types);
  if (auto id = tok.unk_id()) out.set_u32(format::kKeyUnkId, uint32_t(*id));
  if (auto id = tok.bos_id()) out.set_u32(format::kKeyBosId, uint32_t(*id));
  if (auto id = tok.eos_id()) out.set_u32(format::kKeyEosId, uint32_t(*id));
  if (auto id = tok.pad_id()) out.set_u32(format::kKeyPadId, uint32_t(*id));
  out.set_bool(format::kKeyAddSpacePrefix, tok.add_dummy_prefix());
  if (embed_model) out.set_array_u8(format::kKeySpmModel, tok.model_proto());
}

}  // namespace lm::model
