// Tokenizer families that work from a GGUF vocabulary's arrays, as llama.cpp does, instead of
// through the SentencePiece library: byte-level BPE ("gpt2"), WordPiece ("bert") and
// SentencePiece-style merging by score ("llama"). lm::Tokenizer (tokenizer.hpp) owns one of
// these, finds special tokens in the text before calling it, and adds BOS/EOS; an Engine sees
// only plain text between special tokens. docs/tokenizers.md describes each family.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/tokenizer.hpp"

namespace lm::tok {

// What every family shares: the pieces as the GGUF file spells them and their types.
struct Vocab {
  std::vector<std::string> pieces;
  std::vector<float> scores;       // same length as pieces (all 0 when the file has none)
  std::vector<PieceType> types;    // same length as pieces
  // Hashes std::string and std::string_view alike, so find() allocates nothing.
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  std::unordered_map<std::string, int, Hash, std::equal_to<>> ids;  // piece -> id; a piece listed twice: its first id
  std::optional<int> unk_id;

  // Fills `ids` from `pieces`. Call after filling pieces.
  void index();
  std::optional<int> find(std::string_view piece) const {
    auto it = ids.find(piece);
    return it == ids.end() ? std::nullopt : std::optional<int>(it->second);
  }
  int size() const { return int(pieces.size()); }
};

// What llama.cpp's token_to_piece gives for a token of a SentencePiece-style or WordPiece
// vocabulary, without special tokens: normal pieces with "\xe2\x96\x81" as a space,
// user-defined pieces as written, byte pieces <0xNN> as their byte, nothing for control,
// unknown and unused ones.
std::string piece_text(const std::string& piece, PieceType type);

class Engine {
 public:
  virtual ~Engine() = default;
  // Appends the ids of `text`, a stretch of plain text (no special tokens inside; any bytes,
  // not necessarily valid UTF-8). `at_start` is true when nothing (no text, no special token)
  // comes before it in the input: SentencePiece's dummy prefix goes only there.
  // Thread-safe (const); must not allocate in proportion to anything but the text.
  virtual void encode(std::string_view text, bool at_start, std::vector<int>& ids) const = 0;
  // The bytes token `id` stands for inside a text, so that concatenating token_bytes over the
  // ids of encode(x) gives x back (up to what the family normalizes: WordPiece lowercases and
  // drops accents; SentencePiece's dummy prefix stays as a leading space). Control tokens give
  // nothing. id is in [0, vocab size).
  virtual std::string token_bytes(int id) const = 0;
  // "bpe" for SentencePiece-style merging by score, "bytebpe", "wordpiece".
  virtual const char* name() const = 0;
};

// Byte-level BPE (tokenizer.ggml.model "gpt2"). `merges` are "left right" strings in rank
// order (tokenizer.ggml.merges); `pre` is tokenizer.ggml.pre. Throws FormatError naming
// `source` for a merge that names an unknown token or has no space, for an unknown `pre`
// (the message lists the known ones), for a vocabulary without the symbols of the space and
// the printable ASCII bytes. Other bytes may lack a symbol (real vocabularies do); encode drops
// them, as llama.cpp does.
std::unique_ptr<Engine> make_byte_bpe(const Vocab& vocab, const std::vector<std::string>& merges,
                                      const std::string& pre, const std::string& source);
// The names make_byte_bpe accepts for `pre`, sorted.
std::vector<std::string> known_pre_tokenizers();

// WordPiece (tokenizer.ggml.model "bert"), as llama.cpp stores it: a piece that starts a word
// begins with U+2581 "▁", a continuation piece has no prefix (the "##" of BERT's vocab.txt is
// removed by the converters). The unknown token is vocab.unk_id, else the piece of type
// unknown, else "[UNK]". Throws FormatError naming `source` (no unknown token, types missing).
struct WordPieceOptions {
  // tokenizer.ggml.normalizer.lowercase (llama.cpp's default: true; false for cased models)
  bool lowercase = true;
  // tokenizer.ggml.normalizer.strip_accents; when absent llama.cpp uses `lowercase`
  bool strip_accents = true;
};
std::unique_ptr<Engine> make_wordpiece(const Vocab& vocab, const std::string& source,
                                       const WordPieceOptions& options = {});

// SentencePiece-style tokenization by merging the adjacent pair whose merged piece has the
// highest score (tokenizer.ggml.model "llama"), with byte fallback to <0xNN> pieces and the
// dummy prefix when `add_space_prefix`. Works for vocabularies SentencePiece's library
// refuses (duplicate pieces, user-defined pieces with scores).
std::unique_ptr<Engine> make_spm_merges(const Vocab& vocab, bool add_space_prefix, const std::string& source);

}  // namespace lm::tok
