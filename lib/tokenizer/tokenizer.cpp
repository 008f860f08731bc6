// lm::Tokenizer over SentencePiece, or over one of the GGUF-vocabulary families (engine.hpp).
// SentencePiece model bytes are checked by our own small protobuf reader before SentencePiece
// sees them, so a bad file gives one clear error, never an abort.
#include "tokenizer/tokenizer.hpp"

#include "tokenizer/byte_bpe_train.hpp"
#include "tokenizer/engine.hpp"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <unordered_set>
#include <array>
#include <cctype>
#include <limits>

#include "base/error.hpp"
#include "base/hash.hpp"
#include "base/file.hpp"
#include "base/threads.hpp"

namespace lm {

const char* piece_type_name(PieceType t) {
  switch (t) {
    case PieceType::Normal: return "normal";
    case PieceType::Unknown: return "unknown";
    case PieceType::Control: return "control";
    case PieceType::UserDefined: return "user";
    case PieceType::Unused: return "unused";
    case PieceType::Byte: return "byte";
  }
  return "normal";
}

namespace {

// ---- minimal protobuf wire format (sentencepiece_model.proto) ----
// ModelProto: pieces = 1 {piece = 1, score = 2 (fixed32 float), type = 3}, trainer_spec = 2,
// normalizer_spec = 3. TrainerSpec: model_type = 3, vocab_size = 4, byte_fallback = 35,
// unk_id..pad_id = 40..43, unk_piece..pad_piece = 45..48.
// NormalizerSpec: name = 1, add_dummy_prefix = 3, remove_extra_whitespaces = 4.
constexpr size_t kMaxPieceBytes = 65536;

struct Field {
  uint32_t number;
  uint32_t wire;      // 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32
  uint64_t value;     // varint / fixed value
  std::string_view bytes;  // length-delimited payload
  size_t begin, end;  // byte range of the whole field in the message
};

// Reads protobuf fields one by one; any malformation throws FormatError("could not parse ...").
class ProtoReader {
 public:
  ProtoReader(std::string_view data, const std::string& source, size_t base)
      : data_(data), source_(source), base_(base) {}
  bool next(Field& f) {
    if (pos_ == data_.size()) return false;
    f.begin = pos_;
    uint64_t key = varint();
    f.number = uint32_t(key >> 3);
    f.wire = uint32_t(key & 7);
    if (f.number == 0) fail("field number 0");
    switch (f.wire) {
      case 0: f.value = varint(); break;
      case 1: need(8), std::memcpy(&f.value, data_.data() + pos_, 8), pos_ += 8; break;
      case 5: {
        uint32_t v;
        need(4), std::memcpy(&v, data_.data() + pos_, 4), pos_ += 4;
        f.value = v;
        break;
      }
      case 2: {
        uint64_t n = varint();
        if (n > data_.size() - pos_) fail("field " + std::to_string(f.number) + " is longer than the data left");
        f.bytes = data_.substr(pos_, size_t(n));
        pos_ += size_t(n);
        break;
      }
      default: fail("unsupported wire type " + std::to_string(f.wire));
    }
    f.end = pos_;
    return true;
  }
  size_t base() const { return base_; }

 private:
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      need(1);
      auto b = uint8_t(data_[pos_++]);
      v |= uint64_t(b & 0x7f) << shift;
      if (b < 0x80) return v;
    }
    fail("varint longer than 10 bytes");
  }
  void need(size_t n) {
    if (data_.size() - pos_ < n) fail("truncated field");
  }
  [[noreturn]] void fail(const std::string& why) {
    throw FormatError(source_, "could not parse the SentencePiece model: " + why +
                                   "; expected a SentencePiece .model file or a GGUF model",
                      int64_t(base_ + pos_));
  }
  std::string_view data_;
  const std::string& source_;
  size_t base_;
  size_t pos_ = 0;
};

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out += char(uint8_t(v) | 0x80);
    v >>= 7;
  }
  out += char(uint8_t(v));
}
void put_key(std::string& out, uint32_t number, uint32_t wire) { put_varint(out, (uint64_t(number) << 3) | wire); }
void put_bytes(std::string& out, uint32_t number, std::string_view bytes) {
  put_key(out, number, 2);
  put_varint(out, bytes.size());
  out.append(bytes);
}
void put_uint(std::string& out, uint32_t number, uint64_t v) {
  put_key(out, number, 0);
  put_varint(out, v);
}
void put_int(std::string& out, uint32_t number, int64_t v) { put_uint(out, number, uint64_t(v)); }
void put_float(std::string& out, uint32_t number, float f) {
  put_key(out, number, 5);
  char b[4];
  std::memcpy(b, &f, 4);
  out.append(b, 4);
}

// What we read from the model bytes ourselves.
struct ProtoSummary {
  std::vector<float> scores;
  std::vector<PieceType> types;
  int model_type = 1;  // UNIGRAM
  bool add_dummy_prefix = true;
  bool byte_fallback = false;
};

// The charsmap is "u32 trie size (LE), Darts trie units (u32 each), NUL-terminated strings".
// SentencePiece trusts these sizes, so a bad prefix reads out of bounds (docs/reliability.md C6).
void check_charsmap(std::string_view m, const std::string& source) {
  if (m.empty()) return;
  auto bad = [&](const std::string& why) {
    throw FormatError(source, "normalization rule (precompiled_charsmap) is broken: " + why +
                                  "; retrain or re-export the model");
  };
  if (m.size() <= 4) bad(std::to_string(m.size()) + " bytes, expected more than 4");
  uint32_t trie = 0;
  for (int i = 0; i < 4; ++i) trie |= uint32_t(uint8_t(m[size_t(i)])) << (8 * i);
  if (trie >= m.size() - 4)
    bad("trie size " + std::to_string(trie) + " exceeds the " + std::to_string(m.size() - 4) + " bytes left");
  if (trie % 4 != 0) bad("trie size " + std::to_string(trie) + " is not a multiple of 4");
  if (m.back() != '\0') bad("normalized strings do not end with NUL");
}

ProtoSummary check_model_proto(std::string_view bytes, const std::string& source) {
  ProtoSummary s;
  if (bytes.empty()) throw FormatError(source, "file is empty, expected a SentencePiece model");
  if (bytes.substr(0, 24) == "version https://git-lfs.")
    throw FormatError(source, "is a Git LFS pointer, not model data; run 'git lfs pull'");
  if (bytes.substr(0, 4) == "GGUF")
    throw FormatError(source, "is a GGUF file, but was read as a SentencePiece model");
  ProtoReader top(bytes, source, 0);
  Field f;
  std::unordered_set<std::string_view> seen;
  int64_t special[4] = {0, 1, 2, -1};  // unk, bos, eos, pad ids (proto defaults)
  const char* special_name[4] = {"unk_id", "bos_id", "eos_id", "pad_id"};
  bool any_field = false;
  while (top.next(f)) {
    any_field = true;
    if (f.number == 1 && f.wire == 2) {
      const size_t index = s.types.size();
      ProtoReader pr(f.bytes, source, f.begin);
      Field pf;
      std::string_view piece;
      float score = 0;
      uint64_t type = 1;
      while (pr.next(pf)) {
        if (pf.number == 1 && pf.wire == 2) piece = pf.bytes;
        if (pf.number == 2 && pf.wire == 5) {
          auto v = uint32_t(pf.value);
          std::memcpy(&score, &v, 4);
        }
        if (pf.number == 3 && pf.wire == 0) type = pf.value;
      }
      const std::string where = "piece #" + std::to_string(index);
      if (piece.size() > kMaxPieceBytes)
        throw FormatError(source, where + " is " + std::to_string(piece.size()) + " bytes, expected at most " +
                                      std::to_string(kMaxPieceBytes), int64_t(f.begin));
      if (piece.empty()) throw FormatError(source, where + " is empty, expected at least one byte", int64_t(f.begin));
      // SentencePiece's piece tries (darts) take C strings: a NUL byte cuts the piece, and one at
      // the start aborts the process from inside SentencePiece (found by tests/fuzz, spm target).
      if (piece.find('\0') != std::string_view::npos)
        throw FormatError(source, where + " has a NUL byte, expected none", int64_t(f.begin));
      if (type < 1 || type > 6)
        throw FormatError(source, where + " has type " + std::to_string(type) + ", expected 1 to 6", int64_t(f.begin));
      if (!std::isfinite(score))
        throw FormatError(source, where + " has score " + std::to_string(score) + ", expected a finite number",
                          int64_t(f.begin));
      if (!seen.insert(piece).second)
        throw FormatError(source, where + " '" + std::string(piece.substr(0, 64)) + "' is a duplicate",
                          int64_t(f.begin));
      s.scores.push_back(score);
      s.types.push_back(PieceType(type));
    } else if (f.number == 2 && f.wire == 2) {
      ProtoReader tr(f.bytes, source, f.begin);
      Field tf;
      while (tr.next(tf)) {
        if (tf.wire != 0) continue;
        if (tf.number == 3) s.model_type = int(tf.value);
        if (tf.number == 35) s.byte_fallback = tf.value != 0;
        if (tf.number >= 40 && tf.number <= 43) special[tf.number - 40] = int64_t(tf.value);
      }
    } else if (f.number == 3 && f.wire == 2) {
      ProtoReader nr(f.bytes, source, f.begin);
      Field nf;
      while (nr.next(nf)) {
        if (nf.number == 3 && nf.wire == 0) s.add_dummy_prefix = nf.value != 0;
        if (nf.number == 2 && nf.wire == 2) check_charsmap(nf.bytes, source);
      }
    }
  }
  if (!any_field || s.types.empty())
    throw FormatError(source, "SentencePiece model has no pieces; expected a trained .model file");
  const auto n = int64_t(s.types.size());
  for (int k = 0; k < 4; ++k)
    if (special[k] >= n)
      throw FormatError(source, std::string(special_name[k]) + " " + std::to_string(special[k]) +
                                    " >= vocabulary size " + std::to_string(n));
  bool has_unk = false;
  for (PieceType t : s.types) has_unk |= t == PieceType::Unknown;
  if (!has_unk) throw FormatError(source, "model has no unknown piece; expected exactly one piece of type unknown");
  if (s.model_type < 1 || s.model_type > 4)
    throw FormatError(source, "model type " + std::to_string(s.model_type) + ", expected 1 to 4 (unigram, bpe, word, char)");
  return s;
}

// The same model with normalizer_spec.add_dummy_prefix = false: a repeated scalar field is
// "last one wins" in protobuf, so appending the field to the normalizer message is enough.
std::string without_dummy_prefix(std::string_view proto, const std::string& source) {
  std::string out;
  std::string normalizer;
  ProtoReader top(proto, source, 0);
  Field f;
  while (top.next(f)) {
    if (f.number == 3 && f.wire == 2)
      normalizer.assign(f.bytes);
    else
      out.append(proto.substr(f.begin, f.end - f.begin));
  }
  put_uint(normalizer, 3, 0);
  put_bytes(out, 3, normalizer);
  return out;
}

class LineIterator : public sentencepiece::SentenceIterator {
 public:
  explicit LineIterator(const std::function<bool(std::string&)>& next) : next_(next) { Next(); }
  bool done() const override { return done_; }
  void Next() override {
    try {
      done_ = !next_(value_);
    } catch (const Error& e) {  // spm cannot carry our exception: keep it and stop
      error_ = std::current_exception();
      done_ = true;
    }
  }
  const std::string& value() const override { return value_; }
  sentencepiece::util::Status status() const override { return sentencepiece::util::Status(); }
  std::exception_ptr error() const { return error_; }

 private:
  const std::function<bool(std::string&)>& next_;
  std::string value_;
  bool done_ = false;
  std::exception_ptr error_;
};

}  // namespace


// The special pieces found in a text before tokenizing it, longest first at each position.
struct SpecialMatcher {
  struct Entry {
    std::string text;
    int id;
    bool control;  // control or unknown: found only when parsing special tokens
    bool rstrip;   // whitespace after it is dropped
  };
  std::vector<Entry> entries;          // longest text first
  std::array<bool, 256> first{};       // bytes that start some entry
  std::array<bool, 256> first_user{};  // bytes that start a user-defined entry

  // rstrip: llama.cpp's Phi-3 rule, every special piece but <unk>, <s> and <|endoftext|>.
  void build(const std::vector<std::string>& pieces, const std::vector<PieceType>& types, bool with_user,
             bool rstrip = false) {
    for (size_t i = 0; i < pieces.size(); ++i) {
      const PieceType t = types[i];
      const bool control = t == PieceType::Control || t == PieceType::Unknown;
      if (pieces[i].empty() || !(control || (with_user && t == PieceType::UserDefined))) continue;
      const bool strip = rstrip && pieces[i] != "<unk>" && pieces[i] != "<s>" && pieces[i] != "<|endoftext|>";
      entries.push_back({pieces[i], int(i), control, strip});
    }
    std::stable_sort(entries.begin(), entries.end(),
                     [](const Entry& a, const Entry& b) { return a.text.size() > b.text.size(); });
    for (const Entry& e : entries) {
      first[uint8_t(e.text[0])] = true;
      if (!e.control) first_user[uint8_t(e.text[0])] = true;
    }
  }

  // Calls plain(text, at_start) for each stretch of text and special(id) for each special
  // piece, in order. at_start: nothing or a special piece came before (llama.cpp gives the
  // SentencePiece dummy prefix there).
  template <class Plain, class Special>
  void split(std::string_view text, bool parse_special, bool at_start, Plain plain, Special special) const {
    const auto& starts = parse_special ? first : first_user;
    size_t from = 0;
    for (size_t i = 0; i < text.size(); ++i) {
      if (!starts[uint8_t(text[i])]) continue;
      const Entry* hit = nullptr;
      for (const Entry& e : entries)
        if ((parse_special || !e.control) && text.compare(i, e.text.size(), e.text) == 0) {
          hit = &e;
          break;
        }
      if (!hit) continue;
      if (i > from) plain(text.substr(from, i - from), at_start);
      special(hit->id);
      at_start = true;
      i += hit->text.size() - 1;
      if (hit->rstrip)
        while (i + 1 < text.size() && std::isspace(static_cast<unsigned char>(text[i + 1]))) ++i;
      from = i + 1;
    }
    if (from < text.size()) plain(text.substr(from), at_start);
  }
};

struct Tokenizer::Impl {
  std::string source;
  std::string family = "llama";
  uint64_t fingerprint = 0;
  std::vector<int> newline;
  SpecialMatcher specials;
  std::optional<int> unk, bos, eos, eot, pad, sep, mask;
  bool add_bos = false, add_eos = false, add_sep = false;
  std::vector<char> ends;  // per id: ends generation

  // The SentencePiece library (when engine is null).
  std::string proto;
  ProtoSummary summary;
  sentencepiece::SentencePieceProcessor sp;         // the model as it is
  sentencepiece::SentencePieceProcessor sp_inner;   // same, without the dummy prefix

  // A GGUF vocabulary.
  std::unique_ptr<tok::Engine> engine;
  tok::Vocab vocab;
  VocabSpec spec;

  int size() const { return engine ? vocab.size() : int(summary.types.size()); }
  PieceType type(int id) const { return engine ? vocab.types[size_t(id)] : summary.types[size_t(id)]; }
  const std::string& piece(int id) const { return engine ? vocab.pieces[size_t(id)] : sp.IdToPiece(id); }

  // Plain text of one fragment, no special pieces inside.
  void encode_plain(std::string_view text, bool at_start, std::vector<int>& ids) const;
  // Special pieces found first, then encode_plain between them.
  void encode(std::string_view text, bool at_start, bool parse_special, std::vector<int>& ids) const {
    if (!engine && !parse_special) return encode_plain(text, at_start, ids);
    specials.split(
        text, parse_special, at_start, [&](std::string_view t, bool start) { encode_plain(t, start, ids); },
        [&](int id) { ids.push_back(id); });
  }
  void finish();  // newline ids, generation enders
};

// SentencePiece fails to encode or decode only for what the model file holds (e.g. a BPE
// vocabulary whose only piece for a character is a control piece): a FormatError naming it.
static void check(const sentencepiece::util::Status& st, const std::string& source, const char* what) {
  if (!st.ok()) throw FormatError(source, std::string(what) + " failed: " + st.ToString());
}

void Tokenizer::Impl::encode_plain(std::string_view text, bool at_start, std::vector<int>& ids) const {
  if (engine) return engine->encode(text, at_start, ids);
  std::vector<int> part;
  check((at_start ? sp : sp_inner).Encode({text.data(), text.size()}, &part), source, "encoding");
  ids.insert(ids.end(), part.begin(), part.end());
}

// The end-of-generation pieces llama.cpp recognizes by their text.
static bool is_end_of_generation_text(const std::string& p) {
  static const char* kEnders[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                                  "<|end_of_text|>", "<|eom_id|>", "<EOT>", "</s>", "<|return|>", "<|call|>",
                                  "<end_of_utterance>", "<eos>",
                                  "<\xef\xbd\x9c" "end\xe2\x96\x81" "of\xe2\x96\x81" "sentence\xef\xbd\x9c>"};
  for (const char* e : kEnders)
    if (p == e) return true;
  return false;
}

void Tokenizer::Impl::finish() {
  std::vector<int> nl;
  encode_plain("\n", false, nl);
  if (nl.size() == 1 && unk && nl[0] == *unk) nl.clear();
  newline = nl;
  const int n = size();
  ends.assign(size_t(n), 0);
  if (eos) ends[size_t(*eos)] = 1;
  if (eot) ends[size_t(*eot)] = 1;
  for (int i = 0; i < n; ++i)
    if (type(i) == PieceType::Control && is_end_of_generation_text(piece(i))) ends[size_t(i)] = 1;
}

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

static std::optional<int> opt_id(int id) { return id >= 0 ? std::optional<int>(id) : std::nullopt; }

Tokenizer Tokenizer::from_model_proto(std::string bytes, const std::string& source) {
  auto impl = std::make_unique<Impl>();
  impl->summary = check_model_proto(bytes, source);
  impl->proto = std::move(bytes);
  impl->source = source;
  auto st = impl->sp.LoadFromSerializedProto(impl->proto);
  if (!st.ok()) throw FormatError(source, std::string("SentencePiece rejected the model: ") + st.ToString());
  st = impl->sp_inner.LoadFromSerializedProto(without_dummy_prefix(impl->proto, source));
  if (!st.ok()) throw FormatError(source, std::string("SentencePiece rejected the model: ") + st.ToString());
  impl->unk = opt_id(impl->sp.unk_id());
  impl->bos = opt_id(impl->sp.bos_id());
  impl->eos = opt_id(impl->sp.eos_id());
  impl->pad = opt_id(impl->sp.pad_id());
  impl->add_bos = impl->bos.has_value();
  // SentencePiece itself finds user-defined pieces; control pieces only with parse_special.
  std::vector<std::string> pieces(size_t(impl->size()));
  for (int i = 0; i < impl->size(); ++i) pieces[size_t(i)] = impl->sp.IdToPiece(i);
  impl->specials.build(pieces, impl->summary.types, false);
  impl->finish();
  impl->fingerprint = fnv1a64(impl->proto);
  return Tokenizer(std::move(impl));
}

Tokenizer Tokenizer::load(const std::string& path) { return from_model_proto(load_file(path), display_name(path)); }

// A SentencePiece ModelProto with the vocabulary's pieces: for VocabSpec::sentencepiece_type.
static std::string proto_of_vocab(const VocabSpec& v, const std::string& source) {
  const size_t n = v.pieces.size();
  if (v.sentencepiece_type != "bpe" && v.sentencepiece_type != "unigram")
    throw FormatError(source, "tokenizer model type '" + v.sentencepiece_type + "', expected bpe or unigram");
  std::string proto;
  for (size_t i = 0; i < n; ++i) {
    std::string piece;
    put_bytes(piece, 1, v.pieces[i]);
    put_float(piece, 2, v.scores[i]);
    put_uint(piece, 3, uint64_t(int32_t(v.types[i])));
    put_bytes(proto, 1, piece);
  }
  auto special = [&](const std::optional<int>& id, int64_t none) -> int64_t { return id ? *id : none; };
  std::optional<int> unk = v.unk_id;
  if (!unk)
    for (size_t i = 0; i < n && !unk; ++i)
      if (v.types[i] == PieceType::Unknown) unk = int(i);
  std::string trainer;
  put_uint(trainer, 3, v.sentencepiece_type == "bpe" ? 2 : 1);
  put_int(trainer, 4, int64_t(n));
  put_uint(trainer, 35, v.byte_fallback ? 1 : 0);
  put_int(trainer, 40, special(unk, 0));
  put_int(trainer, 41, special(v.bos_id, -1));
  put_int(trainer, 42, special(v.eos_id, -1));
  put_int(trainer, 43, special(v.pad_id, -1));
  // SentencePiece finds BOS/EOS/PAD by piece text, so name the pieces at those ids.
  if (v.bos_id) put_bytes(trainer, 46, v.pieces[size_t(*v.bos_id)]);
  if (v.eos_id) put_bytes(trainer, 47, v.pieces[size_t(*v.eos_id)]);
  if (v.pad_id) put_bytes(trainer, 48, v.pieces[size_t(*v.pad_id)]);
  if (unk) put_bytes(trainer, 45, v.pieces[size_t(*unk)]);
  put_bytes(proto, 2, trainer);
  std::string normalizer;
  put_bytes(normalizer, 1, "identity");
  put_uint(normalizer, 3, v.add_dummy_prefix ? 1 : 0);
  put_uint(normalizer, 4, 0);
  put_bytes(proto, 3, normalizer);
  return proto;
}

// FNV-1a 64 over everything that decides how a GGUF vocabulary tokenizes.
// The hash runs over the text the pieces would make (each piece, NUL, its type and its score as
// std::to_string writes them, a newline; then the merges, one per line), one part at a time:
// the same value as hashing that text, without building it.
static uint64_t vocab_fingerprint(const VocabSpec& v) {
  const std::string head = "lm-vocab\n" + v.family + "\n" + v.pre + "\n" + (v.add_dummy_prefix ? "1" : "0") +
                           (v.lowercase ? "1" : "0") + (v.strip_accents ? "1" : "0") +
                           (v.rstrip_special ? "1" : "0") + "\n";
  uint64_t h = fnv1a64(head);
  auto add = [&](std::string_view s) { h = fnv1a64(s.data(), s.size(), h); };
  for (size_t i = 0; i < v.pieces.size(); ++i) {
    add(v.pieces[i]);
    add(std::string_view("\0", 1));
    add(std::to_string(int(v.types[i])));
    // std::to_string of a float is "%f"; byte-level vocabularies have no scores: skip printf then.
    add(v.scores[i] == 0.0f && !std::signbit(v.scores[i]) ? std::string_view(" 0.000000\n")
                                                          : std::string_view(" " + std::to_string(v.scores[i]) + "\n"));
  }
  for (const std::string& m : v.merges) add(m), add("\n");
  return h;
}

Tokenizer Tokenizer::from_vocab(VocabSpec v, const std::string& source) {
  const size_t n = v.pieces.size();
  if (n == 0) throw FormatError(source, "tokenizer has no tokens");
  if (n > size_t(std::numeric_limits<int32_t>::max()))
    throw FormatError(source, "tokenizer has " + std::to_string(n) + " tokens, more than ids can count");
  if (v.scores.size() != n || v.types.size() != n)
    throw FormatError(source, "tokenizer arrays differ in length: " + std::to_string(n) + " tokens, " +
                                  std::to_string(v.scores.size()) + " scores, " + std::to_string(v.types.size()) +
                                  " types; expected equal lengths");
  for (auto [name, id] : {std::pair<const char*, std::optional<int>>{"unknown", v.unk_id}, {"BOS", v.bos_id},
                          {"EOS", v.eos_id}, {"EOT", v.eot_id}, {"padding", v.pad_id}, {"separator", v.sep_id},
                          {"mask", v.mask_id}})
    if (id && (*id < 0 || size_t(*id) >= n))
      throw FormatError(source, std::string(name) + " token id " + std::to_string(*id) + " >= vocabulary size " +
                                    std::to_string(n) + " (special token id " + std::to_string(*id) + ")");
  if (!v.sentencepiece_type.empty()) {
    if (v.family != "llama")
      throw FormatError(source, "a SentencePiece model cannot be rebuilt from a '" + v.family + "' vocabulary");
    Tokenizer t = from_model_proto(proto_of_vocab(v, source), source);
    t.impl_->add_bos = v.add_bos && t.impl_->bos;
    t.impl_->add_eos = v.add_eos && t.impl_->eos;
    return t;
  }
  auto impl = std::make_unique<Impl>();
  impl->source = source;
  impl->family = v.family;
  impl->vocab.pieces = v.pieces;
  impl->vocab.scores = v.scores;
  impl->vocab.types = v.types;
  // As llama.cpp does on loading: a piece spelled like an end of generation is a control piece
  // whatever the file says (Phi-3 stores </s> as user-defined), so it is found in text only
  // with parse_special.
  for (size_t i = 0; i < n; ++i)
    if (impl->vocab.types[i] != PieceType::Control && is_end_of_generation_text(v.pieces[i]))
      impl->vocab.types[i] = PieceType::Control;
  impl->vocab.index();
  impl->unk = v.unk_id;
  if (!impl->unk)
    for (size_t i = 0; i < n && !impl->unk; ++i)
      if (v.types[i] == PieceType::Unknown) impl->unk = int(i);
  impl->vocab.unk_id = impl->unk;
  if (v.family == "llama") {
    impl->engine = tok::make_spm_merges(impl->vocab, v.add_dummy_prefix, source);
  } else if (v.family == "gpt2") {
    impl->engine = tok::make_byte_bpe(impl->vocab, v.merges, v.pre, source);
  } else if (v.family == "bert") {
    impl->engine = tok::make_wordpiece(impl->vocab, source, {v.lowercase, v.strip_accents});
  } else {
    throw FormatError(source, "tokenizer model '" + v.family +
                                  "' is not supported, expected llama (SentencePiece), gpt2 (byte-level BPE) or "
                                  "bert (WordPiece)");
  }
  impl->bos = v.bos_id;
  impl->eos = v.eos_id;
  impl->eot = v.eot_id;
  impl->pad = v.pad_id;
  impl->sep = v.sep_id;
  impl->mask = v.mask_id;
  impl->add_bos = v.add_bos && v.bos_id;
  impl->add_eos = v.add_eos && v.eos_id;
  impl->add_sep = v.add_sep && v.sep_id;
  impl->specials.build(v.pieces, impl->vocab.types, true, v.rstrip_special);
  impl->fingerprint = vocab_fingerprint(v);
  impl->spec = std::move(v);  // taken by value: a caller's temporary is not copied
  impl->finish();
  return Tokenizer(std::move(impl));
}

Tokenizer Tokenizer::train(const TokenizerTrainOptions& o, const std::function<bool(std::string&)>& next_line,
                           const Logger& log) {
  if (o.model_type == "bytebpe") return from_vocab(tok::train_byte_bpe(o, next_line, log), "<trained model>");
  if (o.model_type != "bpe" && o.model_type != "unigram")
    throw UsageError("--model-type '" + o.model_type + "', expected bpe, unigram or bytebpe");
  if (o.vocab_size < 8) throw UsageError("--vocab-size " + std::to_string(o.vocab_size) + ", expected at least 8");
  if (!(o.character_coverage >= 0.5 && o.character_coverage <= 1.0))
    throw UsageError("--character-coverage " + std::to_string(o.character_coverage) + ", expected 0.5 to 1");
  static const char* kRules[] = {"identity", "nfkc", "nmt_nfkc", "nfkc_cf", "nmt_nfkc_cf"};
  if (std::find(std::begin(kRules), std::end(kRules), o.normalization) == std::end(kRules))
    throw UsageError("--normalization '" + o.normalization + "', expected identity, nfkc, nmt_nfkc, nfkc_cf or nmt_nfkc_cf");
  auto join = [](const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) {
      if (x.find(',') != std::string::npos) throw UsageError("symbol '" + x + "' contains a comma, which cannot be passed on");
      s += (s.empty() ? "" : ",") + x;
    }
    return s;
  };
  auto b = [](bool x) { return std::string(x ? "true" : "false"); };
  std::unordered_map<std::string, std::string> kw = {
      {"model_type", o.model_type},
      {"vocab_size", std::to_string(o.vocab_size)},
      {"byte_fallback", b(o.byte_fallback)},
      {"character_coverage", std::to_string(o.character_coverage)},
      {"normalization_rule_name", o.normalization},
      {"remove_extra_whitespaces", b(o.remove_extra_whitespaces)},
      {"add_dummy_prefix", b(o.add_dummy_prefix)},
      {"split_digits", b(o.split_digits)},
      {"allow_whitespace_only_pieces", "true"},
      {"input_sentence_size", std::to_string(o.max_sentences)},
      {"shuffle_input_sentence", "true"},
      {"max_sentence_length", std::to_string(o.max_sentence_length)},
      {"num_threads", std::to_string(resolve_threads(o.threads))},
      {"minloglevel", log.level() == Logger::Level::Verbose ? "0" : "2"},
  };
  if (!o.user_defined_symbols.empty()) kw["user_defined_symbols"] = join(o.user_defined_symbols);
  if (!o.control_symbols.empty()) kw["control_symbols"] = join(o.control_symbols);

  LineIterator it(next_line);
  if (it.error()) std::rethrow_exception(it.error());
  if (it.done()) throw Error("no training data: the input has no lines");
  sentencepiece::SetRandomGeneratorSeed(unsigned(o.seed));
  std::string proto;
  auto st = sentencepiece::SentencePieceTrainer::Train(kw, &it, &proto);
  if (it.error()) std::rethrow_exception(it.error());
  if (!st.ok()) {
    // SentencePiece prefixes "file(line) [condition] " and names its own flags: speak ours.
    std::string why = st.error_message();
    if (size_t at = why.find("] "); why.rfind("./src/", 0) == 0 && at != std::string::npos) why = why.substr(at + 2);
    for (auto [theirs, ours] :
         {std::pair<std::string, std::string>{"decrease character_coverage with --character_coverage option",
                                              "lower --character-coverage"},
          {"vocab_size", "--vocab-size"}}) {
      for (size_t at = why.find(theirs); at != std::string::npos; at = why.find(theirs, at + ours.size()))
        why.replace(at, theirs.size(), ours);
    }
    std::string fix = why.find("too high") != std::string::npos ? "; use a smaller --vocab-size or more text" : "";
    throw Error("training failed: " + why + fix);
  }
  return from_model_proto(std::move(proto), "<trained model>");
}


int Tokenizer::vocab_size() const { return impl_->size(); }
const std::string& Tokenizer::piece(int id) const { return impl_->piece(id); }
float Tokenizer::score(int id) const {
  return impl_->engine ? impl_->vocab.scores[size_t(id)] : impl_->summary.scores[size_t(id)];
}
PieceType Tokenizer::type(int id) const { return impl_->type(id); }

std::string Tokenizer::token_bytes(int id) const {
  if (impl_->engine) return impl_->engine->token_bytes(id);
  switch (type(id)) {
    case PieceType::Control:
    case PieceType::Unused: return {};
    case PieceType::Unknown: return " \xe2\x81\x87 ";
    case PieceType::Byte: {
      const std::string& p = piece(id);  // "<0xNN>"
      if (p.size() == 6 && p.compare(0, 3, "<0x") == 0 && p[5] == '>')
        return std::string(1, char(std::stoi(p.substr(3, 2), nullptr, 16)));
      return p;
    }
    default: break;
  }
  const std::string& p = piece(id);
  std::string out;
  out.reserve(p.size());
  for (size_t i = 0; i < p.size(); ++i) {
    if (p.compare(i, 3, "\xe2\x96\x81") == 0) {
      out += ' ';
      i += 2;
    } else {
      out += p[i];
    }
  }
  return out;
}

std::optional<int> Tokenizer::unk_id() const { return impl_->unk; }
std::optional<int> Tokenizer::bos_id() const { return impl_->bos; }
std::optional<int> Tokenizer::eos_id() const { return impl_->eos; }
std::optional<int> Tokenizer::pad_id() const { return impl_->pad; }
std::optional<int> Tokenizer::eot_id() const { return impl_->eot; }
std::optional<int> Tokenizer::sep_id() const { return impl_->sep; }
std::optional<int> Tokenizer::mask_id() const { return impl_->mask; }
bool Tokenizer::add_bos() const { return impl_->add_bos; }
bool Tokenizer::add_eos() const { return impl_->add_eos; }
bool Tokenizer::add_sep() const { return impl_->add_sep; }
void Tokenizer::set_add_bos(bool on) { impl_->add_bos = on && impl_->bos; }
void Tokenizer::set_add_eos(bool on) { impl_->add_eos = on && impl_->eos; }
bool Tokenizer::ends_generation(int id) const { return id >= 0 && id < vocab_size() && impl_->ends[size_t(id)]; }
const std::string& Tokenizer::family() const { return impl_->family; }
const VocabSpec* Tokenizer::vocab_spec() const { return impl_->engine ? &impl_->spec : nullptr; }

std::string Tokenizer::model_type() const {
  if (impl_->engine) return impl_->engine->name();
  switch (impl_->summary.model_type) {
    case 2: return "bpe";
    case 3: return "word";
    case 4: return "char";
    default: return "unigram";
  }
}
bool Tokenizer::add_dummy_prefix() const {
  return impl_->engine ? impl_->family == "llama" && impl_->spec.add_dummy_prefix : impl_->summary.add_dummy_prefix;
}
bool Tokenizer::byte_fallback() const {
  if (!impl_->engine) return impl_->summary.byte_fallback;
  for (PieceType t : impl_->vocab.types)
    if (t == PieceType::Byte) return true;
  return impl_->family == "gpt2";  // every byte has a symbol
}

void Tokenizer::encode(std::string_view text, std::vector<int>& ids, bool parse_special) const {
  if (!impl_->engine && !parse_special) {  // exactly spm_encode
    check(impl_->sp.Encode({text.data(), text.size()}, &ids), impl_->source, "encoding");
    return;
  }
  ids.clear();
  impl_->encode(text, true, parse_special, ids);
}

void Tokenizer::encode_pieces(std::string_view text, std::vector<std::string>& pieces, bool parse_special) const {
  if (!impl_->engine && !parse_special) {
    check(impl_->sp.Encode({text.data(), text.size()}, &pieces), impl_->source, "encoding");
    return;
  }
  std::vector<int> ids;
  encode(text, ids, parse_special);
  pieces.clear();
  for (int id : ids) pieces.push_back(piece(id));
}

static void check_ids(const std::vector<int>& ids, int vocab, const std::string& source) {
  for (int id : ids)
    if (id < 0 || id >= vocab)
      throw FormatError(source, "token id " + std::to_string(id) + " out of range [0, " + std::to_string(vocab) + ")");
}

// A GGUF vocabulary's decoding: the tokens' bytes, less the dummy prefix's space at the front.
static std::string engine_decode(const Tokenizer& t, const std::vector<int>& ids) {
  std::string text;
  for (int id : ids) text += t.token_bytes(id);
  if (t.add_dummy_prefix() && !text.empty() && text[0] == ' ') text.erase(0, 1);
  return text;
}

std::string Tokenizer::decode(const std::vector<int>& ids) const {
  check_ids(ids, vocab_size(), impl_->source);
  if (impl_->engine) return engine_decode(*this, ids);
  std::string text;
  check(impl_->sp.Decode(ids, &text), impl_->source, "decoding");
  return text;
}

void Tokenizer::encode_line_of_text(std::string_view line, bool first, bool newline, std::vector<int>& ids,
                                    bool parse_special) const {
  if (impl_->engine) {
    if (!newline) return impl_->encode(line, first, parse_special, ids);
    std::string s;
    s.reserve(line.size() + 1);
    s.append(line).push_back('\n');
    return impl_->encode(s, first, parse_special, ids);
  }
  if (first && line.empty() && newline && impl_->summary.add_dummy_prefix) {
    // An empty first line followed by more text: the whole text starts with the dummy prefix
    // alone, which the model encodes as a single space does without the prefix.
    impl_->encode_plain(" ", false, ids);
  } else if (!line.empty() || !newline || !first) {
    impl_->encode(line, first, parse_special, ids);
  }
  if (newline) ids.insert(ids.end(), impl_->newline.begin(), impl_->newline.end());
}

void Tokenizer::encode_text(std::string_view text, std::vector<int>& ids, bool parse_special) const {
  if (impl_->engine) return impl_->encode(text, true, parse_special, ids);
  bool first = true;
  while (true) {
    const size_t nl = text.find('\n');
    encode_line_of_text(text.substr(0, nl), first, nl != std::string_view::npos, ids, parse_special);
    if (nl == std::string_view::npos) return;
    text.remove_prefix(nl + 1);
    first = false;
    if (text.empty()) return;
  }
}

std::string Tokenizer::decode_text(const std::vector<int>& ids) const {
  check_ids(ids, vocab_size(), impl_->source);
  if (impl_->engine) return engine_decode(*this, ids);
  const auto& nl = impl_->newline;
  std::string text, part;
  if (nl.size() != 1) {
    check(impl_->sp.Decode(ids, &text), impl_->source, "decoding");
    return text;
  }
  std::vector<int> segment;
  bool first = true;
  auto emit = [&] {
    check((first ? impl_->sp : impl_->sp_inner).Decode(segment, &part), impl_->source, "decoding");
    text += part;
    segment.clear();
    first = false;
  };
  for (int id : ids) {
    if (id == nl[0]) {
      emit();
      text += '\n';
    } else {
      segment.push_back(id);
    }
  }
  if (!segment.empty()) emit();
  return text;
}

const std::vector<int>& Tokenizer::newline_ids() const { return impl_->newline; }
const std::string& Tokenizer::model_proto() const { return impl_->proto; }
uint64_t Tokenizer::fingerprint() const { return impl_->fingerprint; }

}  // namespace lm
