// Tests for byte-level BPE (lib/tokenizer/byte_bpe.cpp) and its PCRE2 pre-tokenizers
// (lib/tokenizer/pretokenize.cpp): exact ids on a hand-made vocabulary, the words of several
// pre-tokenizers on tricky text, invalid UTF-8, long words, and the errors of bad vocabularies.
// The expected words were checked against llama.cpp (llama_tokenize on GPT-2's vocabulary with
// tokenizer.ggml.pre set to each name gives the same ids as these splits do).
#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

#include "base/error.hpp"
#include "tokenizer/engine.hpp"
#include "tokenizer/pretokenize.hpp"

using namespace lm;
using namespace lm::tok;

namespace {

// The piece GPT-2's alphabet spells byte b with.
std::string alpha(int b) {
  const bool printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae);
  uint32_t cp = uint32_t(b);
  if (!printable) {
    cp = 256;
    for (int k = 0; k < b; ++k)
      if (!((k >= 0x21 && k <= 0x7e) || (k >= 0xa1 && k <= 0xac) || (k >= 0xae))) ++cp;
  }
  std::string s;
  if (cp < 0x80) {
    s += char(cp);
  } else {
    s += char(0xc0 | (cp >> 6));
    s += char(0x80 | (cp & 0x3f));
  }
  return s;
}

// Ids 0..255 are the byte pieces (id == byte), then `extra` in order.
Vocab make_vocab(const std::vector<std::pair<std::string, PieceType>>& extra, int drop_byte = -1) {
  Vocab v;
  for (int b = 0; b < 256; ++b) {
    v.pieces.push_back(b == drop_byte ? "<unused" + std::to_string(b) + ">" : alpha(b));
    v.types.push_back(b == drop_byte ? PieceType::Unused : PieceType::Normal);
  }
  for (const auto& [p, t] : extra) {
    v.pieces.push_back(p);
    v.types.push_back(t);
  }
  v.scores.assign(v.pieces.size(), 0.f);
  v.index();
  return v;
}

const std::vector<std::pair<std::string, PieceType>> kExtra = {
    {"he", PieceType::Normal},                  // 256
    {"Ġt", PieceType::Normal},                  // 257
    {"Ġthe", PieceType::Normal},                // 258
    {"ll", PieceType::Normal},                  // 259
    {"llo", PieceType::Normal},                 // 260
    {"ĠĠ", PieceType::Normal},                  // 261
    {"'s", PieceType::Normal},                  // 262
    {"12", PieceType::Normal},                  // 263
    {"<|endoftext|>", PieceType::Control},      // 264
    {"<user>", PieceType::UserDefined},         // 265
    {"aa", PieceType::Normal},                  // 266
    {"aaaa", PieceType::Normal},                // 267
    {"Ġworld", PieceType::Normal},              // 268 (no merge makes it)
};
const std::vector<std::string> kMerges = {"h e", "Ġ t", "Ġt he", "l l", "ll o", "Ġ Ġ", "' s", "1 2", "a a", "aa aa", "x y"};

std::unique_ptr<Engine> engine(const std::string& pre = "gpt-2") {
  return make_byte_bpe(make_vocab(kExtra), kMerges, pre, "test.gguf");
}

std::vector<int> encode(const Engine& e, const std::string& text) {
  std::vector<int> ids;
  e.encode(text, true, ids);
  return ids;
}

std::string decode(const Engine& e, const std::vector<int>& ids) {
  std::string s;
  for (int id : ids) s += e.token_bytes(id);
  return s;
}

std::vector<std::string> words(const std::string& pre, const std::string& text) {
  PreTokenizer p(pre, "test.gguf");
  std::vector<std::string_view> w;
  p.split(text, w);
  return {w.begin(), w.end()};
}

// Merging done the slow, obvious way: the lowest-ranked adjacent pair, leftmost first.
std::vector<std::string> reference_merge(const std::string& word, const std::vector<std::string>& merges) {
  std::vector<std::string> syms;
  for (char c : word) syms.push_back(std::string(1, c));
  for (;;) {
    size_t best = syms.size(), best_rank = merges.size();
    for (size_t i = 0; i + 1 < syms.size(); ++i)
      for (size_t r = 0; r < best_rank; ++r)
        if (merges[r] == syms[i] + " " + syms[i + 1]) {
          best = i;
          best_rank = r;
          break;
        }
    if (best == syms.size()) return syms;
    syms[best] += syms[best + 1];
    syms.erase(syms.begin() + long(best) + 1);
  }
}

}  // namespace

TEST_CASE("byte-level BPE merges by rank, the leftmost equal pair first") {
  auto e = engine();
  CHECK(encode(*e, "the hello") == std::vector<int>{'t', 256, 0x20, 256, 260});
  CHECK(encode(*e, " the") == std::vector<int>{258});
  CHECK(encode(*e, "aaa") == std::vector<int>{266, 'a'});
  CHECK(encode(*e, "aaaaaaa") == std::vector<int>{267, 266, 'a'});
  CHECK(encode(*e, "it's 12") == std::vector<int>{'i', 't', 262, 0x20, 263});
  CHECK(encode(*e, "  the") == std::vector<int>{0x20, 258});  // \s+(?!\S) leaves the last space to " the"
  CHECK(encode(*e, "").empty());
  // "x y" is a merge but "xy" no piece: the symbol comes out as its bytes, as llama.cpp does.
  CHECK(encode(*e, "xyz") == std::vector<int>{'x', 'y', 'z'});
  CHECK(std::string(e->name()) == "bytebpe");
}

TEST_CASE("byte-level BPE gives the bytes back") {
  auto e = engine();
  for (const std::string& t : {std::string("the hello world's 12345\n\n  x"), std::string("東京😀 café\r\n\t"),
                               std::string("a\xff\xfe" "b\xc3"), std::string("\x00\x01 \x7f", 4)}) {
    CHECK(decode(*e, encode(*e, t)) == t);
  }
  CHECK(e->token_bytes(264) == "");               // control
  CHECK(e->token_bytes(265) == "<user>");         // user-defined: as written
  CHECK(e->token_bytes(0x20) == " ");
  CHECK(e->token_bytes(0x0a) == "\n");
  CHECK(e->token_bytes(0xff) == "\xff");
  CHECK(e->token_bytes(258) == " the");
}

TEST_CASE("invalid UTF-8 is tokenized as bytes between the words") {
  auto e = engine();
  CHECK(encode(*e, "a\xff\xfe" "b") == std::vector<int>{'a', 0xff, 0xfe, 'b'});
  CHECK(words("gpt-2", "he\xc3(llo") == std::vector<std::string>{"he", "\xc3", "(", "llo"});
  CHECK(words("llama-bpe", "\xe6\x9d x") == std::vector<std::string>{"\xe6\x9d", " x"});
}

TEST_CASE("pre-tokenizers split tricky text as llama.cpp does") {
  const std::string t = "I'm here, they'RE 1234567 x  \n\n  y   東京😀!! é";
  CHECK(words("gpt-2", t) == std::vector<std::string>{"I", "'m", " here", ",", " they", "'", "RE", " 1234567", " x",
                                                      "  \n\n ", " y", "  ", " 東京", "😀!!", " é"});
  CHECK(words("llama-bpe", t) == std::vector<std::string>{"I", "'m", " here", ",", " they", "'RE", " ", "123", "456",
                                                          "7", " x", "  \n\n", " ", " y", "  ", " 東京", "😀!!", " é"});
  CHECK(words("qwen2", t) == std::vector<std::string>{"I", "'m", " here", ",", " they", "'RE", " ", "1", "2", "3", "4",
                                                      "5", "6", "7", " x", "  \n\n", " ", " y", "  ", " 東京", "😀!!",
                                                      " é"});
  CHECK(words("starcoder", t) == std::vector<std::string>{"I", "'m", " here", ",", " they", "'", "RE", " ", "1", "2",
                                                          "3", "4", "5", "6", "7", " x", "  \n\n ", " y", "  ", " 東京",
                                                          "😀!!", " é"});
  CHECK(words("default", t) == std::vector<std::string>{"I", "'", "m", " here", ",", " they", "'", "RE", " ", "123",
                                                        "456", "7", " x", "  \n\n ", " y", "  ", " 東京", "😀", "!!",
                                                        " é"});
  CHECK(words("deepseek-llm", t) == std::vector<std::string>{"I", "'", "m", " here", ",", " they", "'", "RE", " ",
                                                             "1234567", " x", "  ", "\n", "\n", " ", " y", "   ",
                                                             "東京", "😀", "!!", " é"});
  CHECK(words("deepseek-coder", t) == std::vector<std::string>{"I", "'", "m", " here", ",", " they", "'", "RE", " ",
                                                               "1", "2", "3", "4", "5", "6", "7", " x", "  ", "\n",
                                                               "\n", " ", " y", "  ", " ", "東京", "😀", "!!", " é"});
  CHECK(words("llama-bpe", "a.b  \t") == std::vector<std::string>{"a", ".b", "  \t"});
  CHECK(words("gpt-4o", "HelloWorld I'm") == std::vector<std::string>{"Hello", "World", " I'm"});
  CHECK(words("tiny_aya", "x 1234567") == std::vector<std::string>{"x", " ", "1", "234", "567"});
  CHECK(words("afmoe", "x 1234567") == std::vector<std::string>{"x", " ", "1", "234", "567"});
  CHECK(words("gpt-2", "a.b  \t") == std::vector<std::string>{"a", ".", "b", "  \t"});
  // llama.cpp's whitespace: U+0085 and U+3000 are spaces; deepseek's literal classes never
  // take U+3000 (llama.cpp hides non-ASCII whitespace from them).
  CHECK(words("gpt-2", "a\u0085\u0085b\u3000\u3000c") ==
        std::vector<std::string>{"a", "\u0085", "\u0085", "b", "\u3000", "\u3000", "c"});
  CHECK(words("deepseek-llm", "。\u3000。x") == std::vector<std::string>{"。", "\u3000", "。", "x"});
  CHECK(words("deepseek-llm", "! !") == std::vector<std::string>{"!", " !"});
  // The words cover the text exactly, whatever it is.
  const char odd_bytes[] = "\x00\r\n\r\n \xf0\x9f\x98 'LL 'll ²½Ⅻ";
  const std::string odd(odd_bytes, sizeof odd_bytes - 1);
  for (const auto& name : known_pre_tokenizers()) {
    std::string joined;
    for (const auto& w : words(name, odd)) joined += w;
    CHECK_MESSAGE(joined == odd, name);
  }
}

TEST_CASE("a run longer than the matcher's stack is split in windows, never an error") {
  // gpt-4o's letter expression needs JIT stack per letter: 1 MiB of letters exhausts it.
  const std::string run(1 << 20, 'a');
  std::vector<std::string> w;
  REQUIRE_NOTHROW(w = words("gpt-4o", " " + run + " b"));
  std::string joined;
  for (const auto& x : w) joined += x;
  CHECK(joined == " " + run + " b");
  CHECK(w.size() > 2);
  CHECK(w.back() == " b");
  CHECK(words("gpt-4o", " " + std::string(100, 'a')).size() == 1);
}

TEST_CASE("llama3-style vocabularies take a whole word that is a piece") {
  CHECK(encode(*engine("llama-bpe"), " world") == std::vector<int>{268});
  CHECK(encode(*engine("gpt-2"), " world") == std::vector<int>{0x20, 'w', 'o', 'r', 'l', 'd'});
  CHECK(encode(*engine("dbrx"), " world") == std::vector<int>{0x20, 'w', 'o', 'r', 'l', 'd'});  // llama3 regex, merges
}

TEST_CASE("long words merge as short ones do, in linear time") {
  auto e = engine();
  // 3000 bytes go through the heap; every "a a" pair merges before "aa aa".
  std::vector<int> ids = encode(*e, std::string(3001, 'a'));
  REQUIRE(ids.size() == 751);
  CHECK(ids.front() == 267);
  CHECK(ids[749] == 267);
  CHECK(ids.back() == 'a');
  // Past 256 KiB a word is merged in chunks: 300 KiB of 'a' is 76800 "aaaa" either way.
  ids = encode(*e, std::string(300 * 1024, 'a'));
  CHECK(ids.size() == 76800);
  CHECK(std::count(ids.begin(), ids.end(), 267) == 76800);

  // Random words over {a, b, c} against the obvious implementation, short and long.
  const std::vector<std::string> merges = {"a b", "b c", "ab c", "c a", "a a", "bc bc", "ab ab", "ca b", "c c"};
  std::vector<std::pair<std::string, PieceType>> extra;
  for (const auto& m : merges) {
    const size_t sp = m.find(' ');
    extra.push_back({m.substr(0, sp) + m.substr(sp + 1), PieceType::Normal});
  }
  Vocab v = make_vocab(extra);
  auto abc = make_byte_bpe(v, merges, "gpt-2", "abc.gguf");
  uint64_t x = 12345;
  for (int n : {2, 5, 17, 47, 48, 49, 64, 300, 1000}) {
    std::string w;
    for (int i = 0; i < n; ++i) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      w += char('a' + (x >> 33) % 3);
    }
    std::vector<int> want;
    for (const auto& s : reference_merge(w, merges)) want.push_back(*v.find(s));
    CHECK_MESSAGE(encode(*abc, w) == want, "length " << n);
  }
}

TEST_CASE("a byte without a piece is dropped, as llama.cpp does") {
  auto e = make_byte_bpe(make_vocab(kExtra, 0x03), kMerges, "gpt-2", "v.gguf");
  CHECK(encode(*e, "a\x03" "b") == std::vector<int>{'a', 'b'});
  CHECK_THROWS_WITH_AS(make_byte_bpe(make_vocab(kExtra, 'q'), kMerges, "gpt-2", "v.gguf"),
                       doctest::Contains("lacks the piece 'q' of byte 0x71"), FormatError);
}

TEST_CASE("bad merges and unknown pre-tokenizers are format errors") {
  const Vocab v = make_vocab(kExtra);
  CHECK_THROWS_WITH_AS(make_byte_bpe(v, {"h e", "he"}, "gpt-2", "bad.gguf"),
                       doctest::Contains("bad.gguf: merge 1 'he' is not two pieces"), FormatError);
  CHECK_THROWS_WITH_AS(make_byte_bpe(v, {"h zz"}, "gpt-2", "bad.gguf"),
                       doctest::Contains("merge 0 'h zz' names 'zz', which is not a piece"), FormatError);
  CHECK_THROWS_WITH_AS(make_byte_bpe(v, {"h\x01"}, "gpt-2", "bad.gguf"),
                       doctest::Contains("merge 0 'h\\x01' is not"), FormatError);  // quoted bytes escaped
  CHECK_THROWS_WITH_AS(make_byte_bpe(v, kMerges, "gpt-5", "bad.gguf"),
                       doctest::Contains("unknown pre-tokenizer 'gpt-5' (known: "), FormatError);
  CHECK_THROWS_WITH_AS(make_byte_bpe(v, kMerges, "", "bad.gguf"), doctest::Contains("llama-bpe"), FormatError);
  Vocab short_types = v;
  short_types.types.pop_back();
  CHECK_THROWS_AS(make_byte_bpe(short_types, kMerges, "gpt-2", "bad.gguf"), FormatError);
}

TEST_CASE("the known pre-tokenizers are sorted and include those of the common models") {
  const auto names = known_pre_tokenizers();
  CHECK(std::is_sorted(names.begin(), names.end()));
  for (const char* n : {"default", "gpt-2", "llama-bpe", "llama3", "qwen2", "deepseek-llm", "deepseek-coder", "falcon",
                        "mpt", "starcoder", "refact", "command-r", "phi-2", "smollm", "olmo", "dbrx", "qwen35",
                        "gpt-4o", "llama4", "tekken", "deepseek-v3", "bloom", "chameleon", "tiny_aya", "afmoe"})
    CHECK_MESSAGE(std::find(names.begin(), names.end(), n) != names.end(), n);
}

TEST_CASE("engines of one thread do not share cached words") {
  auto a = engine();
  auto b = make_byte_bpe(make_vocab(kExtra), {}, "gpt-2", "nomerges.gguf");
  CHECK(encode(*a, "the") == std::vector<int>{'t', 256});
  CHECK(encode(*b, "the") == std::vector<int>{'t', 'h', 'e'});
  CHECK(encode(*a, "the the the") == std::vector<int>{'t', 256, 258, 258});
  a.reset();
  auto c = make_byte_bpe(make_vocab(kExtra), {}, "gpt-2", "nomerges.gguf");  // may reuse a's address
  CHECK(encode(*c, "the") == std::vector<int>{'t', 'h', 'e'});
}

TEST_CASE("byte-level BPE encodes from several threads at once") {
  auto e = engine("llama-bpe");
  std::string text;
  for (int i = 0; i < 200; ++i) text += "the hello world's 12345 東京 aaaaaa\n";
  const std::vector<int> want = encode(*e, text);
  std::vector<std::vector<int>> got(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) threads.emplace_back([&, t] { got[size_t(t)] = encode(*e, text); });
  for (auto& th : threads) th.join();
  for (const auto& g : got) CHECK(g == want);
}
