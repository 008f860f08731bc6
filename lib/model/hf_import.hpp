// Hugging Face model directories as GGUF: config.json, the safetensors weights (one file or
// shards listed in model.safetensors.index.json) and the tokenizer files become the keys, tensor
// names and tokenizer metadata llama.cpp's converter (convert_hf_to_gguf.py) writes, for the
// architectures lm runs (docs/hf_import.md). lm-quantize -m DIR writes them in any type.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "format/gguf.hpp"
#include "format/safetensors.hpp"

namespace lm::model {

// The Hugging Face class names (config.json "architectures") that import, in messages.
std::string hf_arch_names();

class HfModel {
 public:
  // Reads DIR/config.json and the weights' headers and checks them: a supported architecture
  // and configuration, every tensor the converter maps present with the shape the config gives,
  // in a float dtype, and no tensor it would not map. Throws IoError, FormatError naming the
  // file and the key or tensor.
  static HfModel open(const std::string& dir);

  // general.architecture: llama, qwen2, phi3, gpt2 or gemma2.
  const std::string& arch() const { return arch_; }
  // Adds the keys (general.*, ARCH.*, general.file_type 0 = all F32) and then the tensors, all
  // F32 and deferred: write() makes their bytes with write_tensor. Not the tokenizer.
  void add_to(format::GgufWriter& w) const;
  // Writes tensor i of add_to's list (its F32 values in GGUF order) to dst. Throws FormatError
  // naming the safetensors file and tensor if it cannot be converted.
  void write_tensor(size_t i, float* dst) const;
  size_t n_tensors() const { return out_.size(); }
  // config.json's vocab_size: the rows of the embeddings.
  int n_vocab() const { return n_vocab_; }

 private:
  enum class Op { Copy, Permute, Transpose, PlusOne, Values };
  struct Out {
    std::string name;
    std::vector<int64_t> ne;  // GGUF order
    Op op = Op::Copy;
    const format::SafetensorsTensor* src = nullptr;
    int heads = 0;              // Permute: heads of the rows
    std::vector<float> values;  // Values
  };
  HfModel() = default;

  std::string dir_, arch_;
  int n_vocab_ = 0;
  std::unique_ptr<format::SafetensorsModel> st_;
  std::vector<std::function<void(format::GgufWriter&)>> keys_;
  std::vector<Out> out_;
  friend struct HfBuilder;
};

// Adds the tokenizer of DIR (tok::load_hf_tokenizer) as tokenizer.ggml.* keys. Throws IoError,
// FormatError naming the file, also when it has more tokens than the model's embeddings rows
// `n_vocab`.
void add_hf_tokenizer(const std::string& dir, int n_vocab, format::GgufWriter& w);

}  // namespace lm::model
