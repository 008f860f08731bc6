// lm-tokenize: train SentencePiece tokenizers, encode text to ids, pieces or token files,
// decode them back, list the vocabulary and count tokens. The work is in lib/tokenizer.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "base/error.hpp"
#include "base/file.hpp"
#include "base/json.hpp"
#include "base/utf8.hpp"
#include "common/cli.hpp"
#include "common/text.hpp"
#include "format/token_file.hpp"
#include "model/model_io.hpp"
#include "model/tokenizer_loader.hpp"
#include "tokenizer/options.hpp"
#include "tokenizer/text_batch.hpp"
#include "tokenizer/tokenizer.hpp"

namespace {


constexpr size_t kBatchLines = 8192;

bool is_token_file(const lm::MappedFile& in) {
  return in.size() >= sizeof lm::format::kTokenFileMagic &&
         std::equal(in.data(), in.data() + sizeof lm::format::kTokenFileMagic, lm::format::kTokenFileMagic);
}

// For decode --format auto: ids and pieces are text, so an input whose first bytes hold a
// control character (a NUL, say) is read as a token file, whose reader says what it is instead.
bool looks_binary(const lm::MappedFile& in) {
  for (size_t i = 0; i < std::min<size_t>(in.size(), sizeof lm::format::kTokenFileMagic); ++i)
    if (in.data()[i] < 0x09 || (in.data()[i] > 0x0d && in.data()[i] < 0x20) || in.data()[i] == 0x7f) return true;
  return false;
}

void check_not_input(const std::string& output, const std::vector<std::string>& inputs) {
  for (const auto& in : inputs)
    if (lm::same_file(in, output))
      throw lm::UsageError("output '" + output + "' is also an input; choose another output file");
}

int special_id(const std::optional<int>& id, const char* name, const std::string& model) {
  if (!id) throw lm::UsageError(std::string("--") + name + ": " + model + " has no " + name + " piece");
  return *id;
}

void append_ids(std::string& out, const std::vector<int>& ids, std::optional<int> bos, std::optional<int> eos) {
  char buf[16];
  bool sep = false;
  auto put = [&](int id) {
    if (sep) out += ' ';
    out.append(buf, size_t(std::to_chars(buf, buf + sizeof buf, id).ptr - buf));
    sep = true;
  };
  if (bos) put(*bos);
  for (int id : ids) put(id);
  if (eos) put(*eos);
  out += '\n';
}

// ---- train ----
// Inputs that cannot be read twice (stdin, pipes): their first kKeepBytes are kept while
// training, to measure the byte-piece share on them afterwards.
constexpr size_t kKeepBytes = size_t{64} << 20;

bool regular_file(const std::string& path) {
  struct stat st{};
  return !lm::is_std_stream(path) && ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

int run_train(const lm::TokenizerTrainOptions& opts, const std::vector<std::string>& inputs,
              const std::string& output, const lm::Logger& log) {
  check_not_input(output, inputs);
  lm::OutputFile out(output);  // before training: an unwritable output fails in no time
  size_t next_input = 0;
  std::unique_ptr<lm::LineReader> reader;
  bool keep = false;
  struct Kept {
    size_t input;
    std::string line;
    bool newline;
  };
  std::vector<Kept> kept;
  size_t kept_bytes = 0;
  bool kept_all = true;
  uint64_t lines = 0, bytes = 0;
  auto next_line = [&](std::string& line) {
    for (;;) {
      if (!reader) {
        if (next_input == inputs.size()) return false;
        lm::tools::note_terminal_input(log, inputs[next_input], "training text");
        keep = log.level() != lm::Logger::Level::Quiet && !regular_file(inputs[next_input]);
        reader = std::make_unique<lm::LineReader>(inputs[next_input++]);
      }
      bool nl = false;
      if (reader->next(line, &nl)) {
        ++lines;
        bytes += line.size() + 1;
        if (keep && kept_bytes + line.size() <= kKeepBytes) {
          kept.push_back({next_input - 1, line, nl});
          kept_bytes += line.size() + 1;
        } else if (keep) {
          kept_all = false;
        }
        return true;
      }
      reader.reset();
    }
  };
  auto t0 = std::chrono::steady_clock::now();
  lm::Tokenizer tok = lm::Tokenizer::train(opts, next_line, log);
  if (tok.model_proto().empty()) {  // a byte-level BPE vocabulary: a GGUF file of tokenizer keys
    lm::format::GgufWriter w;
    lm::model::add_tokenizer(tok, w);
    w.write(out);
  } else {
    out.write(tok.model_proto());
  }
  out.commit();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  log.info("trained a %s tokenizer of %d pieces on %llu lines (%.1f MB) in %.1f s: %s", tok.model_type().c_str(),
           tok.vocab_size(), (unsigned long long)lines, double(bytes) / 1e6, secs, out.path().c_str());
  if (log.level() == lm::Logger::Level::Quiet) return 0;

  // How much of the training text falls back to byte pieces: each input encoded as one text, as
  // `encode --format bin` and lm-train see it. Characters left out by --character-coverage show here.
  // Newlines are byte pieces whatever the coverage (the trainer sees lines without them), so
  // they are counted apart.
  lm::TokenCounter counter(tok);
  const int nl_byte = tok.newline_ids().size() == 1 && tok.type(tok.newline_ids()[0]) == lm::PieceType::Byte
                          ? tok.newline_ids()[0] : -1;
  uint64_t nl_bytes = 0;
  lm::DocumentBatch batch(tok);
  std::vector<std::vector<int>> ids;
  auto encode = [&](bool all) {
    batch.encode(ids, opts.threads, all);
    for (const auto& v : ids) {
      counter.add(v);
      nl_bytes += uint64_t(std::count(v.begin(), v.end(), nl_byte));
    }
  };
  auto add = [&](const std::string& line, bool is_first, bool nl) {
    batch.add(line, is_first, nl);
    if (batch.size() >= kBatchLines) encode(false);
  };
  size_t k = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    bool is_first = true;
    if (regular_file(inputs[i])) {
      lm::LineReader r(inputs[i]);
      std::string line;
      bool nl = false;
      while (r.next(line, &nl)) add(line, std::exchange(is_first, false), nl);
    }
    for (; k < kept.size() && kept[k].input == i; ++k) add(kept[k].line, std::exchange(is_first, false), kept[k].newline);
  }
  encode(true);
  if (counter.tokens() > 0 && tok.family() == "gpt2") {  // every byte has a symbol: report compression
    log.info("the training text is %llu tokens, %.2f bytes per token%s", (unsigned long long)counter.tokens(),
             double(bytes) / double(counter.tokens()),
             kept_all ? "" : " (standard input and pipes counted up to their first 64 MiB)");
  } else if (counter.tokens() > 0) {
    const double n = double(counter.tokens());
    char with_newlines[96] = "";
    if (nl_bytes > 0)
      std::snprintf(with_newlines, sizeof with_newlines, ", %.2f%% with the newlines' %s", 100.0 * double(counter.byte_pieces()) / n,
                    tok.piece(nl_byte).c_str());
    log.info("byte pieces are %.2f%% of the %llu tokens of the training text%s%s",
             100.0 * double(counter.byte_pieces() - nl_bytes) / n, (unsigned long long)counter.tokens(), with_newlines,
             kept_all ? "" : " (standard input and pipes counted up to their first 64 MiB)");
  }
  return 0;
}

// ---- encode ----
int run_encode(const lm::EncodeOptions& opts, const std::string& model, const std::vector<std::string>& inputs,
               const std::string& output, const lm::Logger& log) {
  check_not_input(output, inputs);
  if (opts.format == "bin" && lm::is_std_stream(output) && isatty(STDOUT_FILENO))
    throw lm::UsageError("refusing to write a binary token file to a terminal; use -o FILE or redirect stdout");
  lm::Tokenizer tok = lm::model::load_tokenizer(model);
  std::optional<int> bos, eos;
  if (opts.bos) bos = special_id(tok.bos_id(), "bos", model);
  if (opts.eos) eos = special_id(tok.eos_id(), "eos", model);
  const bool bin = opts.format == "bin";
  if (bin && tok.newline_ids().empty())
    log.warn("%s cannot represent a newline; lines will run together in the token file", model.c_str());

  lm::OutputFile out(output);
  std::optional<lm::format::TokenFileWriter> writer;
  if (bin) writer.emplace(out, uint32_t(tok.vocab_size()), tok.fingerprint());
  std::vector<std::string> lines;  // pieces: each line on its own
  lm::DocumentBatch doc(tok);      // bin: lines of one text
  std::vector<std::vector<int>> ids;
  std::vector<std::string> pieces;
  std::string text;
  uint64_t n_lines = 0, n_bytes = 0, n_tokens = 0;
  auto t0 = std::chrono::steady_clock::now();

  auto flush = [&](bool all) {
    text.clear();
    if (opts.format == "pieces") {
      for (const auto& line : lines) {
        tok.encode_pieces(line, pieces, opts.parse_special);
        if (bos) text += tok.piece(*bos) + ' ';
        for (size_t i = 0; i < pieces.size(); ++i) (text += pieces[i]) += i + 1 < pieces.size() ? " " : "";
        if (eos) (text += pieces.empty() ? "" : " ") += tok.piece(*eos);
        text += '\n';
        n_tokens += pieces.size() + bos.has_value() + eos.has_value();
      }
      out.write(text);
    } else {  // bin (ids as text go through run_pipeline below)
      doc.encode(ids, opts.threads, all, opts.parse_special);
      for (const auto& v : ids) {
        writer->write(v);
        n_tokens += v.size();
      }
    }
    lines.clear();
  };

  // --whole: each input is one text, tokenized as one string (for a GGUF vocabulary exactly as
  // llama.cpp tokenizes a file), written as one line of ids or pieces.
  auto encode_whole = [&](const std::string& path) {
    lm::LineReader reader(path);
    std::string line, all;
    bool nl = false;
    while (reader.next(line, &nl)) {
      n_bytes += line.size() + nl;
      ++n_lines;
      all += line;
      if (nl) all += '\n';
    }
    std::vector<int> v;
    if (bos) v.push_back(*bos);
    tok.encode_text(all, v, opts.parse_special);
    if (eos) v.push_back(*eos);
    n_tokens += v.size();
    if (bin) return writer->write(v);
    text.clear();
    if (opts.format == "pieces") {
      for (size_t i = 0; i < v.size(); ++i) (text += i ? " " : "") += tok.piece(v[i]);
      text += '\n';
    } else {
      append_ids(text, v, std::nullopt, std::nullopt);
    }
    out.write(text);
  };

  // Ids as text, line by line: reading, encoding and writing overlap (run_pipeline), each slot
  // a batch of lines with its ids and their text.
  const bool pipelined = !opts.whole && !bin && opts.format != "pieces";
  if (pipelined) {
    std::vector<std::string> batch[2];
    std::vector<std::vector<int>> batch_ids[2];
    std::vector<std::string> batch_text[2];
    size_t next_input = 0;
    std::optional<lm::LineReader> reader;
    auto read = [&](int slot) -> size_t {
      auto& b = batch[slot];
      size_t n = 0;
      while (n < kBatchLines) {
        if (!reader) {
          if (next_input == inputs.size()) break;
          lm::tools::note_terminal_input(log, inputs[next_input], "text");
          reader.emplace(inputs[next_input++]);
        }
        if (n == b.size()) b.emplace_back();
        bool nl = false;
        if (!reader->next(b[n], &nl)) {
          reader.reset();
          continue;
        }
        n_bytes += b[n].size() + nl;
        ++n_lines, ++n;
      }
      batch_ids[slot].resize(n);
      batch_text[slot].resize(n);
      return n;
    };
    auto encode = [&](int slot, size_t i) {
      std::vector<int>& v = batch_ids[slot][i];
      v.clear();
      tok.encode(batch[slot][i], v, opts.parse_special);
      batch_text[slot][i].clear();
      append_ids(batch_text[slot][i], v, bos, eos);
    };
    auto write = [&](int slot) {
      text.clear();
      for (size_t i = 0; i < batch_ids[slot].size(); ++i) {
        text += batch_text[slot][i];
        n_tokens += batch_ids[slot][i].size() + bos.has_value() + eos.has_value();
      }
      out.write(text);
    };
    lm::run_pipeline(opts.threads, read, encode, write);
  } else {  // pieces, --format bin and --whole
    for (const auto& path : inputs) {
      lm::tools::note_terminal_input(log, path, "text");
      if (opts.whole) {
        encode_whole(path);
        continue;
      }
      lm::LineReader reader(path);
      std::string line;
      bool nl = false, is_first = true;
      if (bin && bos) writer->write(&*bos, 1), ++n_tokens;
      while (reader.next(line, &nl)) {
        n_bytes += line.size() + nl;
        ++n_lines;
        if (bin) doc.add(line, is_first, nl);
        else lines.push_back(std::move(line));
        is_first = false;
        if (lines.size() >= kBatchLines || doc.size() >= kBatchLines) flush(false);
      }
      flush(true);
      if (bin && eos) writer->write(&*eos, 1), ++n_tokens;
    }
  }
  if (writer) writer->finish();
  out.commit();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  log.debug("encoded %llu lines, %llu bytes into %llu tokens (%.3f bytes/token) in %.2f s (%.1f MB/s)",
            (unsigned long long)n_lines, (unsigned long long)n_bytes, (unsigned long long)n_tokens,
            n_tokens ? double(n_bytes) / double(n_tokens) : 0.0, secs, double(n_bytes) / 1e6 / std::max(secs, 1e-9));
  return 0;
}

// ---- decode ----
// Parses one line of ids; throws FormatError naming the input, line and value.
void parse_ids(std::string_view line, const std::string& name, uint64_t line_no, int vocab, std::vector<int>& ids) {
  ids.clear();
  const char* p = line.data();
  const char* end = p + line.size();
  for (;;) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r')) ++p;
    if (p == end) return;
    long long v = 0;
    auto [next, ec] = std::from_chars(p, end, v);
    if (ec != std::errc() || (next < end && *next != ' ' && *next != '\t' && *next != '\r'))
      throw lm::FormatError(name, "line " + std::to_string(line_no) + ": '" +
                                      lm::escape_bytes(std::string_view(p, size_t(std::min<ptrdiff_t>(end - p, 20)))) +
                                      "' is not a token id, expected integers separated by spaces");
    if (v < 0 || v >= vocab)
      throw lm::FormatError(name, "line " + std::to_string(line_no) + ": token id " + std::to_string(v) +
                                      " out of range [0, " + std::to_string(vocab) +
                                      "); decode with the model used for encoding");
    ids.push_back(int(v));
    p = next;
  }
}

int run_decode(const lm::DecodeOptions& opts, const std::string& model, const std::vector<std::string>& inputs,
               const std::string& output, const lm::Logger& log) {
  check_not_input(output, inputs);
  lm::Tokenizer tok = lm::model::load_tokenizer(model);
  lm::OutputFile out(output);
  std::optional<lm::PieceIndex> index;
  std::vector<int> ids;
  for (const auto& path : inputs) {
    lm::tools::note_terminal_input(log, path, "token ids or pieces");
    lm::MappedFile in(path);
    const bool bin = opts.format == "bin" || (opts.format == "auto" && (is_token_file(in) || looks_binary(in)));
    if (bin) {
      lm::format::TokenFile tf(std::move(in));
      tf.check_fingerprint(tok.fingerprint(), model);
      tf.check_range(uint32_t(tok.vocab_size()));
      ids.resize(tf.size());
      tf.read(0, ids.size(), ids.data());
      out.write(tok.decode_text(ids));
      continue;
    }
    if (opts.format == "pieces" && !index) index.emplace(tok);
    std::string_view rest = in.view();
    uint64_t line_no = 0;
    while (!rest.empty()) {
      size_t nl = rest.find('\n');
      std::string_view line = rest.substr(0, nl);
      rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
      ++line_no;
      if (line.size() > lm::LineReader::kDefaultMaxLine) throw lm::line_too_long(in.path(), line_no, lm::LineReader::kDefaultMaxLine);
      if (index) {
        ids.clear();
        for (size_t pos = 0; pos < line.size();) {
          size_t sp = std::min(line.find(' ', pos), line.size());
          if (sp > pos) {
            auto id = index->find(line.substr(pos, sp - pos));
            if (!id)
              throw lm::FormatError(in.path(), "line " + std::to_string(line_no) + ": '" +
                                                   lm::escape_bytes(line.substr(pos, sp - pos)) + "' is not a piece of " +
                                                   model);
            ids.push_back(*id);
          }
          pos = sp + 1;
        }
      } else {
        parse_ids(line, in.path(), line_no, tok.vocab_size(), ids);
      }
      out.write(tok.decode(ids));
      out.put('\n');
    }
  }
  out.commit();
  return 0;
}

// ---- vocab ----
int run_vocab(const lm::VocabOptions& opts, const std::string& model, const std::string& output) {
  lm::Tokenizer tok = lm::model::load_tokenizer(model);
  lm::OutputFile out(output);
  std::string line;
  for (int id = 0; id < tok.vocab_size(); ++id) {
    line.clear();
    if (opts.json) {
      line = lm::dump_json({{"id", id},
                            {"piece", tok.piece(id)},
                            {"score", lm::json_number(tok.score(id))},
                            {"type", lm::piece_type_name(tok.type(id))}}) +
             "\n";
    } else {
      line += std::to_string(id) + '\t';
      lm::tools::append_tsv_field(line, tok.piece(id));
      line += "\t" + lm::tools::num(tok.score(id), "%.9g") + '\t' + lm::piece_type_name(tok.type(id)) + '\n';
    }
    out.write(line);
  }
  out.commit();
  return 0;
}

// ---- stats ----
int run_stats(const lm::StatsOptions& opts, const std::string& model, const std::vector<std::string>& inputs,
              const lm::Logger& log) {
  lm::Tokenizer tok = lm::model::load_tokenizer(model);
  lm::TokenCounter counter(tok);
  uint64_t bytes = 0;
  lm::DocumentBatch batch(tok);
  std::vector<std::vector<int>> ids;
  for (const auto& path : inputs) {
    lm::tools::note_terminal_input(log, path, "text");
    lm::MappedFile in(path);
    if (is_token_file(in)) {
      lm::format::TokenFile tf(std::move(in));
      tf.check_fingerprint(tok.fingerprint(), model);
      tf.check_range(uint32_t(tok.vocab_size()));
      std::vector<int> all(tf.size());
      tf.read(0, all.size(), all.data());
      counter.add(all);
      bytes += tok.decode_text(all).size();
      continue;
    }
    std::string_view rest = in.view();
    bool doc_start = true;  // each input is a document
    uint64_t line_no = 0;
    while (!rest.empty()) {
      size_t nl = rest.find('\n');
      // The line-length limit of every text reader (LineReader's), before a line is copied or encoded.
      if (++line_no, std::min(nl, rest.size()) > lm::LineReader::kDefaultMaxLine)
        throw lm::line_too_long(in.path(), line_no, lm::LineReader::kDefaultMaxLine);
      batch.add(rest.substr(0, nl), doc_start, nl != std::string_view::npos);
      bytes += std::min(nl, rest.size()) + (nl != std::string_view::npos);
      doc_start = false;
      rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
      if (batch.size() >= kBatchLines || rest.empty()) {
        batch.encode(ids, opts.threads, rest.empty());
        for (const auto& v : ids) counter.add(v);
      }
    }
  }
  double bpt = counter.tokens() ? double(bytes) / double(counter.tokens()) : 0.0;
  if (opts.json)
    std::printf("%s\n", lm::dump_json({{"tokens", counter.tokens()},
                                       {"bytes", bytes},
                                       {"bytes_per_token", lm::json_number(bpt)},
                                       {"distinct", counter.distinct()},
                                       {"vocab_size", tok.vocab_size()},
                                       {"unknown", counter.unknown()},
                                       {"byte_pieces", counter.byte_pieces()}})
                             .c_str());
  else
    std::printf("tokens\t%llu\nbytes\t%llu\nbytes_per_token\t%.4f\ndistinct\t%llu\nvocab_size\t%d\nunknown\t%llu\n"
                "byte_pieces\t%llu\n",
                (unsigned long long)counter.tokens(), (unsigned long long)bytes, bpt,
                (unsigned long long)counter.distinct(), tok.vocab_size(), (unsigned long long)counter.unknown(),
                (unsigned long long)counter.byte_pieces());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  lm::TokenizerTrainOptions train;
  lm::EncodeOptions encode;
  lm::DecodeOptions decode;
  lm::VocabOptions vocab;
  lm::StatsOptions stats;
  lm::Logger log("lm-tokenize");
  const std::string verbose_man =
      R"(Print more detail on standard error (for encode: lines, bytes, tokens and speed; for vocab
and stats with a GGUF model: a line about the model, with
.BR lm-quantize (1)
results when it has them).)";
  std::string model, model_out, output = "-";
  std::vector<std::string> inputs{"-"};

  CLI::App app{"Train SentencePiece tokenizers; encode text to token ids, pieces or token files; decode them back"};
  lm::tools::init_app(app, "lm-tokenize");
  app.require_subcommand(1);
  auto add_common = [&](CLI::App* sub, bool with_output) {
    sub->add_option("inputs", inputs, "Input files ('-' = stdin)")->type_name("FILE");
    if (with_output) sub->add_option("-o,--output", output, "Output file ('-' = stdout)")->type_name("FILE");
    lm::tools::add_verbosity(*sub, log, verbose_man);
  };
  auto add_model = [&](CLI::App* sub) {
    lm::tools::doc(sub->add_option("-m,--model", model, "Tokenizer: a SentencePiece .model or a GGUF model file")
        ->type_name("FILE")->required())
        .man(R"(The tokenizer (required).)");
  };

  CLI::App* t = app.add_subcommand("train", "Train a tokenizer on text (one sentence or paragraph per line)");
  add_common(t, false);
  lm::tools::doc(
      t->add_option("-o,--output", model_out, "Output model file (.model; .gguf for bytebpe)")->type_name("FILE")->required())
      .man(R"(The model file to write (required): a SentencePiece
.I .model
file, or for
.B bytebpe
a GGUF vocabulary.)");
  lm::tools::doc(t->add_option("--model-type", train.model_type, "Algorithm"))
      .choices({"bpe", "unigram", "bytebpe"})
      .man(R"(The algorithm:
.B bpe
and
.B unigram
train a SentencePiece model (a
.I .model
file);
.B bytebpe
trains a byte-level BPE vocabulary as GPT-2, Llama 3 and Qwen use, written as a GGUF file of
tokenizer keys that every lm tool and llama.cpp read. Its words are split by
.BR \-\-pre\-tokenizer ,
its 256 byte symbols make every text encodable, and
.B \-\-control\-symbols
(default
.BR <|endoftext|> ,
also BOS and EOS) come last. The SentencePiece options
.RB ( \-\-character\-coverage ,
.BR \-\-normalization ,
.BR \-\-split\-digits ,
.BR \-\-add\-dummy\-prefix )
do not apply to it.)");
  lm::tools::doc(t->add_option("--pre-tokenizer", train.pre_tokenizer, "bytebpe: how text is split into words")
                     ->type_name("NAME"))
      .man(R"(For
.BR "\-\-model\-type bytebpe" :
the expressions that split text into words before merging, named as llama.cpp's
.B tokenizer.ggml.pre
names them
.RB ( gpt\-2 ,
.BR llama\-bpe ,
.BR qwen2 ,
.BR deepseek\-llm ,
\&...; an unknown name is refused with the list of known ones).)");
  lm::tools::doc(t->add_option("--vocab-size", train.vocab_size, "Number of pieces")->check(CLI::Range(8, 1 << 24)))
      .man(R"(Number of pieces, including the special and byte pieces.)");
  lm::tools::add_switch(*t, "byte-fallback", train.byte_fallback, "Encode unknown characters as UTF-8 bytes")
      .man(R"(Encode characters outside the vocabulary as their UTF-8 bytes
.RB ( <0x41> )
instead of the unknown piece.)");
  lm::tools::doc(
      t->add_option("--character-coverage", train.character_coverage, "Share of characters the pieces must cover")
          ->check(CLI::Range(0.5, 1.0)))
      .man(R"(Share of the characters in the training text that normal pieces must cover, 0.5 to 1
(1: every character). Rarer characters become byte pieces or unknown. SentencePiece
recommends 1 for languages with small alphabets and 0.9995 for those with thousands of
characters, such as Chinese or Japanese.)");
  lm::tools::doc(
      t->add_option("--user-defined-symbols", train.user_defined_symbols, "Pieces always kept whole (comma-separated)")
          ->delimiter(',')
          ->type_name("LIST"))
      .man(R"(Comma-separated pieces that are always kept whole, even inside words.)");
  lm::tools::doc(t->add_option("--control-symbols", train.control_symbols,
                               "Reserved pieces never produced from text (comma-separated)")
                     ->delimiter(',')
                     ->type_name("LIST"))
      .man(R"(Comma-separated reserved pieces that get ids but are never produced from text.)");
  lm::tools::doc(t->add_option("--normalization", train.normalization, "Unicode normalization rule")
      ->type_name("RULE"))
      .choices({"identity", "nfkc", "nmt_nfkc", "nfkc_cf", "nmt_nfkc_cf"})
      .man(R"(Unicode normalization: identity (none), nfkc, nmt_nfkc, nfkc_cf or nmt_nfkc_cf.)");
  lm::tools::add_switch(*t, "remove-extra-whitespaces", train.remove_extra_whitespaces,
                        "Collapse runs of whitespace (lossy)")
      .man(R"(Collapse runs of whitespace and strip it at line ends (lossy).)");
  lm::tools::add_switch(*t, "add-dummy-prefix", train.add_dummy_prefix, "Add a space before each text")
      .man(R"(Add a space before each text, so a word is the same piece at the start of a text and
after a space, as in Llama tokenizers.)");
  lm::tools::add_switch(*t, "split-digits", train.split_digits, "Make every digit its own piece")
      .man(R"(Make every digit its own piece.)");
  lm::tools::doc(
      t->add_option("--max-sentences", train.max_sentences, "Train on a random sample of this many lines (0 = all)"))
      .man(R"(Train on a random sample of N lines (0: all lines).)");
  lm::tools::doc(
      t->add_option("--max-sentence-length", train.max_sentence_length, "Skip lines longer than this many bytes")
          ->check(CLI::Range(1, 1 << 30)))
      .man(R"(Skip training lines longer than N bytes.)");
  lm::tools::doc(t->add_option("-s,--seed", train.seed, "Random seed for sampling lines"))
      .man(R"(Seed for the line sample.)");
  lm::tools::add_threads(*t, train.threads);

  CLI::App* e = app.add_subcommand("encode", "Encode text, one line in and one line out, or into a token file");
  add_common(e, true);
  add_model(e);
  lm::tools::doc(
      e->add_option("--format", encode.format, "Output: ids, pieces, or bin (a token file, see lm-tokens(5))"))
      .choices({"ids", "pieces", "bin"})
      .man(R"(Output format.)");
  lm::tools::doc(
      e->add_flag("--bos", encode.bos, "Add the BOS id before each line (before each input with --format bin)"))
      .man(R"(Add the BOS id before each line, or before each input with
.BR "\-\-format bin" .)");
  lm::tools::doc(
      e->add_flag("--eos", encode.eos, "Add the EOS id after each line (after each input with --format bin)"))
      .man(R"(Add the EOS id after each line, or after each input with
.BR "\-\-format bin" .)");
  lm::tools::doc(e->add_flag("--parse-special", encode.parse_special,
                             "Read control tokens such as <s> or <|im_end|> written in the text"))
      .man(R"(Turn the text of a control token (such as
.BR <s> ,
.B </s>
or
.BR <|im_end|> )
into that token's id. Without it such text is tokenized like any other text. User-defined
tokens of the vocabulary are always found.)");
  lm::tools::doc(e->add_flag("--whole", encode.whole, "Encode each input as one text, written as one line"))
      .man(R"(Encode each input as one text, newlines included, and write its ids or pieces on one
line; with
.B "\-\-format bin"
each input is one text as always. For a GGUF vocabulary the text is tokenized as one
string, exactly as
.B llama-tokenize
does with a file; line by line, a pre-tokenizer that joins whitespace across lines can split
differently there.)");
  lm::tools::add_threads(*e, encode.threads);

  CLI::App* d = app.add_subcommand("decode", "Decode ids, pieces or a token file back to text");
  add_common(d, true);
  add_model(d);
  lm::tools::doc(d->add_option("--format", decode.format, "Input: auto, ids, pieces or bin")
      )
      .choices({"auto", "ids", "pieces", "bin"})
      .man(R"(Input format (auto: a token file if the input starts with its magic, else ids).)");

  CLI::App* v = app.add_subcommand("vocab", "List the vocabulary: id, piece, score, type");
  lm::tools::doc(v->add_option("-o,--output", output, "Output file ('-' = stdout)")->type_name("FILE"))
      .man(R"(Output file.)");
  lm::tools::add_verbosity(*v, log, verbose_man);
  add_model(v);
  lm::tools::doc(v->add_flag("--json", vocab.json, "Write JSON Lines"))
      .man(R"(Write JSON Lines with the keys id, piece, score and type.)");

  CLI::App* s = app.add_subcommand("stats", "Count tokens, bytes per token and vocabulary use of text or token files");
  add_common(s, false);
  add_model(s);
  lm::tools::doc(s->add_flag("--json", stats.json, "Write one JSON object"))
      .man(R"(Print one JSON object with the same keys.)");
  lm::tools::add_threads(*s, stats.threads);

  return lm::tools::run_main(app, argc, argv, [&] {
    if ((v->parsed() || s->parsed()) && log.level() == lm::Logger::Level::Verbose)
      if (auto d = lm::model::try_describe_model(model)) log.debug("%s: %s", model.c_str(), d->c_str());
    if (t->parsed()) return run_train(train, inputs, model_out, log);
    if (e->parsed()) return run_encode(encode, model, inputs, output, log);
    if (d->parsed()) return run_decode(decode, model, inputs, output, log);
    if (v->parsed()) return run_vocab(vocab, model, output);
    return run_stats(stats, model, inputs, log);
  });
}
