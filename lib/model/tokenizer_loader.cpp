// Tokenizer from a .model or GGUF file: detects the format by its first bytes, prefers the
// embedded SentencePiece bytes, else rebuilds the model from the tokenizer.ggml.* arrays.
#include "model/tokenizer_loader.hpp"

#include <algorithm>
#include <cstring>
#include <optional>

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

// llama.cpp's defaults where a file leaves a key out.
namespace {
struct FamilyDefaults {
  std::optional<int> unk, bos, eos, sep, pad, mask;
  bool add_bos, add_sep;
};
FamilyDefaults defaults_of(const std::string& family, const std::string& pre) {
  if (family == "bert") return {100, 101, std::nullopt, 102, 0, 103, true, true};
  if (family == "gpt2") {
    // The pre-tokenizers of vocabularies whose prompts start with BOS.
    static const char* kBos[] = {"llama-bpe", "llama3", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2",
                                 "tekken", "chameleon"};
    bool bos = std::find(std::begin(kBos), std::end(kBos), pre) != std::end(kBos);
    return {std::nullopt, 11, 11, std::nullopt, std::nullopt, std::nullopt, bos, false};
  }
  return {0, 1, 2, std::nullopt, std::nullopt, std::nullopt, true, false};
}
}  // namespace

Tokenizer load_tokenizer(const format::GgufFile& gguf) {
  const std::string& path = gguf.path();
  const auto key = [](std::string_view k) { return "key '" + std::string(k) + "'"; };
  std::optional<Tokenizer> from_proto;
  if (auto spm = gguf.try_get_u8_array(format::kKeySpmModel))
    from_proto = Tokenizer::from_model_proto(std::string(*spm), path + " (" + key(format::kKeySpmModel) + ")");
  if (!from_proto && (!gguf.has(format::kKeyTokenizerModel) || !gguf.has(format::kKeyTokens)))
    throw FormatError(path, "has no tokenizer (no '" + std::string(format::kKeyTokens) +
                                "' key); pass a file that carries one, or a SentencePiece .model");
  if (from_proto) {
    if (auto b = gguf.try_get_bool(format::kKeyAddBos)) from_proto->set_add_bos(*b);
    if (auto e = gguf.try_get_bool(format::kKeyAddEos)) from_proto->set_add_eos(*e);
    return std::move(*from_proto);
  }
  VocabSpec v;
  v.family = gguf.get_string(format::kKeyTokenizerModel);
  if (v.family != "llama" && v.family != "gpt2" && v.family != "bert")
    throw FormatError(path, key(format::kKeyTokenizerModel) + ": tokenizer model '" + v.family +
                                "' is not supported, expected llama (SentencePiece), gpt2 (byte-level BPE) or bert "
                                "(WordPiece)");
  v.pieces = gguf.get_string_array(format::kKeyTokens);
  const size_t n = v.pieces.size();
  if (gguf.has(format::kKeyScores)) {
    v.scores = gguf.get_f32_array(format::kKeyScores);
  } else if (v.family == "llama") {  // without scores, earlier tokens merge first, as in llama.cpp's loader
    for (size_t i = 0; i < n; ++i) v.scores.push_back(-float(i));
  } else {
    v.scores.assign(n, 0.0f);
  }
  if (gguf.has(format::kKeyTokenType)) {
    std::vector<int32_t> types = gguf.get_i32_array(format::kKeyTokenType);
    for (size_t i = 0; i < types.size(); ++i) {
      if (types[i] < 1 || types[i] > 6)
        throw FormatError(path, key(format::kKeyTokenType) + ": token " + std::to_string(i) + " has type " +
                                    std::to_string(types[i]) + ", expected 1 to 6");
      v.types.push_back(PieceType(types[i]));
    }
  } else {
    v.types.assign(n, PieceType::Normal);
  }
  if (v.scores.size() != n || v.types.size() != n)
    throw FormatError(path, "tokenizer arrays differ in length: " + std::to_string(n) + " tokens, " +
                                std::to_string(v.scores.size()) + " scores, " + std::to_string(v.types.size()) +
                                " token types; expected equal lengths");
  if (v.family == "gpt2") {
    if (!gguf.has(format::kKeyMerges))
      throw FormatError(path, "byte-level BPE vocabulary has no " + key(format::kKeyMerges));
    v.merges = gguf.get_string_array(format::kKeyMerges);
    // Missing or empty: llama.cpp's "default" (GPT-2's expressions).
    v.pre = gguf.try_get_string(format::kKeyPre).value_or("");
    if (v.pre.empty()) v.pre = "default";
  }
  auto id = [&](std::string_view k, std::optional<int> fallback) -> std::optional<int> {
    if (!gguf.has(k)) return fallback && size_t(*fallback) < n ? fallback : std::nullopt;
    // llama.cpp writes -1 (as i32, or as u32 0xFFFFFFFF) for "none".
    std::optional<uint32_t> value;
    try {
      const int32_t i = gguf.get_i32(k);
      if (i < 0) return std::nullopt;
      value = uint32_t(i);
    } catch (const FormatError&) {  // a u32 above INT32_MAX, or not an integer at all
      value = gguf.get_u32(k);
      if (*value == 0xFFFFFFFFu) return std::nullopt;
    }
    if (*value >= n)
      throw FormatError(path, key(k) + " is " + std::to_string(*value) + ", expected less than the vocabulary size " +
                                  std::to_string(n));
    return int(*value);
  };
  const FamilyDefaults d = defaults_of(v.family, v.pre);
  v.unk_id = id(format::kKeyUnkId, d.unk);
  v.bos_id = id(format::kKeyBosId, d.bos);
  v.eos_id = id(format::kKeyEosId, d.eos);
  v.eot_id = id(format::kKeyEotId, std::nullopt);
  v.pad_id = id(format::kKeyPadId, d.pad);
  v.sep_id = id(format::kKeySepId, d.sep);
  v.mask_id = id(format::kKeyMaskId, d.mask);
  v.add_bos = gguf.try_get_bool(format::kKeyAddBos).value_or(d.add_bos);
  v.add_eos = gguf.try_get_bool(format::kKeyAddEos).value_or(false);
  v.add_sep = gguf.try_get_bool(format::kKeyAddSep).value_or(d.add_sep);
  v.add_dummy_prefix = gguf.try_get_bool(format::kKeyAddSpacePrefix).value_or(v.family == "llama");
  // llama.cpp drops whitespace after the special pieces of Phi-3 models, by their name.
  std::string name = gguf.try_get_string(format::kKeyName).value_or("");
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char ch) { return char(std::tolower(ch)); });
  v.rstrip_special = name.find("phi-3") != std::string::npos || name.find("phi3") != std::string::npos;
  v.lowercase = gguf.try_get_bool(format::kKeyLowercase).value_or(true);
  v.strip_accents = gguf.try_get_bool(format::kKeyStripAccents).value_or(v.lowercase);
  v.byte_fallback = false;
  for (PieceType t : v.types) v.byte_fallback |= t == PieceType::Byte;
  // The unknown id must name an unknown piece when the vocabulary has one.
  if (v.unk_id && v.types[size_t(*v.unk_id)] != PieceType::Unknown)
    for (size_t i = 0; i < n; ++i)
      if (v.types[i] == PieceType::Unknown) v.unk_id = int(i);
  return Tokenizer::from_vocab(std::move(v), path);
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
  const VocabSpec* spec = tok.vocab_spec();
  if (spec)  // the types as the file had them (loading makes end-of-generation pieces control)
    for (int i = 0; i < n; ++i) types[size_t(i)] = int32_t(spec->types[size_t(i)]);
  out.set_string(format::kKeyTokenizerModel, tok.family());
  if (spec && spec->family == "gpt2") out.set_string(format::kKeyPre, spec->pre);
  out.set_array_string(format::kKeyTokens, pieces);
  out.set_array_f32(format::kKeyScores, scores);
  out.set_array_i32(format::kKeyTokenType, types);
  if (spec && spec->family == "gpt2") out.set_array_string(format::kKeyMerges, spec->merges);
  if (auto id = tok.unk_id()) out.set_u32(format::kKeyUnkId, uint32_t(*id));
  if (auto id = tok.bos_id()) out.set_u32(format::kKeyBosId, uint32_t(*id));
  if (auto id = tok.eos_id()) out.set_u32(format::kKeyEosId, uint32_t(*id));
  if (auto id = tok.eot_id()) out.set_u32(format::kKeyEotId, uint32_t(*id));
  if (auto id = tok.pad_id()) out.set_u32(format::kKeyPadId, uint32_t(*id));
  if (auto id = tok.sep_id()) out.set_u32(format::kKeySepId, uint32_t(*id));
  if (auto id = tok.mask_id()) out.set_u32(format::kKeyMaskId, uint32_t(*id));
  out.set_bool(format::kKeyAddBos, tok.add_bos());
  out.set_bool(format::kKeyAddEos, tok.add_eos());
  if (tok.family() == "bert") {
    out.set_bool(format::kKeyAddSep, tok.add_sep());
    out.set_bool(format::kKeyLowercase, spec->lowercase);
    out.set_bool(format::kKeyStripAccents, spec->strip_accents);
  }
  if (tok.family() == "llama") out.set_bool(format::kKeyAddSpacePrefix, tok.add_dummy_prefix());
  if (embed_model && !tok.model_proto().empty()) out.set_array_u8(format::kKeySpmModel, tok.model_proto());
}

}  // namespace lm::model
