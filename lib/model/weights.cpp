#include "model/weights.hpp"

#include "quant/quant.hpp"

namespace lm::model {

Weights view_weights(const Params& p) {
  Weights ws;
  ws.cfg = p.cfg;
  for (size_t i = 0; i < p.views.size(); ++i)
    ws.w.push_back({format::GgmlType::F32, p.views[i].rows, p.views[i].cols, p.get(i)});
  return ws;
}

Weights quantize_weights(const Params& p, format::GgmlType type, format::GgmlType head_type) {
  Weights ws;
  ws.cfg = p.cfg;
  const size_t head = p.cfg.tied ? 0 : output_norm_param(p.cfg) + 1;
  std::vector<format::GgmlType> types(p.views.size());
  std::vector<size_t> offset(p.views.size());
  size_t total = 0;
  for (size_t i = 0; i < p.views.size(); ++i) {
    const ParamView& v = p.views[i];
    types[i] = v.rows == 1 ? format::GgmlType::F32 : i == head ? head_type : type;
    offset[i] = total;
    total += (kernels::packed_size(types[i], v.rows, v.cols) + 63) & ~size_t(63);
  }
  ws.blob.resize(total);
  std::vector<uint8_t> file;
  for (size_t i = 0; i < p.views.size(); ++i) {
    const ParamView& v = p.views[i];
    const size_t rb = quant::row_size(types[i], size_t(v.cols));
    file.resize(rb * size_t(v.rows));
#pragma omp parallel for schedule(static) if (v.rows >= 64)
    for (int r = 0; r < v.rows; ++r)
      quant::quantize_row(types[i], p.get(i) + size_t(r) * v.cols, file.data() + size_t(r) * rb, size_t(v.cols));
    kernels::pack_weight(types[i], file.data(), v.rows, v.cols, ws.blob.data() + offset[i]);
    ws.w.push_back({types[i], v.rows, v.cols, ws.blob.data() + offset[i]});
  }
  return ws;
}

size_t Weights::bytes() const {
  size_t n = 0;
  for (const kernels::QWeight& q : w) n += kernels::packed_size(q.type, q.rows, q.cols);
  return n;
}

}  // namespace lm::model
