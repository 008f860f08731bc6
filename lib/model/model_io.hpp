// Model files: GGUF with architecture "llama", the keys and tensor names llama.cpp reads, and
// the tokenizer inside (docs/formats.md, model files). Checks a file's hyper-parameters and tensors
// against what the architecture needs (docs/reliability.md A27, A28) before any weight is used.
#pragma once

#include <optional>
#include <string>

#include "format/gguf.hpp"
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
// (quant::is_supported). Throws FormatError naming the tensor. with_grad false leaves the
// gradient buffer empty.
Params load_params(const format::GgufFile& gguf, bool with_grad = true);
// The same checks, for inference: quantized tensors stay quantized (weights.hpp); f16 / bf16
// matrices and all norms are converted to F32.
Weights load_weights(const format::GgufFile& gguf);

// A model file opened for inference: its tokenizer, its weights for inference and whether
// prompts start with BOS (tokenizer.ggml.add_bos_token, true when absent, as in llama.cpp).
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
LoadedModel load_model(const std::string& path, const std::vector<AdapterSpec>& adapters = {});

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

// The label names of a classifier file (cfg.n_cls of them), or "0", "1", ... when the file
// names none. Throws FormatError if their count differs from the head's rows.
std::vector<std::string> read_labels(const format::GgufFile& gguf, const ModelConfig& cfg);

}  // namespace lm::model
