// Model files: GGUF with architecture "llama", the keys and tensor names llama.cpp reads, and
// the tokenizer inside (docs/formats.md, model files). Checks a file's hyper-parameters and tensors
// against what the architecture needs (docs/reliability.md A27, A28) before any weight is used.
#pragma once

#include <optional>
#include <string>

#include "format/gguf.hpp"
#include "model/lstm.hpp"
#include "model/model.hpp"
#include "model/weights.hpp"
#include "tokenizer/tokenizer.hpp"

namespace lm::model {

inline constexpr const char* kArch = "llama";

// The model configuration a GGUF file describes. Throws FormatError naming the file and the
// missing key, the bad value and its allowed range.
ModelConfig read_config(const format::GgufFile& gguf);

// Weights of a llama-arch GGUF file into Params as F32 (quantized tensors dequantized), checking
// that every tensor the config needs is present with its shape and a type lm reads
// (quant::is_supported), and holds no NaN or Inf (check_finite_weights). Throws FormatError
// naming the tensor. with_grad false leaves the gradient buffer empty.
Params load_params(const format::GgufFile& gguf, bool with_grad = true);
// The same checks, for inference: quantized tensors stay quantized (weights.hpp); f16 / bf16
// matrices and all norms are converted to F32.
Weights load_weights(const format::GgufFile& gguf);
// The checks of load_params and load_weights without loading: what a tool that copies a model
// (lm-quantize) runs so that it never writes a file the loaders refuse. Returns the config.
ModelConfig check_model(const format::GgufFile& gguf);

// Throws FormatError naming the file, the tensor and the element of the first NaN or Inf among
// `tensors` (of file `gguf`): the values of F32, F16 and BF16 tensors, the f16 scales of
// Q8_0, Q4_0, Q4_K (d and dmin) and Q6_K blocks; other types are not scanned. One pass over
// the bytes at memory speed, on the OpenMP threads when they exceed 64 MiB. Measured on the
// 2-core machine (loaded): 3.7 ms for a 14 MB f32 model (load_weights: 13 ms), 1.9 ms for its
// f16 copy, 0.7 ms for its 3.7 MB q8_0 copy; a plain sum over the same bytes ran at 2.7 GB/s.
void check_finite_weights(const format::GgufFile& gguf, const std::vector<const format::GgufTensorInfo*>& tensors);

// A model file opened for inference: its tokenizer, its weights for inference and whether
// prompts start with BOS (Tokenizer::add_bos: tokenizer.ggml.add_bos_token, else the family default).
struct LoadedModel {
  format::GgufFile gguf;
  Tokenizer tok;
  Weights weights;
  bool add_bos;
};
// A LoRA adapter to apply at load time: --lora FILE[:SCALE].
struct AdapterSpec {
  std::string path;
  float scale = 1.0f;
};
// Parses "FILE" or "FILE:SCALE" (SCALE a finite number). Throws UsageError.
AdapterSpec parse_adapter_spec(const std::string& text);

// Throws IoError, FormatError naming the file (also when tokenizer and weights disagree on the
// vocabulary size). Adapters (lora.hpp) are merged into the weights, each matrix then kept in
// the file's type (a quantized matrix is requantized after the merge).
// An encoder (bert) has no next-token logits: refused with a FormatError saying so unless
// `encoder_ok` (the embedding paths).
LoadedModel load_model(const std::string& path, const std::vector<AdapterSpec>& adapters = {},
                       bool encoder_ok = false);

// One line about a model file, for -v output: architecture, layers, width and parameters; file
// type and bits per weight; and, for a file lm-quantize wrote, its source and the --eval results
// (lm.quantize.*). Reads only metadata and tensor infos; never throws but std::bad_alloc.
std::string describe_model(const format::GgufFile& gguf);
// The same for a file, or nullopt if it is not a readable GGUF file (a SentencePiece model, say,
// or stdin). Never throws.
std::optional<std::string> try_describe_model(const std::string& path);

// Writes the hyper-parameter keys, the tokenizer and all weights as F32 into `out`, which the
// caller may extend and then writes. `p` and `tok` must outlive out.write(). A classifier
// (p.cfg.n_cls > 0) also gets its labels (llama.classifier.output_labels) and last-token
// pooling (llama.pooling_type, 1 mean or 3 last); `labels` must then hold n_cls names.
void add_model(format::GgufWriter& out, const Params& p, const Tokenizer& tok, const std::string& name,
               const std::vector<std::string>& labels = {});

// An LSTM (docs/lstm.md): the keys lstm.* and its weights as F32, as lm-train writes it.
// add_lstm_model is add_model's twin; load_lstm_params load_params' (FormatError naming the file
// when it is not an LSTM, or a tensor is missing, misshapen or not finite).
void add_lstm_model(format::GgufWriter& out, const LstmParams& p, const Tokenizer& tok, const std::string& name);
LstmParams load_lstm_params(const format::GgufFile& gguf, bool with_grad = true);

// An encoder (docs/encoder.md): llama.cpp's bert keys (mean pooling, two token types) and its
// weights as F32, as lm-train writes it; load_encoder_params reads such a file back for
// training (FormatError naming the file when it is not a bert model of the layout lm trains).
// A classifier (p.cfg.n_cls > 0) also gets its labels (bert.classifier.output_labels) and its
// pooling (bert.pooling_type 4, rank, or 1, mean); `labels` must then hold n_cls names.
void add_encoder_model(format::GgufWriter& out, const Params& p, const Tokenizer& tok, const std::string& name,
                       const std::vector<std::string>& labels = {});
Params load_encoder_params(const format::GgufFile& gguf, bool with_grad = true);

// The label names of a classifier file (cfg.n_cls of them), or "0", "1", ... when the file
// names none. Throws FormatError if their count differs from the head's rows.
std::vector<std::string> read_labels(const format::GgufFile& gguf, const ModelConfig& cfg);

}  // namespace lm::model
