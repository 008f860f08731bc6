// lm-generate: sample text from a GGUF model. A prompt from -p, -f or stdin, or with
// --each-line one completion per input line (a filter), --parallel N of them decoded together,
// or with --chat the assistant's reply to a conversation read as JSON Lines and written through
// the model's chat template (lib/chat). The loop is lib/sample/batch (over lib/sample/generate's
// per-sequence steps); this file parses, loads, and writes text or JSON Lines in input order.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <optional>
#include <utility>
#include <random>
#include <string>

#include "base/error.hpp"
#include "base/file.hpp"
#include "base/json.hpp"
#include "base/rng.hpp"
#include "chat/chat_template.hpp"
#include "common/cli.hpp"
#include "common/text.hpp"
#include "kernels/blas.hpp"
#include "model/model_io.hpp"
#include "model/session.hpp"
#include "sample/batch.hpp"
#include "sample/generate.hpp"

namespace {

using lm::sample::TokenEvent;

// The output of each prompt, rendered as text or JSON Lines.
struct Render {
  const lm::Tokenizer& tok;
  bool json = false;

  std::string token(long line, const TokenEvent& e) const {
    if (!json) return e.text;
    lm::Json j{{"event", "token"}, {"line", line}, {"id", e.id}, {"text", e.text},
               {"piece", tok.token_bytes(e.id)}, {"logprob", lm::json_number(e.logprob)}};
    if (!e.top.empty()) {
      lm::Json& top = j["top"] = lm::Json::array();
      for (const auto& t : e.top)
        top.push_back({{"id", t.id}, {"piece", tok.token_bytes(t.id)}, {"logprob", lm::json_number(t.logprob)}});
    }
    return lm::dump_json(j) + "\n";
  }

  std::string end(long line, const lm::sample::GenerateResult& r, uint64_t seed, double prompt_s, double gen_s) const {
    if (!json) return "";
    const lm::Json j{{"event", "end"},
                     {"line", line},
                     {"text", r.text},
                     {"stop_reason", r.stop_reason},
                     {"prompt_tokens", r.prompt_tokens},
                     {"tokens", r.tokens},
                     {"context_shifts", r.shifts},
                     {"seed", seed},
                     {"prompt_tokens_per_s", rate(r.prompt_tokens, prompt_s)},
                     {"tokens_per_s", rate(r.tokens - 1, gen_s)}};
    return lm::dump_json(j) + "\n";
  }

  static lm::Json rate(int n, double s) { return n > 0 && s > 0 ? lm::json_number(n / s) : lm::Json(nullptr); }
};

// Writes each prompt's output in input order while several are generated at once: the first
// unfinished prompt's output goes out as it comes (token by token on a pipe), the others' is
// held until every earlier prompt is done.
class OrderedOutput {
 public:
  explicit OrderedOutput(lm::OutputFile& out) : out_(out) {}
  void write(long line, const std::string& s) {
    if (s.empty()) return;
    if (line == head_) {
      out_.write(s);
      out_.flush();
    } else {
      lines_[line].text += s;
    }
  }
  void done(long line) {
    lines_[line].done = true;
    while (!lines_.empty() && lines_.begin()->first == head_) {
      Held& h = lines_.begin()->second;
      if (!h.text.empty()) out_.write(std::exchange(h.text, std::string()));
      if (!h.done) break;
      lines_.erase(lines_.begin());
      ++head_;
    }
    out_.flush();
  }
  // Prompts started and not yet written out.
  size_t in_flight(long next) const { return size_t(next - head_); }

 private:
  struct Held {
    std::string text;
    bool done = false;
  };
  lm::OutputFile& out_;
  long head_ = 0;
  std::map<long, Held> lines_;
};

}  // namespace

int main(int argc, char** argv) {
  lm::sample::GenerateOptions o;
  lm::sample::SamplerOptions& so = o.sampler;
  lm::Logger log("lm-generate");
  std::string model, prompt, prompt_file, output = "-", overflow = "stop", chat_template;
  std::optional<uint64_t> seed;
  std::vector<std::string> loras;
  int parallel = 1;
  bool bos = false, no_bos = false, parse_special = false, each_line = false, echo = false, json = false, greedy = false, have_prompt = false;
  bool chat = false;
  int threads = 0;

  CLI::App app{"Generate text with a llama-arch GGUF model: from a prompt, or line by line as a filter"};
  lm::tools::init_app(app, "lm-generate");
  lm::tools::doc(app.add_option("-m,--model", model,
                                 "Model file (GGUF: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL, "
                                 "Q2_K..Q6_K, IQ4_XS)")
                     ->type_name("FILE")
                     ->required())
      .group("Input and output")
      .man(R"(The model (required).)");
  lm::tools::doc(app.add_option("--lora", loras,
                                "Apply a LoRA adapter (GGUF) to the model, scaled by SCALE (default 1); repeatable")
                     ->type_name("FILE[:SCALE]")
                     ->take_all()
                     ->allow_extra_args(false))
      .group("Input and output")
      .man(R"(Apply a LoRA adapter in llama.cpp's LoRA GGUF convention (as
.BR lm-finetune (1)
writes it, or llama.cpp's converter) with its update scaled by
.I SCALE
(default 1); repeat for several. The adapters are merged into the weights when the model loads,
and each matrix is then kept in the model file's type.)");
  auto* p_opt = lm::tools::doc(app.add_option("-p,--prompt", prompt, "Prompt text"))
      .group("Input and output")
      .man(R"(The prompt.)").option();
  lm::tools::doc(
      app.add_option("-f,--file", prompt_file, "Read the prompt from FILE ('-' = stdin; the default without -p)")
          ->type_name("FILE")
          ->excludes(p_opt))
      .group("Input and output")
      .man(R"(Read the prompt, or with
.B \-\-each\-line
the prompts, from
.I FILE
.RB ( \- ,
the default, is standard input).)");
  lm::tools::doc(app.add_flag("--each-line", each_line, "Every input line is a prompt; one completion per output line"))
      .group("Input and output")
      .man(R"(One prompt per input line and one completion per output line.)");
  lm::tools::doc(app.add_option("--parallel", parallel, "With --each-line, decode N lines together")
                     ->type_name("N")
                     ->check(CLI::Range(1, 256)))
      .group("Input and output")
      .man(R"(With
.BR \-\-each\-line ,
generate the completions of
.I N
lines at once (default 1): every decoding step is one matrix product over all of them, which
reads each weight once for all
.I N
lines instead of once per line, so a filter over many lines runs several times faster.
Lines are written in input order, and each line's completion is the same as without
.B \-\-parallel
(the same tokens, with the same seed). Each sequence has its own KV cache, so memory for the
cache is
.I N
times that of the longest line, or up to 1.5 times that (a longer line grows every slot's
cache by at least half, so that it is not copied again for each slightly longer line);
.B \-v
reports it.)");
  lm::tools::doc(app.add_option("-o,--output", output, "Write to FILE instead of stdout")->type_name("FILE"))
      .group("Input and output")
      .man(R"(Write to
.I FILE
instead of standard output.
The text goes to a temporary file beside it, renamed into place when the run succeeds: a
failed run leaves an existing file as it was, and the file appears whole at the end; to
follow the text as it is generated, write to standard output (or a pipe), which gets each
token as it comes.)");
  lm::tools::doc(
      app.add_option("-n,--max-tokens", o.max_tokens, "New tokens at most (-1 = until a stop or the context end)")
          ->check(CLI::Range(-1, 1 << 30)))
      .group("Length and context")
      .man(R"(Generate at most
.I N
tokens;
.B \-1
goes on until the end-of-sequence token, a stop string, or the context policy ends it.)");
  lm::tools::doc(app.add_option("-c,--ctx-size", o.n_ctx, "Context size in tokens (0 = the model's)")
                     ->check(CLI::Range(0, 1 << 20)))
      .group("Length and context")
      .man(R"(Context size in tokens: the prompt and the completion together (0: the model's
context length, which is also the largest allowed).
Memory for the cache is taken for what a run needs, the prompt and
.B \-n
new tokens, and grows (up to this size) only if the run goes further;
.B \-v
reports its size.)");
  lm::tools::doc(
      app.add_option("-b,--batch", o.n_batch, "Prompt tokens per matrix product")->check(CLI::Range(1, 1 << 16)))
      .group("Length and context")
      .man(R"(Prompt tokens per matrix product.)");
  lm::tools::doc(
      app.add_option("--overflow", overflow, "When the context is full: stop, or shift (drop the older half)"))
      .group("Length and context")
      .choices({"stop", "shift"})
      .man(R"(What happens when the context is full.
.BR stop :
a prompt longer than the context is an error, and generation ends with the
stop reason
.B context
and a warning when the context fills.
.BR shift :
the window keeps its BOS token and the most recent half of the context, the cache is
recomputed over them and generation goes on; a prompt longer than the context keeps its last
half-context of tokens, with a warning.)");
  lm::tools::doc(app.add_option("--temp", so.temperature, "Temperature (0 = greedy)")
                     ->check(CLI::Range(0.0, 100.0))
                     ->type_name("T"))
      .group("Sampling")
      .man(R"(Divide the logits by
.IR T .
0 picks the most likely token after the penalties (greedy decoding; ties go to
the lowest id).)");
  lm::tools::doc(app.add_flag("--greedy", greedy, "Always the most likely token (--temp 0)"))
      .group("Sampling")
      .man(R"(The same as
.BR "\-\-temp 0" .)");
  lm::tools::doc(app.add_option("--top-k", so.top_k, "Keep the K most likely tokens (0 = off)")
                     ->check(CLI::Range(0, 1 << 24))
                     ->type_name("K"))
      .group("Sampling")
      .man(R"(Keep the
.I K
most likely tokens (0 = off).)");
  lm::tools::doc(app.add_option("--top-p", so.top_p, "Nucleus: smallest set with probability >= P (1 = off)")
      ->check(CLI::Range(0.0, 1.0))->type_name("P"))
      .group("Sampling")
      .man(R"(Keep the most likely tokens whose probabilities add up to at least
.I P
(1 = off).)");
  lm::tools::doc(app.add_option("--min-p", so.min_p, "Drop tokens below P x the top probability (0 = off)")
                     ->check(CLI::Range(0.0, 1.0))
                     ->type_name("P"))
      .group("Sampling")
      .man(R"(Drop tokens less likely than
.I P
times the most likely one (0 = off).)");
  lm::tools::doc(app.add_option("--typical", so.typical_p, "Locally typical sampling mass (1 = off)")
                     ->check(CLI::Range(0.0, 1.0))
                     ->type_name("P"))
      .group("Sampling")
      .man(R"(Locally typical sampling: keep the tokens whose surprise is closest to the distribution's
entropy, up to probability mass
.I P
(1 = off).)");
  lm::tools::doc(app.add_option("--repeat-penalty", so.repeat_penalty, "Penalty for tokens in the window (1 = off)")
      ->check(CLI::Range(0.0, 100.0))->type_name("R"))
      .group("Sampling")
      .man(R"(Divide positive logits (multiply negative ones) of tokens seen in the penalty window by
.I R
(1 = off).)");
  lm::tools::doc(
      app.add_option("--presence-penalty", so.presence_penalty, "Subtracted from logits of tokens in the window")
          ->check(CLI::Range(-100.0, 100.0))
          ->type_name("A"))
      .group("Sampling")
      .man(R"(Subtract
.I A
from the logits of tokens seen in the window.)");
  lm::tools::doc(app.add_option("--frequency-penalty", so.frequency_penalty, "Subtracted per occurrence in the window")
      ->check(CLI::Range(-100.0, 100.0))->type_name("A"))
      .group("Sampling")
      .man(R"(Subtract
.I A
times the number of occurrences in the window.)");
  lm::tools::doc(app.add_option("--repeat-last-n", so.penalty_last_n, "Penalty window in tokens (-1 = all, 0 = off)")
      ->check(CLI::Range(-1, 1 << 30)))
      .group("Sampling")
      .man(R"(The penalty window: the last
.I N
tokens of prompt and output (\-1 = all, 0 = no penalties).)");
  lm::tools::doc(
      app.add_option("--samplers", so.order, "Sampler order: penalties,top-k,typical,top-p,min-p,temperature")
          ->type_name("LIST"))
      .group("Sampling")
      .man(R"(Comma-separated order of the steps
.BR penalties ,
.BR top\-k ,
.BR typical ,
.BR top\-p ,
.BR min\-p ,
.BR temperature ;
steps left out are not applied (default: all, in that order).)");
  lm::tools::doc(app.add_option("--stop", o.stop, "Stop before this text (repeatable)")->type_name("TEXT")->take_all())
      .group("Length and context")
      .man(R"(End the completion before the first occurrence of
.IR TEXT ;
repeat for several stop strings. The stop string itself is not written.)");
  lm::tools::doc(app.add_flag("--ignore-eos", o.ignore_eos, "Keep going after the end-of-sequence or end-of-turn token"))
      .group("Length and context")
      .man(R"(Do not stop at the end-of-sequence token, nor at an end-of-turn token such as
.B <|eot_id|>
or
.BR <|im_end|> .)");
  auto* bos_flag =
      lm::tools::doc(
          app.add_flag("--bos", bos, "Start each prompt with the BOS token (default: as the model file says)"))
          .group("Length and context")
          .man(R"(Start every prompt with the BOS token.)")
          .option();
  lm::tools::doc(app.add_flag("--no-bos", no_bos, "Do not start prompts with the BOS token")->excludes(bos_flag))
      .group("Length and context")
      .man(R"(Do not start prompts with the BOS token.)");
  lm::tools::doc(app.add_flag("--parse-special", parse_special, "Read control tokens such as <|im_start|> in prompts"))
      .group("Input and output")
      .man(R"(Turn the text of a control token in a prompt (such as
.BR <s> ,
.B <|im_start|>
or
.BR <|eot_id|> )
into that token, as chat templates need. Without it such text is tokenized like any other
text. User-defined tokens of the vocabulary are always found.)");
  auto* chat_flag =
      lm::tools::doc(app.add_flag("--chat", chat,
                                  "Read a conversation as JSON Lines (-f or stdin) and write the assistant's reply"))
          .group("Input and output")
          .man(R"(Read a conversation from
.B \-f
or standard input, one message per line as a JSON object
.RB ( {"role":"user","content":"Hello"} ;
roles
.BR system ,
.B user
and
.BR assistant ;
blank lines are skipped), write it through the model's chat template (see
.BR "CHAT TEMPLATES" )
with the opening of the assistant's turn, and generate the assistant's reply.
Control tokens in the templated text are read as such (as
.B \-\-parse\-special
does), and the BOS token is not added when the template writes it itself.)")
          .option();
  lm::tools::doc(app.add_option("--chat-template", chat_template,
                                "With --chat, this template family instead of the model's (e.g. chatml, llama3)")
                     ->type_name("NAME")
                     ->needs(chat_flag))
      .group("Input and output")
      .man(R"(With
.BR \-\-chat ,
write the conversation in the template family
.I NAME
(llama.cpp's names, listed under
.BR "CHAT TEMPLATES" )
instead of the one recognised in the model's
.BR tokenizer.chat_template ;
needed for a model that has no template or one that is not recognised.)");
  lm::tools::doc(app.add_flag("--echo", echo, "Write the prompt before its completion"))
      .group("Input and output")
      .man(R"(Write each prompt before its completion.)");
  lm::tools::doc(app.add_flag("--json", json, "JSON Lines: one object per token and one per completion"))
      .group("Input and output")
      .man(R"(Write JSON Lines instead of text (see
.BR OUTPUT ).)");
  lm::tools::doc(
      app.add_option("--top-logprobs", o.top_logprobs, "With --json, the N most likely alternatives per token")
          ->check(CLI::Range(0, 100)))
      .group("Input and output")
      .man(R"(With
.BR \-\-json ,
also report the
.I N
most likely tokens at each step.)");
  lm::tools::doc(app.add_option("-s,--seed", seed, "Random seed (default: random; --json reports each line's, which given here reproduces that line)"))
      .group("Sampling")
      .man(R"(Random seed. Without it a random seed is used and reported by
.B \-\-json
and
.BR \-v .
The same seed, model, options and thread count give the same output.
Each
.B end
event of
.B \-\-json
reports its line's own seed, which given here reproduces that line alone (see
.BR DESCRIPTION ).)");
  lm::tools::add_threads(app, threads);
  lm::tools::add_verbosity(app, log,
                           R"(Also print a line about the model (size, file type, bits per weight and, for a file
.BR lm-quantize (1)
wrote, its source and the scores it measured), the seed and, per prompt, the prompt and generation speeds.)");

  return lm::tools::run_main(app, argc, argv, [&] {
    have_prompt = app.count("--prompt") > 0;
    if (greedy) so.temperature = 0;
    so.validate();
    if (o.top_logprobs > 0 && !json) throw lm::UsageError("--top-logprobs needs --json");
    if (each_line && have_prompt) throw lm::UsageError("--each-line reads prompts from -f or stdin, not -p");
    if (parallel > 1 && !each_line) throw lm::UsageError("--parallel needs --each-line");
    if (chat && (each_line || have_prompt))
      throw lm::UsageError("--chat reads one conversation from -f or stdin, not -p or --each-line");
    if (!chat_template.empty()) lm::chat::Template::named(chat_template);  // an unknown name fails before the model loads
    if (each_line) o.stop.push_back("\n");  // a completion is one output line
    o.overflow = overflow == "shift" ? lm::sample::Overflow::Shift : lm::sample::Overflow::Stop;
    if (prompt_file.empty()) prompt_file = "-";
    std::vector<lm::model::AdapterSpec> adapters;
    for (const auto& l : loras) adapters.push_back(lm::model::parse_adapter_spec(l));
    bool reads_output = lm::same_file(output, model) || (!have_prompt && lm::same_file(output, prompt_file));
    for (const auto& a : adapters) reads_output |= lm::same_file(output, a.path);
    if (reads_output) throw lm::UsageError("output '" + output + "' is also an input; choose another file");

    // The model before stdin: a bad model fails before anything is read.
    lm::kernels::set_threads(threads);
    lm::model::LoadedModel m = lm::model::load_model(model, adapters);
    log.debug("%s: %s", model.c_str(), lm::model::describe_model(m.gguf).c_str());
    const lm::Tokenizer& tok = m.tok;
    const lm::model::Weights& params = m.weights;
    bool add_bos = (bos || (!no_bos && m.add_bos)) && tok.bos_id().has_value();
    if (chat) {  // the templated conversation is the prompt (docs/chat.md)
      const lm::chat::Template tmpl = lm::chat::for_model(m.gguf, model, chat_template);
      log.debug("chat template %s", tmpl.name().c_str());
      lm::tools::note_terminal_input(log, prompt_file, "messages, one JSON object per line,");
      prompt = tmpl.apply(lm::chat::read_messages(prompt_file), /*add_assistant=*/true);
      have_prompt = parse_special = true;
      add_bos = add_bos && !lm::chat::begins_with_bos(tok, prompt);
    }
    if (o.n_ctx > params.cfg.max_context())
      throw lm::UsageError("--ctx-size " + std::to_string(o.n_ctx) + " is larger than the model's context length " +
                           std::to_string(params.cfg.n_ctx));
    // The KV cache grows with what a run asks (prompt plus -n new tokens), up to this context;
    // with --parallel N there are N slots of it.
    const int n_par = each_line ? parallel : 1;
    lm::sample::BatchGenerator gen(params, tok, n_par, o.n_ctx > 0 ? o.n_ctx : params.cfg.default_context(), o.n_batch, log);
    log.debug("%s: %zu parameters, weights %.1f MiB, context %d, buffers %.1f MiB, OpenBLAS %s", model.c_str(),
              params.cfg.n_params(), double(params.bytes()) / (1 << 20), gen.n_ctx(),
              double(gen.bytes() - gen.cache_bytes()) / (1 << 20), lm::kernels::blas_info().core.c_str());
    const uint64_t base_seed = seed ? *seed : (uint64_t(std::random_device{}()) << 32 | std::random_device{}());
    if (!seed) log.debug("seed %llu", (unsigned long long)base_seed);

    // A file named by -o is written to a temp file and renamed into place when the run succeeds,
    // so a failed run leaves an existing file as it was; stdout, pipes and devices get each token
    // as it comes.
    lm::OutputFile out(output, size_t{1} << 16);
    OrderedOutput ordered(out);
    const Render render{tok, json};
    using clock = std::chrono::steady_clock;
    const auto run_start = clock::now();
    long new_tokens = 0;
    // Prompt number `line`: queued in the generator (it starts when a slot is free).
    auto add = [&](long line, const std::string& text) {
      std::vector<int> ids;
      if (add_bos) ids.push_back(*tok.bos_id());
      tok.encode_text(text, ids, parse_special);  // whole-text encoding, as llama.cpp tokenizes a prompt
      if (ids.empty()) {
        if (!each_line) throw lm::UsageError("the prompt is empty and no BOS token starts it (see --bos)");
        log.warn("line %ld is empty and no BOS token starts it: its completion is empty", line + 1);
        ordered.write(line, json ? render.end(line, lm::sample::GenerateResult{0, 0, "empty", "", 0}, 0, 0, 0) : "\n");
        ordered.done(line);
        return;
      }
      if (echo && !json) ordered.write(line, text);
      struct Times {
        clock::time_point t0;
        std::optional<clock::time_point> t1;
      };
      auto times = std::make_shared<Times>();
      lm::sample::SequenceSpec spec;
      spec.prompt = std::move(ids);
      spec.opts = o;
      spec.seed = lm::sample::line_seed(base_seed, uint64_t(line));
      spec.on_start = [times] { times->t0 = clock::now(); };
      spec.on_token = [&, line, times](const TokenEvent& e) {
        if (!times->t1) times->t1 = clock::now();
        ordered.write(line, render.token(line, e));
        return true;
      };
      spec.on_done = [&, line, times, s = spec.seed](const lm::sample::GenerateResult& r, std::exception_ptr err) {
        if (err) std::rethrow_exception(err);
        const auto t2 = clock::now();
        const double prompt_s = std::chrono::duration<double>(times->t1.value_or(t2) - times->t0).count();
        const double gen_s = std::chrono::duration<double>(t2 - times->t1.value_or(t2)).count();
        new_tokens += r.tokens;
        ordered.write(line, render.end(line, r, s, prompt_s, gen_s));
        if (!json && (each_line || r.text.empty() || r.text.back() != '\n')) ordered.write(line, "\n");
        ordered.done(line);
        log.debug("line %ld: %d prompt tokens (%.0f tok/s), %d new (%.1f tok/s), stop: %s; KV cache %d tokens%s, %.2f MiB",
                  line, r.prompt_tokens, r.prompt_tokens / std::max(prompt_s, 1e-9), r.tokens,
                  (r.tokens - 1) / std::max(gen_s, 1e-9), r.stop_reason.c_str(), gen.capacity(),
                  n_par > 1 ? (" x " + std::to_string(n_par) + " sequences").c_str() : "",
                  double(gen.cache_bytes()) / (1 << 20));
        if (r.stop_reason == "context")
          log.warn("%sthe context of %d tokens is full; use --overflow shift to go on",
                   each_line ? ("line " + std::to_string(line + 1) + ": ").c_str() : "", gen.n_ctx());
      };
      gen.add(std::move(spec));
    };
    if (have_prompt) {
      add(0, prompt);
      gen.run();
    } else if (!each_line) {
      lm::tools::note_terminal_input(log, prompt_file, "the prompt");
      // The whole file is the prompt, read through LineReader for its line-length limit.
      lm::LineReader in(prompt_file);
      std::string text, line;
      bool nl = false;
      while (in.next(line, &nl)) (text += line) += nl ? "\n" : "";
      add(0, text);
      gen.run();
    } else {
      lm::tools::note_terminal_input(log, prompt_file, "prompts, one per line,");
      lm::LineReader in(prompt_file);
      std::string line;
      long n = 0;
      bool eof = false;
      // Lines are read as slots free up: a few queued, and at most 4N prompts between the one
      // being written and the last one read, so memory does not grow with the input.
      for (;;) {
        while (!eof && gen.queued() < size_t(n_par) && ordered.in_flight(n) < 4 * size_t(n_par)) {
          if (!in.next(line)) {
            eof = true;
            break;
          }
          if (!line.empty() && line.back() == '\r') line.pop_back();
          add(n++, line);
        }
        if (!gen.step() && eof) break;
      }
      {
        const double s = std::chrono::duration<double>(clock::now() - run_start).count();
        log.debug("%ld lines, %ld new tokens in %.2f s (%.1f tok/s), %d sequences at a time; KV cache %d tokens x %d, %.2f MiB",
                  n, new_tokens, s, new_tokens / std::max(s, 1e-9), n_par, gen.capacity(), n_par,
                  double(gen.cache_bytes()) / (1 << 20));
      }
    }
    out.commit();
    return 0;
  });
}
