#include "model/weights.hpp"

#include "base/error.hpp"
#include "quant/quant.hpp"

namespace lm::model {

std::vector<TensorSpec> layout_specs(const ModelConfig& cfg) {
  // By name: the architecture's list is in file order (qwen2 interleaves its biases, which the
  // layout keeps after the layers) and has optional tensors the layout lacks (rope_freqs). phi3's
  // layout has llama's separate q, k, v, gate and up where its files fuse them.
  const char* arch = cfg.is_encoder() ? "bert" : cfg.fused_projections() ? "llama" : cfg.arch.name.c_str();
  const std::vector<TensorSpec> specs = find_arch(arch)->tensors(cfg);
  std::vector<TensorSpec> ordered;
  for (const ParamView& v : param_layout(cfg)) {
    const size_t i = find_spec(specs, v.name);
    LM_ASSERT(i < specs.size());
    ordered.push_back(specs[i]);
  }
  return ordered;
}

Weights build_weights(const ModelConfig& cfg, const std::vector<format::GgmlType>& types,
                      const std::function<void(size_t i, uint8_t* dst)>& fill) {
  return build_weights(cfg, layout_specs(cfg), types, fill);
}

Weights build_weights(const ModelConfig& cfg, const std::vector<TensorSpec>& specs,
                      const std::vector<format::GgmlType>& types,
                      const std::function<void(size_t i, uint8_t* dst)>& fill) {
  Weights ws;
  ws.cfg = cfg;
  std::vector<size_t> offset(specs.size());
  size_t total = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    offset[i] = total;
    total += (kernels::packed_size(types[i], specs[i].rows, specs[i].cols) + 63) & ~size_t(63);
  }
  ws.blob.resize(total);
  for (size_t i = 0; i < specs.size(); ++i) {
    uint8_t* dst = ws.blob.data() + offset[i];
    fill(i, dst);
    ws.w.push_back({types[i], specs[i].rows, specs[i].cols, dst});
  }
  ws.map = map_tensors(specs, cfg.n_layer);
  return ws;
}

Weights view_weights(const Params& p) {
  Weights ws;
  ws.cfg = p.cfg;
  for (size_t i = 0; i < p.views.size(); ++i)
    ws.w.push_back({format::GgmlType::F32, p.views[i].rows, p.views[i].cols, p.get(i)});
  ws.map = map_tensors(layout_specs(p.cfg), p.cfg.n_layer);
  return ws;
}

Weights quantize_weights(const Params& p, format::GgmlType type, format::GgmlType head_type) {
  std::vector<format::GgmlType> types(p.views.size());
  for (size_t i = 0; i < p.views.size(); ++i)
    types[i] = p.views[i].rows == 1 ? format::GgmlType::F32 : i == head_param(p.cfg) ? head_type : type;
  return quantize_weights(p, types);
}

Weights quantize_weights(const Params& p, const std::vector<format::GgmlType>& types) {
  std::vector<uint8_t> file;
  return build_weights(p.cfg, types, [&](size_t i, uint8_t* dst) {
    const ParamView& v = p.views[i];
    file.resize(quant::row_size(types[i], size_t(v.cols)) * size_t(v.rows));
    quant::quantize_rows(types[i], p.get(i), file.data(), size_t(v.rows), size_t(v.cols));
    kernels::pack_weight(types[i], file.data(), v.rows, v.cols, dst);
  });
}

size_t Weights::bytes() const {
  size_t n = 0;
  for (const kernels::QWeight& q : w) n += kernels::packed_size(q.type, q.rows, q.cols);
  return n;
}

}  // namespace lm::model
