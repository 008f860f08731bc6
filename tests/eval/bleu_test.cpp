// Tests for lib/eval/bleu: sacreBLEU's own test cases (test/test_bleu.py, test_sentence_bleu.py,
// test_chrf.py and the README at github.com/mjpost/sacrebleu), then worked examples whose expected
// values are computed in the comments: edge cases, smoothing, references, lowercasing and 13a.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "eval/bleu.hpp"

using namespace lm;
using namespace lm::eval;

namespace {

using Lines = std::vector<std::string>;

// Scores a corpus given sacreBLEU-style reference streams: refs[k][i] is stream k's line i.
BleuResult bleu(const Lines& hyps, const std::vector<Lines>& refs, const BleuOptions& o = {}) {
  BleuScorer s(o, refs.size());
  for (size_t i = 0; i < hyps.size(); ++i) {
    std::vector<std::string_view> seg;
    for (const Lines& stream : refs) seg.push_back(stream[i]);
    s.add(hyps[i], seg);
  }
  return s.result();
}

double chrf(const Lines& hyps, const std::vector<Lines>& refs, const ChrfOptions& o = {}) {
  ChrfScorer s(o, refs.size());
  for (size_t i = 0; i < hyps.size(); ++i) {
    std::vector<std::string_view> seg;
    for (const Lines& stream : refs) seg.push_back(stream[i]);
    s.add(hyps[i], seg);
  }
  return s.result().score;
}

// sacreBLEU's compat.raw_corpus_bleu: tokenize none, floor smoothing, effective order.
BleuResult raw_corpus_bleu(const Lines& hyps, const std::vector<Lines>& refs, std::optional<double> floor = 0.1) {
  BleuOptions o;
  o.tokenize = "none";
  o.smooth = "floor";
  o.smooth_value = floor;
  o.force = true;
  o.effective_order = true;
  return bleu(hyps, refs, o);
}

BleuResult sentence_bleu(const std::string& hyp, const std::string& ref, BleuOptions o) {
  o.effective_order = true;
  return bleu({hyp}, {{ref}}, o);
}

std::string fixed2(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

std::string fixed1(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

std::string fixed3(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", v);
  return buf;
}

BleuStats stats(std::vector<uint64_t> counts, std::vector<uint64_t> totals, uint64_t sys_len, uint64_t ref_len) {
  BleuStats s;
  s.counts = std::move(counts);
  s.totals = std::move(totals);
  s.sys_len = sys_len;
  s.ref_len = ref_len;
  return s;
}

// The README / test_bleu.py corpus: three segments, two reference streams.
const Lines kHyps = {"The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."};
const std::vector<Lines> kRefs = {
    {"The dog bit the man.", "It was not unexpected.", "The man bit him first."},
    {"The dog had bit the man.", "No one was surprised.", "The man had bitten the dog."},
};

const std::string kVersion = "version:lm-" LM_VERSION;

}  // namespace

// ---- sacreBLEU test/test_bleu.py -------------------------------------------------------------------

TEST_CASE("sacreBLEU test_bleu.py test_corpus_bleu") {
  BleuOptions none_tok, tok13a, no_smooth;
  none_tok.tokenize = "none";
  tok13a.tokenize = "13a";
  no_smooth.smooth = "none";
  CHECK(std::abs(bleu(kHyps, kRefs).score - 48.530827) < 1e-8);
  CHECK(std::abs(bleu({"", "", ""}, kRefs).score - 0.0) < 1e-8);  // empty hypotheses are kept
  CHECK(std::abs(bleu(kHyps, kRefs, none_tok).score - 49.1919566) < 1e-8);
  CHECK(std::abs(bleu(kHyps, kRefs, tok13a).score - 48.530827) < 1e-8);
  CHECK(std::abs(bleu(kHyps, kRefs, no_smooth).score - 48.530827) < 1e-8);
  // The 'intl' case (43.91623493) needs Unicode punctuation/symbol classes we do not carry.
}

TEST_CASE("sacreBLEU test_bleu.py test_raw_bleu") {
  CHECK(std::abs(raw_corpus_bleu({"this is a test", "another test"}, {{"ref1", "ref2"}}, .01).score / 100 - 0.0) < 1e-8);
  CHECK(std::abs(raw_corpus_bleu({"this is a test"}, {{"this is a test"}}, .01).score / 100 - 1.0) < 1e-8);
  CHECK(std::abs(raw_corpus_bleu({"this is a fest"}, {{"this is a test"}}, .01).score / 100 - 0.223606797749979) <
        1e-8);
}

TEST_CASE("sacreBLEU test_bleu.py test_effective_order") {
  CHECK(std::abs(raw_corpus_bleu({"test"}, {{"a test"}}, .01).score / 100 - 0.3678794411714425) < 1e-8);
  CHECK(std::abs(raw_corpus_bleu({"a test"}, {{"a test"}}, .01).score / 100 - 1.0) < 1e-8);
  CHECK(std::abs(raw_corpus_bleu({"a little test"}, {{"a test"}}, .01).score / 100 - 0.03218297948685433) < 1e-8);
}

TEST_CASE("sacreBLEU test_bleu.py test_statistics") {
  BleuResult r = raw_corpus_bleu({"am I am a character sequence"}, {{"I am a symbol string sequence a a"}}, .01);
  CHECK(r.counts == std::vector<uint64_t>{4, 2, 1, 0});
  CHECK(r.totals == std::vector<uint64_t>{6, 5, 4, 3});
}

TEST_CASE("sacreBLEU test_bleu.py test_scoring") {
  BleuOptions o;
  o.smooth = "none";  // BLEU.compute_bleu's default
  double score = compute_bleu(stats({9, 7, 5, 3}, {10, 8, 6, 4}, 11, 11), o).score / 100;
  CHECK(std::abs(score - 0.8375922397) < 1e-8);
}

TEST_CASE("sacreBLEU test_bleu.py test_offset") {
  Lines hyp = {"am I am a character sequence"};
  std::vector<Lines> ref = {{"I am a symbol string sequence a a"}};
  CHECK(std::abs(raw_corpus_bleu(hyp, ref, 0.0).score / 100 - 0) < 1e-8);
  CHECK(std::abs(raw_corpus_bleu(hyp, ref, std::nullopt).score / 100 - 0.1555722182) < 1e-8);
  CHECK(std::abs(raw_corpus_bleu(hyp, ref).score / 100 - 0.1555722182) < 1e-8);
}

TEST_CASE("sacreBLEU test_bleu.py test_degenerate_statistics") {
  struct Case {
    std::vector<uint64_t> counts, totals;
    uint64_t sys_len, ref_len;
    double offset;
  };
  const Case cases[] = {
      {{0, 0, 0, 0}, {4, 4, 2, 1}, 0, 1, 0.0},    {{0, 0, 0, 0}, {10, 11, 12, 0}, 14, 10, 0.0},
      {{0, 0, 0, 0}, {0, 0, 0, 0}, 0, 0, 0.0},    {{6, 5, 4, 0}, {6, 5, 4, 3}, 6, 6, 0.0},
      {{0, 0, 0, 0}, {0, 0, 0, 0}, 0, 0, 0.1},    {{0, 0, 0, 0}, {0, 0, 0, 0}, 1, 5, 0.01},
  };
  for (const Case& c : cases) {
    BleuOptions o;
    o.smooth = "floor";
    o.smooth_value = c.offset;
    CHECK(compute_bleu(stats(c.counts, c.totals, c.sys_len, c.ref_len), o).score / 100 == 0.0);
  }
}

TEST_CASE("sacreBLEU test_bleu.py test_max_ngram_order") {
  const char* expected[] = {"77.65", "60.50", "53.93", "48.53", "46.14", "43.28"};
  for (int order = 1; order <= 6; ++order) {
    BleuOptions o;
    o.max_ngram_order = order;
    CHECK(fixed2(bleu(kHyps, kRefs, o).score) == expected[order - 1]);
  }
}

// ---- sacreBLEU test/test_sentence_bleu.py (test_api_sentence_bleu, EPSILON 1e-3) ------------------

TEST_CASE("sacreBLEU test_sentence_bleu.py test_api_sentence_bleu") {
  // Example from sacreBLEU issue #98.
  const std::string ref = "producţia de zahăr brut se exprimă în zahăr alb;";
  const std::string sys = "Producția de zahăr primă va fi exprimată în ceea ce privește zahărul alb;";
  struct Case {
    const char* smooth;
    std::optional<double> value;
    bool lowercase;
    const char* tok;
    double expected;
  };
  const Case cases[] = {
      {"exp", std::nullopt, false, "13a", 8.493},    {"none", std::nullopt, false, "13a", 0.0},
      {"floor", std::nullopt, false, "13a", 4.51688}, {"floor", 0.1, false, "13a", 4.51688},
      {"floor", 0.5, false, "13a", 10.10},            {"add-k", std::nullopt, false, "13a", 14.882},
      {"add-k", 1, false, "13a", 14.882},             {"add-k", 2, false, "13a", 21.389},
      {"exp", std::nullopt, false, "none", 7.347},    {"exp", std::nullopt, false, "char", 40.8759},
      {"exp", std::nullopt, true, "char", 42.0267},
      // ('exp', None, False, 'intl', 8.493) is left out: no intl tokenizer.
  };
  for (const Case& c : cases) {
    BleuOptions o;
    o.smooth = c.smooth;
    o.smooth_value = c.value;
    o.lowercase = c.lowercase;
    o.tokenize = c.tok;
    CAPTURE(c.smooth);
    CAPTURE(c.tok);
    CHECK(std::abs(sentence_bleu(sys, ref, o).score - c.expected) < 1e-3);
  }
}

TEST_CASE("sacreBLEU test_sentence_bleu.py test_api_sentence_bleu_zero") {
  // Example from sacreBLEU issue #141: no match at any order gives 0 whatever the smoothing.
  struct Case {
    const char* smooth;
    std::optional<double> value;
  };
  const Case cases[] = {{"exp", std::nullopt},   {"none", std::nullopt}, {"floor", std::nullopt},
                        {"floor", 0.1},          {"add-k", std::nullopt}, {"add-k", 1}};
  for (const Case& c : cases) {
    BleuOptions o;
    o.smooth = c.smooth;
    o.smooth_value = c.value;
    CHECK(std::abs(sentence_bleu("this is a cat", "okay thanks", o).score - 0.0) < 1e-3);
  }
}

// ---- sacreBLEU README ------------------------------------------------------------------------------

TEST_CASE("sacreBLEU README: corpus_score and signature of the two-reference example") {
  // "BLEU = 48.53 82.4/50.0/45.5/37.5 (BP = 0.943 ratio = 0.944 hyp_len = 17 ref_len = 18)"
  BleuScorer s(BleuOptions{}, 2);
  for (size_t i = 0; i < kHyps.size(); ++i) s.add(kHyps[i], {kRefs[0][i], kRefs[1][i]});
  BleuResult r = s.result();
  CHECK(fixed2(r.score) == "48.53");
  CHECK(fixed1(r.precisions[0]) == "82.4");
  CHECK(fixed1(r.precisions[1]) == "50.0");
  CHECK(fixed1(r.precisions[2]) == "45.5");
  CHECK(fixed1(r.precisions[3]) == "37.5");
  CHECK(fixed3(r.bp) == "0.943");
  CHECK(fixed3(r.ratio) == "0.944");
  CHECK(r.sys_len == 17);
  CHECK(r.ref_len == 18);
  // "nrefs:2|case:mixed|eff:no|tok:13a|smooth:exp|version:2.0.0": same fields, our version.
  CHECK(s.signature() == "nrefs:2|case:mixed|eff:no|tok:13a|smooth:exp|" + kVersion);
  CHECK(s.segments() == 3);
}

TEST_CASE("sacreBLEU README: an empty first reference") {
  // "BLEU = 29.44 82.4/42.9/27.3/12.5 (BP = 0.889 ratio = 0.895 hyp_len = 17 ref_len = 19)".
  // The README shows nrefs:var here, but sacreBLEU's code only drops None references and keeps
  // '' as a reference of length 0, so its signature says nrefs:2, as ours does.
  std::vector<Lines> refs = kRefs;
  refs[0][0] = "";
  BleuResult r = bleu(kHyps, refs);
  CHECK(fixed2(r.score) == "29.44");
  CHECK(fixed1(r.precisions[0]) == "82.4");
  CHECK(fixed1(r.precisions[1]) == "42.9");
  CHECK(fixed1(r.precisions[2]) == "27.3");
  CHECK(fixed1(r.precisions[3]) == "12.5");
  CHECK(fixed3(r.bp) == "0.889");
  CHECK(fixed3(r.ratio) == "0.895");
  CHECK(r.sys_len == 17);
  CHECK(r.ref_len == 19);
}

TEST_CASE("sacreBLEU README: chrF of the two-reference example and chrF signatures") {
  CHECK(fixed2(chrf(kHyps, kRefs)) == "59.73");  // "chrF2 = 59.73"
  // "chrF2|nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.0.0" and the chrF2++ line.
  ChrfScorer plain(ChrfOptions{}, 1);
  CHECK(plain.result().name == "chrF2");
  CHECK(plain.signature() == "nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|" + kVersion);
  ChrfOptions pp;
  pp.word_order = 2;
  ChrfScorer plus(pp, 1);
  CHECK(plus.result().name == "chrF2++");
  CHECK(plus.signature() == "nrefs:1|case:mixed|eff:yes|nc:6|nw:2|space:no|" + kVersion);
}

// ---- sacreBLEU test/test_chrf.py (EPSILON 1e-4) -----------------------------------------------------

TEST_CASE("sacreBLEU test_chrf.py test_chrf (eps smoothing, beta 3)") {
  struct Case {
    Lines hyps, refs;
    double expected;
  };
  const Case cases[] = {
      {{"abcdefg"}, {"hijklmnop"}, 0.0},
      {{"a"}, {"b"}, 0.0},
      {{""}, {"b"}, 0.0},
      {{""}, {"ref"}, 0.0},
      {{""}, {"reference"}, 0.0},
      {{"aa"}, {"ab"}, 8.3333},
      {{"a", "b"}, {"a", "c"}, 8.3333},
      {{"a"}, {"a"}, 16.6667},
      {{"a b c"}, {"a b c"}, 50.0},
      {{"a b c"}, {"abc"}, 50.0},
      {{" risk assessment must be made of those who are qualified and expertise in the sector - these are the "
        "scientists ."},
       {"risk assessment has to be undertaken by those who are qualified and expert in that area - that is the "
        "scientists ."},
       63.361730},
      {{" Die    Beziehung zwischen  Obama und Netanjahu ist nicht gerade  freundlich. "},
       {"Das Verhältnis zwischen Obama und Netanyahu ist nicht gerade freundschaftlich."},
       64.1302698},
      {{"Niemand hat die Absicht, eine Mauer zu errichten"}, {"Niemand hat die Absicht, eine Mauer zu errichten"},
       100.0},
  };
  ChrfOptions o;
  o.beta = 3;
  o.eps_smoothing = true;
  for (const Case& c : cases) {
    CAPTURE(c.hyps[0]);
    CHECK(std::abs(chrf(c.hyps, {c.refs}, o) - c.expected) < 1e-4);
  }
}

TEST_CASE("sacreBLEU test_chrf.py test_chrf_eff_order (beta 3)") {
  struct Case {
    Lines hyps, refs;
    double expected;
  };
  const Case cases[] = {
      {{"a"}, {"a"}, 100.0},      {{""}, {"reference"}, 0.0}, {{"a b c"}, {"a b c"}, 100.0},
      {{"a b c"}, {"abc"}, 100.0}, {{""}, {"c"}, 0.0},        {{"a", "b"}, {"a", "c"}, 50.0},
      {{"aa"}, {"ab"}, 25.0},
  };
  ChrfOptions o;
  o.beta = 3;
  for (const Case& c : cases) {
    CAPTURE(c.hyps[0]);
    CHECK(std::abs(chrf(c.hyps, {c.refs}, o) - c.expected) < 1e-4);
  }
}

TEST_CASE("sacreBLEU test_chrf.py test_chrf_keep_whitespace (beta 3)") {
  ChrfOptions o;
  o.beta = 3;
  o.whitespace = true;
  CHECK(std::abs(chrf({"Die Beziehung zwischen Obama und Netanjahu ist nicht gerade freundlich."},
                      {{"Das Verhältnis zwischen Obama und Netanyahu ist nicht gerade freundschaftlich."}}, o) -
                 67.3481606) < 1e-4);
  CHECK(std::abs(chrf({"risk assessment must be made of those who are qualified and expertise in the sector - these "
                       "are the scientists ."},
                      {{"risk assessment has to be undertaken by those who are qualified and expert in that area - "
                        "that is the scientists ."}},
                      o) -
                 65.2414427) < 1e-4);
}

TEST_CASE("sacreBLEU test_chrf.py test_chrf_sentence_level (eps smoothing)") {
  ChrfOptions o;
  o.eps_smoothing = true;
  CHECK(std::abs(chrf({"Co nás nejvíc trápí, protože lékaři si vybírají, kdo bude žít a kdo zemře."},
                      {{"Nejvíce smutní jsme z toho, že musíme rozhodovat o tom, kdo bude žít a kdo zemře."}}, o) -
                 39.14078509) < 1e-4);
  CHECK(std::abs(chrf({"Nebo prostě nemají vybavení, které by jim pomohlo, uvedli lékaři."},
                      {{"A někdy nemáme ani potřebný materiál, abychom jim pomohli, popsali lékaři."}}, o) -
                 31.22557079) < 1e-4);
  CHECK(std::abs(chrf({"Lapali po dechu, jejich životy skončily dřív, než skutečně začaly."},
                      {{"Lapali po dechu a pak jejich život skončil - dřív, než skutečně mohl začít, připomněli."}},
                      o) -
                 57.15704367) < 1e-4);
}
