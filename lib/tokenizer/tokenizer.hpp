// lm::Tokenizer: SentencePiece models (BPE and unigram) for encode, decode, vocabulary and
// training. Owns the model bytes; leaves file formats (GGUF, token files) to lib/format.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/log.hpp"

namespace lm {

// Piece types, numbered as llama.cpp's tokenizer.ggml.token_type expects.
enum class PieceType : int32_t { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };
const char* piece_type_name(PieceType t);  // "normal", "unknown", "control", "user", "unused", "byte"

// Options of `lm-tokenize train`; defaults suit LM pretraining (lossless on any UTF-8 text).
struct TokenizerTrainOptions {
  std::string model_type = "bpe";            // bpe | unigram
  std::string pre_tokenizer = "gpt2";        // bytebpe: the word-splitting expressions (tokenizer.ggml.pre)
  int vocab_size = 8000;                     // number of pieces, including special and byte pieces
  bool byte_fallback = true;                 // unknown characters become <0xNN> byte pieces
  // Share of characters covered by normal pieces; the rest become byte pieces. 1.0 keeps every
  // character of the text, as SentencePiece recommends for small alphabets (0.9995 left rare
  // capitals of the Brown corpus, such as V, to byte pieces).
  double character_coverage = 1.0;
  std::vector<std::string> user_defined_symbols;  // always one piece, even inside words
  std::vector<std::string> control_symbols;       // reserved ids, never produced from text
  std::string normalization = "identity";    // identity | nfkc | nmt_nfkc | nfkc_cf | nmt_nfkc_cf
  bool remove_extra_whitespaces = false;     // collapse runs of spaces (lossy)
  bool add_dummy_prefix = true;              // a leading space before every text, as llama does
  bool split_digits = true;                  // every digit its own piece
  uint64_t max_sentences = 0;                // sample at most this many lines for training (0 = all)
  int max_sentence_length = 16384;           // longer lines (bytes) are skipped by the trainer
  uint64_t seed = 0;                         // for sentence sampling
  int threads = 0;                           // 0 = all cores
};

// A vocabulary given as arrays, e.g. from a GGUF file without SentencePiece model bytes.
struct VocabSpec {
  std::vector<std::string> pieces;
  std::vector<float> scores;          // same length as pieces
  std::vector<PieceType> types;       // same length as pieces
  std::string model_type = "bpe";     // bpe (llama.cpp "llama" = SPM merges by score) | unigram
  bool add_dummy_prefix = true;
  bool byte_fallback = true;
  std::optional<int> unk_id, bos_id, eos_id, pad_id;
  std::string family = "llama";
  std::vector<std::string> merges;
  std::string pre;
  std::optional<int> eot_id, sep_id, mask_id;
  bool add_bos = false, add_eos = false, add_sep = false;
};

class Tokenizer {
 public:
  // Parses serialized SentencePiece ModelProto bytes. `source` names the file in messages.
  // Throws FormatError (not a SentencePiece model, bad special ids, pieces too long, ...).
  static Tokenizer from_model_proto(std::string bytes, const std::string& source);
  // Loads a SentencePiece .model file. Throws IoError, FormatError.
  static Tokenizer load(const std::string& path);
  // Builds a model from arrays (the GGUF tokenizer keys). Throws FormatError naming `source`.
  static Tokenizer from_vocab(const VocabSpec& vocab, const std::string& source);
  // Trains a model on lines produced by `next_line` (returns false at end of input).
  // Throws UsageError for bad options, Error if training fails (e.g. vocab too large for the data).
  static Tokenizer train(const TokenizerTrainOptions& opts, const std::function<bool(std::string&)>& next_line,
                         const Logger& log);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  int vocab_size() const;
  const std::string& piece(int id) const;  // id must be in [0, vocab_size)
  float score(int id) const;
  PieceType type(int id) const;
  std::optional<int> unk_id() const, bos_id() const, eos_id() const, pad_id() const;
  std::string model_type() const;  // "bpe", "unigram", "char", "word"
  bool add_dummy_prefix() const;
  bool byte_fallback() const;

  // Encodes one line exactly as SentencePiece (spm_encode) does. Thread-safe (const).
  void encode(std::string_view text, std::vector<int>& ids) const;
  void encode_pieces(std::string_view text, std::vector<std::string>& pieces) const;
  // Decodes ids exactly as SentencePiece does. Throws FormatError for ids outside the vocabulary.
  std::string decode(const std::vector<int>& ids) const;

  // Whole-text encoding, as llama.cpp tokenizes a document: the dummy prefix only at the start,
  // and '\n' inside the text as the model encodes it (<0x0A> with byte fallback). Equal to
  // encoding the whole text as one string, but streamable line by line.
  // `first` is true for the document's first line; `newline` appends the newline's ids.
  void encode_line_of_text(std::string_view line, bool first, bool newline, std::vector<int>& ids) const;
  // A whole text (any number of lines) with encode_line_of_text; appends to ids.
  void encode_text(std::string_view text, std::vector<int>& ids) const;
  // Inverse of a whole document encoded with encode_line_of_text. Throws FormatError for bad ids.
  std::string decode_text(const std::vector<int>& ids) const;
  // The bytes token `id` stands for inside a text, for streaming output one token at a time:
  // "\xe2\x96\x81" (the SentencePiece space) becomes ' ', a byte piece <0xNN> its byte (possibly
  // part of a UTF-8 character), control pieces nothing and the unknown piece " \xe2\x81\x87 " as
  // SentencePiece decodes it. Concatenated over a text's ids this is decode_text() with the
  // dummy prefix's space still at the front. id must be in [0, vocab_size).
  std::string token_bytes(int id) const;
  // The ids that encode "\n" inside a text (empty if the model maps it to nothing).
  const std::vector<int>& newline_ids() const;

  // Serialized SentencePiece ModelProto: what a .model file holds and GGUF files embed.
  const std::string& model_proto() const;
  // FNV-1a 64 of model_proto(): identifies the tokenizer in token files.
  uint64_t fingerprint() const;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace lm
