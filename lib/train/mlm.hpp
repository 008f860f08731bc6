// Masked-language-model pretraining of an encoder (docs/encoder.md): BERT's objective on
// windows of the token stream, run by run_loop like every other job.
#pragma once

#include <optional>
#include <string>

#include "dataset/mlm_mask.hpp"
#include "train/run.hpp"

namespace lm::train {

using dataset::MlmMasker;
using dataset::MlmOptions;

// run_training for an encoder (arch "bert"): rows of --context tokens drawn at random offsets of
// the training stream (a hash of the seed and the row's number chooses its offset and masks, so
// a resumed run draws the same), the loss on the chosen positions only; validation over the
// first held-out windows with fixed masks (the same in every run). Params are the bert layout.
RunResult run_mlm_training(const ModelShape& shape, const TrainOptions& o, const MlmOptions& mlm, const RunInputs& in,
                           std::optional<model::Params>& params, const Logger& log);
// dry_run of an encoder shape.
DryRun dry_run_mlm(const ModelShape& shape, const TrainOptions& o, const MlmOptions& mlm, const Tokenizer& tok,
                   const std::string& tok_name);

}  // namespace lm::train
