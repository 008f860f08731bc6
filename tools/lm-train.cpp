// lm-train: pretrain a Llama-style model on CPU from a token file or text, writing a GGUF model
// with its tokenizer inside. The loop is lib/train/run; this file parses, reports and saves.
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cmath>
#include <cstdio>
#include <optional>
#include <string>

#include "base/error.hpp"
#include "base/file.hpp"
#include "common/cli.hpp"
#include "format/gguf.hpp"
#include "kernels/blas.hpp"
#include "model/model_io.hpp"
#include "model/tokenizer_loader.hpp"
#include "train/data.hpp"
#include "train/run.hpp"

namespace {

std::atomic<int> g_signal{0};

extern "C" void on_signal(int sig) {
  if (g_signal.exchange(sig) != 0) _exit(128 + sig);  // a second signal: leave at once
}

std::string human_time(double s) {
  char buf[32];
  if (s < 90) std::snprintf(buf, sizeof buf, "%.0fs", s);
  else if (s < 5400) std::snprintf(buf, sizeof buf, "%.0fm%02.0fs", std::floor(s / 60), std::fmod(s, 60));
  else std::snprintf(buf, sizeof buf, "%.0fh%02.0fm", std::floor(s / 3600), std::fmod(s / 60, 60));
  return buf;
}

// general.name of the model: the output file's name without directory and extension.
std::string model_name(const std::string& path) {
  std::string name = path.substr(path.rfind('/') + 1);
  if (name.size() > 5 && name.compare(name.size() - 5, 5, ".gguf") == 0) name.resize(name.size() - 5);
  return name;
}

int print_dry_run(const lm::train::TrainOptions& o, int n_vocab) {
  lm::train::DryRun d = lm::train::dry_run(o, n_vocab);
  const auto& c = d.cfg;
  std::printf("model\tV %d, T %d, L %d, C %d, H %d, kv heads %d, F %d, %s\n", c.n_vocab, c.n_ctx, c.n_layer,
              c.n_embd, c.n_head, c.n_head_kv, c.n_ff, c.tied ? "tied" : "untied");
  std::printf("parameters\t%zu\n", d.n_params);
  std::printf("tokens_per_step\t%llu\n", (unsigned long long)d.tokens_per_step);
  std::printf("gflop_per_step\t%.1f\n", d.flops_per_step / 1e9);
  std::printf("memory_mib\t%.0f (weights, gradients, AdamW %.0f; activations %.0f)\n",
              double(d.state_bytes + d.activation_bytes) / (1 << 20), double(d.state_bytes) / (1 << 20),
              double(d.activation_bytes) / (1 << 20));
  std::printf("seconds_per_step\t%.3f (measured)\n", d.step_seconds);
  if (d.steps) std::printf("estimated_time\t%s for %llu steps\n", human_time(d.step_seconds * double(d.steps)).c_str(),
                           (unsigned long long)d.steps);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  lm::train::TrainOptions o;
  lm::Logger log("lm-train");
  std::string tokenizer, data, valid, output, checkpoint, resume, metrics, time_budget;
  bool dry = false, json = false;

  CLI::App app{"Pretrain a Llama-style language model on CPU; writes a GGUF model that llama.cpp loads"};
  lm::tools::init_app(app, "lm-train");
  app.add_option("--tokenizer", tokenizer, "Tokenizer: SentencePiece .model or GGUF (default: the --resume file's)")
      ->type_name("FILE");
  app.add_option("--data", data, "Training data: a token file (lm-tokenize encode --format bin) or text")
      ->type_name("FILE")->required();
  app.add_option("--valid", valid, "Held-out data (token file or text); default: the end of --data")->type_name("FILE");
  app.add_option("--valid-fraction", o.valid_fraction, "Share of --data held out when there is no --valid")
      ->check(CLI::Range(0.0, 0.5));
  app.add_option("-o,--output", output, "Model file to write (GGUF)")->type_name("FILE");
  app.add_option("--preset", o.preset, "Model shape")->check(CLI::IsMember({"tiny", "small", "medium"}));
  app.add_option("--context", o.context, "Context length T (overrides the preset)")->check(CLI::Range(2, 1 << 16));
  app.add_option("--layers", o.layers, "Layers (overrides the preset)")->check(CLI::Range(1, 1024));
  app.add_option("--embd", o.embd, "Embedding width (overrides the preset)")->check(CLI::Range(2, 1 << 16));
  app.add_option("--heads", o.heads, "Attention heads (overrides the preset)")->check(CLI::Range(1, 1024));
  app.add_option("--kv-heads", o.kv_heads, "Key/value heads, dividing --heads (grouped-query attention)")
      ->check(CLI::Range(1, 1024));
  app.add_option("--ff", o.ff, "Feed-forward width (overrides the preset)")->check(CLI::Range(1, 1 << 20));
  app.add_flag("--untied", o.untied, "Separate output matrix instead of the tied embedding");
  app.add_option("--batch", o.batch, "Sequences per micro-batch")->check(CLI::Range(1, 1 << 16));
  app.add_option("--grad-accum", o.grad_accum, "Micro-batches per optimizer step")->check(CLI::Range(1, 1 << 16));
  app.add_option("--steps", o.steps, "Budget: optimizer steps");
  app.add_option("--tokens", o.tokens, "Budget: training tokens");
  app.add_option("--time", time_budget, "Budget: wall time, e.g. 90s, 10m, 2h")->type_name("DURATION");
  app.add_option("--lr", o.opt.lr, "Peak learning rate")->check(CLI::Range(0.0, 10.0));
  app.add_option("--lr-min", o.opt.lr_min, "Learning rate at the end of the cosine decay")->check(CLI::Range(0.0, 10.0));
  app.add_option("--warmup", o.opt.warmup_steps, "Linear warmup steps");
  app.add_option("--weight-decay", o.opt.weight_decay, "AdamW weight decay (not on norms)")->check(CLI::Range(0.0, 10.0));
  app.add_option("--grad-clip", o.opt.grad_clip, "Clip the global gradient norm to this (0 = off)")
      ->check(CLI::Range(0.0, 1e6));
  app.add_option("--eval-every", o.eval_every, "Steps between validation runs (0 = only at the end)");
  app.add_option("--eval-batches", o.eval_batches, "Micro-batches per validation run")->check(CLI::Range(1, 1 << 20));
  app.add_option("--patience", o.patience, "Stop after this many validations without improvement (0 = off)")
      ->check(CLI::Range(0, 1 << 20));
  app.add_option("--checkpoint", checkpoint, "Checkpoint file (default: OUTPUT.ckpt)")->type_name("FILE");
  app.add_option("--checkpoint-every", o.checkpoint_every, "Steps between checkpoints (0 = only when interrupted)");
  app.add_option("--resume", resume, "Continue the run saved in this checkpoint")->type_name("FILE");
  app.add_option("--metrics", metrics, "Write one JSON object per step to this file (JSON Lines)")->type_name("FILE");
  app.add_flag("--dry-run", dry, "Print parameters, memory, FLOPs and time per step, then exit");
  app.add_flag("--json", json, "Print the final result as one JSON object");
  app.add_option("-s,--seed", o.seed, "Random seed (initialisation and data order)");
  lm::tools::add_threads(app, o.threads);
  lm::tools::add_verbosity(app, log);

  return lm::tools::run_main(app, argc, argv, [&] {
    if (!time_budget.empty()) o.time_s = lm::tools::parse_duration(time_budget, "--time");
    if (tokenizer.empty() && resume.empty()) throw lm::UsageError("--tokenizer is required (or --resume)");
    if (!dry && output.empty()) throw lm::UsageError("-o/--output is required");
    if (!dry && o.steps == 0 && o.tokens == 0 && o.time_s <= 0)
      throw lm::UsageError("no training budget: give --steps, --tokens or --time");
    const std::string tok_path = tokenizer.empty() ? resume : tokenizer;
    lm::Tokenizer tok = lm::model::load_tokenizer(tok_path);
    if (dry) return print_dry_run(o, tok.vocab_size());
    if (checkpoint.empty()) checkpoint = output + ".ckpt";
    for (const auto& f : {output, checkpoint})
      if (lm::same_file(f, data) || lm::same_file(f, valid) || lm::same_file(f, tok_path))
        throw lm::UsageError("output '" + f + "' is also an input; choose another file");
    lm::OutputFile out(output);  // fails now, not after hours, if the directory is not writable
    std::optional<lm::OutputFile> metrics_out;
    if (!metrics.empty()) metrics_out.emplace(metrics, size_t{1} << 16, lm::OutputFile::Mode::Direct);

    std::vector<int> train = lm::train::load_tokens(data, tok, tok_path, o.threads);
    std::vector<int> held = valid.empty() ? lm::train::split_validation(train, o.valid_fraction)
                                          : lm::train::load_tokens(valid, tok, tok_path, o.threads);
    log.debug("%zu training tokens, %zu held out", train.size(), held.size());
    const double peak = (lm::kernels::set_threads(o.threads), lm::kernels::sgemm_peak_gflops());
    log.debug("OpenBLAS %s (%s); sgemm peak %.0f GFLOP/s", lm::kernels::blas_info().core.c_str(),
              lm::kernels::blas_info().path.c_str(), peak);
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);

    const bool tty = isatty(STDERR_FILENO) && log.level() != lm::Logger::Level::Quiet;
    lm::train::RunInputs in;
    in.tokenizer = &tok;
    in.train = &train;
    in.valid = &held;
    in.train_name = data;
    in.checkpoint_path = checkpoint;
    if (!resume.empty()) in.resume_path = resume;
    in.stop = &g_signal;
    in.on_checkpoint = [&](const std::string& p) { log.debug("checkpoint saved to %s", p.c_str()); };
    in.on_step = [&](const lm::train::StepInfo& s) {
      const double eta = s.total_steps > s.step ? (s.total_steps - s.step) * s.elapsed_s / double(s.step) : 0;
      char valid_part[48] = "";
      if (s.valid_loss) std::snprintf(valid_part, sizeof valid_part, " valid %.4f", double(*s.valid_loss));
      char line[256];
      std::snprintf(line, sizeof line, "step %llu/%llu loss %.4f%s lr %.2e %.0f tok/s MFU %.0f%% ETA %s%s",
                    (unsigned long long)s.step, (unsigned long long)s.total_steps, double(s.loss), valid_part,
                    double(s.lr), s.tokens_per_s, 100.0 * s.gflops / peak, human_time(eta).c_str(),
                    s.skipped ? " (update skipped: non-finite gradients)" : "");
      if (tty) std::fprintf(stderr, "\r\033[K%s%s", line, s.valid_loss ? "\n" : "");
      else if (s.valid_loss || s.skipped || log.level() == lm::Logger::Level::Verbose) log.info("%s", line);
      if (metrics_out) {
        char j[512];
        int n = std::snprintf(j, sizeof j,
                              "{\"step\":%llu,\"loss\":%.9g,\"lr\":%.9g,\"grad_norm\":%.9g,\"tokens\":%llu,"
                              "\"tokens_per_s\":%.1f,\"elapsed_s\":%.3f,\"skipped\":%s",
                              (unsigned long long)s.step, double(s.loss), double(s.lr), s.grad_norm,
                              (unsigned long long)s.tokens_seen, s.tokens_per_s, s.elapsed_s, s.skipped ? "true" : "false");
        if (s.valid_loss) n += std::snprintf(j + n, sizeof j - size_t(n), ",\"valid_loss\":%.9g", double(*s.valid_loss));
        std::string line(j, size_t(n));
        metrics_out->write(line + "}\n");
        metrics_out->flush();
      }
    };
    std::optional<lm::model::Params> params;
    lm::train::RunResult r = lm::train::run_training(o, in, params, log);
    if (tty) std::fputc('\n', stderr);
    if (metrics_out) metrics_out->commit();
    if (r.end == lm::train::RunEnd::Interrupted) {
      log.info("interrupted at step %llu; checkpoint saved to %s", (unsigned long long)r.steps, checkpoint.c_str());
      return 128 + g_signal.load();
    }
    lm::format::GgufWriter w;
    lm::model::add_model(w, *params, tok, model_name(output));
    w.write(out);
    out.commit();
    const double vl = r.last_valid_loss ? double(*r.last_valid_loss) : NAN;
    auto num = [](double x) { return std::isnan(x) ? std::string("null") : std::to_string(x); };
    if (json)
      std::printf("{\"steps\":%llu,\"train_loss\":%.6f,\"valid_loss\":%s,\"valid_perplexity\":%s,\"early_stop\":%s}\n",
                  (unsigned long long)r.steps, double(r.last_loss), num(vl).c_str(), num(std::exp(vl)).c_str(),
                  r.end == lm::train::RunEnd::EarlyStop ? "true" : "false");
    else
      std::printf("steps\t%llu\ntrain_loss\t%.4f\nvalid_loss\t%.4f\nvalid_perplexity\t%.2f\n", (unsigned long long)r.steps,
                  double(r.last_loss), vl, std::exp(vl));
    return 0;
  });
}
