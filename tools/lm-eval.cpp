// lm-eval: perplexity, bits per byte and KL divergence of GGUF models on text; importance
// matrices for lm-quantize --imatrix; corpus BLEU and
// chrF of hypotheses against references; classification metrics of predicted labels; the
// picture of a training run's metrics. Scoring lives in lib/eval; this file reads inputs,
// shows progress on a terminal and writes tables (TSV) or JSON.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "base/file.hpp"
#include "base/json.hpp"
#include "common/cli.hpp"
#include "common/progress.hpp"
#include "common/text.hpp"
#include "common/tokens.hpp"
#include "eval/bleu.hpp"

#include "eval/classifier.hpp"
#include "dataset/labeled.hpp"
#include "eval/classify.hpp"
#include "eval/embed.hpp"
#include "eval/imatrix.hpp"
#include "eval/mlm.hpp"
#include "eval/perplexity.hpp"
#include "kernels/blas.hpp"
#include "model/model_io.hpp"
#include "model/session.hpp"
#include "model/tokenizer_loader.hpp"
#include "quant/imatrix.hpp"
#include "train/plot.hpp"

namespace {

using lm::eval::PerplexityStats;
using lm::tools::Progress;

using lm::tools::num;
using lm::tools::stream_tokens;

using lm::Json;
using lm::json_number;

void print_json(const Json& j) { std::fputs((lm::dump_json(j) + "\n").c_str(), stdout); }

// The members of a perplexity result, added to `j`.
void stats_json(Json& j, const PerplexityStats& s) {
  j["perplexity"] = json_number(s.perplexity());
  j["perplexity_error"] = json_number(s.perplexity_error());
  j["nll"] = json_number(s.mean_nll());
  j["bits_per_byte"] = json_number(s.bits_per_byte());
  j["tokens"] = s.tokens;
  j["bytes"] = s.bytes;
}

std::string stats_tsv(const std::string& name, const PerplexityStats& s) {
  return name + "\t" + std::to_string(s.tokens) + "\t" + std::to_string(s.bytes) + "\t" + num(s.mean_nll(), "%.6f") +
         "\t" + num(s.perplexity(), "%.4f") + "\t" + num(s.perplexity_error(), "%.5f") + "\t" +
         num(s.bits_per_byte(), "%.6f") + "\n";
}

// --lora FILE[:SCALE], repeatable, on a subcommand that loads a model.
void add_lora_option(CLI::App* sub, std::vector<std::string>& loras) {
  lm::tools::doc(sub->add_option("--lora", loras,
                                 "Apply a LoRA adapter (GGUF) to the model, scaled by SCALE (default 1); repeatable")
                     ->type_name("FILE[:SCALE]")
                     ->take_all()
                     ->allow_extra_args(false))
      .man(R"(Apply a LoRA adapter (llama.cpp's LoRA GGUF convention, as
.BR lm-finetune (1)
writes it) to
.BR \-m 's
model, its update scaled by
.I SCALE
(default 1); repeat for several. The adapters are merged into the weights at load time, each
matrix then kept in the file's type. Also for
.B classify
with
.B \-m
and for
.BR predict .)");
}

std::vector<lm::model::AdapterSpec> adapter_specs(const std::vector<std::string>& loras) {
  std::vector<lm::model::AdapterSpec> v;
  for (const auto& l : loras) v.push_back(lm::model::parse_adapter_spec(l));
  return v;
}

struct PplArgs {
  std::vector<std::string> loras;
  std::string model, per_token, windows = "chunks";
  std::vector<std::string> inputs{"-"};
  lm::eval::PerplexityOptions o;
  bool bos = false, no_bos = false, json = false;
  int threads = 0;
};

int run_perplexity(PplArgs& a, const lm::Logger& log) {
  a.o.windows = a.windows == "sliding" ? lm::eval::Windows::Sliding : lm::eval::Windows::Chunks;
  lm::kernels::set_threads(a.threads);
  lm::model::LoadedModel m = lm::model::load_model(a.model, adapter_specs(a.loras));
  log.debug("%s: %s", a.model.c_str(), lm::model::describe_model(m.gguf).c_str());
  a.o.add_bos = (a.bos || (!a.no_bos && m.add_bos)) && m.tok.bos_id().has_value();
  const int ctx = a.o.n_ctx > 0 ? a.o.n_ctx : m.weights.cfg.n_ctx;
  if (ctx > m.weights.cfg.max_context())
    throw lm::UsageError("--ctx-size " + std::to_string(ctx) + " is larger than the model's context length " +
                         std::to_string(m.weights.cfg.n_ctx));
  // Chunks: as many chunks per evaluation as -b holds (up to 64), one cache slot each
  // (llama-perplexity's n_seq = n_batch / n_ctx); one at a time otherwise.
  const int group = a.o.windows == lm::eval::Windows::Chunks ? std::clamp(a.o.n_batch / ctx, 1, 64) : 1;
  lm::model::Session session(m.weights, ctx, group > 1 ? group * ctx : std::min(a.o.n_batch, ctx), group);
  if (group > 1) log.debug("%d chunks of %d tokens per evaluation (-b %d)", group, ctx, a.o.n_batch);
  std::optional<lm::OutputFile> per_token;
  if (!a.per_token.empty()) per_token.emplace(a.per_token, size_t{1} << 20, lm::OutputFile::Mode::Atomic);
  const bool per_token_json = a.per_token.size() > 6 && a.per_token.compare(a.per_token.size() - 6, 6, ".jsonl") == 0;
  if (per_token && !per_token_json) per_token->write("file\tposition\tid\tpiece\tlogprob\trank\tentropy\n");
  std::vector<PerplexityStats> per_file;
  PerplexityStats micro;
  Progress progress(log, "perplexity", lm::tools::total_file_bytes(a.inputs), Progress::Unit::Bytes, "", "tokens",
                    !lm::tools::reads_terminal(a.inputs));
  uint64_t bytes_read = 0, tokens_read = 0;
  for (const std::string& path : a.inputs) {
    const std::string name = lm::display_name(path);
    progress.set_label("perplexity " + name);
    std::string line;
    auto on_token = [&](const lm::eval::TokenScore& t) {
      line.clear();
      const std::string piece = m.tok.token_bytes(t.id);
      if (per_token_json) {
        line = lm::dump_json({{"file", name}, {"position", t.position}, {"id", t.id}, {"piece", piece},
                              {"logprob", json_number(t.logprob)}, {"rank", t.rank},
                              {"entropy", json_number(t.entropy)}}) +
               "\n";
      } else {
        lm::tools::append_tsv_field(line, name);
        line += "\t" + std::to_string(t.position) + "\t" + std::to_string(t.id) + "\t";
        lm::tools::append_tsv_field(line, piece);
        line += "\t" + num(t.logprob) + "\t" + std::to_string(t.rank) + "\t" + num(t.entropy) + "\n";
      }
      per_token->write(line);
    };
    lm::eval::PerplexityScorer scorer(session, m.tok, a.o,
                                      per_token ? std::function<void(const lm::eval::TokenScore&)>(on_token) : nullptr);
    stream_tokens(path, m.tok, [&](const std::vector<int>& ids, size_t bytes) {
      scorer.add(ids);
      bytes_read += bytes, tokens_read += ids.size();
      progress.update(bytes_read, tokens_read);
    });
    const PerplexityStats& s = scorer.finish();
    progress.finish();  // erased between files, so -v's line below starts on a clean line
    if (s.tokens == 0)
      throw lm::FormatError(path, std::to_string(scorer.fed()) + " tokens, too few to score one window of " +
                                      std::to_string(ctx) + " (use a smaller --ctx-size)");
    log.debug("%s: %llu tokens, %llu scored", name.c_str(), (unsigned long long)scorer.fed(),
              (unsigned long long)s.tokens);
    per_file.push_back(s);
    micro.add(s);
  }
  progress.finish();
  if (per_token) per_token->commit();
  // Macro: the mean over files of each file's mean NLL and bits per byte.
  double macro_nll = 0, macro_bpb = 0;
  for (const auto& s : per_file) macro_nll += s.mean_nll() / double(per_file.size()),
                                 macro_bpb += s.bits_per_byte() / double(per_file.size());
  if (a.json) {
    Json out;
    stats_json(out, micro);
    Json& files = out["files"] = Json::array();
    for (size_t i = 0; i < per_file.size(); ++i) {
      Json f{{"file", lm::display_name(a.inputs[i])}};
      stats_json(f, per_file[i]);
      files.push_back(std::move(f));
    }
    out["macro"] = {{"perplexity", json_number(std::exp(macro_nll))}, {"nll", json_number(macro_nll)},
                    {"bits_per_byte", json_number(macro_bpb)}};
    std::fputs((lm::dump_json(out) + "\n").c_str(), stdout);
  } else {
    std::string out = "file\ttokens\tbytes\tnll\tperplexity\terror\tbits_per_byte\n";
    for (size_t i = 0; i < per_file.size(); ++i) {
      std::string name;
      lm::tools::append_tsv_field(name, lm::display_name(a.inputs[i]));
      out += stats_tsv(name, per_file[i]);
    }
    if (per_file.size() > 1) {
      out += stats_tsv("(micro)", micro);
      out += "(macro)\t\t\t" + num(macro_nll, "%.6f") + "\t" + num(std::exp(macro_nll), "%.4f") + "\t\t" +
             num(macro_bpb, "%.6f") + "\n";
    }
    std::fputs(out.c_str(), stdout);
  }
  return 0;
}

struct KldArgs {
  std::vector<std::string> loras;
  std::string model, reference;
  std::vector<std::string> inputs{"-"};
  lm::eval::PerplexityOptions o;
  bool json = false;
  int threads = 0;
};

int run_kld(KldArgs& a, const lm::Logger& log) {
  lm::kernels::set_threads(a.threads);
  lm::model::LoadedModel m = lm::model::load_model(a.model, adapter_specs(a.loras));
  lm::model::LoadedModel r = lm::model::load_model(a.reference);
  log.debug("%s: %s", a.model.c_str(), lm::model::describe_model(m.gguf).c_str());
  log.debug("%s: %s", a.reference.c_str(), lm::model::describe_model(r.gguf).c_str());
  if (m.tok.vocab_size() != r.tok.vocab_size())
    throw lm::UsageError("the models have different vocabularies (" + std::to_string(m.tok.vocab_size()) + " and " +
                         std::to_string(r.tok.vocab_size()) + " tokens)");
  for (int i = 0; i < m.tok.vocab_size(); ++i)
    if (m.tok.piece(i) != r.tok.piece(i))
      throw lm::UsageError("the models have different vocabularies (token " + std::to_string(i) + " is '" +
                           m.tok.piece(i) + "' in " + a.model + " and '" + r.tok.piece(i) + "' in " + a.reference +
                           ")");
  a.o.add_bos = r.add_bos;
  const int ctx = a.o.n_ctx > 0 ? a.o.n_ctx : std::min(m.weights.cfg.n_ctx, r.weights.cfg.n_ctx);
  if (ctx > std::min(m.weights.cfg.max_context(), r.weights.cfg.max_context()))
    throw lm::UsageError("--ctx-size " + std::to_string(ctx) + " is larger than a model's context length");
  lm::model::Session sm(m.weights, ctx, std::min(a.o.n_batch, ctx)), sr(r.weights, ctx, std::min(a.o.n_batch, ctx));
  lm::eval::KldScorer scorer(sm, sr, r.tok, a.o);
  Progress progress(log, "kld", lm::tools::total_file_bytes(a.inputs), Progress::Unit::Bytes, "", "tokens",
                    !lm::tools::reads_terminal(a.inputs));
  uint64_t bytes_read = 0, tokens_read = 0;
  for (const std::string& path : a.inputs) {
    progress.set_label("kld " + lm::display_name(path));
    stream_tokens(path, r.tok, [&](const std::vector<int>& ids, size_t bytes) {
      scorer.add(ids);
      bytes_read += bytes, tokens_read += ids.size();
      progress.update(bytes_read, tokens_read);
    });
  }
  progress.finish();
  lm::eval::KldStats& s = scorer.finish();
  if (s.tokens == 0)
    throw lm::UsageError("the input is too short to score one window of " + std::to_string(ctx) +
                         " tokens (use a smaller --ctx-size)");
  const double med = s.quantile(0.5), p90 = s.quantile(0.9), p99 = s.quantile(0.99), mx = s.quantile(1.0);
  if (a.json) {
    print_json({{"kld", json_number(s.mean())},
                {"kld_error", json_number(s.mean_error())},
                {"kld_median", json_number(med)},
                {"kld_p90", json_number(p90)},
                {"kld_p99", json_number(p99)},
                {"kld_max", json_number(mx)},
                {"top1_agreement", json_number(s.top1_agreement())},
                {"tokens", s.tokens},
                {"perplexity", json_number(s.model.perplexity())},
                {"reference_perplexity", json_number(s.reference.perplexity())},
                {"bits_per_byte", json_number(s.model.bits_per_byte())},
                {"reference_bits_per_byte", json_number(s.reference.bits_per_byte())}});
  } else {
    std::printf("kld\t%.6f\nkld_error\t%.6f\nkld_median\t%.6f\nkld_p90\t%.6f\nkld_p99\t%.6f\nkld_max\t%.6f\n"
                "top1_agreement\t%.4f\ntokens\t%llu\nperplexity\t%.4f\nreference_perplexity\t%.4f\n",
                s.mean(), s.mean_error(), med, p90, p99, mx, s.top1_agreement(), (unsigned long long)s.tokens,
                s.model.perplexity(), s.reference.perplexity());
  }
  return 0;
}

struct ImatrixArgs {
  std::string model, output = "imatrix.gguf";
  std::vector<std::string> inputs{"-"};
  lm::eval::ImatrixOptions o;
  int n_ctx = 0;
  bool bos = false, no_bos = false, json = false;
  int threads = 0;
};

// The model over the text in llama-imatrix's chunks (eval/imatrix.hpp), the sums written as an
// imatrix GGUF file.
int run_imatrix(ImatrixArgs& a, const lm::Logger& log) {
  if (lm::same_file(a.output, a.model) || a.output == a.model)
    throw lm::UsageError("output '" + a.output + "' is the model; choose another file");
  for (const std::string& path : a.inputs)
    if (lm::same_file(a.output, path)) throw lm::UsageError("output '" + a.output + "' is an input; choose another file");
  lm::kernels::set_threads(a.threads);
  lm::model::LoadedModel m = lm::model::load_model(a.model);
  log.debug("%s: %s", a.model.c_str(), lm::model::describe_model(m.gguf).c_str());
  a.o.add_bos = (a.bos || (!a.no_bos && m.add_bos)) && m.tok.bos_id().has_value();
  const int model_ctx = m.weights.cfg.n_ctx;
  a.o.n_ctx = a.n_ctx > 0 ? a.n_ctx : std::min(512, model_ctx);
  if (a.o.n_ctx > m.weights.cfg.max_context())
    throw lm::UsageError("--ctx-size " + std::to_string(a.o.n_ctx) + " is larger than the model's context length " +
                         std::to_string(model_ctx));
  if (a.o.n_ctx < lm::eval::kImatrixMinRows)
    throw lm::UsageError("--ctx-size " + std::to_string(a.o.n_ctx) + " is below " +
                         std::to_string(lm::eval::kImatrixMinRows) + ", the fewest rows a product is collected over");
  a.o.n_batch = std::min(a.o.n_batch, a.o.n_ctx);
  lm::model::Session session(m.weights, a.o.n_ctx, a.o.n_batch);
  lm::quant::Imatrix im;
  for (const std::string& path : a.inputs) im.datasets.push_back(path);
  lm::eval::ImatrixCollector collector(session, lm::eval::imatrix_names(m.weights.cfg), im, a.o,
                                       m.tok.bos_id().value_or(0));
  Progress progress(log, "imatrix", lm::tools::total_file_bytes(a.inputs), Progress::Unit::Bytes, "", "tokens",
                    !lm::tools::reads_terminal(a.inputs));
  uint64_t bytes_read = 0, tokens_read = 0;
  for (const std::string& path : a.inputs) {
    progress.set_label("imatrix " + lm::display_name(path));
    stream_tokens(path, m.tok, [&](const std::vector<int>& ids, size_t bytes) {
      collector.add(ids);
      bytes_read += bytes, tokens_read += ids.size();
      progress.update(bytes_read, tokens_read);
    });
  }
  progress.finish();
  if (collector.chunks() == 0)
    throw lm::FormatError(a.inputs.back(), std::to_string(collector.fed()) + " tokens" +
                                               (a.inputs.size() > 1 ? " in all the inputs" : "") +
                                               ", too few for one chunk of " + std::to_string(a.o.n_ctx) +
                                               " (use a smaller --ctx-size)");
  lm::quant::save_imatrix(a.output, im);
  const unsigned long long tokens = (unsigned long long)collector.chunks() * unsigned(a.o.n_ctx);
  if (a.json)
    print_json({{"file", a.output}, {"entries", im.entries.size()}, {"chunks", collector.chunks()},
                {"chunk_size", a.o.n_ctx}, {"tokens", tokens}});
  else
    std::printf("file\tentries\tchunks\tchunk_size\ttokens\n%s\t%zu\t%llu\t%d\t%llu\n", a.output.c_str(),
                im.entries.size(), (unsigned long long)collector.chunks(), a.o.n_ctx, tokens);
  return 0;
}

struct TextArgs {
  std::string hyp = "-";
  std::vector<std::string> refs;
  bool json = false;
};

// Feeds hypothesis line i with reference line i of every reference file to `add`.
template <class Add>
void read_parallel(const TextArgs& a, Add&& add) {
  if (a.refs.empty()) throw lm::UsageError("give at least one reference file with -r");
  lm::LineReader hyp(a.hyp);
  std::vector<std::unique_ptr<lm::LineReader>> refs;
  for (const auto& r : a.refs) refs.push_back(std::make_unique<lm::LineReader>(r));
  std::string h;
  std::vector<std::string> lines(refs.size());
  std::vector<std::string_view> views(refs.size());
  for (;;) {
    const bool more = hyp.next(h);
    for (size_t i = 0; i < refs.size(); ++i) {
      const bool r_more = refs[i]->next(lines[i]);
      if (r_more != more)
        throw lm::FormatError(more ? a.refs[i] : lm::display_name(a.hyp),
                              "has " + std::to_string(more ? refs[i]->line_number() : hyp.line_number()) +
                                  " lines, fewer than " +
                                  (more ? lm::display_name(a.hyp) : a.refs[i]) + " (one line per segment)");
      views[i] = lines[i];
    }
    if (!more) return;
    add(std::string_view(h), views);
  }
}

int run_bleu(const TextArgs& a, const lm::eval::BleuOptions& o, const lm::Logger& log) {
  lm::eval::BleuScorer scorer(o, a.refs.size());
  read_parallel(a, [&](std::string_view h, const std::vector<std::string_view>& r) { scorer.add(h, r); });
  const lm::eval::BleuResult r = scorer.result();
  if (r.looks_tokenized)
    log.warn("the hypotheses look tokenized already (many end in ' .'); BLEU expects detokenized text (--force "
             "silences this)");
  std::string prec;
  for (size_t i = 0; i < r.precisions.size(); ++i) prec += (i ? "/" : "") + num(r.precisions[i], "%.1f");
  if (a.json) {
    Json p = Json::array();
    for (double x : r.precisions) p.push_back(json_number(x));
    print_json({{"name", "BLEU"},
                {"score", json_number(r.score)},
                {"signature", scorer.signature()},
                {"precisions", p},
                {"bp", json_number(r.bp)},
                {"ratio", json_number(r.ratio)},
                {"hyp_len", r.sys_len},
                {"ref_len", r.ref_len},
                {"segments", scorer.segments()}});
  } else {
    std::printf("BLEU|%s = %.2f %s (BP = %.3f ratio = %.3f hyp_len = %llu ref_len = %llu)\n",
                scorer.signature().c_str(), r.score, prec.c_str(), r.bp, r.ratio, (unsigned long long)r.sys_len,
                (unsigned long long)r.ref_len);
  }
  return 0;
}

int run_chrf(const TextArgs& a, const lm::eval::ChrfOptions& o) {
  lm::eval::ChrfScorer scorer(o, a.refs.size());
  read_parallel(a, [&](std::string_view h, const std::vector<std::string_view>& r) { scorer.add(h, r); });
  const lm::eval::ChrfResult r = scorer.result();
  if (a.json)
    print_json({{"name", r.name},
                {"score", json_number(r.score)},
                {"signature", scorer.signature()},
                {"segments", scorer.segments()}});
  else
    std::printf("%s|%s = %.2f\n", r.name.c_str(), scorer.signature().c_str(), r.score);
  return 0;
}

struct ClassifyArgs {
  std::string gold, predictions, model;
  std::vector<std::string> loras;
  bool confusion = false, json = false;
  int batch = 16, threads = 0;
};

std::string_view label_of(const std::string& line, const std::string& name, uint64_t n) {
  const std::string_view l = lm::dataset::line_label(line);
  if (l.empty())
    throw lm::FormatError(name, "line " + std::to_string(n) +
                                    " has no label, expected 'LABEL<TAB>text', '__label__LABEL text' or a bare label");
  return l;
}

// With --confusion, refuses as soon as the labels seen outnumber the matrix's limit, before the
// rest of the input is read or classified.
void check_confusion_labels(const ClassifyArgs& a, const lm::eval::ClassifyScorer& scorer) {
  if (a.confusion && scorer.labels() > lm::eval::kMaxConfusionLabels)
    throw lm::FormatError(lm::display_name(a.gold), "more than " + std::to_string(lm::eval::kMaxConfusionLabels) +
                                                        " labels (gold and predicted), the most --confusion shows; "
                                                        "leave out --confusion for the scores alone");
}

// Gold labels and texts of a labeled file scored by a classifier model.
void classify_with_model(const ClassifyArgs& a, lm::eval::ClassifyScorer& scorer, const lm::Logger& log) {
  lm::kernels::set_threads(a.threads);
  lm::eval::Classifier c(a.model, adapter_specs(a.loras), a.batch);
  lm::LineReader in(a.gold);
  const std::string name = lm::display_name(a.gold);
  std::vector<std::string> gold, texts;
  std::vector<std::vector<float>> probs;
  std::string line;
  std::set<std::string> unknown;  // gold labels the classifier cannot predict
  uint64_t n_unknown = 0;
  auto flush = [&] {
    c.predict(texts, probs);
    for (size_t i = 0; i < texts.size(); ++i)
      scorer.add(gold[i], c.labels()[size_t(std::max_element(probs[i].begin(), probs[i].end()) - probs[i].begin())]);
    check_confusion_labels(a, scorer);
    gold.clear(), texts.clear();
  };
  while (in.next(line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    if (!lm::dataset::has_label_field(line))
      throw lm::FormatError(name, "line " + std::to_string(in.line_number()) +
                                      " has no label, expected 'LABEL<TAB>text' or '__label__LABEL text'");
    gold.emplace_back(label_of(line, name, in.line_number()));
    if (std::find(c.labels().begin(), c.labels().end(), gold.back()) == c.labels().end())
      ++n_unknown, unknown.insert(gold.back());
    const std::string_view text = lm::dataset::line_text(line);
    if (text.empty())
      throw lm::FormatError(name, "line " + std::to_string(in.line_number()) + " has a label but no text");
    texts.emplace_back(text);
    if (int(texts.size()) == a.batch) flush();
  }
  if (!texts.empty()) flush();
  if (n_unknown > 0) {
    std::string names;
    for (const std::string& u : unknown) names += (names.empty() ? "'" : ", '") + u + "'";
    log.warn("%s: %llu of %llu examples have labels the classifier does not have (%s): they count as errors",
             name.c_str(), (unsigned long long)n_unknown, (unsigned long long)scorer.examples(), names.c_str());
  }
}

// Gold labels against the labels of --predictions, line by line.
void score_predictions(const ClassifyArgs& a, lm::eval::ClassifyScorer& scorer) {
  if (lm::is_std_stream(a.gold) && lm::is_std_stream(a.predictions))
    throw lm::UsageError("the gold labels and --predictions cannot both be standard input");
  lm::LineReader gold(a.gold), pred(a.predictions);
  const std::string gold_name = lm::display_name(a.gold), pred_name = lm::display_name(a.predictions);
  std::string g, p;
  for (;;) {
    const bool more = gold.next(g), pmore = pred.next(p);
    if (more != pmore)
      throw lm::FormatError(more ? pred_name : gold_name,
                            "has " + std::to_string(more ? pred.line_number() : gold.line_number()) +
                                " lines, fewer than " + (more ? gold_name : pred_name) + " (one example per line)");
    if (!more) break;
    scorer.add(label_of(g, gold_name, gold.line_number()), label_of(p, pred_name, pred.line_number()));
    check_confusion_labels(a, scorer);
  }
}

int run_classify(const ClassifyArgs& a, const lm::Logger& log) {
  if (a.model.empty() == a.predictions.empty())
    throw lm::UsageError("give either -m MODEL (classify the texts) or --predictions FILE (score given labels)");
  lm::eval::ClassifyScorer scorer;
  const std::string gold_name = lm::display_name(a.gold);
  if (!a.model.empty()) {
    classify_with_model(a, scorer, log);
  } else {
    score_predictions(a, scorer);
  }
  if (scorer.examples() == 0) throw lm::FormatError(gold_name, "has no examples, expected one labeled line or more");
  const lm::eval::ClassifyResult r = scorer.result(a.confusion);  // the L x L matrix only when asked for
  const size_t L = r.labels.size();
  if (a.json) {
    Json out{{"examples", r.examples},
             {"correct", r.correct},
             {"accuracy", json_number(r.accuracy)},
             {"micro_f1", json_number(r.micro.f1)}};
    for (const auto& [name, v] : {std::pair{"macro", r.macro}, std::pair{"weighted", r.weighted}}) {
      out[std::string(name) + "_precision"] = json_number(v.precision);
      out[std::string(name) + "_recall"] = json_number(v.recall);
      out[std::string(name) + "_f1"] = json_number(v.f1);
    }
    Json& labels = out["labels"] = Json::array();
    for (const auto& s : r.labels)
      labels.push_back({{"label", s.label},
                        {"precision", json_number(s.precision)},
                        {"recall", json_number(s.recall)},
                        {"f1", json_number(s.f1)},
                        {"support", s.support},
                        {"predicted", s.predicted}});
    if (a.confusion) {
      Json& rows = out["confusion"] = Json::array();
      for (size_t i = 0; i < L; ++i)
        rows.push_back(std::vector<uint64_t>(r.confusion.begin() + long(i * L), r.confusion.begin() + long((i + 1) * L)));
    }
    print_json(out);
    return 0;
  }
  auto row = [](const std::string& name, double p, double rc, double f, uint64_t n) {
    std::printf("%s\t%.4f\t%.4f\t%.4f\t%llu\n", name.c_str(), p, rc, f, (unsigned long long)n);
  };
  std::printf("label\tprecision\trecall\tf1\tsupport\n");
  for (const auto& s : r.labels) row(s.label, s.precision, s.recall, s.f1, s.support);
  std::printf("accuracy\t\t\t%.4f\t%llu\n", r.accuracy, (unsigned long long)r.examples);
  row("micro avg", r.micro.precision, r.micro.recall, r.micro.f1, r.examples);
  row("macro avg", r.macro.precision, r.macro.recall, r.macro.f1, r.examples);
  row("weighted avg", r.weighted.precision, r.weighted.recall, r.weighted.f1, r.examples);
  if (a.confusion) {
    std::printf("\ngold\\predicted");
    for (const auto& s : r.labels) std::printf("\t%s", s.label.c_str());
    std::printf("\n");
    for (size_t i = 0; i < L; ++i) {
      std::printf("%s", r.labels[i].label.c_str());
      for (size_t j = 0; j < L; ++j) std::printf("\t%llu", (unsigned long long)r.confusion[i * L + j]);
      std::printf("\n");
    }
  }
  return 0;
}

struct PredictArgs {
  std::string model;
  std::vector<std::string> loras, inputs{"-"};
  int top = 1, batch = 16, threads = 0;
  bool json = false;
};

// Labels each input line: "label<TAB>probability" (top K pairs with --top), or JSON Lines.
// Lines from a pipe or terminal are answered one by one; a file's lines go in batches. The
// progress line shows when the answers go to a file or a pipe, not to the terminal.
int run_predict(const PredictArgs& a, const lm::Logger& log) {
  lm::kernels::set_threads(a.threads);
  lm::eval::Classifier c(a.model, adapter_specs(a.loras), a.batch);
  const int K = int(c.labels().size());
  const int top = std::min(a.top, K);
  std::vector<std::string> texts;
  std::vector<std::vector<float>> probs;
  auto flush = [&] {
    c.predict(texts, probs);
    std::string out;
    for (size_t i = 0; i < texts.size(); ++i) {
      std::vector<int> order(static_cast<size_t>(K));
      for (int k = 0; k < K; ++k) order[size_t(k)] = k;
      std::stable_sort(order.begin(), order.end(),
                       [&](int x, int y) { return probs[i][size_t(x)] > probs[i][size_t(y)]; });
      if (a.json) {
        Json t = Json::array();
        for (int k = 0; k < top; ++k)
          t.push_back({{"label", c.labels()[size_t(order[size_t(k)])]},
                       {"probability", json_number(probs[i][size_t(order[size_t(k)])])}});
        out += lm::dump_json({{"label", c.labels()[size_t(order[0])]},
                              {"probability", json_number(probs[i][size_t(order[0])])},
                              {"top", t}}) +
               "\n";
      } else {
        for (int k = 0; k < top; ++k)
          out += (k ? "\t" : "") + c.labels()[size_t(order[size_t(k)])] + "\t" +
                 num(probs[i][size_t(order[size_t(k)])], "%.6f");
        out += "\n";
      }
    }
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fflush(stdout);
    texts.clear();
  };
  Progress progress(log, "predict", lm::tools::total_file_bytes(a.inputs), Progress::Unit::Bytes, "", "lines",
                    !isatty(STDOUT_FILENO) && !lm::tools::reads_terminal(a.inputs));
  uint64_t bytes_read = 0, lines_read = 0;
  for (const std::string& path : a.inputs) {
    lm::LineReader in(path);
    progress.set_label("predict " + lm::display_name(path));
    struct stat st{};
    const bool stream = lm::is_std_stream(path) && !(fstat(0, &st) == 0 && S_ISREG(st.st_mode));
    std::string line;
    bool nl = false;
    while (in.next(line, &nl)) {
      bytes_read += line.size() + nl;
      ++lines_read;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      texts.push_back(line);
      if (stream || int(texts.size()) == a.batch) {
        flush();
        progress.update(bytes_read, lines_read);
      }
    }
  }
  if (!texts.empty()) flush();
  progress.finish();
  return 0;
}

struct EmbedArgs {
  std::string model, pooling, query;
  std::vector<std::string> loras, inputs{"-"};
  lm::eval::EmbedOptions o;
  bool json = false;
  int threads = 0, top = 5;
};

// The model, its embedder (pooling from --pooling, else the file, else mean) and a line reader.
struct EmbedRun {
  lm::model::LoadedModel m;
  std::unique_ptr<lm::eval::Embedder> e;
  EmbedRun(EmbedArgs& a, const lm::Logger& log)
      : m((lm::kernels::set_threads(a.threads), lm::model::load_model(a.model, adapter_specs(a.loras), true))) {
    log.debug("%s: %s", a.model.c_str(), lm::model::describe_model(m.gguf).c_str());
    if (!a.pooling.empty())
      a.o.pooling = lm::eval::parse_pooling(a.pooling);
    else
      a.o.pooling = lm::eval::file_pooling(m.gguf, a.model).value_or(lm::eval::Pooling::Mean);
    log.debug("pooling %s%s", lm::eval::pooling_name(a.o.pooling), a.o.normalize ? ", normalized" : "");
    e = std::make_unique<lm::eval::Embedder>(m.weights, m.tok, a.o, log);
  }
};

// Calls add(text) for every line of the inputs ('\r' of CRLF dropped) and flush() every
// `batch` lines and at the end.
template <typename Add, typename Flush>
void each_line(const std::vector<std::string>& inputs, size_t batch, Add&& add, Flush&& flush) {
  size_t pending = 0;
  for (const std::string& path : inputs) {
    lm::LineReader in(path);
    std::string line;
    while (in.next(line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      add(line);
      if (++pending == batch) flush(), pending = 0;
    }
  }
  if (pending) flush();
}

int run_embed(EmbedArgs& a, const lm::Logger& log) {
  EmbedRun r(a, log);
  const int C = r.e->dim();
  std::vector<std::string> texts;
  std::vector<float> emb;
  uint64_t line_no = 0;
  std::string out;
  each_line(a.inputs, 64, [&](const std::string& t) { texts.push_back(t); }, [&] {
    r.e->embed(texts, emb, "line");
    out.clear();
    for (size_t i = 0; i < texts.size(); ++i, ++line_no) {
      const float* v = emb.data() + i * size_t(C);
      if (a.json) {
        Json arr = Json::array();
        for (int k = 0; k < C; ++k) arr.push_back(json_number(v[k]));
        out += lm::dump_json({{"line", line_no}, {"embedding", arr}}) + "\n";
      } else {
        for (int k = 0; k < C; ++k) {
          if (k) out += '\t';
          out += num(v[k], "%.6g");
        }
        out += "\n";
      }
    }
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fflush(stdout);
    texts.clear();
  });
  return 0;
}

int run_similar(EmbedArgs& a, const lm::Logger& log) {
  a.o.normalize = true;  // cosine similarity is then a dot product
  EmbedRun r(a, log);
  const int C = r.e->dim();
  // The corpus: every line of the inputs, embedded once (memory: lines x dimension floats).
  std::vector<std::string> corpus, texts;
  std::vector<float> all, emb;
  each_line(a.inputs, 64, [&](const std::string& t) { texts.push_back(t); }, [&] {
    r.e->embed(texts, emb, "line");
    all.insert(all.end(), emb.begin(), emb.end());
    for (auto& t : texts) corpus.push_back(std::move(t));
    texts.clear();
  });
  if (corpus.empty()) throw lm::UsageError("the corpus has no lines");
  const std::vector<std::string> queries{a.query};
  r.e->embed(queries, emb, "query");
  const int top = std::min<int>(a.top, int(corpus.size()));
  std::string out;
  for (size_t q = 0; q < queries.size(); ++q) {
    std::vector<std::pair<float, size_t>> scored(corpus.size());
    for (size_t i = 0; i < corpus.size(); ++i) {
      double d = 0;
      for (int k = 0; k < C; ++k) d += double(emb[q * size_t(C) + size_t(k)]) * all[i * size_t(C) + size_t(k)];
      scored[i] = {float(d), i};
    }
    std::partial_sort(scored.begin(), scored.begin() + top, scored.end(),
                      [](const auto& x, const auto& y) { return x.first > y.first || (x.first == y.first && x.second < y.second); });
    for (int k = 0; k < top; ++k) {
      const auto& [score, i] = scored[size_t(k)];
      if (a.json)
        out += lm::dump_json({{"rank", k + 1}, {"line", i}, {"score", json_number(score)}, {"text", corpus[i]}}) + "\n";
      else
        out += std::to_string(k + 1) + "\t" + std::to_string(i) + "\t" + num(score, "%.6f") + "\t" + corpus[i] + "\n";
    }
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

struct PlotArgs {
  std::string metrics, output, title;
};

// The picture of a --metrics file: the same SVG as lm-train --plot draws.
struct MlmArgs {
  std::string model;
  std::vector<std::string> inputs{"-"};
  lm::eval::MlmEvalOptions o;
  bool json = false;
  int threads = 0;
};

// An encoder's masked-token loss and accuracy (and pseudo-perplexity) per file and over all.
int run_mlm(MlmArgs& a, const lm::Logger& log) {
  lm::kernels::set_threads(a.threads);
  const lm::format::GgufFile g = lm::format::GgufFile::open(a.model);
  log.debug("%s: %s", a.model.c_str(), lm::model::describe_model(g).c_str());
  const lm::model::Params p = lm::model::load_encoder_params(g, false);
  const lm::Tokenizer tok = lm::model::load_tokenizer(a.model);
  lm::eval::MlmEvaluator ev(p, tok, lm::display_name(a.model), a.o);
  std::vector<lm::eval::MlmStats> per_file;
  lm::eval::MlmStats all;
  for (const std::string& path : a.inputs) {
    std::vector<int> ids;  // the file's tokens: rows run across its lines
    stream_tokens(path, tok, [&](const std::vector<int>& v) { ids.insert(ids.end(), v.begin(), v.end()); });
    if (ids.empty()) throw lm::FormatError(path, "has no tokens to score");
    per_file.push_back(ev.score(ids));
    all.add(per_file.back());
  }
  auto stats = [&](const lm::eval::MlmStats& s) {
    Json j{{"rows", s.rows}, {"predicted", s.predicted}, {"loss", json_number(s.loss())},
           {"perplexity", json_number(std::exp(s.loss()))}, {"accuracy", json_number(s.accuracy())}};
    if (a.o.pseudo) j["pseudo_perplexity"] = json_number(s.pseudo_perplexity()), j["pseudo_tokens"] = s.pseudo_tokens;
    return j;
  };
  auto row = [&](const std::string& name, const lm::eval::MlmStats& s) {
    std::string line;
    lm::tools::append_tsv_field(line, name);
    line += "\t" + std::to_string(s.rows) + "\t" + std::to_string(s.predicted) + "\t" + num(s.loss(), "%.6f") + "\t" +
            num(std::exp(s.loss()), "%.4f") + "\t" + num(s.accuracy(), "%.4f");
    if (a.o.pseudo) line += "\t" + num(s.pseudo_perplexity(), "%.4f");
    return line + "\n";
  };
  if (a.json) {
    Json out = stats(all);
    Json& files = out["files"] = Json::array();
    for (size_t i = 0; i < per_file.size(); ++i) {
      Json f = stats(per_file[i]);
      f["file"] = lm::display_name(a.inputs[i]);
      files.push_back(std::move(f));
    }
    std::fputs((lm::dump_json(out) + "\n").c_str(), stdout);
  } else {
    std::string out = std::string("file\trows\tpredicted\tloss\tperplexity\taccuracy") +
                      (a.o.pseudo ? "\tpseudo_perplexity" : "") + "\n";
    for (size_t i = 0; i < per_file.size(); ++i) out += row(lm::display_name(a.inputs[i]), per_file[i]);
    if (per_file.size() > 1) out += row("(all)", all);
    std::fputs(out.c_str(), stdout);
  }
  return 0;
}

int run_plot(const PlotArgs& a) {
  if (!lm::is_std_stream(a.output) && (a.output == a.metrics || lm::same_file(a.output, a.metrics)))
    throw lm::UsageError("output '" + a.output + "' is the metrics file; choose another file");
  const std::vector<lm::train::MetricsPoint> points = lm::train::read_metrics(a.metrics);
  lm::train::write_metrics_svg(a.output, points, a.title.empty() ? lm::display_name(a.metrics) : a.title);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  lm::Logger log("lm-eval");
  const std::string verbose_man =
      R"(Print more detail, among it a line about each model (size, file type, bits per weight and,
for a file
.BR lm-quantize (1)
wrote, its source and the scores it measured).)";
  PplArgs p;
  KldArgs k;
  TextArgs tb, tc;
  lm::eval::BleuOptions bo;
  lm::eval::ChrfOptions co;

  CLI::App app{"Evaluate language models (perplexity, bits per byte, KL divergence), text (BLEU, chrF) and labels "
               "(classification metrics); draw training metrics"};
  lm::tools::init_app(app, "lm-eval");
  app.require_subcommand(1);

  CLI::App* pp = app.add_subcommand("perplexity", "Perplexity, NLL and bits per byte of a model on text files");
  lm::tools::doc(pp->add_option("-m,--model", p.model, "Model file (GGUF)")->type_name("FILE")->required())
      .man(R"(The model (required).)");
  pp->add_option("inputs", p.inputs, "Text files ('-' = stdin), each scored on its own")->type_name("FILE");
  lm::tools::doc(pp->add_option("-c,--ctx-size", p.o.n_ctx, "Window length in tokens (0 = the model's context)")
      ->check(CLI::Range(0, 1 << 20)))
      .man(R"(Chunk or window length in tokens (0: the model's context length;
.BR kld :
the smaller of the two).)");
  lm::tools::doc(pp->add_option("--windows", p.windows,
                                "chunks: llama-perplexity's scheme; sliding: Hugging Face's strided windows"))
      .choices({"chunks", "sliding"})
      .man(R"(The window scheme.)");
  lm::tools::doc(
      pp->add_option("--stride", p.o.stride, "With --windows sliding: tokens between window starts (0 = half a window)")
          ->check(CLI::Range(0, 1 << 20)))
      .man(R"(With
.BR "\-\-windows sliding" :
tokens between window starts (0: half a window).)");
  lm::tools::doc(pp->add_option("-b,--batch", p.o.n_batch, "Tokens per forward pass (chunks shorter than it share one)")
                     ->check(CLI::Range(1, 1 << 16)))
      .man(R"(Tokens per forward pass. With
.B "\-\-windows chunks"
and a context shorter than this, up to 64 chunks share each forward pass, one cache slot each,
as llama-perplexity does (the same scores, in fewer and larger matrix products).)");
  auto* bos = lm::tools::doc(pp->add_flag("--bos", p.bos,
                                          "Start the text (and each chunk) with BOS (default: as the model file says)"))
                  .man(R"(Start the text and every chunk with BOS (the default unless the model file sets
.B tokenizer.ggml.add_bos_token
to false).)")
                  .option();
  lm::tools::doc(pp->add_flag("--no-bos", p.no_bos, "Do not add BOS")->excludes(bos))
      .man(R"(Do not add BOS.)");
  lm::tools::doc(pp->add_option("--per-token", p.per_token,
                                "Write every scored token to FILE: TSV, or JSON Lines if FILE ends in .jsonl")
                     ->type_name("FILE"))
      .man(R"(Write every scored token to
.IR FILE :
file, position in the file's token stream, id, piece, log-probability, rank (1 = the most
likely token) and the entropy of the predicted distribution in nats. Tab-separated with a
header line, or JSON Lines when
.I FILE
ends in
.BR .jsonl .)");
  lm::tools::doc(pp->add_flag("--json", p.json, "Print one JSON object"))
      .man(R"(Print one JSON object:
.BR perplexity ,
.BR perplexity_error ,
.BR nll ,
.BR bits_per_byte ,
.B tokens
and
.B bytes
over all files, then
.B files
(the same keys per file, with
.BR file )
and
.B macro
.RB ( perplexity ,
.BR nll ,
.BR bits_per_byte ).)");
  add_lora_option(pp, p.loras);
  lm::tools::add_threads(*pp, p.threads);
  lm::tools::add_verbosity(*pp, log, verbose_man);

  ImatrixArgs ia;
  CLI::App* im = app.add_subcommand("imatrix", "Importance matrix of a model on text, for lm-quantize --imatrix "
                                                "(llama-imatrix's GGUF format)");
  lm::tools::doc(im->add_option("-m,--model", ia.model, "Model file (GGUF)")->type_name("FILE")->required())
      .man(R"(The model (required).)");
  im->add_option("inputs", ia.inputs, "Text files ('-' = stdin), read as one stream")->type_name("FILE");
  lm::tools::doc(im->add_option("-o,--output", ia.output, "Where to write the importance matrix (default imatrix.gguf)")
                     ->type_name("FILE"))
      .man(R"(Where to write the importance matrix, in llama.cpp's imatrix GGUF format, for
.BR "lm-quantize \-\-imatrix" .)");
  lm::tools::doc(im->add_option("-c,--ctx-size", ia.n_ctx, "Chunk length in tokens (0 = 512, or the model's context if shorter)")
                     ->check(CLI::Range(0, 1 << 20)))
      .man(R"(Chunk length in tokens (0: 512, llama-imatrix's default, or the model's context length
if that is shorter).)");
  lm::tools::doc(im->add_option("-b,--batch", ia.o.n_batch, "Tokens per forward pass")->check(CLI::Range(16, 1 << 16)))
      .man(R"(Tokens per forward pass (at least 16: products over fewer rows are not collected,
as in llama-imatrix).)");
  auto* im_bos = lm::tools::doc(im->add_flag("--bos", ia.bos, "Start each chunk with BOS (default: as the model file says)"))
                     .man(R"(Start every chunk with BOS (the default unless the model file sets
.B tokenizer.ggml.add_bos_token
to false).)")
                     .option();
  lm::tools::doc(im->add_flag("--no-bos", ia.no_bos, "Do not add BOS")->excludes(im_bos)).man(R"(Do not add BOS.)");
  lm::tools::doc(im->add_flag("--process-output", ia.o.process_output, "Also collect output.weight (the head)"))
      .man(R"(Also collect the head,
.BR output.weight ,
as llama-imatrix's
.B \-\-process\-output
does. A tied head (token_embd) is never collected.)");
  lm::tools::doc(im->add_flag("--json", ia.json, "Print one JSON object"))
      .man(R"(Print one JSON object:
.BR file ,
.BR entries ,
.BR chunks ,
.BR chunk_size ,
.BR tokens .)");
  lm::tools::add_threads(*im, ia.threads);
  lm::tools::add_verbosity(*im, log, verbose_man);

  CLI::App* kl = app.add_subcommand("kld", "KL divergence and top-1 agreement of a model against a reference model");
  lm::tools::doc(
      kl->add_option("-m,--model", k.model, "Model file (GGUF), e.g. a quantized one")->type_name("FILE")->required())
      .man(R"(The model (required).)");
  lm::tools::doc(kl->add_option("--ref", k.reference, "Reference model file (GGUF) with the same vocabulary")
      ->type_name("FILE")->required())
      .man(R"(The reference model (required), for example the unquantized model.)");
  kl->add_option("inputs", k.inputs, "Text files ('-' = stdin), scored as one stream")->type_name("FILE");
  lm::tools::doc(kl->add_option("-c,--ctx-size", k.o.n_ctx, "Chunk length in tokens (0 = the smaller context)")
      ->check(CLI::Range(0, 1 << 20)))
      .man(R"(Chunk or window length in tokens (0: the model's context length;
.BR kld :
the smaller of the two).)");
  lm::tools::doc(kl->add_option("-b,--batch", k.o.n_batch, "Tokens per forward pass")->check(CLI::Range(1, 1 << 16)))
      .man(R"(Tokens per forward pass.)");
  lm::tools::doc(kl->add_flag("--json", k.json, "Print one JSON object"))
      .man(R"(Print one JSON object:
.BR kld ,
.BR kld_error ,
.BR kld_median ,
.BR kld_p90 ,
.BR kld_p99 ,
.BR kld_max ,
.BR top1_agreement ,
.BR tokens ,
.BR perplexity ,
.BR reference_perplexity ,
.BR bits_per_byte ,
.BR reference_bits_per_byte .)");
  add_lora_option(kl, k.loras);
  lm::tools::add_threads(*kl, k.threads);
  lm::tools::add_verbosity(*kl, log, verbose_man);

  auto add_text = [&](CLI::App* sub, TextArgs& t) {
    sub->add_option("hypotheses", t.hyp, "Hypotheses, one segment per line ('-' = stdin)")->type_name("FILE");
    lm::tools::doc(sub->add_option("-r,--ref", t.refs, "Reference file, one segment per line (repeat for several)")
        ->type_name("FILE")->take_all()->allow_extra_args(false))
        .man(R"(A reference file; repeat for several references per segment (required).)");
    lm::tools::doc(sub->add_flag("--json", t.json, "Print one JSON object"))
        .man(R"(Print one JSON object. For
.BR bleu :
.BR name ,
.BR score ,
.BR signature ,
.BR precisions ,
.BR bp ,
.BR ratio ,
.BR hyp_len ,
.BR ref_len ,
.BR segments ;
for
.BR chrf :
.BR name ,
.BR score ,
.BR signature ,
.BR segments .)");
    lm::tools::add_verbosity(*sub, log, verbose_man);
  };
  CLI::App* bl = app.add_subcommand("bleu", "Corpus BLEU as sacreBLEU computes it, with its signature");
  add_text(bl, tb);
  lm::tools::doc(bl->add_option("--tokenize", bo.tokenize, "Tokenizer"))
      .choices({"13a", "none", "char"})
      .man(R"(Tokenizer.)");
  lm::tools::doc(bl->add_option("--smooth", bo.smooth, "Smoothing"))
      .choices({"exp", "floor", "add-k", "none"})
      .man(R"(Smoothing of zero n-gram matches.)");
  lm::tools::doc(bl->add_option("--smooth-value", bo.smooth_value, "For floor (default 0.1) and add-k (default 1)")
      ->check(CLI::Range(0.0, 1e6)))
      .man(R"(The value for
.B floor
and
.B add\-k
)");
  lm::tools::doc(bl->add_flag("--lowercase", bo.lowercase, "Compare lowercased text"))
      .man(R"(Compare lowercased text.)");
  lm::tools::doc(
      bl->add_option("--max-ngram-order", bo.max_ngram_order, "Largest n-gram order")->check(CLI::Range(1, 100)))
      .man(R"(Largest n-gram order.)");
  lm::tools::doc(bl->add_flag("--force", bo.force, "Do not warn about hypotheses that look tokenized"))
      .man(R"(Do not warn about hypotheses that look tokenized.)");

  CLI::App* cf = app.add_subcommand("chrf", "Corpus chrF (chrF++ with --word-order 2) as sacreBLEU computes it");
  add_text(cf, tc);
  lm::tools::doc(cf->add_option("--char-order", co.char_order, "Character n-gram order")->check(CLI::Range(0, 100)))
      .man(R"(Character n-gram order.)");
  lm::tools::doc(
      cf->add_option("--word-order", co.word_order, "Word n-gram order (2 = chrF++)")->check(CLI::Range(0, 100)))
      .man(R"(Word n-gram order (2 gives chrF++).)");
  lm::tools::doc(cf->add_option("--beta", co.beta, "Weight of recall")->check(CLI::Range(0, 100)))
      .man(R"(Weight of recall against precision.)");
  lm::tools::doc(cf->add_flag("--lowercase", co.lowercase, "Compare lowercased text"))
      .man(R"(Compare lowercased text.)");
  lm::tools::doc(cf->add_flag("--whitespace", co.whitespace, "Keep whitespace in character n-grams"))
      .man(R"(Keep whitespace in character n-grams.)");

  ClassifyArgs ca;
  CLI::App* cl = app.add_subcommand(
      "classify", "Accuracy, per-label precision/recall/F1 and a confusion matrix of predicted labels");
  cl->add_option("gold", ca.gold, "Gold labels, one example per line ('-' = stdin)")->type_name("FILE")->required();
  lm::tools::doc(cl->add_option("--predictions", ca.predictions,
                                "Predicted labels, line for line with the gold file ('-' = stdin)")
                     ->type_name("FILE"))
      .man(R"(Predicted labels, one per line in the same order as
.IR GOLD ;
.B \-
reads standard input (only one of the two files can).)");
  lm::tools::doc(cl->add_option("-m,--model", ca.model,
                                "Classifier model (lm-finetune --task classify) labeling the gold file's texts")
                     ->type_name("FILE"))
      .man(R"(Instead of
.BR \-\-predictions ,
a classifier model that labels the gold lines' texts;
.BR predict :
the classifier model (required).)");
  add_lora_option(cl, ca.loras);
  lm::tools::doc(cl->add_option("-b,--batch", ca.batch, "Texts per forward pass")->check(CLI::Range(1, 4096)))
      .man(R"(Texts per forward pass.)");
  lm::tools::doc(
      cl->add_flag("--confusion", ca.confusion, "Also print the confusion matrix (rows gold, columns predicted)"))
      .man(R"(Also print the confusion matrix after the table (and in the JSON object): one row per gold
label, one column per predicted label, counts of examples.
It is made for at most 4096 labels, gold and predicted; with more, the run stops with an
error as soon as the 4097th label is seen.)");
  lm::tools::doc(cl->add_flag("--json", ca.json, "Print one JSON object"))
      .man(R"(Print one JSON object:
.BR examples ,
.BR correct ,
.BR accuracy ,
.BR micro_f1 ,
.BR macro_precision ,
.BR macro_recall ,
.BR macro_f1 ,
.BR weighted_precision ,
.BR weighted_recall ,
.BR weighted_f1 ,
.B labels
(objects with
.BR label ,
.BR precision ,
.BR recall ,
.BR f1 ,
.BR support ,
.BR predicted )
and, with
.BR \-\-confusion ,
.B confusion
(rows gold, columns predicted, in the order of
.BR labels ).)");
  lm::tools::add_threads(*cl, ca.threads);
  lm::tools::add_verbosity(*cl, log, verbose_man);

  PredictArgs pa;
  CLI::App* pr = app.add_subcommand("predict", "Label each input line with a classifier model and its probability");
  lm::tools::doc(pr->add_option("-m,--model", pa.model, "Classifier model (lm-finetune --task classify)")
                     ->type_name("FILE")
                     ->required())
      .man(R"(Instead of
.BR \-\-predictions ,
a classifier model that labels the gold lines' texts;
.BR predict :
the classifier model (required).)");
  pr->add_option("inputs", pa.inputs, "Text files, one text per line ('-' = stdin)")->type_name("FILE");
  add_lora_option(pr, pa.loras);
  lm::tools::doc(pr->add_option("--top", pa.top, "Print the K most probable labels")
                     ->check(CLI::Range(1, 1 << 16))
                     ->type_name("K"))
      .man(R"(Print the K most probable labels.)");
  lm::tools::doc(
      pr->add_option("-b,--batch", pa.batch, "Lines per forward pass when reading a file")->check(CLI::Range(1, 4096)))
      .man(R"(Texts per forward pass.)");
  lm::tools::doc(pr->add_flag("--json", pa.json, "JSON Lines: label, probability and the top labels"))
      .man(R"(JSON Lines, one object per input line:
.BR label ,
.B probability
and
.B top
(objects with
.B label
and
.BR probability ).)");
  lm::tools::add_threads(*pr, pa.threads);
  lm::tools::add_verbosity(*pr, log, verbose_man);

  EmbedArgs ea, sa;
  CLI::App* em = app.add_subcommand("embed", "One embedding per input line: the model's final hidden states, pooled");
  CLI::App* si = app.add_subcommand("similar", "The corpus lines nearest to a query by cosine similarity of embeddings");
  for (auto [sub, x] : {std::pair{em, &ea}, std::pair{si, &sa}}) {
    EmbedArgs& e = *x;
    const bool embed = sub == em;
    lm::tools::doc(sub->add_option("-m,--model", e.model, "Model file (GGUF): an encoder (bert) or a decoder")
                       ->type_name("FILE")
                       ->required())
        .man(R"(The model (required): an encoder such as bert, whose last layer gives the hidden
states, or a decoder, whose hidden states after its output norm are used (what llama.cpp's
embeddings are).)");
    sub->add_option("inputs", e.inputs, embed ? "Text files, one text per line ('-' = stdin)"
                                              : "Corpus: text files, one text per line ('-' = stdin)")
        ->type_name("FILE");
    if (!embed)
      lm::tools::doc(sub->add_option("--query", e.query, "The query text")->type_name("TEXT")->required())
          .man(R"(The query (required).)");
    lm::tools::doc(sub->add_option("--pooling", e.pooling, "mean, cls or last (default: as the model file says, else mean)"))
        .choices({"mean", "cls", "last"})
        .man(R"(How the hidden states of a text's tokens become one vector:
.B mean
(their average),
.B cls
(the first token's, BERT's [CLS]) or
.B last
(the last token's). The default is the model file's
.IB arch .pooling_type
(as llama.cpp reads it), else
.BR mean .)");
    if (embed)
      lm::tools::doc(sub->add_flag("--normalize", e.o.normalize, "Scale each embedding to unit Euclidean length"))
          .man(R"(Scale each embedding to unit Euclidean length (llama-embedding's default).)");
    else
      lm::tools::doc(sub->add_option("--top", e.top, "Print the K nearest lines")->check(CLI::Range(1, 1 << 20))->type_name("K"))
          .man(R"(Print the K nearest lines (default 5).)");
    lm::tools::doc(sub->add_option("-c,--ctx-size", e.o.n_ctx, "Tokens per text at most; longer texts are cut (0 = 512 or the model's context if shorter)")
                       ->check(CLI::Range(0, 1 << 20)))
        .man(R"(Tokens per text at most (0: 512, or the model's context length if shorter). A
longer text is cut to its first tokens, with a warning naming its line.)");
    lm::tools::doc(sub->add_flag("--json", e.json, embed ? "JSON Lines: line and embedding" : "JSON Lines: rank, line, score, text"))
        .man(embed ? R"(JSON Lines, one object per input line:
.B line
(0-based) and
.B embedding
(an array).)"
                   : R"(JSON Lines, one object per result:
.BR rank ,
.B line
(0-based, in the corpus),
.B score
(cosine similarity) and
.BR text .)");
    add_lora_option(sub, e.loras);
    lm::tools::add_threads(*sub, e.threads);
    lm::tools::add_verbosity(*sub, log, verbose_man);
  }

  MlmArgs ma;
  CLI::App* ml = app.add_subcommand("mlm", "Masked-token loss, accuracy and pseudo-perplexity of an encoder on text files");
  lm::tools::doc(ml->add_option("-m,--model", ma.model, "Model file (GGUF): an encoder (bert)")->type_name("FILE")->required())
      .man(R"(The encoder (required): a bert file, such as
.B lm\-train \-\-arch bert
writes.)");
  ml->add_option("inputs", ma.inputs, "Text files ('-' = stdin), each scored on its own")->type_name("FILE");
  lm::tools::doc(ml->add_option("-c,--ctx-size", ma.o.n_ctx, "Tokens per row (0 = the model's context, at most 512)")
                     ->check(CLI::Range(0, 1 << 20)))
      .man(R"(Tokens per row, the start and end tokens included (0: the model's context length, at
most 512). A file's tokens are cut into consecutive rows; the last one is shorter.)");
  lm::tools::doc(ml->add_option("--mask-prob", ma.o.mask.mask_prob, "Share of the tokens predicted (default 0.15)")
                     ->check(CLI::Range(0.001, 0.999))
                     ->type_name("P"))
      .man(R"(The share of the (non\-special) tokens of each row that are chosen and predicted, each
replaced by the mask token (80%), a random token (10%) or kept (10%), as in training.)");
  lm::tools::doc(ml->add_flag("--whole-word", ma.o.mask.whole_word, "Choose whole words, all their pieces"))
      .man(R"(Choose whole words instead of pieces, as
.B lm\-train \-\-whole\-word
does.)");
  lm::tools::doc(ml->add_option("--seed", ma.o.seed, "Seed of the masks (default 0): the same positions for every model"))
      .man(R"(Seed of the choice of masked positions. Row i of the input takes its masks from this seed
and i alone, so models of the same vocabulary are compared on the same positions.)");
  lm::tools::doc(ml->add_flag("--pseudo", ma.o.pseudo, "Also the pseudo-perplexity: each token masked in turn"))
      .man(R"(Also compute the pseudo\-perplexity (Salazar et al. 2020): every non\-special token of
every row masked alone and scored, exp of the mean negative log\-likelihood. One forward pass
per token: far slower than the masked loss.)");
  lm::tools::doc(ml->add_option("-b,--batch", ma.o.batch, "Rows per forward pass")->check(CLI::Range(1, 1 << 12)))
      .man(R"(Rows per forward pass.)");
  lm::tools::doc(ml->add_flag("--json", ma.json, "Print one JSON object"))
      .man(R"(Print one JSON object:
.BR rows ,
.BR predicted ,
.BR loss ,
.B perplexity
(the exponential of the loss),
.B accuracy
(the share of predicted tokens whose most likely piece is the right one) and, with
.BR \-\-pseudo ,
.B pseudo_perplexity
and
.BR pseudo_tokens ,
over all files, then
.B files
(the same keys per file, with
.BR file ).)");
  lm::tools::add_threads(*ml, ma.threads);
  lm::tools::add_verbosity(*ml, log, verbose_man);

  PlotArgs pl;
  CLI::App* pt = app.add_subcommand("plot", "Draw a training run's --metrics file as an SVG picture: training and "
                                            "validation loss, learning rate");
  pt->add_option("metrics", pl.metrics, "Metrics file of lm-train or lm-finetune (JSON Lines, '-' = stdin)")
      ->type_name("FILE")->required();
  lm::tools::doc(pt->add_option("-o,--output", pl.output, "SVG file to write ('-' = stdout)")
                     ->type_name("FILE")
                     ->required())
      .files("svg")
      .man(R"(The SVG file to write (required;
.B \-
writes to standard output). It is written to a temporary file and renamed into place.)");
  lm::tools::doc(
      pt->add_option("--title", pl.title, "Title of the picture (default: the metrics file's name)")->type_name("TEXT"))
      .man(R"(The picture's title (default: the metrics file's name).)");
  lm::tools::add_verbosity(*pt, log, verbose_man);

  return lm::tools::run_main(app, argc, argv, [&] {
    // An input left to standard input on a terminal: say so before waiting for it.
    auto note = [&](const std::vector<std::string>& paths, const char* what) {
      for (const std::string& path : paths) lm::tools::note_terminal_input(log, path, what);
    };
    if (pp->parsed() || kl->parsed() || im->parsed()) note(pp->parsed() ? p.inputs : kl->parsed() ? k.inputs : ia.inputs, "text");
    if (ml->parsed()) note(ma.inputs, "text");
    if (bl->parsed() || cf->parsed()) note({bl->parsed() ? tb.hyp : tc.hyp}, "hypotheses");
    if (cl->parsed()) note(ca.predictions.empty() ? std::vector{ca.gold} : std::vector{ca.gold, ca.predictions}, "labels");
    if (pr->parsed()) note(pa.inputs, "texts, one per line,");
    if (em->parsed() || si->parsed()) note(em->parsed() ? ea.inputs : sa.inputs, "texts, one per line,");
    if (pp->parsed()) {
      if (p.o.stride > 0 && p.windows != "sliding") throw lm::UsageError("--stride needs --windows sliding");
      return run_perplexity(p, log);
    }
    if (kl->parsed()) return run_kld(k, log);
    if (im->parsed()) return run_imatrix(ia, log);
    if (bl->parsed()) return run_bleu(tb, bo, log);
    if (cl->parsed()) return run_classify(ca, log);
    if (pr->parsed()) return run_predict(pa, log);
    if (pt->parsed()) return run_plot(pl);
    if (em->parsed()) return run_embed(ea, log);
    if (si->parsed()) return run_similar(sa, log);
    if (ml->parsed()) return run_mlm(ma, log);
    return run_chrf(tc, co);
  });
}
