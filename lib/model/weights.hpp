// Weights for inference: every tensor of param_layout() in the form the kernels compute with
// (qmatmul.hpp). f32 models are used in place; files with quantized weights keep them
// quantized (q8_0 / q4_0 repacked, K-quants as in the file), so memory and decoding speed follow
// the file's size rather than its F32 size.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "base/memory.hpp"
#include "kernels/qmatmul.hpp"
#include "model/model.hpp"

namespace lm::model {

struct Weights {
  ModelConfig cfg;
  std::vector<kernels::QWeight> w;  // indexed like param_layout(cfg); norms are F32 1 x C
  LargeVector<uint8_t> blob;        // the tensors, when they are not a view of Params

  const kernels::QWeight& operator[](size_t i) const { return w[i]; }
  // A norm's gains (always F32).
  const float* f32(size_t i) const { return static_cast<const float*>(w[i].data); }
  const kernels::QWeight& head() const { return w[head_param(cfg)]; }
  // Bytes of weights held.
  size_t bytes() const;
};

// Weights for cfg with tensor i of param_layout(cfg) in types[i], in one blob of 64-byte aligned
// tensors: fill(i, dst) writes tensor i's kernels::packed_size() bytes at dst.
Weights build_weights(const ModelConfig& cfg, const std::vector<format::GgmlType>& types,
                      const std::function<void(size_t i, uint8_t* dst)>& fill);
// F32 views of p's weights (p must outlive the result); nothing is copied.
Weights view_weights(const Params& p);
// p's matrices quantized to `type` (quant::is_supported; cols a multiple of its block), the lm
// head to `head_type`, norms F32: an in-memory quantized model for tests and benchmarks.
Weights quantize_weights(const Params& p, format::GgmlType type, format::GgmlType head_type);
// p's tensors, tensor i in types[i] (F32 or quant::is_supported with cols fitting its block).
Weights quantize_weights(const Params& p, const std::vector<format::GgmlType>& types);

}  // namespace lm::model
