// lm::Tokenizer: one interface over the tokenizer families of the models people have:
// SentencePiece models (BPE and unigram, through the SentencePiece library: .model files and
// the GGUF files lm writes), and, from a GGUF vocabulary's arrays as llama.cpp reads them,
// SentencePiece-style merges ("llama"), byte-level BPE ("gpt2") and WordPiece ("bert").
// Encode, decode, special tokens, training. Leaves file formats (GGUF, token files) to
// lib/format; lib/model/tokenizer_loader reads and writes the GGUF keys. docs/tokenizers.md.
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
  std::string model_type = "bpe";            // bpe | unigram (SentencePiece) | bytebpe (GPT-2 style)
  std::string pre_tokenizer = "gpt-2";       // bytebpe: the word-splitting expressions (tokenizer.ggml.pre)
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

// A vocabulary given as arrays: the tokenizer.ggml.* keys of a GGUF file.
struct VocabSpec {
  // tokenizer.ggml.model: "llama" (SentencePiece merges by score), "gpt2" (byte-level BPE),
  // "bert" (WordPiece).
  std::string family = "llama";
  std::vector<std::string> pieces;
  std::vector<float> scores;          // same length as pieces
  std::vector<PieceType> types;       // same length as pieces
  std::vector<std::string> merges;    // gpt2: "left right", highest priority first
  std::string pre;                    // gpt2: the pre-tokenizer's name (tokenizer.ggml.pre)
  // "llama" only: rebuild a SentencePiece model of this type ("bpe" or "unigram") and tokenize
  // with the SentencePiece library, instead of merging by score as llama.cpp does ("").
  std::string sentencepiece_type;
  bool add_dummy_prefix = true;       // llama: a space before the text (add_space_prefix)
  bool lowercase = true;              // bert: tokenizer.ggml.normalizer.lowercase
  bool strip_accents = true;          // bert: tokenizer.ggml.normalizer.strip_accents (default: lowercase)
  bool byte_fallback = true;          // llama + sentencepiece_type: <0xNN> pieces for unknown characters
  std::optional<int> unk_id, bos_id, eos_id, eot_id, pad_id, sep_id, mask_id;
  bool add_bos = false, add_eos = false, add_sep = false;  // what a prompt gets (add_*_token keys)
  // Whitespace after a special piece found in the text is dropped (llama.cpp's RSTRIP, which it
  // sets for Phi-3 models by their general.name).
  bool rstrip_special = false;
};

class Tokenizer {
 public:
  // Parses serialized SentencePiece ModelProto bytes. `source` names the file in messages.
  // Throws FormatError (not a SentencePiece model, bad special ids, pieces too long, ...).
  static Tokenizer from_model_proto(std::string bytes, const std::string& source);
  // Loads a SentencePiece .model file. Throws IoError, FormatError.
  static Tokenizer load(const std::string& path);
  // Builds a tokenizer from arrays (the GGUF tokenizer keys). Throws FormatError naming `source`
  // (arrays of different lengths, a merge naming an unknown piece, an unknown pre-tokenizer...).
  static Tokenizer from_vocab(VocabSpec vocab, const std::string& source);
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
  std::optional<int> eot_id() const, sep_id() const, mask_id() const;
  // Whether a prompt starts with BOS (and, for WordPiece, ends with SEP) and a text ends with
  // EOS: the tokenizer.ggml.add_*_token keys, else the family's default as in llama.cpp.
  bool add_bos() const, add_eos() const, add_sep() const;
  void set_add_bos(bool on), set_add_eos(bool on);
  // True for the ids that end generation: EOS, EOT and the control pieces named like an end
  // of turn (<|eot_id|>, <|im_end|>, <|end|>, <end_of_turn>, <|endoftext|>, ...).
  bool ends_generation(int id) const;
  // The tokenizer.ggml.model name of the family: "llama", "gpt2" or "bert".
  const std::string& family() const;
  // "bpe", "unigram", "char", "word" (SentencePiece library); "bpe" (llama merges by score),
  // "bytebpe" (gpt2), "wordpiece" (bert).
  std::string model_type() const;
  // From a GGUF vocabulary (not through the SentencePiece library): the arrays it came from.
  // Null for SentencePiece models.
  const VocabSpec* vocab_spec() const;
  bool add_dummy_prefix() const;
  bool byte_fallback() const;

  // Encodes one line exactly as SentencePiece (spm_encode) does, or, for a GGUF vocabulary,
  // as llama.cpp tokenizes it as one string. User-defined pieces are always found in the text;
  // control pieces (<s>, <|im_end|>, ...) only with `parse_special`, else their text is
  // tokenized like any other. Thread-safe (const).
  void encode(std::string_view text, std::vector<int>& ids, bool parse_special = false) const;
  void encode_pieces(std::string_view text, std::vector<std::string>& pieces, bool parse_special = false) const;
  // Decodes ids exactly as SentencePiece does. Throws FormatError for ids outside the vocabulary.
  std::string decode(const std::vector<int>& ids) const;

  // Whole-text encoding, as llama.cpp tokenizes a document: the dummy prefix only at the start,
  // and '\n' inside the text as the model encodes it (<0x0A> with byte fallback). Equal to
  // encoding the whole text as one string, but streamable line by line.
  // `first` is true for the document's first line; `newline` appends the newline's ids.
  // For a GGUF vocabulary the line and its newline are encoded as one string, which equals
  // the whole text's encoding except where a pre-tokenizer joins whitespace across lines.
  void encode_line_of_text(std::string_view line, bool first, bool newline, std::vector<int>& ids,
                           bool parse_special = false) const;
  // A whole text (any number of lines); appends to ids. For a GGUF vocabulary this is the
  // text tokenized as one string, exactly as llama.cpp does.
  void encode_text(std::string_view text, std::vector<int>& ids, bool parse_special = false) const;
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
  // Empty for a tokenizer built from a GGUF vocabulary (see vocab_spec()).
  const std::string& model_proto() const;
  // FNV-1a 64 of model_proto(), or of the vocabulary's arrays: identifies the tokenizer in
  // token files.
  uint64_t fingerprint() const;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace lm
