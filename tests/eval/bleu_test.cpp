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
  CHECK(std::abs(raw_corpus_bleu({"this is a test", "another test"}, {{"ref1", "ref2"}}, .01).score / 100 - 0.0) <
        1e-8);
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

// ---- Worked examples: expected values from the arithmetic in the comments ----------------------------

TEST_CASE("empty corpus: zero statistics give score 0 with BP 1") {
  // sys_len = ref_len = 0: BP stays 1 (sys_len < ref_len is false), ratio is 0 by definition,
  // and no order has a match, so the score is 0.
  BleuScorer s(BleuOptions{}, 1);
  BleuResult r = s.result();
  CHECK(s.segments() == 0);
  CHECK(r.score == 0.0);
  CHECK(r.bp == 1.0);
  CHECK(r.ratio == 0.0);
  CHECK(r.sys_len == 0);
  CHECK(r.ref_len == 0);
  CHECK(r.precisions == std::vector<double>(4, 0.0));
  CHECK(r.counts == std::vector<uint64_t>(4, 0));
  CHECK(s.signature() == "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|" + kVersion);
  CHECK(ChrfScorer(ChrfOptions{}, 1).result().score == 0.0);  // no matched order: 0
}

TEST_CASE("empty hypothesis: BP 0 and score 0") {
  // hyp "" has 0 tokens, ref "a b c" has 3: sys_len 0 < ref_len 3 and sys_len == 0 gives BP 0.0;
  // ratio 0/3 = 0; totals are all 0.
  BleuResult r = bleu({""}, {{"a b c"}});
  CHECK(r.score == 0.0);
  CHECK(r.bp == 0.0);
  CHECK(r.ratio == 0.0);
  CHECK(r.sys_len == 0);
  CHECK(r.ref_len == 3);
  CHECK(r.totals == std::vector<uint64_t>(4, 0));
}

TEST_CASE("zero matches at orders 3 and 4 under each smoothing method") {
  // hyp "a b c d", ref "a b d c" (lengths 4 and 4, so BP = 1):
  //   1-grams a b c d: 4 of 4 match; 2-grams ab bc cd vs ab bd dc: 1 of 3;
  //   3-grams abc bcd vs abd bdc: 0 of 2; 4-gram abcd vs abdc: 0 of 1.
  auto score = [](const char* smooth, std::optional<double> value = std::nullopt) {
    BleuOptions o;
    o.smooth = smooth;
    o.smooth_value = value;
    return bleu({"a b c d"}, {{"a b d c"}}, o);
  };
  BleuResult e = score("exp");
  CHECK(e.counts == std::vector<uint64_t>{4, 1, 0, 0});
  CHECK(e.totals == std::vector<uint64_t>{4, 3, 2, 1});
  // exp: each zero order n gets 100 / (2^k * total) for its k-th zero: 100/(2*2) = 25, 100/(4*1) = 25.
  CHECK(e.precisions[2] == 25.0);
  CHECK(e.precisions[3] == 25.0);
  CHECK(e.score == doctest::Approx(std::pow(100.0 * (100.0 / 3) * 25 * 25, 0.25)).epsilon(1e-12));  // 37.99
  // floor 0.1: 100 * 0.1 / total = 5 and 10.
  BleuResult f = score("floor");
  CHECK(f.precisions[2] == doctest::Approx(5.0).epsilon(1e-12));
  CHECK(f.precisions[3] == doctest::Approx(10.0).epsilon(1e-12));
  CHECK(f.score == doctest::Approx(std::pow(100.0 * (100.0 / 3) * 5 * 10, 0.25)).epsilon(1e-12));
  // add-k 1 on orders 2..4: (1+1)/(3+1) = 50%, (0+1)/(2+1) = 33.3%, (0+1)/(1+1) = 50%.
  BleuResult k = score("add-k");
  CHECK(k.precisions == std::vector<double>{100.0, 50.0, 100.0 / 3, 50.0});
  CHECK(k.counts == std::vector<uint64_t>{4, 1, 0, 0});  // unsmoothed
  CHECK(k.score == doctest::Approx(std::pow(100.0 * 50 * (100.0 / 3) * 50, 0.25)).epsilon(1e-12));
  // none: precision 0 at order 3, whose log is floored to -9999999999: exp(-5e9) = 0.
  BleuResult n = score("none");
  CHECK(n.precisions[2] == 0.0);
  CHECK(n.score == 0.0);
  // floor with value 0 behaves like none.
  CHECK(score("floor", 0.0).score == 0.0);
}

TEST_CASE("effective order leaves out orders the hypothesis has no n-grams of") {
  // hyp "a b" vs ref "a b": 1-grams 2/2, 2-grams 1/1, no 3- or 4-grams (totals 0: the loop stops).
  // Without effective order the missing orders count as log(0) and the score is 0; with it the
  // mean runs over 2 orders: exp((log 100 + log 100) / 2) = 100.
  CHECK(bleu({"a b"}, {{"a b"}}).score == 0.0);
  BleuOptions o;
  o.effective_order = true;
  CHECK(bleu({"a b"}, {{"a b"}}, o).score == doctest::Approx(100.0).epsilon(1e-12));
  CHECK(bleu_signature(o, 1) == "nrefs:1|case:mixed|eff:yes|tok:13a|smooth:exp|" + kVersion);
}

TEST_CASE("several references: clipping by the largest count, closest length with ties to the shorter") {
  // hyp "the the the the" (4 tokens); refs "the cat" (2) and "the the mat" (3).
  // Closest length: |4-2| = 2, |4-3| = 1 -> 3. Clipping: "the" occurs at most 2 times in one
  // reference -> 2/4; "the the" 3 times in hyp, at most once in a reference -> 1/3; "the the the"
  // 0/2; 4-gram 0/1. sys_len 4 >= ref_len 3: BP 1. exp: 50, 33.3, 100/(2*2) = 25, 100/(4*1) = 25.
  BleuScorer s(BleuOptions{}, 2);
  s.add("the the the the", {"the cat", "the the mat"});
  BleuResult r = s.result();
  CHECK(r.counts == std::vector<uint64_t>{2, 1, 0, 0});
  CHECK(r.totals == std::vector<uint64_t>{4, 3, 2, 1});
  CHECK(r.ref_len == 3);
  CHECK(r.bp == 1.0);
  CHECK(r.ratio == doctest::Approx(4.0 / 3).epsilon(1e-15));
  CHECK(r.score == doctest::Approx(std::pow(50.0 * (100.0 / 3) * 25 * 25, 0.25)).epsilon(1e-12));

  // hyp of 5 tokens; refs of 3 and 7 tokens are both 2 away: the shorter (3) wins in either order.
  // All hyp n-grams are in the 7-token reference, so every precision is 100 and BP is 1.
  for (bool swap : {false, true}) {
    std::string a = "a b c", b = "a b c d e f g";
    BleuScorer t(BleuOptions{}, 2);
    t.add("a b c d e", swap ? std::vector<std::string_view>{b, a} : std::vector<std::string_view>{a, b});
    CHECK(t.result().ref_len == 3);
    CHECK(t.result().score == doctest::Approx(100.0).epsilon(1e-12));
  }
  // hyp of 5 tokens; refs of 2 and 6: |5-2| = 3, |5-6| = 1 -> 6, the longer one.
  BleuScorer u(BleuOptions{}, 2);
  u.add("a b c d e", {"a b", "a b c d e f"});
  CHECK(u.result().ref_len == 6);
  // BP = exp(1 - 6/5).
  CHECK(u.result().bp == doctest::Approx(std::exp(1 - 6.0 / 5)).epsilon(1e-15));
}

TEST_CASE("lowercase") {
  // Mixed case: only "sat" matches: 1/4, 0/3, 0/2, 0/1 -> exp: 25, 100/(2*3), 100/(4*2), 100/(8*1).
  BleuResult mixed = bleu({"The Cat sat Down"}, {{"the cat sat down"}});
  CHECK(mixed.score ==
        doctest::Approx(std::pow(25.0 * (100.0 / 6) * 12.5 * 12.5, 0.25)).epsilon(1e-12));
  BleuOptions lc;
  lc.lowercase = true;
  CHECK(bleu({"The Cat sat Down"}, {{"the cat sat down"}}, lc).score == doctest::Approx(100.0).epsilon(1e-12));
  CHECK(bleu_signature(lc, 3) == "nrefs:3|case:lc|eff:no|tok:13a|smooth:exp|" + kVersion);

  // Python's str.lower(): full mappings and the Final_Sigma rule of Unicode's SpecialCasing.txt.
  CHECK(lowercase("ÉCOLE Ǆ") == "école ǆ");
  CHECK(lowercase("\xC4\xB0") == "i\xCC\x87");  // U+0130 -> "i" + U+0307 COMBINING DOT ABOVE
  CHECK(lowercase("ΟΔΟΣ") == "οδος");           // word-final: ς
  CHECK(lowercase("ΣΑ") == "σα");               // word-initial: σ
  CHECK(lowercase("Σ") == "σ");                 // no cased letter before it: σ
  CHECK(lowercase("ΑΣ.") == "ας.");             // '.' is case-ignorable, then the end: ς
  CHECK(lowercase("ΑΣ.Β") == "ασ.β");           // case-ignorable '.' then a cased letter: σ
  CHECK(lowercase("ΑΣ 1") == "ας 1");
  CHECK(lowercase("\xFF" "A\xE2\x82") == "\xFF" "a\xE2\x82");  // invalid bytes pass through
}

TEST_CASE("13a tokenizer") {
  // Punctuation class [{-~ [-` space-& (-+ :-@ /] is split off everywhere.
  CHECK(tokenize_13a("Hello, world!") == "Hello , world !");
  CHECK(tokenize_13a("(a) x/y $5 {b} @c #d") == "( a ) x / y $ 5 { b } @ c # d");
  // ' - . , are not in that class.
  CHECK(tokenize_13a("it's a-b") == "it's a-b");
  // Period and comma: split unless between digits.
  CHECK(tokenize_13a("3.14 and 1,000") == "3.14 and 1,000");
  CHECK(tokenize_13a("end.") == "end .");
  CHECK(tokenize_13a("a.b") == "a . b");   // ([^0-9])([.,]) -> "a . b"
  CHECK(tokenize_13a("1.a") == "1 . a");   // ([.,])([^0-9]) -> "1 . a"
  CHECK(tokenize_13a("a.1") == "a . 1");   // ([^0-9])([.,]) -> "a . 1"
  CHECK(tokenize_13a("1.5.") == "1.5 .");  // the last '.' is followed by the padding space
  CHECK(tokenize_13a("...") == ". . .");   // " ." -> "  . ", then ".." -> ". . "
  // Dash: split only after a digit.
  CHECK(tokenize_13a("10-year x-5 -3") == "10 - year x-5 -3");
  // Entities, replaced in the order &quot; &amp; &lt; &gt; (so "&amp;lt;" becomes "<").
  CHECK(tokenize_13a("&quot;hi&quot; &amp; &lt;b&gt;") == "\" hi \" & < b >");
  CHECK(tokenize_13a("&amp;lt;") == "<");
  // <skipped> is removed; "-\n" joins lines; other newlines are spaces.
  CHECK(tokenize_13a("<skipped>word") == "word");
  CHECK(tokenize_13a("line-\nbreak a\nb") == "linebreak a b");
  // Non-ASCII punctuation stays; Python's whitespace (NBSP, U+3000) separates tokens.
  CHECK(tokenize_13a("café. \xE2\x80\x9Cquoted\xE2\x80\x9D") == "café . \xE2\x80\x9Cquoted\xE2\x80\x9D");
  CHECK(tokenize_13a("a\xC2\xA0" "b\xE3\x80\x80" "c") == "a b c");
  CHECK(tokenize_13a("") == "");
}

TEST_CASE("tokenizers none and char") {
  // none: whitespace split only. hyp "Hello, world!" has tokens "Hello," "world!"; ref
  // "Hello , world !" has 4 tokens, none equal to those two: 0 of 2 unigrams match.
  BleuOptions none;
  none.tokenize = "none";
  BleuResult r = bleu({"Hello, world!"}, {{"Hello , world !"}}, none);
  CHECK(r.counts[0] == 0);
  CHECK(r.sys_len == 2);
  CHECK(r.ref_len == 4);
  // char: every non-space character is a token: "ab c" -> a b c (3), "é" is one character.
  BleuOptions chr;
  chr.tokenize = "char";
  BleuResult c = bleu({"ab cé"}, {{"abcé"}}, chr);
  CHECK(c.sys_len == 4);
  CHECK(c.counts == std::vector<uint64_t>{4, 3, 2, 1});
  CHECK(c.score == doctest::Approx(100.0).epsilon(1e-12));
  CHECK(bleu_signature(chr, 1) == "nrefs:1|case:mixed|eff:no|tok:char|smooth:exp|" + kVersion);
}

TEST_CASE("trailing whitespace is stripped before tokenizing") {
  // "a b c d \t" -> rstrip -> "a b c d": identical to the reference.
  CHECK(bleu({"a b c d \t\xC2\xA0"}, {{"a b c d"}}).score == doctest::Approx(100.0).epsilon(1e-12));
}

TEST_CASE("signatures of the smoothing methods") {
  BleuOptions o;
  o.smooth = "floor";
  CHECK(bleu_signature(o, 1) == "nrefs:1|case:mixed|eff:no|tok:13a|smooth:floor[0.10]|" + kVersion);
  o.smooth = "add-k";
  CHECK(bleu_signature(o, 1) == "nrefs:1|case:mixed|eff:no|tok:13a|smooth:add-k[1.00]|" + kVersion);
  o.smooth_value = 2;
  CHECK(bleu_signature(o, 1) == "nrefs:1|case:mixed|eff:no|tok:13a|smooth:add-k[2.00]|" + kVersion);
  o = BleuOptions{};
  o.smooth = "none";
  CHECK(bleu_signature(o, 4) == "nrefs:4|case:mixed|eff:no|tok:13a|smooth:none|" + kVersion);
  ChrfOptions c;
  c.lowercase = true;
  c.whitespace = true;
  c.eps_smoothing = true;
  CHECK(chrf_signature(c, 2) == "nrefs:2|case:lc|eff:no|nc:6|nw:0|space:yes|" + kVersion);
}

TEST_CASE("hypotheses that look tokenized are flagged from 100 on, unless forced") {
  // sacreBLEU warns when 100 or more hypotheses end in " ." and force is off.
  BleuOptions o;
  BleuScorer s(o, 1);
  for (int i = 0; i < 99; ++i) s.add("a b .", {"a b."});
  CHECK_FALSE(s.result().looks_tokenized);
  s.add("a b .", {"a b."});
  CHECK(s.result().looks_tokenized);
  o.force = true;
  BleuScorer f(o, 1);
  for (int i = 0; i < 100; ++i) f.add("a b .", {"a b."});
  CHECK_FALSE(f.result().looks_tokenized);
}

TEST_CASE("chrF++ word n-grams split one leading or trailing punctuation mark") {
  // hyp "(hi)", ref "( hi )". Characters without spaces are "(hi)" in both: orders 1..4 have
  // precision = recall = 1; orders 5 and 6 have no n-grams and are left out.
  // Words: hyp "(hi" ")" (only the last mark is split, sacreBLEU #124), ref "(" "hi" ")":
  //   unigrams 1 match, 2 hyp, 3 ref -> P 1/2, R 1/3; bigrams "(hi )" vs "( hi", "hi )": P 0, R 0.
  // Effective order 6: P = (4 + 1/2 + 0) / 6, R = (4 + 1/3 + 0) / 6;
  // chrF2++ = 100 * (1 + 4) P R / (4 P + R).
  ChrfOptions o;
  o.word_order = 2;
  double p = (1.0 + 1.0 + 1.0 + 1.0 + 0.5 + 0.0) / 6, r = (1.0 + 1.0 + 1.0 + 1.0 + 1.0 / 3 + 0.0) / 6;
  CHECK(chrf({"(hi)"}, {{"( hi )"}}, o) == doctest::Approx(100 * 5 * p * r / (4 * p + r)).epsilon(1e-12));
  // "hi!" splits into "hi" "!" like the reference "hi !": everything matches.
  CHECK(chrf({"hi!"}, {{"hi !"}}, o) == doctest::Approx(100.0).epsilon(1e-12));
}

TEST_CASE("chrF with several references keeps the best-scoring one") {
  // "abc" against "xyz" scores 0, against "abc" 100: the segment takes the second reference's counts.
  ChrfScorer s(ChrfOptions{}, 2);
  s.add("abc", {"xyz", "abc"});
  ChrfResult r = s.result();
  CHECK(r.score == doctest::Approx(100.0).epsilon(1e-12));
  // Order 1: 3 hyp, 3 ref, 3 matches; order 2: 2, 2, 2; order 3: 1, 1, 1; orders 4..6: 0, 0, 0.
  CHECK(r.stats == std::vector<uint64_t>{3, 3, 3, 2, 2, 2, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0});
}

TEST_CASE("chrF lowercase") {
  // "ABC" vs "abc": no match in mixed case; all three orders match once lowercased.
  ChrfOptions o;
  CHECK(chrf({"ABC"}, {{"abc"}}, o) == 0.0);
  o.lowercase = true;
  CHECK(chrf({"ABC"}, {{"abc"}}, o) == doctest::Approx(100.0).epsilon(1e-12));
}

// ---- Misuse ------------------------------------------------------------------------------------------

TEST_CASE("a reference count that differs from the stream count throws UsageError") {
  BleuScorer b(BleuOptions{}, 2);
  b.add("a", {"a", "b"});
  CHECK_THROWS_AS(b.add("a", {"a"}), UsageError);
  CHECK_THROWS_AS(b.add("a", {"a", "b", "c"}), UsageError);
  CHECK(b.segments() == 1);  // the failed adds changed nothing
  CHECK(b.stats().sys_len == 1);
  ChrfScorer c(ChrfOptions{}, 1);
  CHECK_THROWS_AS(c.add("a", {}), UsageError);
  CHECK_THROWS_WITH_AS(b.add("a", {"a"}), doctest::Contains("segment 2 has 1 references, expected 2"), UsageError);
  CHECK_THROWS_AS(BleuScorer(BleuOptions{}, 0), UsageError);
  CHECK_THROWS_AS(ChrfScorer(ChrfOptions{}, 0), UsageError);
}

TEST_CASE("bad options throw UsageError") {
  auto bad_bleu = [](auto change) {
    BleuOptions o;
    change(o);
    CHECK_THROWS_AS(BleuScorer(o, 1), UsageError);
  };
  bad_bleu([](BleuOptions& o) { o.tokenize = "intl"; });
  bad_bleu([](BleuOptions& o) { o.smooth = "laplace"; });
  bad_bleu([](BleuOptions& o) { o.smooth_value = 0.5; });  // exp takes no value
  bad_bleu([](BleuOptions& o) { o.smooth = "floor", o.smooth_value = -1; });
  bad_bleu([](BleuOptions& o) { o.smooth = "add-k", o.smooth_value = NAN; });
  bad_bleu([](BleuOptions& o) { o.max_ngram_order = 0; });
  bad_bleu([](BleuOptions& o) { o.max_ngram_order = 101; });
  auto bad_chrf = [](auto change) {
    ChrfOptions o;
    change(o);
    CHECK_THROWS_AS(ChrfScorer(o, 1), UsageError);
  };
  bad_chrf([](ChrfOptions& o) { o.char_order = 0; });  // with word_order 0: nothing to count
  bad_chrf([](ChrfOptions& o) { o.char_order = -1; });
  bad_chrf([](ChrfOptions& o) { o.beta = -2; });
  // compute_bleu wants one count and one total per order.
  CHECK_THROWS_AS(compute_bleu(stats({1, 1}, {1, 1}, 1, 1), BleuOptions{}), UsageError);
}
