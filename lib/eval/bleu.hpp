// Corpus BLEU and chrF/chrF++ with the same numbers and signatures as sacreBLEU 2.x, fed one
// segment at a time so memory stays bounded. Reading files, pairing lines and printing are the
// caller's. Text is UTF-8; bytes that are not valid UTF-8 count as one character each (what Python
// does with errors="surrogateescape"). Case folding follows Python 3.11's str.lower() (Unicode 14).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lm::eval {

struct BleuOptions {
  std::string tokenize = "13a";        // 13a (mteval-v13a) | none (split on whitespace) | char
  std::string smooth = "exp";          // exp | floor | add-k | none (Chen & Cherry, WMT 2014)
  std::optional<double> smooth_value;  // floor and add-k only; unset means 0.1 for floor, 1 for add-k
  bool lowercase = false;
  int max_ngram_order = 4;             // 1..100
  bool effective_order = false;        // leave out orders the hypotheses have no n-grams of
  bool force = false;                  // do not flag hypotheses that look tokenized (BleuResult)
};

// Sufficient statistics of corpus BLEU: sums over segments. counts and totals have one entry per
// order 1..max_ngram_order: clipped n-gram matches and hypothesis n-grams.
struct BleuStats {
  uint64_t sys_len = 0, ref_len = 0;  // tokens; ref_len sums each segment's closest reference length
  std::vector<uint64_t> counts, totals;
};

struct BleuResult {
  double score = 0;                 // 0..100
  std::vector<double> precisions;   // percent, per order, after smoothing; 0 past a break
  std::vector<uint64_t> counts, totals;  // unsmoothed (sacreBLEU shows add-k's k added in)
  double bp = 0;                    // brevity penalty
  double ratio = 0;                 // sys_len / ref_len, 0 when ref_len is 0
  uint64_t sys_len = 0, ref_len = 0;
  bool looks_tokenized = false;     // 100+ hypotheses end in " ." and force is off: warn the user
};

// Checks the options; throws UsageError naming the bad field and the allowed values.
void validate(const BleuOptions& o);

// BLEU from statistics (sacreBLEU's BLEU.compute_bleu). counts and totals must have
// max_ngram_order entries. Throws UsageError for bad options or statistics of the wrong size.
BleuResult compute_bleu(const BleuStats& stats, const BleuOptions& o);

// sacreBLEU's signature string, e.g. "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:lm-0.1.0".
// The fields before version name the computation as sacreBLEU does (it leaves out
// max_ngram_order, and so do we); version names this implementation, not a sacreBLEU release.
std::string bleu_signature(const BleuOptions& o, size_t n_refs);

// Streaming corpus BLEU: one add() per segment, with one reference per reference stream.
class BleuScorer {
 public:
  // Throws UsageError for bad options or n_refs == 0.
  BleuScorer(BleuOptions o, size_t n_refs);
  // Adds one segment. Throws UsageError if refs.size() != n_refs. Keeps no reference to the text.
  void add(std::string_view hyp, const std::vector<std::string_view>& refs);
  uint64_t segments() const { return segments_; }
  const BleuStats& stats() const { return stats_; }
  // The score so far; with no segments it is compute_bleu of zero statistics (score 0).
  BleuResult result() const;
  std::string signature() const { return bleu_signature(opts_, n_refs_); }

 private:
  BleuOptions opts_;
  size_t n_refs_;
  BleuStats stats_;
  uint64_t segments_ = 0, tokenized_period_ = 0;
};

struct ChrfOptions {
  int char_order = 6;          // character n-gram orders 1..char_order (0..100)
  int word_order = 0;          // word n-gram orders; 2 gives chrF++ (0..100)
  int beta = 2;                // recall weight (0..100)
  bool lowercase = false;
  bool whitespace = false;     // keep whitespace in character n-grams
  bool eps_smoothing = false;  // chrF++.py's per-order epsilon; off = average over matched orders
};

// Checks the options (char_order + word_order >= 1); throws UsageError.
void validate(const ChrfOptions& o);

struct ChrfResult {
  double score = 0;   // 0..100
  std::string name;   // "chrF2", "chrF2++", ...: sacreBLEU's name for these options
  std::vector<uint64_t> stats;  // per order (chars then words): hyp, ref, match n-gram counts
};

// "nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:lm-0.1.0" (see bleu_signature).
std::string chrf_signature(const ChrfOptions& o, size_t n_refs);

// Streaming corpus chrF: per segment, the statistics of the reference with the best chrF score
// (the first on ties), summed over segments.
class ChrfScorer {
 public:
  ChrfScorer(ChrfOptions o, size_t n_refs);  // throws UsageError for bad options or n_refs == 0
  // Adds one segment. Throws UsageError if refs.size() != n_refs.
  void add(std::string_view hyp, const std::vector<std::string_view>& refs);
  uint64_t segments() const { return segments_; }
  ChrfResult result() const;
  std::string signature() const { return chrf_signature(opts_, n_refs_); }

 private:
  ChrfOptions opts_;
  size_t n_refs_;
  std::vector<uint64_t> stats_;  // 3 per order: hyp, ref, match
  uint64_t segments_ = 0;
};

// sacreBLEU's "13a" tokenizer (mteval-v13a.pl): the tokens joined by single spaces.
std::string tokenize_13a(std::string_view line);

// Python's str.lower() on UTF-8 text, final sigma included.
std::string lowercase(std::string_view text);

}  // namespace lm::eval
