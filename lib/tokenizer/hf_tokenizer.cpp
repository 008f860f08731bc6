// A Hugging Face model directory's tokenizer as llama.cpp's convert_hf_to_gguf.py writes it
// into GGUF (hf_tokenizer.hpp). What the converter does, and what is done here instead:
// - tokenizer.json, model "BPE" with a ByteLevel pre-tokenizer: family gpt2; the pieces by id
//   (model vocabulary and added tokens, gaps up to config.json's vocab_size as [PADi] unused
//   pieces), the merges ("a b" strings, or [a, b] pairs whose spaces become U+0120). The
//   converter names the pre-tokenizer by hashing a test string's tokenization with the Python
//   tokenizers library; here the pre_tokenizer section is turned into a list of expressions
//   and matched with the lists PreTokenizer holds for each name.
// - tokenizer.json, model "WordPiece": family bert; "##" dropped from continuation pieces and
//   U+2581 put before word-initial ones, control pieces left as they are.
// - tokenizer.model: family llama, the pieces, scores and types of the SentencePiece model,
//   then added_tokens.json and tokenizer_config.json's added_tokens_decoder applied.
// - Added tokens: special (or spelled like <|...|>) → control, else user-defined.
// - Special ids and add_bos/add_eos/add_sep: gguf-py's SpecialVocab (tokenizer_config.json's
//   *_token looked up among tokenizer.json's added tokens, the post_processor's templates,
//   config.json's *_token_id); where the converter writes none, llama.cpp's default for the
//   family, as lm's GGUF loader applies it.
#include "tokenizer/hf_tokenizer.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <functional>
#include <limits>
#include <map>
#include <set>

#include "base/error.hpp"
#include "base/file.hpp"
#include "base/json.hpp"
#include "base/utf8.hpp"
#include "tokenizer/pretokenize.hpp"

namespace lm::tok {

namespace {

// A directory whose vocabulary claims more ids than this beyond the tokens it lists is refused
// (memory grows with the files, not with a number in them).
constexpr int64_t kMaxPadding = int64_t(1) << 20;

// Deeper Sequences of normalizers or pre-tokenizers are refused (no model has more than two).
constexpr int kMaxNesting = 32;

constexpr const char* kSpace = "\xe2\x96\x81";  // U+2581, SentencePiece's space

bool is_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// nlohmann-json's parser recurses once per level of nesting (a copy per level), so a file
// nested deeper than this is refused before parsing; real files nest fewer than 10 levels.
constexpr int kMaxJsonDepth = 512;

Json read_json(const std::string& path) {
  const std::string text = load_file(path);
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth)
        throw FormatError(path, "JSON nested more than " + std::to_string(kMaxJsonDepth) + " deep", int64_t(i));
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  try {
    return Json::parse(text);
  } catch (const nlohmann::json::exception& e) {  // parse_error, and out_of_range for 1e400
    throw FormatError(path, std::string("not JSON: ") + e.what());
  }
}

// Python's truth value of a JSON value.
bool truthy(const Json& j) {
  if (j.is_null()) return false;
  if (j.is_boolean()) return j.get<bool>();
  if (j.is_string()) return !j.get_ref<const std::string&>().empty();
  if (j.is_number()) return j.get<double>() != 0;
  return !j.empty();
}

// obj.get(key) with Python's default of None.
const Json& get(const Json& obj, const char* key) {
  static const Json null;
  if (!obj.is_object()) return null;
  auto it = obj.find(key);
  return it == obj.end() ? null : *it;
}

std::optional<int64_t> as_int(const Json& j) {
  if (j.is_number_integer()) return j.get<int64_t>();
  return std::nullopt;
}

// The converter's does_token_look_special.
bool looks_special(const std::string& t) {
  auto starts = [&](const char* p) { return t.rfind(p, 0) == 0; };
  auto ends = [&](const std::string& s) {
    return t.size() >= s.size() && t.compare(t.size() - s.size(), s.size(), s) == 0;
  };
  if (t == "<pad>" || t == "<mask>" || t == "<2mass>" || t == "[@BOS@]") return true;
  if (starts("<|") && ends("|>")) return true;
  if (starts("<\xef\xbd\x9c") && ends("\xef\xbd\x9c>")) return true;  // <｜ ... ｜> (deepseek-coder)
  return starts("<unused") && ends(">");
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
  return s;
}

// What gguf-py's SpecialVocab finds: special ids by type and the add_*_token flags.
struct Specials {
  std::map<std::string, int64_t> ids;  // bos, eos, unk, sep, pad, cls, mask, eot, eom
  std::map<std::string, bool> add;     // bos, eos, sep, ...
  std::optional<bool> lowercase, strip_accents;
};

// `tj`: tokenizer.json (null if absent), `tc`: tokenizer_config.json (null if absent),
// `config`: config.json (null if absent). n_vocab < 0: no range check.
Specials special_vocab(const Json& tj, Json tc, const Json& config, int64_t n_vocab, const std::string& dir) {
  const std::string tj_path = dir + "/tokenizer.json", config_path = dir + "/config.json";
  Specials s;
  std::vector<std::string> types = {"bos", "eos", "unk", "sep", "pad", "cls", "mask"};
  auto set_special = [&](const std::string& typ, const Json& tid, const std::string& where) {
    auto id = as_int(tid);
    if (!id) return;
    if (*id < 0) throw FormatError(where, "invalid value for special token type " + typ + ": " + std::to_string(*id));
    if (n_vocab < 0 || *id < n_vocab) s.ids.emplace(typ, *id);  // the first one found stays
  };
  Json added_tokens = Json::array();
  if (!tj.is_null()) {
    const Json& norm = get(tj, "normalizer");
    std::function<void(const Json&, int)> parse_normalizer = [&](const Json& n, int depth) {
      if (depth > kMaxNesting)
        throw FormatError(tj_path, "normalizer: Sequences nested more than " + std::to_string(kMaxNesting) + " deep");
      const Json& t = get(n, "type");
      if (t == "Lowercase") {
        s.lowercase = true;
      } else if (t == "StripAccents") {
        s.strip_accents = true;
      } else if (t == "BertNormalizer") {
        if (n.contains("lowercase")) s.lowercase = truthy(n["lowercase"]);
        if (n.contains("strip_accents") && !n["strip_accents"].is_null()) s.strip_accents = truthy(n["strip_accents"]);
      } else if (t == "Sequence" && get(n, "normalizers").is_array()) {
        for (const Json& m : n["normalizers"]) parse_normalizer(m, depth + 1);
      }
    };
    if (truthy(norm)) parse_normalizer(norm, 0);
    if (get(tj, "added_tokens").is_array()) added_tokens = tj["added_tokens"];
  }
  const bool have_tc = tc.is_object() && !tc.empty();
  if (!tj.is_null()) {
    Json special_bos = get(tc, "bos_token"), special_cls = get(tc, "cls_token");
    Json special_eos = get(tc, "eos_token"), special_sep = get(tc, "sep_token");
    if (!truthy(special_bos) && truthy(special_cls) && have_tc) tc["bos_token"] = special_bos = special_cls;
    if (!truthy(special_eos) && truthy(special_sep) && have_tc) tc["eos_token"] = special_eos = special_sep;
    const Json& pp = get(tj, "post_processor");
    if (truthy(pp)) {
      Json processors = get(pp, "processors");
      if (!pp.contains("processors")) processors = Json::array({pp});
      for (const Json& proc : processors) {
        const Json& ptype = get(proc, "type");
        if (ptype == "RobertaProcessing") {
          s.add["bos"] = s.add["eos"] = s.add["sep"] = true;
          if (!truthy(special_cls) && have_tc) {
            const Json& cls = get(proc, "cls");
            special_cls = cls.is_array() && !cls.empty() ? cls[0] : special_bos;
            tc["cls_token"] = special_cls;
          }
          if (!truthy(special_sep) && have_tc) {
            const Json& sep = get(proc, "sep");
            special_sep = sep.is_array() && !sep.empty() ? sep[0] : special_eos;
            tc["sep_token"] = special_sep;
          }
          continue;
        }
        if (ptype != "TemplateProcessing") continue;
        const Json& single = get(proc, "single");
        Json pair = get(proc, "pair");
        auto special_id = [](const Json& item) { return get(get(item, "SpecialToken"), "id"); };
        Json first, last;
        if (single.is_array() && single.size() > 1) {
          first = special_id(single.front());
          if (truthy(first)) {
            if (!have_tc) {
              special_bos = first;
            } else if (first != special_bos && first != special_cls) {
              if (!truthy(special_bos)) tc["bos_token"] = special_bos = first;
              if (!truthy(special_cls)) tc["cls_token"] = special_cls = first;
            }
            s.add["bos"] = first == special_bos || first == special_cls;
          }
          last = special_id(single.back());
          if (truthy(last)) {
            if (!have_tc) {
              special_eos = last;
            } else if (last != special_eos) {
              if (std::find(types.begin(), types.end(), "eot") == types.end()) {
                types.push_back("eot");
                tc["eot_token"] = special_eos;
              } else if (std::find(types.begin(), types.end(), "eom") == types.end()) {
                types.push_back("eom");
                tc["eom_token"] = special_eos;
              }
              tc["eos_token"] = special_eos = last;
            }
            s.add["eos"] = last == special_eos;
          }
        }
        if (pair.is_array() && !pair.empty()) {
          const size_t start = truthy(first) && special_id(pair.front()) == first ? 1 : 0;
          const bool stop = truthy(last) && special_id(pair.back()) == last;
          const size_t end = pair.size() - (stop ? 1 : 0);
          Json mid = Json::array();
          for (size_t i = start; i < end; ++i) mid.push_back(pair[i]);
          if (!mid.empty()) {
            const Json a = get(get(mid.front(), "Sequence"), "id"), b = get(get(mid.back(), "Sequence"), "id");
            if (a == "A" && b == "B" && mid.size() > 2) {
              bool add_sep = false;
              const Json e1 = special_id(mid[1]);
              if (truthy(e1) && (e1 == special_sep || e1 == special_eos) && !truthy(last)) add_sep = true;
              if (mid.size() == 4) {
                const Json e2 = special_id(mid[2]);
                if (truthy(e2) && (e2 == special_sep || e2 == special_eos)) add_sep = true;
              }
              s.add["sep"] = add_sep;
              if (add_sep && !truthy(special_sep) && have_tc) tc["sep_token"] = special_eos;
            }
          }
        }
      }
    }
  }
  if (have_tc) {
    for (const std::string& typ : types) {
      const Json& add_entry = get(tc, ("add_" + typ + "_token").c_str());
      if (add_entry.is_boolean()) s.add[typ] = add_entry.get<bool>();
      const Json& entry = get(tc, (typ + "_token").c_str());
      std::string content;
      if (entry.is_string()) {
        content = entry.get<std::string>();
      } else if (entry.is_object() && get(entry, "content").is_string()) {
        content = entry["content"].get<std::string>();
      } else {
        continue;
      }
      for (const Json& atok : added_tokens)
        if (get(atok, "content") == content) {
          set_special(typ, get(atok, "id"), tj_path);
          break;
        }
    }
  }
  if (config.is_object())
    for (const std::string& typ : types) {
      const std::string key = typ + "_token_id";
      Json id = get(config, key.c_str());
      if (id.is_null()) id = get(get(config, "text_config"), key.c_str());
      set_special(typ, id, config_path);
    }
  return s;
}

// llama.cpp's defaults where the converter writes no key, and the ids SpecialVocab found.
void apply_specials(VocabSpec& v, const Specials& s) {
  const int64_t n = int64_t(v.pieces.size());
  auto id = [&](const char* typ, std::optional<int> fallback) -> std::optional<int> {
    auto it = s.ids.find(typ);
    if (it != s.ids.end()) return it->second < n ? std::optional<int>(int(it->second)) : std::nullopt;
    return fallback && *fallback < n ? fallback : std::nullopt;
  };
  std::optional<int> unk, bos, eos, sep, pad, mask;
  bool add_bos = true, add_sep = false;
  if (v.family == "bert") {
    unk = 100, bos = 101, sep = 102, pad = 0, mask = 103;
    add_sep = true;
  } else if (v.family == "gpt2") {
    bos = eos = 11;
    static const char* kBos[] = {"llama-bpe", "llama3", "falcon3", "falcon-h1", "pixtral",
                                 "midm-2.0",  "lfm2",   "tekken",  "chameleon"};
    add_bos = std::find(std::begin(kBos), std::end(kBos), v.pre) != std::end(kBos);
  } else {
    unk = 0, bos = 1, eos = 2;
  }
  v.unk_id = id("unk", unk);
  v.bos_id = id("bos", bos);
  v.eos_id = id("eos", eos);
  v.eot_id = id("eot", std::nullopt);
  v.pad_id = id("pad", pad);
  v.sep_id = id("sep", sep);
  v.mask_id = id("mask", mask);
  auto flag = [&](const char* typ, bool fallback) {
    auto it = s.add.find(typ);
    return it == s.add.end() ? fallback : it->second;
  };
  v.add_bos = flag("bos", add_bos);
  v.add_eos = flag("eos", false);
  v.add_sep = flag("sep", add_sep);
  // As lm's GGUF loader does: the unknown id names the unknown piece when there is one.
  if (v.unk_id && v.types[size_t(*v.unk_id)] != PieceType::Unknown)
    for (size_t i = 0; i < v.pieces.size(); ++i)
      if (v.types[i] == PieceType::Unknown) v.unk_id = int(i);
}

// config.json's vocab_size, if it has one.
std::optional<int64_t> config_vocab_size(const Json& config, const std::string& path) {
  const Json& j = get(config, "vocab_size");
  if (j.is_null()) return std::nullopt;
  auto n = as_int(j);
  if (!n || *n <= 0 || *n > std::numeric_limits<int32_t>::max())
    throw FormatError(path, "vocab_size: expected a positive integer, got " + j.dump());
  return n;
}

// ---- Pre-tokenizer recognition ----

// A tokenizer.json expression in the spelling of pretokenize.cpp: the case-insensitive
// contractions as character classes, characters outside ASCII as \x{...}.
std::string lm_spelling(std::string re) {
  re = replace_all(std::move(re), "(?i:'s|'t|'re|'ve|'m|'ll|'d)",
                   "'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD]");
  std::string out;
  for (size_t i = 0; i < re.size();) {
    const size_t n = utf8_sequence_length(re, i);
    if (n <= 1) {
      out += re[i++];
      continue;
    }
    uint32_t cp = uint8_t(re[i]) & (0x7f >> n);
    for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (uint8_t(re[i + k]) & 0x3f);
    char buf[16];
    std::snprintf(buf, sizeof buf, "\\x{%X}", unsigned(cp));
    out += buf;
    i += n;
  }
  return out;
}

// GPT-2's expression, which a ByteLevel pre-tokenizer with use_regex applies.
constexpr const char* kByteLevelRegex = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// Appends the expressions of one pre_tokenizer node; `byte_level` is set if a ByteLevel is met.
void collect(const Json& node, std::vector<std::string>& exprs, bool& byte_level, const std::string& path,
             int depth = 0) {
  if (depth > kMaxNesting)
    throw FormatError(path, "pre_tokenizer: Sequences nested more than " + std::to_string(kMaxNesting) + " deep");
  const Json& type = get(node, "type");
  if (type == "Sequence") {
    for (const Json& p : get(node, "pretokenizers")) collect(p, exprs, byte_level, path, depth + 1);
  } else if (type == "ByteLevel") {
    byte_level = true;
    const Json& use_regex = get(node, "use_regex");
    if (use_regex.is_null() || truthy(use_regex)) exprs.push_back(kByteLevelRegex);
  } else if (type == "Digits") {
    exprs.push_back(truthy(get(node, "individual_digits")) ? R"(\p{N})" : R"(\p{N}+)");
  } else if (type == "Split") {
    const Json& pattern = get(node, "pattern");
    std::string re;
    if (get(pattern, "Regex").is_string()) {
      re = lm_spelling(pattern["Regex"].get<std::string>());
    } else if (get(pattern, "String").is_string()) {
      for (char c : pattern["String"].get<std::string>()) {
        if (std::string_view("\\^$.|?*+()[]{}").find(c) != std::string_view::npos) re += '\\';
        re += c;
      }
      re = lm_spelling(re);
    } else {
      re = "Split " + pattern.dump();
    }
    const Json& behavior = get(node, "behavior");
    if (!behavior.is_null() && behavior != "Isolated") re += " (behavior " + behavior.dump() + ")";
    if (truthy(get(node, "invert"))) re += " (inverted)";
    exprs.push_back(re);
  } else if (!node.is_null()) {
    exprs.push_back(type.is_string() ? type.get<std::string>() : node.dump());
  }
}

// The llama.cpp name of the expressions `exprs`; among names with the same expressions, the one
// whose ignore_merges agrees with the model's, then the first of a preference list.
std::optional<std::string> name_of(const std::vector<std::string>& exprs, const Json& ignore_merges) {
  std::vector<std::string> candidates;
  for (const std::string& name : PreTokenizer::known())
    if (PreTokenizer::expressions(name) == exprs) candidates.push_back(name);
  if (candidates.empty()) return std::nullopt;
  if (ignore_merges.is_boolean()) {
    std::vector<std::string> agree;
    for (const std::string& name : candidates)
      if (PreTokenizer(name, "").ignore_merges() == ignore_merges.get<bool>()) agree.push_back(name);
    if (!agree.empty()) candidates = agree;
  }
  static const char* kPreferred[] = {"gpt-2",        "llama-bpe",      "qwen2",  "smollm", "smaug-bpe", "deepseek-v3",
                                     "deepseek-llm", "deepseek-coder", "gpt-4o", "tekken", "falcon",    "default"};
  for (const char* p : kPreferred)
    if (std::find(candidates.begin(), candidates.end(), p) != candidates.end()) return p;
  return candidates.front();
}

// ---- tokenizer.json ----

struct Added {
  std::string content;
  bool special = false;
};

Tokenizer from_tokenizer_json(const std::string& dir, const Json& config, const std::string& config_path) {
  const std::string path = dir + "/tokenizer.json";
  const Json tj = read_json(path);
  if (!tj.is_object()) throw FormatError(path, "expected a JSON object");
  const Json& model = get(tj, "model");
  Json mtype = get(model, "type");
  // Older files leave the type out; the tokenizers library then tells the models apart by
  // their fields (BPE has merges, WordPiece a continuation prefix, Unigram a list of pieces).
  if (mtype.is_null() && model.is_object()) {
    if (model.contains("merges"))
      mtype = "BPE";
    else if (model.contains("continuing_subword_prefix") || model.contains("max_input_chars_per_word"))
      mtype = "WordPiece";
    else if (get(model, "vocab").is_array())
      mtype = "Unigram";
    else if (model.contains("vocab"))
      mtype = "WordLevel";
  }
  const bool wordpiece = mtype == "WordPiece";
  if (mtype != "BPE" && !wordpiece)
    throw FormatError(path, "model.type " + (mtype.is_null() ? std::string("missing") : mtype.dump()) +
                                " is not supported; expected BPE (byte-level) or WordPiece, or a tokenizer.model "
                                "(SentencePiece) beside it");
  const Json& vocab = get(model, "vocab");
  if (!vocab.is_object()) throw FormatError(path, "model.vocab: expected an object of token: id");

  // Ids of the model vocabulary, then the added tokens (as AutoTokenizer's vocab merges them).
  std::map<int64_t, std::string> by_id;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    auto id = as_int(it.value());
    if (!id || *id < 0)
      throw FormatError(
          path, "model.vocab[\"" + escape_bytes(it.key()) + "\"]: expected an id >= 0, got " + it.value().dump());
    by_id[*id] = it.key();
  }
  std::map<int64_t, Added> added_by_id;
  std::set<std::string> added_content;
  const Json& added = get(tj, "added_tokens");
  if (!added.is_null() && !added.is_array()) throw FormatError(path, "added_tokens: expected an array");
  for (size_t i = 0; i < added.size(); ++i) {
    const Json& a = added[i];
    auto id = as_int(get(a, "id"));
    const Json& content = get(a, "content");
    if (!id || *id < 0 || !content.is_string())
      throw FormatError(path, "added_tokens[" + std::to_string(i) + "]: expected an id >= 0 and a content string");
    Added info{content.get<std::string>(), truthy(get(a, "special"))};
    by_id[*id] = info.content;
    added_content.insert(info.content);
    added_by_id[*id] = info;
  }
  if (by_id.empty()) throw FormatError(path, "model.vocab is empty");
  const int64_t max_id = by_id.rbegin()->first;
  const int64_t n = config_vocab_size(config, config_path).value_or(max_id + 1);
  if (max_id >= n)
    throw FormatError(config_path, "vocab_size " + std::to_string(n) + " is not above the largest token id " +
                                       std::to_string(max_id) + " of " + path);
  if (n - int64_t(by_id.size()) > kMaxPadding)
    throw FormatError(path, "token ids reach " + std::to_string(n - 1) + " but only " + std::to_string(by_id.size()) +
                                " tokens are listed");

  VocabSpec v;
  v.family = wordpiece ? "bert" : "gpt2";
  v.pieces.resize(size_t(n));
  v.types.assign(size_t(n), PieceType::Normal);
  v.scores.assign(size_t(n), 0.0f);
  for (int64_t i = 0; i < n; ++i) {
    auto it = by_id.find(i);
    if (it == by_id.end()) {
      v.pieces[size_t(i)] = "[PAD" + std::to_string(i) + "]";
      v.types[size_t(i)] = PieceType::Unused;
      continue;
    }
    std::string token = it->second;
    if (added_content.count(token)) {
      auto a = added_by_id.find(i);
      const bool special = a != added_by_id.end() && a->second.special;
      if (special || looks_special(token)) {
        v.types[size_t(i)] = PieceType::Control;
      } else {
        token = replace_all(token, kSpace, " ");
        v.types[size_t(i)] = PieceType::UserDefined;
      }
    }
    v.pieces[size_t(i)] = std::move(token);
  }

  const std::string tc_path = dir + "/tokenizer_config.json";
  const Json tc = is_file(tc_path) ? read_json(tc_path) : Json();
  if (wordpiece) {
    for (size_t i = 0; i < v.pieces.size(); ++i) {
      if (v.types[i] == PieceType::Control) continue;
      std::string& p = v.pieces[i];
      p = p.rfind("##", 0) == 0 ? p.substr(2) : kSpace + p;
    }
    const Specials s = special_vocab(tj, tc, config, n, dir);
    v.lowercase = s.lowercase.value_or(true);
    v.strip_accents = s.strip_accents.value_or(v.lowercase);
    apply_specials(v, s);
    return Tokenizer::from_vocab(std::move(v), path);
  }

  // Byte-level BPE: the merges and the pre-tokenizer.
  std::vector<std::string> exprs;
  bool byte_level = false;
  collect(get(tj, "pre_tokenizer"), exprs, byte_level, path);
  if (!byte_level)
    throw FormatError(path,
                      "model.type \"BPE\" without a ByteLevel pre-tokenizer (a SentencePiece-style BPE) is not "
                      "supported; a tokenizer.model beside it is read instead");
  const Json& merges = get(model, "merges");
  if (merges.is_array()) {
    for (size_t i = 0; i < merges.size(); ++i) {
      const Json& m = merges[i];
      if (m.is_string()) {
        v.merges.push_back(m.get<std::string>());
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        // Spaces inside a pair's parts are written as U+0120, as the converter does.
        v.merges.push_back(replace_all(m[0].get<std::string>(), " ", "\xc4\xa0") + " " +
                           replace_all(m[1].get<std::string>(), " ", "\xc4\xa0"));
      } else {
        throw FormatError(
            path, "model.merges[" + std::to_string(i) + "]: expected \"a b\" or [\"a\", \"b\"], got " + m.dump());
      }
    }
  } else if (!merges.is_null()) {
    throw FormatError(path, "model.merges: expected an array");
  }
  if (v.merges.empty() && is_file(dir + "/merges.txt")) {
    // merges.txt: "a b" lines, an optional "#version" line first; malformed lines skipped.
    const std::string text = load_file(dir + "/merges.txt");
    size_t pos = 0;
    bool first = true;
    while (pos < text.size()) {
      size_t end = text.find('\n', pos);
      if (end == std::string::npos) end = text.size();
      std::string line = text.substr(pos, end - pos);
      pos = end + 1;
      const bool header = first && line.rfind('#', 0) == 0;
      first = false;
      if (header) continue;
      std::vector<std::string> parts;
      size_t i = 0;
      while (i < line.size()) {
        while (i < line.size() && std::isspace(static_cast<unsigned char>(line[i]))) ++i;
        size_t j = i;
        while (j < line.size() && !std::isspace(static_cast<unsigned char>(line[j]))) ++j;
        if (j > i) parts.push_back(line.substr(i, j - i));
        i = j;
      }
      if (parts.size() == 2) v.merges.push_back(parts[0] + " " + parts[1]);
    }
  }
  auto name = name_of(exprs, get(model, "ignore_merges"));
  if (!name) {
    std::string found;
    for (const std::string& e : exprs)
      found += (found.empty() ? "" : ", ") + replace_all(escape_bytes(e), "\\\\", "\\");
    throw FormatError(path, "pre_tokenizer: no pre-tokenizer lm knows splits with these expressions: [" + found +
                                "] (lm-tokenize train --pre-tokenizer x lists the known names)");
  }
  v.pre = *name;
  apply_specials(v, special_vocab(tj, tc, config, -1, dir));
  return Tokenizer::from_vocab(std::move(v), path);
}

// ---- tokenizer.model ----

Tokenizer from_sentencepiece(const std::string& dir, const Json& config, const std::string& config_path) {
  const std::string path = dir + "/tokenizer.model";
  Tokenizer sp = Tokenizer::load(path);
  const int64_t n = config_vocab_size(config, config_path).value_or(sp.vocab_size());
  if (n - int64_t(sp.vocab_size()) > kMaxPadding)
    throw FormatError(config_path, "vocab_size " + std::to_string(n) + " is far beyond the " +
                                       std::to_string(sp.vocab_size()) + " pieces of " + path);
  VocabSpec v;
  v.family = "llama";
  const std::string model_type = get(config, "model_type").is_string() ? config["model_type"].get<std::string>() : "";
  // Phi-3's converter marks added tokens by their special flag alone, keeps U+2581 in them and
  // also applies tokenizer.json's added tokens.
  const bool phi3 = model_type == "phi3";
  v.pieces.resize(size_t(n));
  v.scores.assign(size_t(n), -10000.0f);
  v.types.assign(size_t(n), PieceType::Unused);
  for (int64_t i = 0; i < n; ++i) {
    if (i < sp.vocab_size()) {
      v.pieces[size_t(i)] = sp.piece(int(i));
      v.scores[size_t(i)] = sp.score(int(i));
      v.types[size_t(i)] = sp.type(int(i));
    } else {
      v.pieces[size_t(i)] = "[PAD" + std::to_string(i) + "]";
    }
  }
  const std::string added_path = dir + "/added_tokens.json";
  if (is_file(added_path)) {
    const Json added = read_json(added_path);
    if (!added.is_object()) throw FormatError(added_path, "expected an object of token: id");
    for (auto it = added.begin(); it != added.end(); ++it) {
      auto id = as_int(it.value());
      if (!id || *id < 0)
        throw FormatError(added_path,
                          "\"" + escape_bytes(it.key()) + "\": expected an id >= 0, got " + it.value().dump());
      if (*id >= n) continue;  // the converter skips ids beyond the vocabulary
      v.pieces[size_t(*id)] = it.key();
      v.scores[size_t(*id)] = -1000.0f;
      v.types[size_t(*id)] = PieceType::UserDefined;
    }
  }
  const std::string tc_path = dir + "/tokenizer_config.json";
  const Json tc = is_file(tc_path) ? read_json(tc_path) : Json();
  const Json& decoder = get(tc, "added_tokens_decoder");
  if (decoder.is_object())
    for (auto it = decoder.begin(); it != decoder.end(); ++it) {
      int64_t id = -1;
      try {
        size_t used = 0;
        id = std::stoll(it.key(), &used);
        if (used != it.key().size()) id = -1;
      } catch (const std::exception&) {
      }
      const Json& content = get(it.value(), "content");
      if (id < 0 || !content.is_string())
        throw FormatError(tc_path, "added_tokens_decoder[\"" + escape_bytes(it.key()) +
                                       "\"]: expected an id and an object with a content string");
      if (id >= n) continue;
      std::string token = content.get<std::string>();
      if (truthy(get(it.value(), "special")) || (!phi3 && looks_special(token))) {
        v.types[size_t(id)] = PieceType::Control;
      } else {
        if (!phi3) token = replace_all(token, kSpace, " ");
        v.types[size_t(id)] = PieceType::UserDefined;
      }
      v.scores[size_t(id)] = -1000.0f;
      v.pieces[size_t(id)] = std::move(token);
    }
  const std::string tj_path = dir + "/tokenizer.json";
  const Json tj = is_file(tj_path) ? read_json(tj_path) : Json();
  if (phi3 && get(tj, "added_tokens").is_array()) {
    const Json& added = tj["added_tokens"];
    for (size_t i = 0; i < added.size(); ++i) {
      auto id = as_int(get(added[i], "id"));
      const Json& content = get(added[i], "content");
      if (!id || *id < 0 || !content.is_string())
        throw FormatError(tj_path, "added_tokens[" + std::to_string(i) + "]: expected an id >= 0 and a content string");
      if (*id >= n) continue;
      v.pieces[size_t(*id)] = content.get<std::string>();
      v.scores[size_t(*id)] = -1000.0f;
      v.types[size_t(*id)] = truthy(get(added[i], "special")) ? PieceType::Control : PieceType::UserDefined;
    }
  }
  // The space prefix: tokenizer_config.json's add_prefix_space where given (as the converter's
  // llama does), none for Gemma, else llama.cpp's default for the family.
  if (get(tc, "add_prefix_space").is_boolean())
    v.add_dummy_prefix = tc["add_prefix_space"].get<bool>();
  else
    v.add_dummy_prefix = model_type.rfind("gemma", 0) != 0;
  const Specials s = special_vocab(tj, tc, config, n, dir);
  apply_specials(v, s);
  v.byte_fallback = false;
  for (PieceType t : v.types) v.byte_fallback |= t == PieceType::Byte;

  // Unchanged by the Hugging Face files: the SentencePiece model itself, tokenized by the
  // SentencePiece library and embedded as it is.
  bool same = n == sp.vocab_size() && v.add_dummy_prefix == sp.add_dummy_prefix() && v.unk_id == sp.unk_id() &&
              v.bos_id == sp.bos_id() && v.eos_id == sp.eos_id() && v.pad_id == sp.pad_id() && !v.eot_id && !v.sep_id &&
              !v.mask_id;
  for (int64_t i = 0; same && i < n; ++i)
    same = v.pieces[size_t(i)] == sp.piece(int(i)) && v.scores[size_t(i)] == sp.score(int(i)) &&
           v.types[size_t(i)] == sp.type(int(i));
  if (same) {
    sp.set_add_bos(v.add_bos);
    sp.set_add_eos(v.add_eos);
    return sp;
  }
  // Otherwise the arrays as the converter writes them, merged by score as llama.cpp does.
  return Tokenizer::from_vocab(std::move(v), path);
}

}  // namespace

Tokenizer load_hf_tokenizer(const std::string& dir) try {
  const std::string config_path = dir + "/config.json";
  const Json config = is_file(config_path) ? read_json(config_path) : Json();
  if (!config.is_null() && !config.is_object()) throw FormatError(config_path, "expected a JSON object");
  // Phi-4 keeps Phi-3's architecture with a GPT-2 tokenizer, which the converter then reads.
  bool gpt2_class = false;
  if (get(config, "model_type") == "phi3" && is_file(dir + "/tokenizer_config.json"))
    gpt2_class = get(read_json(dir + "/tokenizer_config.json"), "tokenizer_class") == "GPT2Tokenizer";
  if (is_file(dir + "/tokenizer.model") && !gpt2_class) return from_sentencepiece(dir, config, config_path);
  if (is_file(dir + "/tokenizer.json")) return from_tokenizer_json(dir, config, config_path);
  throw IoError(dir, "no tokenizer.json or tokenizer.model in the model directory", ENOENT);
} catch (const nlohmann::json::exception& e) {
  // A value of an unexpected type that the checks above let through.
  throw FormatError(dir, std::string("unexpected JSON: ") + e.what());
}

}  // namespace lm::tok
