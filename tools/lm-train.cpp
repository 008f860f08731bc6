// lm-train: pretrain a model on CPU (a Llama-style decoder, an LSTM, or a bert encoder with the
// masked-language-model objective) from a token file or text, writing a GGUF model
// with its tokenizer inside. The loop is lib/train/run; this file parses, reports and saves.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cmath>
#include <cstdio>
#include <optional>
#include <string>

#include "base/error.hpp"
#include "base/file.hpp"
#include "base/json.hpp"
#include "common/cli.hpp"
#include "common/train_cli.hpp"
#include "format/gguf.hpp"
#include "kernels/blas.hpp"
#include "model/model_io.hpp"
#include "model/tokenizer_loader.hpp"
#include "train/data.hpp"
#include "train/mlm.hpp"
#include "train/run.hpp"

namespace {

using lm::tools::human_time;

int print_dry_run(const lm::train::ModelShape& shape, const lm::train::TrainOptions& o, const lm::Tokenizer& tok,
                  const std::string& tok_name, const lm::train::DistillOptions& distill,
                  const lm::train::MlmOptions& mlm) {
  lm::train::DryRun d = lm::train::is_encoder(shape) ? lm::train::dry_run_mlm(shape, o, mlm, tok, tok_name)
                                                     : lm::train::dry_run(shape, o, tok.vocab_size(), distill, &tok, tok_name);
  const auto& c = d.cfg;
  if (c.is_encoder())
    std::printf("model\tbert encoder (masked language model, mask %.2f%s): V %d, T %d, L %d, C %d, H %d, F %d\n",
                double(mlm.mask_prob), mlm.whole_word ? ", whole words" : "", c.n_vocab, c.n_ctx, c.n_layer, c.n_embd,
                c.n_head, c.n_ff);
  else if (c.is_lstm())
    std::printf("model\tlstm: V %d, T %d, L %d, E %d, H %d, P %d, %s\n", c.n_vocab, c.n_ctx, c.n_layer, c.n_embd,
                c.n_ff, c.n_proj, c.tied ? "tied" : "untied");
  else if (c.is_gpt2())
    std::printf("model\tgpt2: V %d, T %d, L %d, C %d, H %d, F %d, %s\n", c.n_vocab, c.n_ctx, c.n_layer, c.n_embd,
                c.n_head, c.n_ff, c.tied ? "tied" : "untied");
  else
    std::printf("model\tV %d, T %d, L %d, C %d, H %d, kv heads %d, F %d, %s\n", c.n_vocab, c.n_ctx, c.n_layer,
                c.n_embd, c.n_head, c.n_head_kv, c.n_ff, c.tied ? "tied" : "untied");
  std::printf("parameters\t%zu\n", d.n_params);
  std::printf("tokens_per_step\t%llu\n", (unsigned long long)d.tokens_per_step);
  std::printf("gflop_per_step\t%.1f\n", d.flops_per_step / 1e9);
  std::printf("memory_mib\t%.0f (weights, gradients, AdamW %.0f; activations %.0f)\n",
              double(d.state_bytes + d.activation_bytes) / (1 << 20), double(d.state_bytes) / (1 << 20),
              double(d.activation_bytes) / (1 << 20));
  if (distill.enabled()) {
    std::printf("teacher\t%.0f MiB; forward %.3f s per step (measured)\n", double(d.teacher_bytes) / (1 << 20),
                d.teacher_seconds);
    std::printf("student_seconds_per_step\t%.3f (measured, without the teacher)\n", d.student_seconds);
  }
  std::printf("seconds_per_step\t%.3f (measured)\n", d.step_seconds);
  if (d.steps) std::printf("estimated_time\t%s for %llu steps\n", human_time(d.step_seconds * double(d.steps)).c_str(),
                           (unsigned long long)d.steps);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  lm::tools::DistRun dist("lm-train", &argc, &argv);  // under mpirun: data-parallel (docs/distributed.md)
  lm::train::ModelShape shape;
  lm::train::TrainOptions o;
  lm::Logger log("lm-train");
  std::string tokenizer, data, valid, output;
  lm::tools::TrainerFlags tf;
  lm::train::DistillOptions distill;
  lm::train::MlmOptions mlm;
  std::string objective;
  bool dry = false, json = false;

  CLI::App app{"Pretrain a language model on CPU (a Llama-style decoder, an LSTM or a bert encoder); writes a GGUF model"};
  lm::tools::init_app(app, "lm-train");
  lm::tools::doc(
      app.add_option("--tokenizer", tokenizer, "Tokenizer: SentencePiece .model or GGUF (default: the --resume file's)")
          ->type_name("FILE"))
      .group("Data and output")
      .man(R"(SentencePiece model, or a GGUF file carrying a tokenizer. Defaults to the tokenizer inside the
.B \-\-resume
checkpoint.)");
  lm::tools::doc(app.add_option("--data", data, "Training data: a token file (lm-tokenize encode --format bin) or text")
      ->type_name("FILE")->required())
      .group("Data and output")
      .man(R"(Training data: a token file of the same tokenizer, or text.)");
  lm::tools::doc(app.add_option("--valid", valid, "Held-out data (token file or text); default: the end of --data")
                     ->type_name("FILE"))
      .group("Data and output")
      .man(R"(Held-out data for validation. Without it, the last
.B \-\-valid\-fraction
of the data is held out.)");
  lm::tools::doc(app.add_option("-o,--output", output, "Model file to write (GGUF)")->type_name("FILE"))
      .group("Data and output")
      .man(R"(The model file to write (GGUF). Its directory is checked before training starts.
Its name without extension becomes the model's
.BR general.name .)");
  lm::tools::doc(app.add_option("--arch", shape.arch, "Architecture: a llama or gpt2 decoder, an LSTM or a bert encoder"))
      .group("Model shape")
      .choices({"llama", "gpt2", "lstm", "bert"})
      .man(R"(The model to train: llama, the transformer decoder (the default); gpt2, GPT\-2's
decoder (pre\-LayerNorm blocks with biases, learned positions, a GELU MLP; written in
llama.cpp's gpt2 layout, so llama.cpp runs it too; lm\-finetune fine\-tunes it, LoRA too); lstm, a
recurrent language model (stacked LSTM layers with a projection, trained by truncated
backpropagation through time; only lm reads its files); or bert, a transformer encoder
(bidirectional attention, post-LayerNorm blocks, learned positions, GELU) trained as a
masked language model, written in llama.cpp's bert layout: its sentence embeddings come from
.B lm\-eval embed
and llama.cpp's llama\-embedding.)");
  lm::tools::doc(app.add_option("--objective", objective, "Training objective: next-token (decoders) or mlm (encoders)"))
      .group("Model shape")
      .choices({"next-token", "mlm"})
      .man(R"(What the model learns: next\-token prediction (llama and lstm) or the masked\-language\-model
objective (mlm, bert's and its default): a share of the tokens of every row
.RB ( \-\-mask\-prob )
is chosen, each replaced by the mask token (80%), a random token (10%) or kept (10%), and the
loss is the cross\-entropy of predicting them. Rows are
.B \-\-context
tokens: the vocabulary's start token (BOS or [CLS]), text from a random offset of the data, and
its end token (SEP or EOS). The vocabulary needs a mask token ([MASK], <mask>, or
tokenizer.ggml.mask_token_id): train one with
.BR "lm\-tokenize train \-\-control\-symbols '<mask>'" .)");
  lm::tools::doc(app.add_option("--mask-prob", mlm.mask_prob, "Share of the tokens predicted by --objective mlm (default 0.15)")
                     ->check(CLI::Range(0.001, 0.999))
                     ->type_name("P"))
      .group("Model shape")
      .man(R"(The share of the (non\-special) tokens of a row that
.B \-\-objective mlm
predicts; 0.15, BERT's, by default.)");
  lm::tools::doc(app.add_flag("--whole-word", mlm.whole_word, "--objective mlm chooses whole words, all their pieces"))
      .group("Model shape")
      .man(R"(Choose whole words instead of pieces: every piece of a chosen word is predicted (whole\-word
masking). A word starts at a piece with a leading space marker (SentencePiece's, byte\-level
BPE's, or a GGUF WordPiece vocabulary's word\-initial pieces).)");
  lm::tools::doc(app.add_option("--preset", shape.preset, "Model shape"))
      .group("Model shape")
      .choices({"tiny", "small", "medium", "lstm-tiny", "lstm-small", "lstm-medium"})
      .man(R"(Starting shape: tiny is T 256, L 4, C 256, H 4, F 768; small is T 512, L 6,
C 384, H 6, F 1024; medium is T 1024, L 12, C 768, H 12, F 2048.
For
.BR "\-\-arch lstm" :
lstm\-tiny is T 64, L 2, E 256, H 768, P 256; lstm\-small (its default) T 128, L 2, E 384,
H 1536, P 384; lstm\-medium T 256, L 4, E 768, H 3072, P 768, near the parameter counts of
tiny, small and medium.
The vocabulary size is the tokenizer's.)");
  lm::tools::doc(app.add_option("--context", shape.context, "Context length T (overrides the preset)")
                     ->check(CLI::Range(2, 1 << 16))
                     ->type_name("T"))
      .group("Model shape")
      .man(R"(Context length; for an LSTM, the window of truncated backpropagation through time.)");
  lm::tools::doc(
      app.add_option("--layers", shape.layers, "Layers (overrides the preset)")->check(CLI::Range(1, 1024))->type_name("L"))
      .group("Model shape")
      .man(R"(Number of layers.)");
  lm::tools::doc(app.add_option("--embd", shape.embd, "Embedding width (overrides the preset)")
                     ->check(CLI::Range(2, 1 << 16))
                     ->type_name("C"))
      .group("Model shape")
      .man(R"(Embedding width; a multiple of the head count.)");
  lm::tools::doc(app.add_option("--heads", shape.heads, "Attention heads (overrides the preset)")
                     ->check(CLI::Range(1, 1024))
                     ->type_name("H"))
      .group("Model shape")
      .man(R"(Attention heads (also sets the key/value heads, unless given).)");
  lm::tools::doc(app.add_option("--kv-heads", shape.kv_heads, "Key/value heads, dividing --heads (grouped-query attention)")
      ->check(CLI::Range(1, 1024)))
      .group("Model shape")
      .man(R"(Key/value heads, dividing
.BR \-\-heads :
fewer than the heads gives grouped-query attention.)");
  lm::tools::doc(app.add_option("--ff", shape.ff, "Feed-forward width (overrides the preset)")
                     ->check(CLI::Range(1, 1 << 20))
                     ->type_name("F"))
      .group("Model shape")
      .man(R"(Feed-forward width.)");
  lm::tools::doc(app.add_option("--hidden", shape.hidden, "LSTM units per layer (overrides the preset)")
                     ->check(CLI::Range(1, 1 << 16))
                     ->type_name("H"))
      .group("Model shape")
      .man(R"(An LSTM's units per layer (its cell and hidden state width).)");
  lm::tools::doc(app.add_option("--proj", shape.proj, "LSTM projection width, 0 for none (overrides the preset)")
                     ->check(CLI::Range(0, 1 << 16))
                     ->type_name("P"))
      .group("Model shape")
      .man(R"(An LSTM's projection of each layer's output to P values (LSTMP); 0 for none.
The output layer is tied to the embeddings when this output width equals the embedding width.)");
  lm::tools::doc(app.add_flag("--untied", shape.untied, "Separate output matrix instead of the tied embedding"))
      .group("Model shape")
      .man(R"(Learn a separate output matrix instead of reusing the token embedding.)");
  lm::tools::add_trainer_flags(app, o, tf);
  lm::tools::add_distill_flags(app, distill);
  lm::tools::doc(app.add_flag("--dry-run", dry, "Print parameters, memory, FLOPs and time per step, then exit"))
      .group("Other")
      .man(R"(Print the model shape, parameter count, tokens and GFLOP per step, memory, the measured time
of one step and the estimated time of the budget, then exit.)");
  lm::tools::doc(app.add_flag("--json", json, "Print the final result as one JSON object"))
      .group("Other")
      .man(R"(Print the final result as one JSON object with the keys steps, train_loss, valid_loss,
valid_perplexity, best_step (with
.BR \-\-patience )
and early_stop.)");
  lm::tools::add_threads(app, o.threads);
  lm::tools::add_verbosity(app, log,
                           R"(Print a line per step, the data sizes and the BLAS library on standard error.)");

  return dist.finish(lm::tools::run_main(app, argc, argv, [&] {
    dist.setup(log, o);
    lm::tools::finish_trainer_flags(o, tf, dry);
    lm::tools::finish_distill_flags(app, distill);
    if (tokenizer.empty() && tf.resume.empty()) throw lm::UsageError("--tokenizer is required (or --resume)");
    if (shape.preset.starts_with("lstm-")) {
      if (app.count("--arch") && shape.arch != "lstm")
        throw lm::UsageError("--preset " + shape.preset + " is an LSTM's, but --arch is " + shape.arch);
      shape.arch = "lstm";  // an LSTM preset implies the architecture
    } else if (!app.count("--arch") && !tf.resume.empty() && ::access(tf.resume.c_str(), R_OK) == 0) {
      // A resumed run is of the checkpoint's architecture unless told otherwise.
      const std::string arch =
          lm::format::GgufFile::open(tf.resume).try_get_string(lm::format::kKeyArchitecture).value_or("");
      if (arch == "lstm" || arch == "bert" || arch == "gpt2") shape.arch = arch;
    }
    const bool encoder = lm::train::is_encoder(shape);
    if (objective.empty()) objective = encoder ? "mlm" : "next-token";
    if (encoder && objective != "mlm")
      throw lm::UsageError("an encoder (--arch bert) trains with --objective mlm; next-token prediction is a decoder's");
    if (!encoder && objective == "mlm")
      throw lm::UsageError("--objective mlm trains an encoder: add --arch bert");
    if (!encoder && (app.count("--mask-prob") || mlm.whole_word))
      throw lm::UsageError("--mask-prob and --whole-word are --objective mlm's (--arch bert)");
    if (!lm::train::is_lstm(shape)) lm::train::refuse_weight_drop(o);
    if (!dry && output.empty()) throw lm::UsageError("-o/--output is required");
    const std::string tok_path = tokenizer.empty() ? tf.resume : tokenizer;
    std::string checkpoint = tf.checkpoint;
    lm::Tokenizer tok = lm::model::load_tokenizer(tok_path);
    if (dry) return dist.root() ? print_dry_run(shape, o, tok, tok_path, distill, mlm) : 0;
    if (checkpoint.empty()) checkpoint = output + ".ckpt";
    // Rank 0 writes every file of the run; the other ranks only read.
    std::optional<lm::OutputFile> out;
    if (dist.root()) {
      out.emplace(output);  // fails now, not after hours, if the directory is not writable
      lm::tools::check_run_files(output, checkpoint, tf.resume, {data, valid, tokenizer, distill.teacher});
    }
    lm::tools::check_side_output(tf.plot, "--plot", {output, checkpoint, tf.resume, tf.metrics, data, valid, tokenizer});
    const double peak = (lm::kernels::set_threads(o.threads), lm::kernels::sgemm_peak_gflops());
    lm::tools::StepReporter report(log, dist.root() ? tf.metrics : "", peak, dist.root() ? tf.plot : "",
                                   "lm-train: " + lm::display_name(output));

    std::vector<int> train = lm::train::load_tokens(data, tok, tok_path, o.threads);
    std::vector<int> held = valid.empty() ? lm::train::split_validation(train, o.valid_fraction)
                                          : lm::train::load_tokens(valid, tok, tok_path, o.threads);
    log.debug("%zu training tokens, %zu held out", train.size(), held.size());
    log.debug("OpenBLAS %s (%s); sgemm peak %.0f GFLOP/s", lm::kernels::blas_info().core.c_str(),
              lm::kernels::blas_info().path.c_str(), peak);
    const std::atomic<int>& stop = lm::tools::install_stop_signals();
    // An LSTM carries whatever it reads in its state: a BOS it (almost) never read in training
    // would disturb every prompt that starts with it, so its file says to add one only when the
    // data is documents that start with BOS (at least one per 10000 tokens; docs/lstm.md).
    if (lm::train::is_lstm(shape) && tok.add_bos() && tok.bos_id()) {
      const size_t n_bos = size_t(std::count(train.begin(), train.end(), *tok.bos_id()));
      if (n_bos * 10000 < train.size()) {
        tok.set_add_bos(false);
        log.debug("the training data has %zu BOS tokens in %zu: the model file says prompts start without one", n_bos,
                  train.size());
      }
    }

    // An encoder's rows are start token, text, end token: its file says so, so that lm-eval embed and
    // llama.cpp's llama-embedding add them around a text (docs/encoder.md).
    if (encoder) {
      tok.set_add_bos(true);
      if (!tok.sep_id()) tok.set_add_eos(true);
    }

    lm::train::RunInputs in;
    in.tokenizer = &tok;
    in.train = &train;
    in.valid = &held;
    in.train_name = data;
    in.valid_name = valid;
    in.tokenizer_name = tok_path;
    in.distill = distill;
    in.checkpoint_path = checkpoint;
    if (!tf.resume.empty()) in.resume_path = tf.resume;
    in.stop = &stop;
    in.on_checkpoint = [&](const std::string& p) {
      log.debug("checkpoint saved to %s", p.c_str());
      report.write_plot();  // an interrupted run has its picture too
    };
    in.on_step = [&](const lm::train::StepInfo& s) { report(s); };
    std::optional<lm::model::Params> params;
    std::optional<lm::model::LstmParams> lstm;
    lm::train::RunResult r = lm::train::is_lstm(shape) ? lm::train::run_lstm_training(shape, o, in, lstm, log)
                             : encoder ? lm::train::run_mlm_training(shape, o, mlm, in, params, log)
                                       : lm::train::run_training(shape, o, in, params, log);
    report.finish();
    if (r.end == lm::train::RunEnd::Interrupted) {
      log.info("interrupted at step %llu; checkpoint saved to %s", (unsigned long long)r.steps, checkpoint.c_str());
      return 128 + r.signal;
    }
    if (!dist.root()) return 0;
    lm::format::GgufWriter w;
    if (lstm)
      lm::model::add_lstm_model(w, *lstm, tok, lm::tools::model_name(output));
    else if (encoder)
      lm::model::add_encoder_model(w, *params, tok, lm::tools::model_name(output));
    else
      lm::model::add_model(w, *params, tok, lm::tools::model_name(output));
    w.write(*out);
    out->commit();
    // valid_loss is the written weights': with --patience, those of the best validation.
    const double vl = lm::tools::written_valid_loss(r, log);
    const bool best = o.patience > 0 && r.best_valid_loss;
    if (json) {
      lm::Json j{{"steps", r.steps},
                 {"train_loss", lm::json_number(r.last_loss)},
                 {"valid_loss", lm::json_number(vl)},
                 {"valid_perplexity", lm::json_number(std::exp(vl))}};
      if (best) j["best_step"] = r.best_step;
      j["early_stop"] = r.end == lm::train::RunEnd::EarlyStop;
      std::printf("%s\n", lm::dump_json(j).c_str());
    } else {
      std::printf("steps\t%llu\ntrain_loss\t%.4f\nvalid_loss\t%.4f\nvalid_perplexity\t%.2f\n%s", (unsigned long long)r.steps,
                  double(r.last_loss), vl, std::exp(vl), best ? ("best_step\t" + std::to_string(r.best_step) + "\n").c_str() : "");
    }
    return 0;
  }));
}
