// Tests for lib/tokenizer/hf_tokenizer.cpp: small Hugging Face tokenizer directories (written
// here, no third-party files) read into the vocabulary llama.cpp's convert_hf_to_gguf.py would
// write: pieces, types, merges, the pre-tokenizer's name, special ids, add_bos/add_eos.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "base/error.hpp"
#include "base/json.hpp"
#include "test_util.hpp"
#include "tokenizer/hf_tokenizer.hpp"

using namespace lm;
using lm::tok::load_hf_tokenizer;

namespace {

#define G "\xc4\xa0"  // U+0120: GPT-2's byte symbol for a space

// GPT-2's printable symbol of each byte (bytes_to_unicode).
std::string byte_symbol(int b) {
  const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  int cp = b;
  if (!printable) {
    int k = 0;
    for (int x = 0; x < b; ++x)
      if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255))) ++k;
    cp = 256 + k;
  }
  std::string s;
  if (cp < 0x80) {
    s += char(cp);
  } else {
    s += char(0xC0 | (cp >> 6));
    s += char(0x80 | (cp & 0x3F));
  }
  return s;
}

// A byte-level BPE tokenizer.json: the 256 byte symbols at their byte values, then `extra`
// pieces from 256 on, the given merges and pre_tokenizer, and added tokens.
Json bpe_json(const std::vector<std::string>& extra, const Json& merges, const Json& pre, const Json& added,
              bool ignore_merges = false) {
  Json vocab = Json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_symbol(b)] = b;
  for (size_t i = 0; i < extra.size(); ++i) vocab[extra[i]] = 256 + int(i);
  Json model = {{"type", "BPE"},     {"dropout", nullptr},     {"unk_token", nullptr},
                {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", ignore_merges},
                {"vocab", vocab},    {"merges", merges}};
  return {{"version", "1.0"},     {"added_tokens", added},     {"normalizer", nullptr},
          {"pre_tokenizer", pre}, {"post_processor", nullptr}, {"model", model}};
}

Json added_token(int id, const std::string& content, bool special) {
  return {{"id", id},        {"content", content},  {"single_word", false}, {"lstrip", false},
          {"rstrip", false}, {"normalized", false}, {"special", special}};
}

const Json kByteLevel = {
    {"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};

// llama.cpp's llama3 expression as Llama 3's tokenizer.json spells it.
const char* kLlama3Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

Json llama3_pre() {
  return {{"type", "Sequence"},
          {"pretokenizers",
           {{{"type", "Split"}, {"pattern", {{"Regex", kLlama3Regex}}}, {"behavior", "Isolated"}, {"invert", false}},
            {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}}}};
}

std::vector<int> ids_of(const Tokenizer& tok, const std::string& text, bool parse_special = false) {
  std::vector<int> ids;
  tok.encode(text, ids, parse_special);
  return ids;
}

void write_json(const std::string& path, const Json& j) { test::write_file(path, j.dump()); }

}  // namespace

TEST_CASE("GPT-2 style byte-level BPE: ByteLevel alone is gpt-2, <|endoftext|> a control piece") {
  test::TempDir dir;
  write_json(dir.path() + "/tokenizer.json", bpe_json({"he", G "t", G "the"}, {"h e", G " t", G "t he"}, kByteLevel,
                                                      Json::array({added_token(259, "<|endoftext|>", true)})));
  write_json(dir.path() + "/tokenizer_config.json",
             {{"bos_token", "<|endoftext|>"}, {"eos_token", "<|endoftext|>"}, {"unk_token", "<|endoftext|>"}});
  Tokenizer tok = load_hf_tokenizer(dir.path());
  REQUIRE(tok.vocab_spec() != nullptr);
  const VocabSpec& v = *tok.vocab_spec();
  CHECK(tok.family() == "gpt2");
  CHECK(v.pre == "gpt-2");
  CHECK(tok.vocab_size() == 260);
  CHECK(v.pieces[256] == "he");
  CHECK(v.pieces[259] == "<|endoftext|>");
  CHECK(v.types[259] == PieceType::Control);
  CHECK(v.types[258] == PieceType::Normal);
  CHECK(v.merges == std::vector<std::string>{"h e", G " t", G "t he"});
  CHECK(tok.bos_id() == 259);
  CHECK(tok.eos_id() == 259);
  CHECK(tok.unk_id() == 259);
  CHECK_FALSE(tok.add_bos());  // gpt-2 prompts start without BOS, as llama.cpp's default
  CHECK_FALSE(tok.add_eos());
  CHECK(ids_of(tok, "he the") == std::vector<int>{256, 258});
  CHECK(ids_of(tok, "hi!") == std::vector<int>{'h', 'i', '!'});
  CHECK(ids_of(tok, "the<|endoftext|>", true) == std::vector<int>{'t', 256, 259});
}

TEST_CASE("merges as [a, b] pairs, add_bos_token from tokenizer_config.json, merges.txt") {
  test::TempDir dir;
  // Transformers 4.45 writes pairs; a space inside a part becomes U+0120.
  write_json(dir.path() + "/tokenizer.json",
             bpe_json({"he", G "t", G "the"},
                      Json::array({Json::array({"h", "e"}), Json::array({" ", "t"}), Json::array({G "t", "he"})}),
                      kByteLevel, Json::array()));
  write_json(dir.path() + "/tokenizer_config.json", {{"add_bos_token", true}, {"add_eos_token", true}});
  write_json(dir.path() + "/config.json", {{"bos_token_id", 256}, {"eos_token_id", 257}});
  Tokenizer tok = load_hf_tokenizer(dir.path());
  CHECK(tok.vocab_spec()->merges == std::vector<std::string>{"h e", G " t", G "t he"});
  CHECK(tok.bos_id() == 256);
  CHECK(tok.eos_id() == 257);
  CHECK(tok.add_bos());
  CHECK(tok.add_eos());

  // No merges in tokenizer.json: merges.txt beside it, its #version line skipped.
  test::TempDir dir2;
  write_json(dir2.path() + "/tokenizer.json", bpe_json({"he"}, Json::array(), kByteLevel, Json::array()));
  test::write_file(dir2.path() + "/merges.txt", "#version: 0.2\nh e\n");
  CHECK(load_hf_tokenizer(dir2.path()).vocab_spec()->merges == std::vector<std::string>{"h e"});
}

TEST_CASE("Llama 3 style: Split with the llama3 expression then ByteLevel is llama-bpe") {
  test::TempDir dir;
  Json tj = bpe_json({"12", "123", "he", G "t", G "the"}, {"1 2", "12 3", "h e", G " t", G "t he"}, llama3_pre(),
                     Json::array({added_token(300, "<|begin_of_text|>", true),
                                  added_token(301, "<|end_of_text|>", true), added_token(302, "<tool>", false)}),
                     true);
  tj["post_processor"] = {
      {"type", "Sequence"},
      {"processors",
       {{{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}, {"use_regex", true}},
        {{"type", "TemplateProcessing"},
         {"single",
          {{{"SpecialToken", {{"id", "<|begin_of_text|>"}, {"type_id", 0}}}},
           {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
         {"pair",
          {{{"SpecialToken", {{"id", "<|begin_of_text|>"}, {"type_id", 0}}}},
           {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
           {{"SpecialToken", {{"id", "<|begin_of_text|>"}, {"type_id", 1}}}},
           {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}}}}}};
  write_json(dir.path() + "/tokenizer.json", tj);
  write_json(dir.path() + "/tokenizer_config.json",
             {{"bos_token", "<|begin_of_text|>"}, {"eos_token", "<|end_of_text|>"}});
  write_json(dir.path() + "/config.json", {{"vocab_size", 304}, {"eos_token_id", {301, 302}}});
  Tokenizer tok = load_hf_tokenizer(dir.path());
  REQUIRE(tok.vocab_spec() != nullptr);
  const VocabSpec& v = *tok.vocab_spec();
  CHECK(v.pre == "llama-bpe");
  CHECK(tok.vocab_size() == 304);
  // Ids 261..299 and 303 are listed nowhere: padding pieces, unused.
  CHECK(v.pieces[261] == "[PAD261]");
  CHECK(v.types[261] == PieceType::Unused);
  CHECK(v.pieces[303] == "[PAD303]");
  CHECK(v.types[300] == PieceType::Control);
  CHECK(v.types[301] == PieceType::Control);
  CHECK(v.pieces[302] == "<tool>");
  CHECK(v.types[302] == PieceType::UserDefined);
  CHECK(tok.bos_id() == 300);
  CHECK(tok.eos_id() == 301);
  CHECK(tok.add_bos());  // from the template's leading <|begin_of_text|>
  CHECK_FALSE(tok.add_eos());
  // \p{N}{1,3}: "1234" is "123" and "4"; the user-defined piece is found without parse_special.
  CHECK(ids_of(tok, "1234") == std::vector<int>{257, '4'});
  CHECK(ids_of(tok, "he<tool>") == std::vector<int>{258, 302});
  CHECK(ids_of(tok, "<|begin_of_text|>the the", true) == std::vector<int>{300, 't', 258, 260});
  CHECK(ids_of(tok, "<|begin_of_text|>").size() > 1);  // without parse_special, plain text
}

TEST_CASE("SmolLM style (Digits then ByteLevel) and Qwen 2 style expressions are named") {
  test::TempDir dir;
  Json smol = {{"type", "Sequence"},
               {"pretokenizers", {{{"type", "Digits"}, {"individual_digits", true}}, kByteLevel}}};
  write_json(dir.path() + "/tokenizer.json", bpe_json({}, Json::array(), smol, Json::array()));
  CHECK(load_hf_tokenizer(dir.path()).vocab_spec()->pre == "smollm");

  test::TempDir dir2;
  Json qwen = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"},
         {"pattern",
          {{"Regex",
            R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"}}},
         {"behavior", "Isolated"},
         {"invert", false}},
        {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
  write_json(dir2.path() + "/tokenizer.json", bpe_json({}, Json::array(), qwen, Json::array()));
  CHECK(load_hf_tokenizer(dir2.path()).vocab_spec()->pre == "qwen2");

  // DeepSeek-V3 writes its CJK ranges as the characters themselves; lm spells them \x{...}.
  test::TempDir dir3;
  auto split = [](const std::string& re) {
    return Json{{"type", "Split"}, {"pattern", {{"Regex", re}}}, {"behavior", "Isolated"}, {"invert", false}};
  };
  Json deepseek = {
      {"type", "Sequence"},
      {"pretokenizers",
       {split(R"(\p{N}{1,3})"),
        split("[\xe4\xb8\x80-\xe9\xbe\xa5\xe3\x81\x80-\xe3\x82\x9f\xe3\x82\xa0-\xe3\x83\xbf]+"),
        split(
            R"([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"),
        {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}}}};
  write_json(dir3.path() + "/tokenizer.json", bpe_json({}, Json::array(), deepseek, Json::array()));
  CHECK(load_hf_tokenizer(dir3.path()).vocab_spec()->pre == "deepseek-v3");
}

TEST_CASE("WordPiece: ## dropped, U+2581 before word-initial pieces, BERT's special ids") {
  test::TempDir dir;
  Json vocab = {{"[PAD]", 0}, {"[UNK]", 1}, {"[CLS]", 2}, {"[SEP]", 3}, {"[MASK]", 4},  {"hello", 5},
                {"world", 6}, {"##s", 7},   {"un", 8},    {"##aff", 9}, {"##able", 10}, {"[unused0]", 11}};
  Json added = Json::array();
  for (const char* s : {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}) added.push_back(added_token(vocab[s], s, true));
  auto tok_item = [](const char* id) { return Json{{"SpecialToken", {{"id", id}, {"type_id", 0}}}}; };
  auto seq_item = [](const char* id) { return Json{{"Sequence", {{"id", id}, {"type_id", 0}}}}; };
  Json tj = {{"version", "1.0"},
             {"added_tokens", added},
             {"normalizer",
              {{"type", "BertNormalizer"},
               {"clean_text", true},
               {"handle_chinese_chars", true},
               {"strip_accents", nullptr},
               {"lowercase", true}}},
             {"pre_tokenizer", {{"type", "BertPreTokenizer"}}},
             {"post_processor",
              {{"type", "TemplateProcessing"},
               {"single", {tok_item("[CLS]"), seq_item("A"), tok_item("[SEP]")}},
               {"pair", {tok_item("[CLS]"), seq_item("A"), tok_item("[SEP]"), seq_item("B"), tok_item("[SEP]")}}}},
             {"model",
              {{"type", "WordPiece"},
               {"unk_token", "[UNK]"},
               {"continuing_subword_prefix", "##"},
               {"max_input_chars_per_word", 100},
               {"vocab", vocab}}}};
  write_json(dir.path() + "/tokenizer.json", tj);
  write_json(dir.path() + "/tokenizer_config.json", {{"cls_token", "[CLS]"},
                                                     {"sep_token", "[SEP]"},
                                                     {"pad_token", "[PAD]"},
                                                     {"unk_token", "[UNK]"},
                                                     {"mask_token", "[MASK]"},
                                                     {"do_lower_case", true}});
  Tokenizer tok = load_hf_tokenizer(dir.path());
  REQUIRE(tok.vocab_spec() != nullptr);
  const VocabSpec& v = *tok.vocab_spec();
  CHECK(tok.family() == "bert");
  CHECK(v.pieces[2] == "[CLS]");
  CHECK(v.types[2] == PieceType::Control);
  CHECK(v.pieces[5] == "\xe2\x96\x81hello");
  CHECK(v.pieces[7] == "s");
  CHECK(v.pieces[11] == "\xe2\x96\x81[unused0]");
  CHECK(v.types[11] == PieceType::Normal);
  CHECK(v.lowercase);
  CHECK(v.strip_accents);
  // SpecialVocab: no bos/eos in tokenizer_config.json, so [CLS] and [SEP] stand for them; the
  // template adds both; the pair template's middle [SEP] is the trailing one, so no add_sep.
  CHECK(tok.bos_id() == 2);
  CHECK(tok.eos_id() == 3);
  CHECK(tok.sep_id() == 3);
  CHECK(tok.pad_id() == 0);
  CHECK(tok.unk_id() == 1);
  CHECK(tok.mask_id() == 4);
  CHECK(tok.add_bos());
  CHECK(tok.add_eos());
  CHECK_FALSE(tok.add_sep());
  CHECK(ids_of(tok, "Hello worlds unaffable") == std::vector<int>{5, 6, 7, 8, 9, 10});

  // Older files leave model.type out: a continuation prefix makes it WordPiece, as in the
  // tokenizers library.
  tj["model"].erase("type");
  write_json(dir.path() + "/tokenizer.json", tj);
  Tokenizer untyped = load_hf_tokenizer(dir.path());
  CHECK(untyped.family() == "bert");
  CHECK(untyped.vocab_spec()->pieces == v.pieces);
}

TEST_CASE("tokenizer.model: the SentencePiece model as it is, or with the Hugging Face files applied") {
  const Tokenizer sp =
      test::train_tokenizer(std::vector<std::string>(200, "the jury said the county election was fair"), 300);
  REQUIRE(sp.piece(0) == "<unk>");
  const int n = sp.vocab_size();

  test::TempDir plain;
  test::write_file(plain.path() + "/tokenizer.model", sp.model_proto());
  Tokenizer same = load_hf_tokenizer(plain.path());
  CHECK(same.vocab_spec() == nullptr);  // the SentencePiece library, from the model's own bytes
  CHECK(same.model_proto() == sp.model_proto());
  CHECK(same.add_bos());

  test::TempDir dir;
  test::write_file(dir.path() + "/tokenizer.model", sp.model_proto());
  write_json(dir.path() + "/added_tokens.json", {{"<tool>", n}});
  write_json(dir.path() + "/config.json", {{"vocab_size", n + 2}, {"bos_token_id", 1}, {"eos_token_id", 2}});
  write_json(dir.path() + "/tokenizer_config.json", {{"add_bos_token", true},
                                                     {"add_eos_token", false},
                                                     {"added_tokens_decoder",
                                                      {{"0", {{"content", "<unk>"}, {"special", true}}},
                                                       {"1", {{"content", "<s>"}, {"special", true}}},
                                                       {"2", {{"content", "</s>"}, {"special", true}}}}}});
  Tokenizer tok = load_hf_tokenizer(dir.path());
  REQUIRE(tok.vocab_spec() != nullptr);
  const VocabSpec& v = *tok.vocab_spec();
  CHECK(tok.family() == "llama");
  CHECK(tok.vocab_size() == n + 2);
  CHECK(v.types[0] == PieceType::Control);  // special: true, as the converter marks it
  CHECK(v.scores[0] == -1000.0f);
  CHECK(v.pieces[size_t(n)] == "<tool>");
  CHECK(v.types[size_t(n)] == PieceType::UserDefined);
  CHECK(v.pieces[size_t(n) + 1] == "[PAD" + std::to_string(n + 1) + "]");
  CHECK(v.types[size_t(n) + 1] == PieceType::Unused);
  CHECK(tok.bos_id() == 1);
  CHECK(tok.eos_id() == 2);
  CHECK(tok.add_bos());
  CHECK_FALSE(tok.add_eos());
  for (const std::string text : {"the jury said", "the county was fair"}) CHECK(ids_of(tok, text) == ids_of(sp, text));
  CHECK(ids_of(tok, "the<tool>").back() == n);

  // Phi-3 (config.json's model_type): an added token is control only when marked special, and
  // tokenizer.json's added tokens apply too. Gemma: no space prefix.
  write_json(dir.path() + "/config.json", {{"model_type", "phi3"}, {"vocab_size", n + 2}});
  write_json(dir.path() + "/tokenizer_config.json",
             {{"added_tokens_decoder", {{std::to_string(n), {{"content", "<|end|>"}, {"special", false}}}}}});
  write_json(dir.path() + "/tokenizer.json",
             {{"added_tokens", Json::array({added_token(n + 1, "<|user|>", true)})}, {"model", {{"type", "BPE"}}}});
  Tokenizer phi3 = load_hf_tokenizer(dir.path());
  CHECK(phi3.vocab_spec()->types[size_t(n)] == PieceType::UserDefined);
  CHECK(phi3.vocab_spec()->pieces[size_t(n) + 1] == "<|user|>");
  CHECK(phi3.vocab_spec()->types[size_t(n) + 1] == PieceType::Control);
  CHECK(phi3.add_dummy_prefix());

  write_json(dir.path() + "/config.json", {{"model_type", "gemma2"}});
  CHECK_FALSE(load_hf_tokenizer(dir.path()).add_dummy_prefix());
}

TEST_CASE("bad directories: one message naming the file") {
  test::TempDir dir;
  const std::string tj = dir.path() + "/tokenizer.json";
  CHECK_THROWS_AS(load_hf_tokenizer(dir.path()), IoError);

  test::write_file(tj, "{\"model\": ");
  CHECK_THROWS_WITH_AS(load_hf_tokenizer(dir.path()), doctest::Contains("tokenizer.json: not JSON"), FormatError);

  write_json(tj, {{"model", {{"type", "Unigram"}, {"vocab", Json::array()}}}});
  CHECK_THROWS_WITH_AS(load_hf_tokenizer(dir.path()), doctest::Contains("model.type \"Unigram\" is not supported"),
                       FormatError);

  write_json(tj, bpe_json({"he"}, {"h e", "x yz"}, kByteLevel, Json::array()));
  CHECK_THROWS_WITH_AS(load_hf_tokenizer(dir.path()), doctest::Contains("tokenizer.json"), FormatError);
  CHECK_THROWS_WITH_AS(load_hf_tokenizer(dir.path()), doctest::Contains("'x yz'"), FormatError);

  Json pre = {{"type", "Sequence"},
              {"pretokenizers",
               {{{"type", "Split"}, {"pattern", {{"Regex", "\\w+|\\s+"}}}, {"behavior", "Isolated"}},
                {{"type", "ByteLevel"}, {"use_regex", false}}}}};
  write_json(tj, bpe_json({"he"}, {"h e"}, pre, Json::array()));
  CHECK_THROWS_WITH_AS(load_hf_tokenizer(dir.path()),
                       doctest::Contains("tokenizer.json: pre_tokenizer: no pre-tokenizer lm knows splits with these "
                                         "expressions: [\\w+|\\s+]"),
                       FormatError);

  // 100000 nested Sequences: refused before nlohmann-json's parser recurses into them.
  std::string deep;
  for (int i = 0; i < 100000; ++i) deep += R"({"type": "Sequence", "pretokenizers": [)";
  deep += kByteLevel.dump();
  for (int i = 0; i < 100000; ++i) deep += "]}";
  std::string text = bpe_json({"he"}, {"h e"}, nullptr, Json::array()).dump();
  const std::string hole = "\"pre_tokenizer\":null";
  REQUIRE(text.find(hole) != std::string::npos);
  text.replace(text.find(hole), hole.size(), "\"pre_tokenizer\":" + deep);
  test::write_file(tj, text);
  CHECK_THROWS_WITH_AS(load_hf_tokenizer(dir.path()),
                       doctest::Contains("tokenizer.json: JSON nested more than 512 deep"), FormatError);
  // 100 levels parse, and the pre-tokenizer's Sequences stop at 32.
  text = bpe_json({"he"}, {"h e"}, nullptr, Json::array()).dump();
  deep.clear();
  for (int i = 0; i < 100; ++i) deep += R"({"type": "Sequence", "pretokenizers": [)";
  deep += kByteLevel.dump();
  for (int i = 0; i < 100; ++i) deep += "]}";
  text.replace(text.find(hole), hole.size(), "\"pre_tokenizer\":" + deep);
  test::write_file(tj, text);
  CHECK_THROWS_WITH_AS(load_hf_tokenizer(dir.path()), doctest::Contains("nested more than 32 deep"), FormatError);

  write_json(tj, bpe_json({"he"}, {"h e"}, {{"type", "Metaspace"}}, Json::array()));
  CHECK_THROWS_WITH_AS(load_hf_tokenizer(dir.path()), doctest::Contains("without a ByteLevel pre-tokenizer"),
                       FormatError);

  write_json(tj, bpe_json({"he"}, {"h e"}, kByteLevel, Json::array({added_token(5000000, "<big>", true)})));
  write_json(dir.path() + "/config.json", {{"vocab_size", 300}});
  CHECK_THROWS_WITH_AS(load_hf_tokenizer(dir.path()), doctest::Contains("config.json: vocab_size 300"), FormatError);
  test::write_file(dir.path() + "/config.json", "{}");
  write_json(tj, bpe_json({"he"}, {"h e"}, kByteLevel, Json::array({added_token(50000000, "<big>", true)})));
  CHECK_THROWS_WITH_AS(load_hf_tokenizer(dir.path()), doctest::Contains("only 258 tokens are listed"), FormatError);
}
