// lm-quantize: write a copy of a llama-arch GGUF model with its weight matrices in another type
// (f16, bf16, q8_0, q4_0, K-quant mixes), choosing each tensor's type as llama-quantize does;
// --eval scores the copy against its source. Type choices are lib/model/quant_policy, the bytes
// lib/model/quant_convert; this file parses, checks, reports (with a progress line on a terminal)
// and drives the output file.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "base/file.hpp"
#include "base/json.hpp"
#include "common/cli.hpp"
#include "common/progress.hpp"
#include "common/text.hpp"
#include "common/tokens.hpp"
#include "eval/perplexity.hpp"
#include "format/gguf.hpp"
#include "kernels/blas.hpp"
#include "model/hf_import.hpp"
#include "model/model_io.hpp"
#include "model/session.hpp"
#include "model/quant_convert.hpp"
#include "model/quant_policy.hpp"
#include "quant/imatrix.hpp"
#include "quant/quant.hpp"

namespace {

using lm::quant::Plan;
using lm::tools::Progress;

std::atomic<int> g_signal{0};
extern "C" void on_signal(int sig) {
  if (g_signal.exchange(sig) != 0) _exit(128 + sig);  // a second signal: leave at once
}
struct Interrupted {};
void check_signal() {
  if (g_signal.load() != 0) throw Interrupted{};
}

constexpr int kDefaultEvalCtx = 512;

struct Args {
  std::string model, output, type, eval, imatrix;
  std::vector<std::string> tensor_types;
  std::optional<int> ctx;
  bool allow_requantize = false, dry_run = false, json = false;
  int threads = 0;
};

std::string base_name(const std::string& path) { return path.substr(path.rfind('/') + 1); }

using lm::tools::num;

std::string shape(const std::vector<int64_t>& ne) {
  std::string s;
  for (size_t i = 0; i < ne.size(); ++i) {
    if (i) s += 'x';
    s += std::to_string(ne[i]);
  }
  return s;
}

std::string type_name(lm::format::GgmlType t) { return lm::format::ggml_type_info(t).name; }

std::string reason(const Plan& plan, const lm::quant::TensorPlan& t, const Args& a) {
  std::string r = lm::quant::reason_name(t.reason);
  if (t.reason == lm::quant::Reason::Override) r += " " + a.tensor_types[size_t(t.override_index)];
  if (t.fallback_from) r += ", fallback from " + type_name(*t.fallback_from);
  return r;
}

double bpw(uint64_t bytes, uint64_t elements) { return elements ? 8.0 * double(bytes) / double(elements) : 0; }

// The plan as a table (or its JSON array) on stdout.
std::string plan_text(const Plan& plan, const Args& a, uint64_t size_in, uint64_t size_out,
                      const std::string& in_type) {
  std::string out = "tensor\tshape\ttype_in\ttype_out\tbytes_in\tbytes_out\tbpw\treason\n";
  for (const auto& t : plan.tensors) {
    lm::tools::append_tsv_field(out, t.name);
    out += "\t" + shape(t.ne) + "\t" + type_name(t.in) + "\t" + type_name(t.out) + "\t" + std::to_string(t.bytes_in) +
           "\t" + std::to_string(t.bytes_out) + "\t" + num(bpw(t.bytes_out, t.n_elements), "%.2f") + "\t";
    lm::tools::append_tsv_field(out, reason(plan, t, a));
    out += "\n";
  }
  out += "(weights)\t" + std::to_string(plan.weight_elements) + "\t\t\t" + std::to_string(plan.weight_bytes_in) + "\t" +
         std::to_string(plan.weight_bytes_out) + "\t" + num(plan.weight_bpw_out(), "%.4f") + "\t\n";
  out += "(file)\t" + std::to_string(plan.n_elements) + "\t" + in_type + "\t" +
         lm::quant::file_type_info(plan.type).name + "\t" + std::to_string(size_in) + "\t" + std::to_string(size_out) +
         "\t" + num(bpw(size_out, plan.n_elements), "%.4f") + "\t\n";
  return out;
}

lm::Json plan_json(const Plan& plan, const Args& a) {
  lm::Json out = lm::Json::array();
  for (const auto& t : plan.tensors)
    out.push_back({{"name", t.name},
                   {"shape", t.ne},
                   {"type_in", type_name(t.in)},
                   {"type_out", type_name(t.out)},
                   {"bytes_in", t.bytes_in},
                   {"bytes_out", t.bytes_out},
                   {"reason", reason(plan, t, a)}});
  return out;
}

// Tokens of the --eval text, whole-text encoded as lm-eval does.
std::vector<int> eval_tokens(const std::string& path, const lm::Tokenizer& tok, const lm::Logger& log) {
  std::vector<int> ids;
  Progress progress(log, "reading " + lm::display_name(path), lm::tools::total_file_bytes({path}),
                    Progress::Unit::Bytes, "", "tokens", !lm::tools::reads_terminal({path}));
  uint64_t bytes = 0;
  lm::tools::stream_tokens(path, tok, [&](const std::vector<int>& line, size_t n) {
    ids.insert(ids.end(), line.begin(), line.end());
    progress.update(bytes += n, ids.size());
    check_signal();
  });
  return ids;
}

// KL divergence and both perplexities of the quantized file against its source: lm-eval kld's
// chunks of `ctx` tokens, second halves scored.
lm::quant::QuantEval evaluate(const lm::model::LoadedModel& source, const std::string& quantized,
                              const std::vector<int>& ids, int ctx, const std::string& name, const lm::Logger& log) {
  lm::model::LoadedModel q = lm::model::load_model(quantized);
  lm::eval::PerplexityOptions o;
  o.n_ctx = ctx;
  o.add_bos = source.add_bos;
  const int batch = std::min(o.n_batch, ctx);
  lm::model::Session sq(q.weights, ctx, batch), ss(source.weights, ctx, batch);
  lm::eval::KldScorer scorer(sq, ss, source.tok, o);
  Progress progress(log, "scoring on " + name, ids.size(), Progress::Unit::Count, "tokens", "");
  for (size_t i = 0; i < ids.size(); i += size_t(ctx)) {
    const size_t n = std::min(size_t(ctx), ids.size() - i);
    scorer.add(ids.data() + i, n);
    progress.update(i + n, 0);
    check_signal();
  }
  progress.finish();
  const lm::eval::KldStats& s = scorer.finish();
  return {name, s.tokens, uint32_t(ctx), float(s.model.perplexity()), float(s.reference.perplexity()),
          float(s.mean()), float(s.top1_agreement())};
}

// The importance row of every tensor the plan quantizes to a type that takes one (empty for
// the rest), from --imatrix's entries by tensor name, as llama-quantize matches them. An entry
// whose width differs from its tensor's rows (but token_embd's, which llama-quantize also lets
// pass) or a file none of whose entries names a tensor is another model's: FormatError naming
// the file. Tensors without an entry are quantized without one, listed in one warning.
std::vector<std::vector<float>> match_imatrix(const lm::quant::Imatrix& im, const std::string& path, const Plan& plan,
                                              const std::string& model, const lm::Logger& log) {
  std::vector<std::vector<float>> rows(plan.tensors.size());
  std::vector<std::string> missing;
  size_t used = 0, named = 0;
  for (size_t i = 0; i < plan.tensors.size(); ++i) {
    const auto& t = plan.tensors[i];
    const auto it = im.entries.find(t.name);
    named += it != im.entries.end();
    if (!t.weight || t.in == t.out || !lm::quant::takes_importance(t.out)) continue;
    if (it == im.entries.end()) {
      missing.push_back(t.name);
      continue;
    }
    const lm::quant::ImatrixEntry& e = it->second;
    const int64_t n_mat = t.ne.size() > 2 ? t.ne[2] : 1;
    if (e.cols != t.ne[0] || e.n_mat() != n_mat) {
      if (t.name == "token_embd.weight") continue;  // llama-quantize quantizes it without one
      throw lm::FormatError(path, "entry " + t.name + " has " + std::to_string(e.cols) + " columns x " +
                                      std::to_string(e.n_mat()) + " matrices, but " + model + " has " +
                                      std::to_string(t.ne[0]) + " x " + std::to_string(n_mat) +
                                      ": is it the importance matrix of another model?");
    }
    rows[i] = lm::quant::Imatrix::importance(e);
    ++used;
  }
  if (named == 0)
    throw lm::FormatError(path, "none of its " + std::to_string(im.entries.size()) + " entries (" +
                                    im.entries.begin()->first + ", ...) names a tensor of " + model +
                                    ": is it the importance matrix of another model?");
  if (!missing.empty()) {
    std::string list;
    for (size_t i = 0; i < missing.size() && i < 4; ++i) list += (i ? ", " : "") + missing[i];
    if (missing.size() > 4) list += ", ...";
    log.warn("%s has no entry for %zu of the tensors it could weigh (%s): they are quantized without one",
             path.c_str(), missing.size(), list.c_str());
  }
  log.debug("%s: %zu entries, %u chunks of %u tokens; used for %zu tensors", path.c_str(), im.entries.size(),
            im.chunk_count, im.chunk_size, used);
  return rows;
}

// Writes the Hugging Face model directory `dir` into `out` as one F32 GGUF file with
// llama.cpp's converter's names, keys and tokenizer (lib/model/hf_import.hpp).
void import_hf(const std::string& dir, lm::OutputFile& out, const lm::Logger& log) {
  const lm::model::HfModel hf = lm::model::HfModel::open(dir);
  lm::format::GgufWriter w;
  hf.add_to(w);
  lm::model::add_hf_tokenizer(dir, hf.n_vocab(), w);
  log.debug("%s: %s, %zu tensors", dir.c_str(), hf.arch().c_str(), hf.n_tensors());
  uint64_t total = 0, done = 0;
  for (size_t i = 0; i < w.n_tensors(); ++i) total += w.tensor_bytes(i);
  Progress progress(log, "importing " + lm::display_name(dir), total, Progress::Unit::Bytes, "", "");
  w.write(out, [&](size_t i, uint8_t* dst) {
    check_signal();
    progress.update(done, 0);
    done += w.tensor_bytes(i);
    hf.write_tensor(i, reinterpret_cast<float*>(dst));
  });
  progress.finish();
  out.flush();
}

int run(Args& a, const lm::Logger& log) {
  // ---- flags ----
  const auto type = lm::quant::try_parse_file_type(a.type);
  if (!type) {
    std::string names;
    for (const auto& t : lm::quant::file_types()) names += (names.empty() ? "" : ", ") + std::string(t.name);
    throw lm::UsageError("--type '" + a.type + "': unknown type, expected one of " + names +
                         " (q4_k = q4_k_m, q5_k = q5_k_m, q3_k = q3_k_m)");
  }
  std::vector<lm::quant::TensorTypeOverride> overrides;
  for (const auto& spec : a.tensor_types) overrides.push_back(lm::quant::parse_tensor_type_override(spec));
  if (a.ctx && a.eval.empty()) throw lm::UsageError("--ctx-size needs --eval");
  if (lm::is_std_stream(a.output) && a.json && !a.dry_run)
    throw lm::UsageError("--json prints to stdout, where -o - writes the model; choose an output file");
  if (lm::same_file(a.output, a.model) || a.output == a.model)
    throw lm::UsageError("output '" + a.output + "' is the input model; choose another file");
  if (!a.eval.empty() && lm::same_file(a.output, a.eval))
    throw lm::UsageError("output '" + a.output + "' is the --eval text; choose another file");

  // ---- the input and the plan ----
  // A Hugging Face directory is first written as the F32 GGUF llama.cpp's converter makes, to a
  // temp file beside the output that is never committed (removed when this returns, or by
  // the next run's remove_stale_temps if this one is killed); the rest reads that file.
  std::optional<lm::OutputFile> imported;
  std::string source = a.model;
  struct stat dir_st;
  if (::stat(a.model.c_str(), &dir_st) == 0 && S_ISDIR(dir_st.st_mode)) {
    if (!lm::is_std_stream(a.output)) lm::remove_stale_temps(a.output);
    imported.emplace(lm::is_std_stream(a.output) ? std::string(std::getenv("TMPDIR") && *std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") +
                                                    "/lm-quantize-import.gguf" : a.output);
    if (imported->temp_path().empty())
      throw lm::UsageError("output '" + a.output + "' is not a regular file; a Hugging Face import needs one");
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    try {
      import_hf(a.model, *imported, log);
    } catch (const Interrupted&) {
      log.info("interrupted; nothing written");
      return 128 + g_signal.load();
    }
    source = imported->temp_path();
  }
  lm::format::GgufFile in = lm::format::GgufFile::open(source);
  for (const auto& w : in.warnings()) log.warn("%s: %s", a.model.c_str(), w.c_str());
  // The loaders' checks (tensors present, shapes, types, no NaN or Inf), before any byte is
  // written: a copy no tool can load is not written.
  const lm::model::ModelConfig cfg = lm::model::check_model(in);
  if (in.try_get_u32("llama.expert_count").value_or(0) > 1)
    throw lm::FormatError(a.model, "mixture-of-experts model (llama.expert_count " +
                                       std::to_string(*in.try_get_u32("llama.expert_count")) +
                                       "), expected a dense model; use llama-quantize for it");
  if (in.try_get_u32("split.count").value_or(1) > 1)
    throw lm::FormatError(a.model, "is one part of a split model, expected a whole model; merge the parts with "
                                   "llama-gguf-split --merge first");
  std::optional<lm::quant::Imatrix> imatrix;
  if (!a.imatrix.empty()) imatrix = lm::quant::read_imatrix(a.imatrix);
  const Plan plan = lm::quant::make_plan(in.tensors(), *type, overrides, cfg.n_layer, cfg.n_head / cfg.n_head_kv,
                                         imatrix.has_value());
  for (const auto& w : plan.warnings) log.warn("%s", w.c_str());
  if (const auto* t = plan.first_requantized(); t && !a.allow_requantize)
    throw lm::FormatError(a.model, "tensor '" + t->name + "' is already quantized (" + type_name(t->in) +
                                       "), expected f32, f16 or bf16 weights; quantizing it again adds error to "
                                       "error: start from the original model, or pass --allow-requantize");

  std::vector<std::vector<float>> importance;
  lm::quant::QuantizeInfo info;
  info.source = base_name(a.model);
  info.overrides = a.tensor_types;
  if (imatrix) {
    importance = match_imatrix(*imatrix, a.imatrix, plan, a.model, log);
    info.imatrix_file = a.imatrix;
    if (!imatrix->datasets.empty()) info.imatrix_dataset = imatrix->datasets[0];
    info.imatrix_entries = int32_t(imatrix->entries.size());
    info.imatrix_chunks = int32_t(imatrix->chunk_count);
  }
  lm::format::GgufWriter w;
  lm::quant::add_quantized_model(w, in, plan, info);
  if (!a.eval.empty()) lm::quant::set_quant_eval(w, {base_name(a.eval)});  // placeholders of the same size
  const uint64_t size_out = w.file_size();
  struct stat st;
  const uint64_t size_in = ::stat(source.c_str(), &st) == 0 ? uint64_t(st.st_size) : 0;
  const auto in_ftype = in.try_get_u32(lm::format::kKeyFileType);
  const std::string in_type = in_ftype ? lm::quant::llama_ftype_name(*in_ftype) : "?";
  size_t converted = 0;
  for (const auto& t : plan.tensors) converted += t.in != t.out;
  auto summary = [&](const char* verb) {
    log.info("%s: %.2f MiB, %.2f bits per weight -> %s: %.2f MiB, %.2f bits per weight (%s: %zu of %zu tensors "
             "converted, %zu fallbacks)%s",
             a.model.c_str(), double(size_in) / (1 << 20), plan.weight_bpw_in(), a.output.c_str(),
             double(size_out) / (1 << 20), plan.weight_bpw_out(), lm::quant::file_type_info(*type).name, converted,
             plan.tensors.size(), plan.warnings.size(), verb);
  };
  // The result as one JSON object; `extra` members are appended.
  auto json = [&](const lm::Json& extra) {
    lm::Json j{{"input", a.model},
               {"output", a.output},
               {"type", lm::quant::file_type_info(*type).name},
               {"bytes_in", size_in},
               {"bytes_out", size_out},
               {"bpw_in", lm::json_number(plan.weight_bpw_in())},
               {"bpw", lm::json_number(plan.weight_bpw_out())},
               {"bpw_file", lm::json_number(bpw(size_out, plan.n_elements))},
               {"tensors", plan.tensors.size()},
               {"converted", converted},
               {"fallbacks", plan.warnings.size()}};
    for (const auto& [k, v] : extra.items()) j[k] = v;
    std::fputs((lm::dump_json(j) + "\n").c_str(), stdout);
  };
  if (a.dry_run) {
    if (a.json) json({{"dry_run", true}, {"plan", plan_json(plan, a)}});
    else std::fputs(plan_text(plan, a, size_in, size_out, in_type).c_str(), stdout);
    summary(" (dry run: nothing written)");
    return 0;
  }
  lm::quant::check_convertible(in, plan);

  // ---- the output: written to a temp file, read back, scored, then renamed into place ----
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  if (!lm::is_std_stream(a.output)) lm::remove_stale_temps(a.output);  // left by a run that was killed
  lm::OutputFile out(a.output, size_t{1} << 20);
  if (!a.eval.empty() && out.temp_path().empty())
    throw lm::UsageError("--eval needs -o to name a regular file (the results go into its header)");
  lm::kernels::set_threads(a.threads);
  try {
    std::optional<lm::model::LoadedModel> src_model;
    std::vector<int> ids;
    int ctx = 0;
    if (!a.eval.empty()) {
      src_model.emplace(lm::model::load_model(source));
      ctx = a.ctx.value_or(std::min(kDefaultEvalCtx, cfg.n_ctx));
      if (ctx > cfg.n_ctx)
        throw lm::UsageError("--ctx-size " + std::to_string(ctx) + " is larger than the model's context length " +
                             std::to_string(cfg.n_ctx));
      ids = eval_tokens(a.eval, src_model->tok, log);
      if (ids.size() + src_model->add_bos < size_t(ctx))
        throw lm::FormatError(a.eval, std::to_string(ids.size()) + " tokens, too few to score one chunk of " +
                                          std::to_string(ctx) + ", expected at least " + std::to_string(ctx) +
                                          "; use a longer text or a smaller --ctx-size");
    }
    uint64_t bytes_total = 0, bytes_done = 0;
    for (const auto& t : plan.tensors) bytes_total += t.bytes_out;
    // -v lists each tensor as it goes instead.
    Progress progress(log, "writing " + lm::display_name(a.output, true), bytes_total, Progress::Unit::Bytes, "", "",
                      log.level() != lm::Logger::Level::Verbose);
    w.write(out, [&](size_t i, uint8_t* dst) {
      check_signal();
      const auto& t = plan.tensors[i];
      progress.update(bytes_done, 0);
      bytes_done += t.bytes_out;
      log.debug("[%zu/%zu] %-28s %-12s %-5s -> %-5s %s", i + 1, plan.tensors.size(), t.name.c_str(),
                shape(t.ne).c_str(), type_name(t.in).c_str(), type_name(t.out).c_str(), reason(plan, t, a).c_str());
      lm::quant::write_quantized_tensor(in, plan, i, dst,
                                        i < importance.size() && !importance[i].empty() ? importance[i].data() : nullptr);
    });
    progress.finish();
    out.flush();
    if (!out.temp_path().empty()) {  // read back what was written before it replaces anything
      const lm::format::GgufFile check = lm::format::GgufFile::open(out.temp_path());
      bool same = check.tensors().size() == plan.tensors.size() && out.bytes_written() == size_out;
      for (size_t i = 0; same && i < plan.tensors.size(); ++i)
        same = check.tensors()[i].name == plan.tensors[i].name && check.tensors()[i].type == plan.tensors[i].out;
      if (!same) throw lm::FormatError(a.output, "the file written does not read back as planned");
    }
    std::optional<lm::quant::QuantEval> e;
    if (src_model) {
      e = evaluate(*src_model, out.temp_path(), ids, ctx, base_name(a.eval), log);
      lm::quant::set_quant_eval(w, *e);
      const std::string header = w.header();
      LM_ASSERT(w.file_size() == size_out);  // the same sizes as the placeholders
      out.write_at(0, header.data(), header.size());
    }
    out.commit();
    summary("");
    lm::Json eval_json = lm::Json::object();
    if (e) {
      log.info("%s: perplexity %.4f (source %.4f), KL divergence %.6f, top-1 agreement %.2f%% over %llu tokens",
               a.eval.c_str(), double(e->perplexity), double(e->perplexity_source), double(e->kld),
               100.0 * double(e->top1_agreement), (unsigned long long)e->tokens);
      eval_json["eval"] = {{"file", e->file},
                           {"tokens", e->tokens},
                           {"ctx", e->ctx},
                           {"perplexity", lm::json_number(e->perplexity)},
                           {"perplexity_source", lm::json_number(e->perplexity_source)},
                           {"kld", lm::json_number(e->kld)},
                           {"top1_agreement", lm::json_number(e->top1_agreement)}};
    }
    if (a.json) {
      json(eval_json);
    } else if (e) {
      std::printf("perplexity_source\t%.4f\nperplexity\t%.4f\nkld\t%.6f\ntop1_agreement\t%.4f\ntokens\t%llu\n",
                  double(e->perplexity_source), double(e->perplexity), double(e->kld), double(e->top1_agreement),
                  (unsigned long long)e->tokens);
    }
  } catch (const Interrupted&) {
    log.info("interrupted; nothing written");
    return 128 + g_signal.load();
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  lm::Logger log("lm-quantize");
  CLI::App app{"Write a copy of a GGUF model, or a Hugging Face model directory as GGUF, with its weights in "
               "another type (f16, bf16, q8_0, q6_k, q5_k_m, q5_0, q4_k_m, q4_1, q4_0, q3_k_m, q2_k)"};
  lm::tools::init_app(app, "lm-quantize");
  lm::tools::doc(
      app.add_option("-m,--model", a.model, "Input model: a GGUF file, or a Hugging Face model directory")
                         ->type_name("FILE|DIR")->required())
      .man(R"(The input model (required): a GGUF file, or a Hugging Face model directory (see
.BR "HUGGING FACE DIRECTORIES" ).)");
  lm::tools::doc(app.add_option("-o,--output", a.output, "Output model file")->type_name("FILE")->required())
      .man(R"(The output model (required); it must not be the input.
.B \-
writes to standard output (not with
.BR \-\-eval ).)");
  lm::tools::doc(app.add_option("--type", a.type,
                                "File type: f32, f16, bf16, q8_0, q6_k, q5_k_m (q5_k), q5_0, q4_k_m (q4_k), q4_1, "
                                "q4_0, q3_k_m (q3_k), q2_k")
      ->type_name("TYPE")->required())
      .man(R"(The file type (required): one of the table above.)");
  lm::tools::doc(app.add_option("--tensor-type", a.tensor_types,
                 "REGEX=TYPE: tensors whose name matches get TYPE (f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 iq4_nl q2_K q3_K q4_K "
                 "q5_K q6_K iq4_xs); repeatable, "
                 "first match wins")
      ->type_name("REGEX=TYPE")->take_all()->default_str(""))
      .man(R"(Tensors whose name contains a match of the ECMAScript regular expression
.I REGEX
get
.IR TYPE :
one of f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl, q2_K, q3_K, q4_K, q5_K, q6_K,
iq4_xs (case-insensitive). The text is split at its
last
.BR = .
Repeat the option for several patterns; the first that matches wins. Anchor a pattern to
match whole names:
.B output\e.weight
also matches
.BR blk.0.attn_output.weight ,
.B ^output\e.weight$
does not. The fallbacks still apply.)");
  lm::tools::doc(app.add_option("--imatrix", a.imatrix,
                                "Importance matrix (llama-imatrix's GGUF format, or lm-eval imatrix's) to weigh "
                                "the quantizers with")
                     ->type_name("FILE"))
      .man(R"(Weigh the quantizers with the importance matrix in
.I FILE
(llama.cpp's imatrix GGUF format, as
.B "lm-eval imatrix"
and
.B llama-imatrix
write it): each weight column's mean squared input activation over a calibration text, so
the columns the model leans on are fitted more closely. The K-quants, q4_0, q4_1, q5_0, q5_1,
iq4_nl and iq4_xs then use ggml's importance-weighted rules, byte for byte what
.B "llama-quantize \-\-imatrix"
writes for the same weights and matrix (q8_0 and the float types ignore it). As in
llama-quantize, q4_0 and q5_0 files then give the first eighth of the ffn_down layers q4_1 /
q5_1, and tensors without an entry (token_embd.weight, say) are quantized without one, with
one warning listing them. An entry whose width is not its tensor's, or a file none of whose
entries names a tensor of the model, is an error naming the file: an importance matrix of
another model. The output records the file in llama-quantize's
.B quantize.imatrix.*
keys.)");
  lm::tools::doc(app.add_flag("--allow-requantize", a.allow_requantize, "Convert weights that are already quantized"))
      .man(R"(Convert tensors that are already quantized (see above).)");
  lm::tools::doc(
      app.add_flag("--dry-run", a.dry_run, "Print each tensor's type and size and the totals; write nothing"))
      .man(R"(Print the plan and write nothing: one tab-separated row per tensor with its name, shape
(ne[0]xne[1], values per row first), input and output types, bytes before and after, bits
per value and the reason for its type
.RB ( copy ,
.BR type ,
.BR output ,
.BR "more bits" ,
.BR "override " \fIREGEX=TYPE\fR,
each possibly followed by
.BR "fallback from " \fITYPE\fR);
then a
.B (weights)
row with the weight matrices' values, bytes and bits per weight, and a
.B (file)
row with all tensors' values, the input's and output's file types, both file sizes and the
output's bits per value. The output size is exact: it is the size the same command writes
without
.BR \-\-dry\-run .
The input column shows the types a file holds, so a dry run also reads back what an earlier
run wrote.)");
  lm::tools::doc(
      app.add_option("--eval", a.eval, "Score the result against the input on this text (perplexity, KL divergence)")
          ->type_name("FILE"))
      .man(R"(After converting, score the copy against the input on the text in
.I FILE
(tokenized as one text, as
.BR lm-eval (1)
does; its tokens are held in memory): both perplexities, the mean KL divergence of the copy's next-token
distributions from the input's, and how often their most likely tokens agree. The text is cut
into chunks of
.B \-\-ctx\-size
tokens that start with BOS when the model adds one, and the second half of each chunk is
scored: the same numbers as
.B "lm-eval kld \-m OUT.gguf \-\-ref IN.gguf \-c N FILE"
prints. The results are printed and stored in the output's metadata. The text must hold at
least one chunk; this is checked before any work.)");
  lm::tools::doc(app.add_option("-c,--ctx-size", a.ctx,
                                "With --eval: chunk length in tokens (default 512, or the model's context if "
                                "smaller)")
                     ->check(CLI::Range(4, 1 << 20)))
      .man(R"(With
.BR \-\-eval :
the chunk length in tokens, 4 to the model's context length (default 512, or the model's
context length if that is smaller).)");
  lm::tools::doc(app.add_flag("--json", a.json, "Print one JSON object"))
      .man(R"(Print one JSON object on standard output instead of the text output:
.B input
and
.B output
(paths),
.B type
(the file type),
.B bytes_in
and
.B bytes_out
(file sizes),
.B bpw_in
and
.B bpw
(bits per weight of the weight matrices before and after),
.B bpw_file
(the output's size in bits over all tensors' values),
.B tensors
(count),
.B converted
(tensors whose type changed),
.B fallbacks
(count); with
.BR \-\-eval ,
.B eval
holds
.BR file ,
.BR tokens ,
.BR ctx ,
.BR perplexity ,
.BR perplexity_source ,
.B kld
and
.BR top1_agreement ;
with
.BR \-\-dry\-run ,
.B dry_run
is true and
.B plan
is an array with one object per tensor:
.BR name ,
.B shape
(array),
.BR type_in ,
.BR type_out ,
.BR bytes_in ,
.BR bytes_out ,
.BR reason .)");
  lm::tools::add_threads(app, a.threads);
  lm::tools::add_verbosity(app, log, R"(Also print each tensor as it is converted.)");
  return lm::tools::run_main(app, argc, argv, [&] { return run(a, log); });
}
