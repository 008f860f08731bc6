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
#include "model/arch.hpp"
#include "model/model.hpp"

namespace lm::model {

struct Weights {
  ModelConfig cfg;
  // For llama indexed like param_layout(cfg); for every architecture in the order of its
  // tensor specs, with `map` telling where each role is. Norms and biases are F32 1 x n.
  std::vector<kernels::QWeight> w;
  TensorMap map;
  LargeVector<uint8_t> blob;        // the tensors, when they are not a view of Params

  const kernels::QWeight& operator[](size_t i) const { return w[i]; }
  // A norm's gains (always F32).
  const float* f32(size_t i) const { return static_cast<const float*>(w[i].data); }
  const kernels::QWeight& head() const {
    const int h = map.top[size_t(Role::Head)];
    return w[size_t(h >= 0 ? h : map.top[size_t(Role::TokEmbd)])];
  }
  // The tensor of role r in layer l (or of a role that appears once, l = -1); nullptr if the
  // architecture or the file has none.
  const kernels::QWeight* get(int l, Role r) const {
    if (r == Role::Count) return nullptr;
    const int i = l < 0 ? map.top[size_t(r)] : map.at(l, r);
    return i < 0 ? nullptr : &w[size_t(i)];
  }
  const float* vec(int l, Role r) const {
    const kernels::QWeight* q = get(l, r);
    return q ? static_cast<const float*>(q->data) : nullptr;
  }
  // Bytes of weights held.
  size_t bytes() const;
};

// Weights for cfg with tensor i of param_layout(cfg) in types[i], in one blob of 64-byte aligned
// tensors: fill(i, dst) writes tensor i's kernels::packed_size() bytes at dst.
Weights build_weights(const ModelConfig& cfg, const std::vector<format::GgmlType>& types,
                      const std::function<void(size_t i, uint8_t* dst)>& fill);
// The same for any architecture: tensor i is specs[i] (shape and role) in types[i].
Weights build_weights(const ModelConfig& cfg, const std::vector<TensorSpec>& specs,
                      const std::vector<format::GgmlType>& types,
                      const std::function<void(size_t i, uint8_t* dst)>& fill);
// The tensor specs of param_layout(cfg), in its order (roles for the tensor map): llama's,
// qwen2's, or bert's for an encoder.
std::vector<TensorSpec> layout_specs(const ModelConfig& cfg);
// F32 views of p's weights (p must outlive the result); nothing is copied.
Weights view_weights(const Params& p);
// p's matrices quantized to `type` (quant::is_supported; cols a multiple of its block), the lm
// head to `head_type`, norms F32: an in-memory quantized model for tests and benchmarks.
Weights quantize_weights(const Params& p, format::GgmlType type, format::GgmlType head_type);
// p's tensors, tensor i in types[i] (F32 or quant::is_supported with cols fitting its block).
Weights quantize_weights(const Params& p, const std::vector<format::GgmlType>& types);

}  // namespace lm::model
