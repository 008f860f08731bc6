// lm-finetune: continue training a llama-arch GGUF model on text, on prompt/completion pairs,
// or as a sequence classifier, all weights or LoRA adapters; or an LSTM (docs/lstm.md) on text
// or prompt/completion pairs, all weights. The loop is lib/train/run, the jobs
// lib/train/finetune (the LSTM's lib/train/lstm_run); this file parses, loads, reports and saves.
#include <cmath>
#include <cstdio>
#include <optional>
#include <string>

#include "base/error.hpp"
#include "base/file.hpp"
#include "base/json.hpp"
#include "common/cli.hpp"
#include "common/train_cli.hpp"
#include "dataset/labeled.hpp"
#include "format/gguf.hpp"
#include "kernels/blas.hpp"
#include "model/lora.hpp"
#include "model/model_io.hpp"
#include "model/tokenizer_loader.hpp"
#include "train/data.hpp"
#include "train/finetune.hpp"

int main(int argc, char** argv) {
  lm::tools::DistRun dist("lm-finetune", &argc, &argv);  // under mpirun: data-parallel (docs/distributed.md)
  lm::train::TrainOptions o;
  o.opt.lr = 1e-4f;
  o.opt.lr_min = 1e-5f;
  o.opt.warmup_steps = 10;
  o.batch = 8;
  o.eval_every = 50;
  lm::train::FinetuneOptions f;
  lm::Logger log("lm-finetune");
  std::string model, data, valid, output, task = "text", targets = "attn", pooling;
  lm::tools::TrainerFlags tf;
  bool dry = false, json = false, merge = false;

  CLI::App app{"Fine-tune a llama, qwen2, phi3, gemma2 or gpt2 GGUF model on CPU: continued training, prompt/completion pairs, LoRA "
               "adapters, sequence classification; or an LSTM on text or prompt/completion pairs"};
  lm::tools::init_app(app, "lm-finetune");
  lm::tools::doc(app.add_option("-m,--model", model,
                                "Model to start from (GGUF: llama, qwen2, phi3, gemma2, gpt2, bert or an LSTM; the tokenizer inside "
                                "is used)")
                     ->type_name("FILE")
                     ->required())
      .group("Model, data and output")
      .man(R"(The model to start from (GGUF, F32/F16/BF16 or any block type lm reads: Q8_0, Q4_0,
Q4_1, Q5_0, Q5_1, IQ4_NL, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_XS). A llama file (Llama 2/3,
Mistral, TinyLlama, SmolLM without RoPE scaling) fine-tunes in every task. A qwen2 file (Qwen
2 / 2.5; its q, k and v biases train in a full fine-tune and stay frozen under LoRA) and a phi3
file (Phi-3 without LongRoPE; written back with its fused tensors) fine-tune on text and
prompt/completion pairs, not as classifiers. A bert file fine-tunes as a classifier. A classifier made earlier can be trained further on data with its labels. An LSTM file
(lm-train \-\-arch lstm) is fine-tuned in full on text or prompt/completion pairs: LoRA,
classification and a teacher are a transformer's, and usage errors for an LSTM.)");
  lm::tools::doc(app.add_option("--data", data,
                                "Training data: text or a token file (--task text), JSON Lines with prompt and "
                                "completion, or label<TAB>text / __label__ lines (--task classify)")
                     ->type_name("FILE")
                     ->required())
      .group("Model, data and output")
      .man(R"(Training data for the task.)");
  lm::tools::doc(
      app.add_option("--valid", valid, "Held-out data in the same form; default: a share of --data (--valid-fraction)")
          ->type_name("FILE"))
      .group("Model, data and output")
      .man(R"(Held-out data in the same form. Without it,
.B \-\-valid\-fraction
of the data is held out: the last tokens of a text, or examples spread evenly over the file
(every twentieth at 0.05), so that a file sorted by label holds out every label.)");
  lm::tools::doc(
      app.add_option("-o,--output", output, "File to write: the model, or the LoRA adapter (GGUF)")->type_name("FILE"))
      .group("Model, data and output")
      .man(R"(The file to write: a model, a classifier or an adapter (GGUF), written to a temporary file and
renamed. Its name without extension becomes
.BR general.name .)");
  lm::tools::doc(app.add_option("--task", task, "What to train: text, prompt-completion or classify")
      )
      .group("Model, data and output")
      .choices({"text", "prompt-completion", "classify"})
      .man(R"(What to train.)");
  lm::tools::doc(app.add_option("--pooling", pooling,
                                "What a new classifier reads: the last (decoder) or first (cls, encoder) token's final hidden state, or the mean"))
      .group("Model, data and output")
      .choices({"last", "cls", "mean"})
      .man(R"(What a new classifier's head reads: for a decoder, the final hidden state of the text's last
token (its default) or the mean of the final hidden states over the text's tokens, stored as
.B ARCH.pooling_type
(3 or 1; ARCH is llama, qwen2, phi3, gemma2 or gpt2); for an encoder (bert), the first token's (cls, the start token, its default), stored as
.B bert.pooling_type
4 (rank, which llama.cpp applies the head with), or the mean (1). A classifier trained further
keeps its own.)");
  lm::tools::doc(app.add_option("--context", f.context, "Sequence length (default: the model's context)")
                     ->check(CLI::Range(2, 1 << 20))
                     ->type_name("T"))
      .group("Model, data and output")
      .man(R"(Sequence length, at most the model's context (default: the model's). For an LSTM, the
window of truncated backpropagation through time on text (any length; the file written keeps
it as its window), and the length prompt/completion examples are cut to.)");
  lm::tools::doc(app.add_flag("--lora", f.lora, "Train LoRA adapters instead of every weight"))
      .group("LoRA")
      .man(R"(Train LoRA adapters instead of every weight. The options below,
.BR \-\-lora\-rank ,
.BR \-\-lora\-alpha ,
.BR \-\-lora\-dropout ,
.BR \-\-lora\-targets ,
.BR \-\-train\-norms ,
.BR \-\-train\-embeddings ,
.B \-\-train\-head
and
.B \-\-merge
need it: given without
.BR \-\-lora ,
they are a usage error (exit 2), not a full fine-tune.)");
  lm::tools::doc(
      app.add_option("--lora-rank", f.lora_opt.rank, "LoRA rank r")->check(CLI::Range(1, 1 << 16))->type_name("R"))
      .group("LoRA")
      .man(R"(Rank r of the pairs.)");
  lm::tools::doc(app.add_option("--lora-alpha", f.lora_opt.alpha, "LoRA alpha (the update is scaled by alpha / r)")
      ->check(CLI::Range(1e-6, 1e6))->type_name("A"))
      .group("LoRA")
      .man(R"(Alpha; the update is scaled by alpha / r.)");
  lm::tools::doc(app.add_option("--lora-dropout", f.lora_opt.dropout, "Dropout on the adapters' inputs while training")
      ->check(CLI::Range(0.0, 0.95))->type_name("P"))
      .group("LoRA")
      .man(R"(Dropout on the adapters' inputs while training.)");
  lm::tools::doc(
      app.add_option("--lora-targets", targets, "Adapted projections: q,k,v,o,gate,up,down, attn, mlp or all")
          ->type_name("LIST"))
      .group("LoRA")
      .man(R"(Adapted projections, comma-separated: q, k, v, o, gate, up, down, or attn (q,k,v,o), mlp
(gate,up,down), all. A phi3 model fuses q, k, v (attn_qkv) and gate, up (ffn_up): naming one
of a fused group adapts the whole tensor with one pair, as its file and llama.cpp have it.)");
  lm::tools::doc(app.add_flag("--train-norms", f.train_norms, "With --lora, also train the norms (gains; a LayerNorm's biases too)"))
      .group("LoRA")
      .man(R"(Also train the norms: RMSNorm gains, or an encoder's LayerNorm gains and biases.)");
  lm::tools::doc(app.add_flag("--train-embeddings", f.train_embeddings, "With --lora, also train the token embeddings"))
      .group("LoRA")
      .man(R"(Also train the token embeddings.)");
  lm::tools::doc(app.add_flag("--train-head", f.train_head, "With --lora, also train the output matrix"))
      .group("LoRA")
      .man(R"(Also train the output matrix (the token embeddings when they are tied).
These three change base tensors, which an adapter file cannot hold: they need
.B \-\-merge
(or
.BR "\-\-task classify" ).)");
  lm::tools::doc(app.add_flag("--head-only", f.head_only,
               "With --task classify, train only the classifier head over the fixed base model (a linear probe)"))
      .group("Model, data and output")
      .man(R"(With
.BR "\-\-task classify" ,
train only the classifier head and leave the whole base model fixed (a linear probe). The
backward pass stops at the head, so a step costs about one forward pass, and the layers keep
no activations for it: memory is about that of inference. A probe's output,
fine-tuned further without this option, starts from the trained head (linear probing, then
fine-tuning). Not with
.BR \-\-lora .)");
  lm::tools::doc(app.add_flag("--merge", merge, "With --lora, write the base model with the adapters merged in"))
      .group("LoRA")
      .man(R"(Write the base model with the adapters merged in (F32) instead of the adapter.)");
  lm::tools::add_trainer_flags(app, o, tf);
  lm::tools::add_distill_flags(app, f.distill);
  // lm-train's trainer flags, documented for fine-tuning.
  lm::tools::doc(app.get_option("--valid-fraction"))
      .group("Model, data and output")
      .man(R"(Share of the data held out, 0 to 0.5.)");
  lm::tools::doc(app.get_option("--metrics"))
      .group("Model, data and output")
      .man(R"(Write one JSON object per step (JSON Lines), as
.BR lm-train (1)
does.)");
  lm::tools::doc(app.get_option("--tokens"))
      .man(R"(Stop after N training tokens, padding left out (rounded up to whole steps). For text each
micro-batch is batch times context tokens; for prompt/completion and classification data the
steps are N over batch times the mean tokens per training example (truncated to the context),
so the tokens seen come out at about N.)");
  lm::tools::doc(app.get_option("--time"))
      .man(R"(Stop after this wall time (90s, 10m, 1.5h).)");
  lm::tools::doc(app.get_option("--lr"))
      .man(R"(Peak learning rate (LoRA usually wants about 1e-3).)");
  lm::tools::doc(app.get_option("--weight-decay"))
      .man(R"(AdamW weight decay on matrices.)");
  lm::tools::doc(app.get_option("--dropout"))
      .man(R"(Dropout rate while training: on the token embeddings, on the output of every
attention and MLP block before it joins the residual stream, and on the pooled input of a
classifier's head. Kept values are scaled by 1/(1\-P). Independent of
.BR \-\-lora\-dropout .)");
  lm::tools::doc(app.get_option("--eval-every"))
      .man(R"(Steps between validations (0 validates only at the end).)");
  lm::tools::doc(app.get_option("--eval-batches"))
      .man(R"(Micro-batches of held-out data per validation.)");
  lm::tools::doc(app.get_option("--checkpoint"))
      .man(R"(Checkpoint file (default: the output file with
.B .ckpt
appended): the model (full fine-tuning) or the adapter and the other trained tensors (LoRA),
the AdamW moments and the run's state, replaced atomically.)");
  lm::tools::doc(app.get_option("--resume"))
      .man(R"(Continue the run saved in a checkpoint, with the same
.BR \-m ,
data and options. The resumed steps are those of an uninterrupted run, at any thread count.
A checkpoint whose tensors fail their checksums or hold a NaN or infinity is refused, and a run
never saves non-finite weights. A checkpoint written with other options (batch, seed, the
learning rate schedule, weight decay, clipping, dropout,
.BR \-\-context ,
.BR \-\-lora\-alpha ,
.BR \-\-lora\-dropout ,
the budget:
.B \-\-steps
or
.B \-\-tokens
as the length of the cosine schedule, which another budget would stretch; a
.B \-\-time
budget keeps the checkpoint's schedule)
or from another
.B \-m
model is refused with the differences listed, unless
.BR \-\-force\-resume ;
one that trained other tensors (LoRA or not, the head only,
.BR \-\-train\-norms ,
.BR \-\-train\-embeddings ,
.BR \-\-train\-head ),
another task or other labels always is.)");
  lm::tools::doc(app.get_option("--force-resume"))
      .man(R"(With
.BR \-\-resume ,
continue even where those options differ (the run is then not an exact continuation; the
differences are printed as a warning).)");
  lm::tools::doc(app.get_option("--seed"))
      .man(R"(Seed for the adapters' and the head's initial weights, the data order and dropout.)");
  lm::tools::doc(app.add_flag("--dry-run", dry, "Print trainable parameters and memory, then exit"))
      .group("Other")
      .man(R"(Load the model and data, print the parameter count, the trained parameters, tokens per step and
the memory of weights, gradients, optimizer state and activations, then exit.)");
  lm::tools::doc(app.add_flag("--json", json, "Print the final result as one JSON object"))
      .group("Other")
      .man(R"(Print the final result as one JSON object with the keys steps, train_loss, valid_loss,
valid_perplexity (or valid_accuracy for classify), trainable_parameters, memory_mib,
best_step (with
.BR \-\-patience ),
early_stop and output (model, adapter or classifier).)");
  lm::tools::add_threads(app, o.threads);
  lm::tools::add_verbosity(app, log,
                           R"(Print a line per step, the data sizes and the trained share on standard error.)");

  return dist.finish(lm::tools::run_main(app, argc, argv, [&] {
    dist.setup(log, o);
    lm::tools::finish_trainer_flags(o, tf, dry);
    lm::tools::finish_distill_flags(app, f.distill);
    if (!dry && output.empty()) throw lm::UsageError("-o/--output is required");
    if (!f.lora && (merge || f.train_norms || f.train_embeddings || f.train_head))
      throw lm::UsageError("--merge, --train-norms, --train-embeddings and --train-head go with --lora");
    // Without --lora every weight is trained: an adapter's shape given alone is a mistake, not a
    // request for a full fine-tune.
    if (!f.lora)
      for (const char* name : {"--lora-rank", "--lora-alpha", "--lora-targets", "--lora-dropout"})
        if (app.count(name))
          throw lm::UsageError(std::string(name) + " sets up LoRA adapters and goes with --lora (without it every "
                               "weight is trained)");
    f.task = task == "text" ? lm::train::Task::Text
             : task == "prompt-completion" ? lm::train::Task::PromptCompletion
                                           : lm::train::Task::Classify;
    const bool classify = f.task == lm::train::Task::Classify;
    const bool writes_adapter = f.lora && !merge && !classify;
    if (writes_adapter && (f.train_norms || f.train_embeddings || f.train_head))
      throw lm::UsageError("a LoRA adapter file holds only .lora_a/.lora_b pairs; --train-norms, --train-embeddings "
                           "and --train-head need --merge");
    f.lora_opt.targets = lm::model::parse_lora_targets(targets);
    f.pooling = pooling == "mean" ? lm::model::kPoolMean : pooling == "cls" ? lm::model::kPoolRank : lm::model::kPoolLast;
    std::string checkpoint = tf.checkpoint.empty() && !output.empty() ? output + ".ckpt" : tf.checkpoint;
    // Rank 0 writes every file of the run; the other ranks only read.
    std::optional<lm::OutputFile> out;
    if (!dry && dist.root()) out.emplace(output);  // fails now, not after the run, if the directory is not writable
    if (dist.root()) lm::tools::check_run_files(output, checkpoint, tf.resume, {data, valid, model, f.distill.teacher});
    lm::tools::check_side_output(tf.plot, "--plot", {output, checkpoint, tf.resume, tf.metrics, data, valid, model});
    lm::kernels::set_threads(o.threads);

    lm::format::GgufFile g = lm::format::GgufFile::open(model);
    if (lm::model::is_adapter(g)) throw lm::FormatError(model, "is a LoRA adapter; -m needs a model");
    const lm::model::ModelConfig file_cfg = lm::model::read_config(g);
    const bool lstm = file_cfg.is_lstm(), encoder = file_cfg.is_encoder();
    if (lstm) lm::train::check_lstm_finetune(f);  // before the data is read
    else lm::train::refuse_weight_drop(o);
    lm::Tokenizer tok = lm::model::load_tokenizer(g);
    // An encoder's rows always start with its start token (BOS, [CLS]), as in its training.
    const bool add_bos = (g.try_get_bool("tokenizer.ggml.add_bos_token").value_or(true) ||
                          encoder) &&
                         tok.bos_id().has_value();
    std::optional<lm::model::Params> base;
    std::optional<lm::model::LstmParams> lstm_p;
    std::vector<std::string> model_labels;
    int T = 0;
    if (lstm) {
      lstm_p.emplace(lm::model::load_lstm_params(g));
      if (f.context > 0) lstm_p->cfg.n_ctx = f.context;  // the window; an LSTM reads any length
      T = lstm_p->cfg.n_ctx;
    } else {
      if (encoder && pooling == "last")
        throw lm::UsageError("an encoder's classifier reads the first token (--pooling cls) or the mean (--pooling mean)");
      if (!encoder && pooling == "cls")
        throw lm::UsageError("--pooling cls reads an encoder's start token; a decoder's classifier reads the last token "
                             "(--pooling last) or the mean");
      if (encoder && pooling.empty()) f.pooling = lm::model::kPoolRank;
      base.emplace(encoder ? lm::model::load_encoder_params(g, false) : lm::model::load_params(g, false));
      if (base->cfg.n_cls > 0) model_labels = lm::model::read_labels(g, base->cfg);
      T = f.context > 0 ? f.context : base->cfg.n_ctx;
      if (classify && base->cfg.n_cls > 0 && app.count("--pooling") && base->cfg.cls_pooling != f.pooling)
        log.warn("%s: its classifier has %s pooling, which it keeps; --pooling applies to a new classifier",
                 model.c_str(), base->cfg.cls_pooling == lm::model::kPoolMean   ? "mean"
                                : base->cfg.cls_pooling == lm::model::kPoolRank ? "first-token"
                                                                                : "last-token");
    }
    f.model_labels = model_labels;
    f.model_name = model;

    // Data for the task.
    std::vector<int> text, text_valid;
    std::vector<lm::train::Sequence> seqs, seqs_valid;
    lm::train::LabeledData labeled, labeled_valid;
    lm::train::FinetuneData d;
    d.train_name = data;
    d.valid_name = valid;
    switch (f.task) {
      case lm::train::Task::Text:
        text = lm::train::load_tokens(data, tok, model, o.threads);
        text_valid = valid.empty() ? lm::train::split_validation(text, o.valid_fraction)
                                   : lm::train::load_tokens(valid, tok, model, o.threads);
        d.text = &text, d.text_valid = &text_valid;
        break;
      case lm::train::Task::PromptCompletion:
        seqs = lm::train::load_prompt_completion(data, tok, add_bos, o.threads);
        seqs_valid = valid.empty() ? lm::train::split_examples(seqs, o.valid_fraction)
                                   : lm::train::load_prompt_completion(valid, tok, add_bos, o.threads);
        d.seqs = &seqs, d.seqs_valid = &seqs_valid;
        break;
      case lm::train::Task::Classify:
        labeled = lm::train::load_labeled(data, tok, add_bos, T, model_labels.empty() ? nullptr : &model_labels,
                                          o.threads);
        if (valid.empty()) {
          labeled_valid.labels = labeled.labels;
          labeled_valid.examples = lm::train::split_examples(labeled.examples, o.valid_fraction);
        } else {
          labeled_valid = lm::train::load_labeled(valid, tok, add_bos, T, &labeled.labels, o.threads);
        }
        if (base && base->cfg.is_encoder())  // an encoder's rows end with SEP or EOS, as in its training
          for (auto* set : {&labeled, &labeled_valid})
            for (auto& e : set->examples) lm::dataset::finish_encoder_row(tok, e.tokens, T);
        d.labeled = &labeled, d.labeled_valid = &labeled_valid;
        log.debug("%zu labels, %zu training and %zu held-out examples", labeled.labels.size(), labeled.examples.size(),
                  labeled_valid.examples.size());
        break;
    }

    // The job: a transformer's FinetuneJob, or an LSTM's.
    std::unique_ptr<lm::train::FinetuneJob> ft;
    lm::train::LstmFinetune lf;
    size_t unscored = 0, n_params = 0, memory = 0;
    if (lstm) {
      lf = lm::train::make_lstm_finetune(o, f, *lstm_p, tok, d);
      unscored = lf.unscored, n_params = lstm_p->cfg.n_params(), memory = lf.memory_bytes;
    } else {
      ft = std::make_unique<lm::train::FinetuneJob>(o, f, std::move(*base), tok, d);
      unscored = ft->unscored_examples(), n_params = ft->params().cfg.n_params(), memory = ft->memory_bytes();
    }
    lm::train::Job& job = lstm ? *lf.job : static_cast<lm::train::Job&>(*ft);
    if (unscored > 0)
      log.warn("%s: %zu of %zu examples have prompts of %d tokens or more, the whole context: their completions "
               "are not trained (raise --context)", data.c_str(), unscored, seqs.size(), T);
    size_t trainable = 0;
    for (const auto& t : job.trainables()) trainable += t.size();
    const double mib = double(memory) / (1 << 20);
    if (dry && !dist.root()) return 0;
    if (dry) {
      std::printf("parameters\t%zu\ntrainable\t%zu\ntokens_per_step\t%llu\nmemory_mib\t%.0f\n", n_params, trainable,
                  (unsigned long long)(job.tokens_per_micro_step() * uint64_t(o.grad_accum)), mib);
      if (lm::train::Teacher* t = ft ? ft->teacher() : nullptr)
        std::printf("teacher\t%.0f MiB (in memory_mib); forward %.3f s per step (measured)\n",
                    double(t->bytes()) / (1 << 20), t->measure() * o.grad_accum);
      return 0;
    }
    if (f.distill.enabled() && f.distill.alpha == 0)
      log.warn("--distill-alpha 0 trains on the labels alone: the teacher is not run");
    log.debug("%zu of %zu parameters trained; about %.0f MiB for weights, gradients, AdamW and activations",
              trainable, n_params, mib);
    const double peak = lm::kernels::sgemm_peak_gflops();
    lm::tools::StepReporter report(log, dist.root() ? tf.metrics : "", peak, dist.root() ? tf.plot : "",
                                   "lm-finetune: " + lm::display_name(output));
    const std::atomic<int>& stop = lm::tools::install_stop_signals();
    lm::train::RunHooks hooks;
    hooks.checkpoint_path = checkpoint;
    if (!tf.resume.empty()) hooks.resume_path = tf.resume;
    hooks.stop = &stop;
    hooks.on_checkpoint = [&](const std::string& p) {
      log.debug("checkpoint saved to %s", p.c_str());
      report.write_plot();  // an interrupted run has its picture too
    };
    hooks.on_step = [&](const lm::train::StepInfo& s) { report(s); };
    lm::train::RunResult r = lm::train::run_loop(o, job, hooks, log);
    report.finish();
    if (r.end == lm::train::RunEnd::Interrupted) {
      log.info("interrupted at step %llu; checkpoint saved to %s", (unsigned long long)r.steps, checkpoint.c_str());
      return 128 + r.signal;
    }
    // Every rank computes its share. A plain double (NaN when absent): gcc 12 warned that
    // std::optional<double>::value_or below read an uninitialized value (a false report).
    double accuracy = NAN;
    if (ft)
      if (const std::optional<double> a = ft->valid_accuracy()) accuracy = *a;
    if (!dist.root()) return 0;

    lm::format::GgufWriter w;
    const std::string name = lm::tools::model_name(output);
    if (lstm) {
      lm::model::add_lstm_model(w, *lstm_p, tok, name);
    } else if (writes_adapter) {
      lm::model::add_adapter(w, *ft->lora(), name);
    } else {
      if (ft->lora()) lm::model::merge_lora(ft->params(), *ft->lora());
      if (ft->params().cfg.is_encoder())
        lm::model::add_encoder_model(w, ft->params(), tok, name, ft->labels());
      else
        lm::model::add_model(w, ft->params(), tok, name, ft->labels());
    }
    w.write(*out);
    out->commit();

    // valid_loss is the written weights': with --patience, those of the best validation.
    const double vl = lm::tools::written_valid_loss(r, log);
    const bool best = o.patience > 0 && r.best_valid_loss;
    const char* written = writes_adapter ? "adapter" : classify ? "classifier" : "model";
    if (json) {
      lm::Json j{{"steps", r.steps}, {"train_loss", lm::json_number(r.last_loss)}, {"valid_loss", lm::json_number(vl)}};
      if (classify) j["valid_accuracy"] = lm::json_number(accuracy);
      else j["valid_perplexity"] = lm::json_number(std::exp(vl));
      j["trainable_parameters"] = trainable;
      j["memory_mib"] = lm::json_number(std::round(mib));
      if (best) j["best_step"] = r.best_step;
      j["early_stop"] = r.end == lm::train::RunEnd::EarlyStop;
      j["output"] = written;
      std::printf("%s\n", lm::dump_json(j).c_str());
    } else {
      std::printf("steps\t%llu\ntrain_loss\t%.4f\nvalid_loss\t%.4f\n", (unsigned long long)r.steps, double(r.last_loss),
                  vl);
      if (classify) std::printf("valid_accuracy\t%.4f\n", accuracy);
      else std::printf("valid_perplexity\t%.2f\n", std::exp(vl));
      if (best) std::printf("best_step\t%llu\n", (unsigned long long)r.best_step);
      std::printf("trainable_parameters\t%zu\nmemory_mib\t%.0f\noutput\t%s\n", trainable, mib, written);
    }
    return 0;
  }));
}
