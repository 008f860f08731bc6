// Pre-tokenizers of byte-level BPE vocabularies with PCRE2 (pretokenize.hpp).
//
// The expressions are those of the models' tokenizer.json files as llama.cpp applies them, with
// the adjustments that make PCRE2 split exactly where llama.cpp does:
// - \s and \S mean llama.cpp's whitespace: the 25 characters of Unicode's White_Space property
//   (U+0085 included, U+180E and U+200B not). PCRE2's own \s under UCP differs, so the
//   patterns below are rewritten (kWs) before compiling.
// - llama.cpp replaces non-ASCII whitespace by a vertical tab before running expressions that
//   list characters literally, so a literal class never matches such whitespace there; the
//   classes of deepseek-llm and deepseek-coder that include U+3000 or span U+0800..U+4E00
//   leave the whitespace characters out here.
// - (?i:'s|...) is spelled '[sS]|... as in llama.cpp, so that U+017F (long s) and the Kelvin
//   sign are not contractions.
// - Each expression matches each piece of the previous one as a subject of its own, so $ and
//   the lookaheads stop at the piece's end; $ is only the very end (PCRE2_DOLLAR_ENDONLY, as
//   in ECMAScript). deepseek-llm's \s+$ is written (?<!\s)\s+$, the same matches without
//   trying every start inside a long run of spaces.
// - llama.cpp's hand-written splitters for the gpt-2, llama3 and qwen2 expressions also match
//   a final \s+ that the gpt-2 expression lacks (whitespace before a non-space when nothing
//   else takes it); the gpt-2 expression here ends with |\s+ for that. The splitters give an
//   unmatched character a word of its own, which no input reaches once \s+ is there (every
//   character is a letter, number, whitespace or in [^\s\p{L}\p{N}]).
// - Invalid UTF-8 is matched with PCRE2_MATCH_INVALID_UTF: an invalid byte matches nothing,
//   so it ends up in the text between matches, which is a word of its own. llama.cpp replaces
//   such a byte by U+FFFD instead (and so cannot give the bytes back); this is the one place
//   where the words differ on ordinary text. Characters assigned after the Unicode version of
//   the system's PCRE2 (14.0 for 10.42) may get other categories than llama.cpp's tables give.
// Not offered: kimi-k2 and superbpe (hand-written or empty-matching splitters), jais-2 (its
// cascade of \s{512}(?!\S)|\s{256}(?!\S)... is quadratic in a run of spaces), and gemma4,
// sarvam-moe, granite-embed-multi-311m and whitespace (BPE on raw UTF-8, not on GPT-2's bytes).
#include "tokenizer/pretokenize.hpp"

#include <algorithm>
#include <map>
#include <stdexcept>

#include <pcre2.h>

#include "base/error.hpp"
#include "base/utf8.hpp"

namespace lm::tok {

namespace {

// llama.cpp's whitespace set, as the inside of a character class.
constexpr const char* kWs =
    "\\t-\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}";

// The expression of GPT-2's tokenizer plus the final \s+ (see above).
constexpr const char* kGpt2 = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr const char* kLlama3 =
    R"('[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD]|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kQwen2 =
    R"('[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD]|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kQwen35 =
    R"('[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD]|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// CJK ideographs, U+0800..U+4E00 and Hangul, without the whitespace characters in that span.
constexpr const char* kDeepseekCjk =
    R"([\x{4E00}-\x{9FA5}\x{800}-\x{167F}\x{1681}-\x{1FFF}\x{200B}-\x{2027}\x{202A}-\x{202E}\x{2030}-\x{205E}\x{2060}-\x{2FFF}\x{3001}-\x{4E00}\x{AC00}-\x{D7FF}]+)";

// The contractions as the llama3-style expressions spell them.
#define LM_CONTRACTIONS "'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD]"
// deepseek-v3's and afmoe's last expression.
constexpr const char* kDeepseek3 =
    R"([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Runs of digits cut in threes from the right, the text before a run joined to its first
// group, as llama.cpp's hand-written splitter for afmoe and tiny_aya does. \G: each match
// starts where the last one ended, so the \P{N}* never rescans; only a run's first group looks
// ahead to the run's end (once per run, possessively), the groups after it are plain threes.
constexpr const char* kDigitsFromRight =
    R"(\G(?:(?<=\p{N})\p{N}{3}|\P{N}*\p{N}{1,3}(?=(?:\p{N}{3})*+(?!\p{N}))))";
// gpt-4o's expression as llama.cpp adapts it: a letter not in a-z, then letters not in A-Z.
#define LM_GPT4O_WORDS(MARK)                                                                           \
  "[^\\r\\n\\p{L}\\p{N}]?(?:(?=[\\p{L}" MARK "])[^a-z])*(?:(?=[\\p{L}" MARK "])[^A-Z])+(?:" LM_CONTRACTIONS \
  ")?|[^\\r\\n\\p{L}\\p{N}]?(?:(?=[\\p{L}" MARK "])[^a-z])+(?:(?=[\\p{L}" MARK "])[^A-Z])*(?:" LM_CONTRACTIONS ")?"

struct PreSpec {
  std::vector<const char*> exprs;
  bool ignore_merges = false;  // a word that is a whole token is that token (llama3 family)
};

// llama.cpp's names for tokenizer.ggml.pre, grouped by the expressions they select.
const std::map<std::string, PreSpec>& specs() {
  static const std::map<std::string, PreSpec> table = [] {
    std::map<std::string, PreSpec> t;
    const PreSpec gpt2{{kGpt2}};
    const PreSpec deflt{{R"([\p{P}\$\+<=>\^~\|]+)", kGpt2, R"(\p{N}+)", R"([0-9][0-9][0-9])"}};
    const PreSpec falcon{{R"([\p{P}\$\+<=>\^~\|`]+)", kGpt2, R"([0-9][0-9][0-9])"}};
    const PreSpec starcoder{{R"(\p{N})", kGpt2}};
    const PreSpec llama3{{kLlama3}, true};
    const PreSpec llama3_merging{{kLlama3}};
    const PreSpec qwen2{{kQwen2}};
    const PreSpec qwen35{{kQwen35}};
    const PreSpec deepseek_llm{{
        R"([\r\n])",
        R"(\s?[A-Za-z\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF}\x{1C4}-\x{293}\x{295}-\x{2AF})"
        R"(\x{370}-\x{373}\x{376}\x{377}\x{37B}-\x{37D}\x{37F}\x{386}\x{388}-\x{38A}\x{38C}\x{38E}-\x{3A1})"
        R"(\x{3A3}-\x{3F5}\x{3F7}-\x{481}\x{48A}-\x{52F}\x{531}-\x{556}\x{10A0}-\x{10C5}\x{13A0}-\x{13F5})"
        R"(\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF}\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77}\x{1D79}-\x{1D9A})"
        R"(\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D}\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D}\x{1F50}-\x{1F57}\x{1F59}\x{1F5B})"
        R"(\x{1F5D}\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4}\x{1FC6}-\x{1FCC})"
        R"(\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4}\x{1FF6}-\x{1FFC}\x{2102}\x{2107})"
        R"(\x{210A}-\x{2113}\x{2115}\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}\x{212A}-\x{212D}\x{212F}-\x{2134})"
        R"(\x{2139}\x{213C}-\x{213F}\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184}\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4})"
        R"(\x{2CEB}-\x{2CEE}\x{2CF2}\x{2CF3}\x{A640}-\x{A66D}\x{A680}-\x{A69B}\x{A722}-\x{A76F}\x{A771}-\x{A787})"
        R"(\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}\x{FB00}-\x{FB06}\x{FB13}-\x{FB17}\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A})"
        R"(\x{10400}-\x{1044F}\x{104B0}-\x{104D3}\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2})"
        R"(\x{118A0}-\x{118DF}\x{1E900}-\x{1E943}]+)",
        R"(\s?[!-/:-~\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3001}-\x{3002}]+)",
        R"((?<!\s)\s+$)",
        kDeepseekCjk,
        R"(\p{N}+)",
    }};
    const PreSpec deepseek_coder{{R"([\r\n])", R"(\s?\p{L}+)", R"(\s?\p{P}+)", kDeepseekCjk, R"(\p{N})"}};
    const PreSpec deepseek3{{R"(\p{N}{1,3})", R"([\x{4E00}-\x{9FA5}\x{3040}-\x{309F}\x{30A0}-\x{30FF}]+)", kDeepseek3}};
    const PreSpec poro{{R"( ?[^(\s|.,!?\x{2026}\x{3002}\x{FF0C}\x{3001}\x{964}\x{6D4}\x{60C})]+)"}};
    const PreSpec viking{{poro.exprs[0], R"(\p{N})"}};
    const PreSpec gpt4o{{LM_GPT4O_WORDS("") R"(|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)"}};
    const PreSpec tekken{{R"([^\r\n\p{L}\p{N}]?(?:(?=[\p{L}])[^a-z])*(?:(?=[\p{L}])[^A-Z])+)"
                          R"(|[^\r\n\p{L}\p{N}]?(?:(?=[\p{L}])[^a-z])+(?:(?=[\p{L}])[^A-Z])*)"
                          R"(|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)"},
                         true};
    const PreSpec granite_multi{
        {LM_GPT4O_WORDS("\\p{M}") R"(|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)"}, true};
    const PreSpec seed_coder{{LM_CONTRACTIONS
                              R"(|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+)"}};
    const PreSpec bailing{{R"('(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N})"
                           R"(| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+)"}};
    const PreSpec exaone_moe{{LM_CONTRACTIONS R"(|[^\r\n\p{L}\p{N}]?(?:\p{L}\p{M}*(?: \p{L}\p{M}*)*)+|\p{N})"
                                              R"(| ?[^\s\p{L}\p{N}]+[\r\n/]?|\s*[\r\n]|\s+(?!\S)|\s+)"}};
    const PreSpec laguna{{R"([^\n]+|\n+)", kQwen2}};
    const PreSpec minicpm5{{R"(\p{N}{1,3})", LM_CONTRACTIONS R"(|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}+)"
                                                             R"(| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"},
                           true};
    // llama.cpp runs youtu's and tiny_aya's \p{Lu}, \p{Ll}, ... as any letter (\p{L}).
    const PreSpec youtu{{R"([\x{AC00}-\x{D7A3}\x{3131}-\x{318E}]+)"
                         R"(|[\x{FF01}\x{2026}\x{201C}\x{201D}\x{2018}\x{2019}\x{2014}\x{FF1A}\x{FF1B}\x{FF0C}\x{3001}-\x{303F}\x{FE30}-\x{FE4F}]+)"
                         R"(|[\x{3105}-\x{312F}]+|[\x{4E00}-\x{9FA5}\x{3040}-\x{309F}\x{30A0}-\x{30FF}]+)",
                         R"([^\r\n\p{L}\p{N}]?[\p{L}\p{M}]*[\p{L}\p{M}]+(?:)" LM_CONTRACTIONS
                         R"()?|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+[\p{L}\p{M}]*(?:)" LM_CONTRACTIONS
                         R"()?|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)"},
                        true};
    const PreSpec tiny_aya{{kDigitsFromRight,
                            R"([^\r\n\p{L}\p{N}]?[\p{L}\p{M}]*[\p{L}\p{M}]+(?:)" LM_CONTRACTIONS
                            R"()?|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+[\p{L}\p{M}]*(?:)" LM_CONTRACTIONS
                            R"()?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)"}};
    const PreSpec afmoe{{kDigitsFromRight,
                         R"([\x{4E00}-\x{9FFF}\x{3400}-\x{4DBF}\x{8C48}-\x{FAFF}\x{3040}-\x{309F}\x{30A0}-\x{30FF})"
                         R"(\x{FF65}-\x{FF9F}\x{2F00}-\x{2FDF}\x{E40}-\x{E7F}\x{E80}-\x{EFF}\x{1780}-\x{17FF}\x{1000}-\x{109F})"
                         R"(\x{AA60}-\x{AA7F}\x{A9E0}-\x{A9FF}\x{AC00}-\x{D7AF}\x{1100}-\x{11FF}]+)",
                         kDeepseek3}};
    const PreSpec chameleon{{R"(<sentinel:[0-9]+>)", R"((?:IMGIMG)(?:[A-I]{1,4})Z)", R"([\t\n]|    |  )", R"(\p{N})",
                             R"([\p{P}!-/:-@\[-`{-~])", kGpt2}};

    for (const char* n : {"gpt-2", "phi-2", "mpt", "olmo", "jais", "trillion", "granite-docling", "exaone4",
                          "jina-es", "jina-de", "jina-v2-es", "jina-v2-de", "jina-v1-en", "jina-v2-code",
                          "roberta-bpe", "gigachat", "a.x-4.0", "mellum", "modern-bert"})
      t[n] = gpt2;
    t["default"] = deflt;
    t["falcon"] = falcon;
    for (const char* n : {"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b",
                          "mellum2"})
      t[n] = starcoder;
    for (const char* n : {"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2",
                          "jina-v5-nano"})
      t[n] = llama3;
    for (const char* n : {"dbrx", "smaug-bpe", "glm4", "chatglm-bpe"}) t[n] = llama3_merging;
    for (const char* n : {"qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "megrez", "stablelm2", "hunyuan",
                          "solar-open", "grok-2"})
      t[n] = qwen2;
    t["qwen35"] = qwen35;
    t["deepseek-llm"] = deepseek_llm;
    t["deepseek-coder"] = deepseek_coder;
    for (const char* n : {"deepseek-v3", "hunyuan-dense", "joyai-llm"}) t[n] = deepseek3;
    for (const char* n : {"poro-chat", "bloom", "gpt3-finnish"}) t[n] = poro;
    t["viking"] = viking;
    for (const char* n : {"gpt-4o", "llama4", "kanana2", "talkie", "minimax-m2"}) t[n] = gpt4o;
    t["tekken"] = tekken;
    t["granite-embed-multi-97m"] = granite_multi;
    t["seed-coder"] = seed_coder;
    for (const char* n : {"bailingmoe", "bailingmoe2", "llada-moe"}) t[n] = bailing;
    t["exaone-moe"] = exaone_moe;
    t["laguna"] = laguna;
    t["minicpm5"] = minicpm5;
    t["youtu"] = youtu;
    for (const char* n : {"tiny_aya", "cohere2moe"}) t[n] = tiny_aya;
    t["afmoe"] = afmoe;
    t["chameleon"] = chameleon;
    return t;
  }();
  return table;
}

// Replaces \s and \S by llama.cpp's whitespace class (see the top of the file).
std::string with_whitespace_class(const char* expr) {
  std::string out;
  bool in_class = false;
  for (const char* p = expr; *p; ++p) {
    if (*p == '\\' && p[1]) {
      if (p[1] == 's') {
        out += in_class ? std::string(kWs) : "[" + std::string(kWs) + "]";
      } else if (p[1] == 'S') {
        if (in_class) throw std::logic_error("\\S inside a class");
        out += "[^" + std::string(kWs) + "]";
      } else {
        out += p[0];
        out += p[1];
      }
      ++p;
      continue;
    }
    if (*p == '[' && !in_class) in_class = true;
    else if (*p == ']' && in_class) in_class = false;
    out += *p;
  }
  return out;
}

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  if (pcre2_get_error_message(code, buf, sizeof buf) < 0) return "error " + std::to_string(code);
  return reinterpret_cast<const char*>(buf);
}

// Per-thread matching state: match data (only the whole match is read) and a JIT stack large
// enough for lookaheads over long runs.
struct MatchState {
  pcre2_match_data* data = nullptr;
  pcre2_match_context* context = nullptr;
  pcre2_jit_stack* stack = nullptr;
  MatchState() {
    data = pcre2_match_data_create(1, nullptr);
    context = pcre2_match_context_create(nullptr);
    stack = pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024, nullptr);
    if (!data || !context || !stack) throw std::bad_alloc();
    pcre2_jit_stack_assign(context, nullptr, stack);
  }
  ~MatchState() {
    pcre2_jit_stack_free(stack);
    pcre2_match_context_free(context);
    pcre2_match_data_free(data);
  }
  MatchState(const MatchState&) = delete;
  MatchState& operator=(const MatchState&) = delete;
};

MatchState& match_state() {
  thread_local MatchState state;
  return state;
}

}  // namespace

struct PreTokenizer::Impl {
  std::string name;
  bool ignore_merges = false;
  std::vector<pcre2_code*> codes;
  std::vector<bool> jit;
  ~Impl() {
    for (auto* c : codes) pcre2_code_free(c);
  }

  // Appends the matches of expression k in `piece` and the text between them.
  //
  // Some expressions (gpt-4o's letter classes with lookaheads, exaone-moe's nested groups)
  // need JIT stack in proportion to the length of a match, so a run of a million letters
  // exhausts it (llama.cpp's std::regex overflows the C stack and crashes on such input). Then
  // matching goes on in windows of kWindow bytes: the subject ends at the window's end, so the
  // words of such a run are cut there, and only there do they differ from an unbounded match.
  void split_one(size_t k, std::string_view piece, std::vector<std::string_view>& out) const {
    constexpr size_t kWindow = 64 * 1024;
    MatchState& ms = match_state();
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(piece.data());
    const size_t n = piece.size();
    size_t pos = 0, last = 0, end = n;  // end < n while matching in a window
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(ms.data);
    while (pos < n) {
      const int rc = jit[k] ? pcre2_jit_match(codes[k], subject, end, pos, 0, ms.data, ms.context)
                            : pcre2_match(codes[k], subject, end, pos, 0, ms.data, ms.context);
      if (rc == PCRE2_ERROR_NOMATCH) {
        if (end == n) break;
        pos = end;  // nothing more in this window: on with the whole rest
        end = n;
        continue;
      }
      if (rc < 0) {
        const bool resources = rc == PCRE2_ERROR_JIT_STACKLIMIT || rc == PCRE2_ERROR_MATCHLIMIT ||
                               rc == PCRE2_ERROR_DEPTHLIMIT || rc == PCRE2_ERROR_HEAPLIMIT;
        if (!resources || end - pos <= kWindow)
          throw Error("pre-tokenizer " + name + ": matching failed: " + pcre2_message(rc));
        end = pos + kWindow;
        while (end > pos + 1 && (uint8_t(piece[end]) & 0xc0) == 0x80) --end;  // a character boundary
        continue;
      }
      const size_t s = ov[0], e = ov[1];
      if (e == s) {  // an empty match is no word; look again one character further
        pos = s + 1;
        while (pos < n && (uint8_t(piece[pos]) & 0xc0) == 0x80) ++pos;
      } else {
        if (s > last) out.push_back(piece.substr(last, s - last));
        out.push_back(piece.substr(s, e - s));
        last = pos = e;
      }
      if (pos >= end) end = n;
    }
    if (last < n) out.push_back(piece.substr(last));
  }
};

PreTokenizer::PreTokenizer(const std::string& name, const std::string& source) : impl_(std::make_unique<Impl>()) {
  const auto& table = specs();
  auto it = table.find(name);
  if (it == table.end()) {
    std::string known;
    for (const auto& kv : table) known += (known.empty() ? "" : ", ") + kv.first;
    throw FormatError(source, "unknown pre-tokenizer '" + escape_bytes(name) + "' (known: " + known + ")");
  }
  impl_->name = name;
  impl_->ignore_merges = it->second.ignore_merges;
  for (const char* expr : it->second.exprs) {
    const std::string pattern = with_whitespace_class(expr);
    int err = 0;
    PCRE2_SIZE off = 0;
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                     PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF | PCRE2_DOLLAR_ENDONLY, &err,
                                     &off, nullptr);
    if (!code)
      throw std::logic_error("pre-tokenizer " + name + ": expression does not compile at " + std::to_string(off) +
                             ": " + pcre2_message(err));
    impl_->codes.push_back(code);
    impl_->jit.push_back(pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0);
  }
}

PreTokenizer::PreTokenizer(PreTokenizer&&) noexcept = default;
PreTokenizer& PreTokenizer::operator=(PreTokenizer&&) noexcept = default;
PreTokenizer::~PreTokenizer() = default;

void PreTokenizer::split(std::string_view text, std::vector<std::string_view>& words) const {
  const auto& codes = impl_->codes;
  if (text.empty()) return;
  if (codes.size() == 1) {
    impl_->split_one(0, text, words);
    return;
  }
  // Each expression splits the pieces of the one before; the last writes into `words`.
  thread_local std::vector<std::string_view> a, b;
  a.clear();
  a.push_back(text);
  for (size_t k = 0; k < codes.size(); ++k) {
    auto& out = k + 1 == codes.size() ? words : b;
    if (&out == &b) b.clear();
    for (std::string_view piece : a) impl_->split_one(k, piece, out);
    if (&out == &b) std::swap(a, b);
  }
  for (auto* v : {&a, &b})  // a huge text leaves huge lists: give them back
    if (v->capacity() > (size_t(1) << 20)) std::vector<std::string_view>().swap(*v);
}

const std::string& PreTokenizer::name() const { return impl_->name; }

std::vector<std::string> PreTokenizer::known() {
  std::vector<std::string> names;
  for (const auto& kv : specs()) names.push_back(kv.first);
  return names;  // std::map keeps them sorted
}

std::vector<std::string> PreTokenizer::expressions(const std::string& name) {
  auto it = specs().find(name);
  if (it == specs().end()) return {};
  return {it->second.exprs.begin(), it->second.exprs.end()};
}

bool PreTokenizer::ignore_merges() const { return impl_->ignore_merges; }

}  // namespace lm::tok
