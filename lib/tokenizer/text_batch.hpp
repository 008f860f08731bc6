// Batch helpers over a Tokenizer: parallel whole-text encoding and piece lookup.
#pragma once

#include <cstdint>
#include <optional>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/tokenizer.hpp"

namespace lm {

// Encodes `lines` in parallel, each on its own (spm_encode semantics). out is resized to
// lines.size(). `threads` 0 = all cores. Output does not depend on the thread count.
// `parse_special`: control pieces written in the text become their ids (Tokenizer::encode).
void encode_batch(const Tokenizer& tok, const std::vector<std::string>& lines, std::vector<std::vector<int>>& out,
                  int threads, bool parse_special = false);

// A read -> encode -> write pipeline over batches held in two slots, 0 and 1. read(slot) fills
// the slot with the next batch and returns its item count (0: the input is done); encode(slot,
// i) runs in parallel over the items of a batch; write(slot) takes a slot's results, batches in
// input order. While the threads encode batch k, one of them first writes batch k - 1 and reads
// batch k + 1, then joins the encoding: reading and writing overlap the parallel work instead
// of leaving the other threads waiting (with 2 threads they were a fifth of the time). The first
// exception (in any of the three) is rethrown once the threads are done with the batch; nothing
// after it is written. `threads` 0 = all cores.
void run_pipeline(int threads, const std::function<size_t(int)>& read, const std::function<void(int, size_t)>& encode,
                  const std::function<void(int)>& write);

// Encodes lines of documents in parallel with Tokenizer::encode_line_of_text: line i is a
// document's first line if first[i] != 0 and is followed by a newline if newline[i] != 0.
// out is resized to lines.size(). `threads` 0 = all cores.
void encode_text_batch(const Tokenizer& tok, const std::vector<std::string>& lines, const std::vector<uint8_t>& first,
                       const std::vector<uint8_t>& newline, std::vector<std::vector<int>>& out, int threads,
                       bool parse_special = false);

// Whether a document's encoding can be cut before `line` without changing it: always for a
// SentencePiece model (encode_line_of_text is exact line by line); for a GGUF vocabulary,
// whose pre-tokenizer may join a newline with the whitespace after it, only before a line
// that starts with a byte other than whitespace.
bool can_cut_before(const Tokenizer& tok, std::string_view line);

// Lines of documents collected for encode_text_batch. A line that cannot be cut from the one
// before it (can_cut_before) is appended to the previous entry, newline included, so that the
// entries' ids, concatenated, are exactly the documents' whole-text encodings.
class DocumentBatch {
 public:
  explicit DocumentBatch(const Tokenizer& tok) : tok_(tok) {}
  // A line of a document: `first` for a document's first line, `newline` if '\n' follows it.
  void add(std::string_view line, bool first, bool newline);
  size_t size() const { return lines_.size(); }
  // Encodes the entries in parallel into out (one vector per entry) and removes them: all of
  // them if `all`, else all but the last, which a following line may still join.
  void encode(std::vector<std::vector<int>>& out, int threads, bool all, bool parse_special = false);

 private:
  const Tokenizer& tok_;
  std::vector<std::string> lines_;
  std::vector<uint8_t> first_, newline_;
};

// Piece text -> id, for decoding piece sequences. Built once from the vocabulary.
class PieceIndex {
 public:
  explicit PieceIndex(const Tokenizer& tok);
  std::optional<int> find(std::string_view piece) const;

 private:
  std::unordered_map<std::string_view, int> index_;
};

// Counts tokens by kind, for `lm-tokenize stats`: totals, distinct ids, unknown and byte pieces.
class TokenCounter {
 public:
  explicit TokenCounter(const Tokenizer& tok);
  void add(const int* ids, size_t n);
  void add(const std::vector<int>& ids) { add(ids.data(), ids.size()); }
  uint64_t tokens() const { return tokens_; }
  uint64_t distinct() const;
  uint64_t unknown() const { return unknown_; }
  uint64_t byte_pieces() const { return bytes_; }

 private:
  std::vector<uint64_t> counts_;
  std::vector<uint8_t> kind_;  // 1 unknown, 2 byte piece, 0 other
  uint64_t tokens_ = 0, unknown_ = 0, bytes_ = 0;
};

}  // namespace lm
