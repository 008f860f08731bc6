#include "model/quant_convert.hpp"

#include <cmath>
#include <cstring>
#include <vector>

#include "base/error.hpp"
#include "quant/quant.hpp"

namespace lm::quant {

using format::GgmlType;

void convert_rows(GgmlType in, const void* src, GgmlType out, void* dst, size_t rows, size_t n,
                  const float* importance) {
  const size_t in_row = row_size(in, n), out_row = row_size(out, n);
  const auto* s = static_cast<const uint8_t*>(src);
  auto* d = static_cast<uint8_t*>(dst);
  if (in == out) {  // a copy: an importance matrix has nothing to weigh
    std::memcpy(d, s, rows * in_row);
    return;
  }
  // Rows are independent, so any split over threads gives the same bytes.
#pragma omp parallel
  {
    std::vector<float> row(n);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < int64_t(rows); ++r) {
      dequantize_row(in, s + size_t(r) * in_row, row.data(), n);
      quantize_row_weighted(out, row.data(), d + size_t(r) * out_row, n, importance);
    }
  }
}

void check_convertible(const format::GgufFile& in, const Plan& plan) {
  for (const TensorPlan& t : plan.tensors) {
    if (t.in == t.out) continue;
    if (!is_supported(t.in))
      throw FormatError(in.path(), "tensor '" + t.name + "' has type " + format::ggml_type_info(t.in).name +
                                       ", which lm cannot convert, expected f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl, q2_K, q3_K, q4_K, q5_K, q6_K or iq4_xs; "
                                       "convert the original model instead");
    if (!is_supported(t.out))
      throw FormatError(in.path(), "tensor '" + t.name + "' would be " + format::ggml_type_info(t.out).name +
                                       ", which lm cannot write; choose another type for it with "
                                       "--tensor-type");
  }
}

void add_quantized_model(format::GgufWriter& w, const format::GgufFile& in, const Plan& plan, const QuantizeInfo& info) {
  LM_ASSERT(plan.tensors.size() == in.tensors().size());
  for (const auto& [key, value] : in.metadata())
    if (key.compare(0, format::kKeyQuantizePrefix.size(), format::kKeyQuantizePrefix) != 0 &&
        key.compare(0, 17, "quantize.imatrix.") != 0)  // both describe an earlier quantization
      w.set_value(key, value);
  const FileTypeInfo& ft = file_type_info(plan.type);
  w.set_u32(format::kKeyFileType, ft.llama_ftype);
  if (is_quantized(plan.type)) w.set_u32(format::kKeyQuantizationVersion, 2);  // GGML_QNT_VERSION
  w.set_string(format::kKeyQuantizeSource, info.source);
  if (auto source_type = in.try_get_u32(format::kKeyFileType)) w.set_u32(format::kKeyQuantizeSourceFileType, *source_type);
  w.set_string(format::kKeyQuantizeType, ft.name);
  if (!info.overrides.empty()) w.set_array_string(format::kKeyQuantizeOverrides, info.overrides);
  if (!info.imatrix_file.empty()) {  // llama-quantize's keys, so llama.cpp's tools see them too
    w.set_string("quantize.imatrix.file", info.imatrix_file);
    if (!info.imatrix_dataset.empty()) w.set_string("quantize.imatrix.dataset", info.imatrix_dataset);
    w.set_i32("quantize.imatrix.entries_count", info.imatrix_entries);
    if (info.imatrix_chunks > 0) w.set_i32("quantize.imatrix.chunks_count", info.imatrix_chunks);
  }
  w.set_string(format::kKeyQuantizeTool, "lm " LM_VERSION);
  for (const TensorPlan& t : plan.tensors) w.add_tensor_deferred(t.name, t.out, t.ne);
}

void write_quantized_tensor(const format::GgufFile& in, const Plan& plan, size_t i, uint8_t* dst,
                            const float* importance) {
  const format::GgufTensorInfo& src = in.tensors()[i];
  const TensorPlan& t = plan.tensors[i];
  LM_ASSERT(src.name == t.name && src.type == t.in);
  format::check_finite(in, src);
  const size_t n = size_t(t.ne[0]);
  const size_t rows = n ? size_t(t.n_elements) / n : 0;
  if (!importance || rows == 0) {
    convert_rows(t.in, src.data, t.out, dst, rows, n);
    return;
  }
  // Each ne[0] x ne[1] matrix with its own importance row (llama-quantize's per-expert slices).
  const size_t per_mat = size_t(t.ne.size() > 1 ? t.ne[1] : 1), n_mat = rows / per_mat;
  const size_t in_row = row_size(t.in, n), out_row = row_size(t.out, n);
  for (size_t m = 0; m < n_mat; ++m)
    convert_rows(t.in, src.data + m * per_mat * in_row, t.out, dst + m * per_mat * out_row, per_mat, n,
                 importance + m * n);
}

void set_quant_eval(format::GgufWriter& w, const QuantEval& e) {
  w.set_string(format::kKeyEvalFile, e.file);
  w.set_u64(format::kKeyEvalTokens, e.tokens);
  w.set_u32(format::kKeyEvalCtx, e.ctx);
  w.set_f32(format::kKeyEvalPerplexity, e.perplexity);
  w.set_f32(format::kKeyEvalPerplexitySource, e.perplexity_source);
  w.set_f32(format::kKeyEvalKld, e.kld);
  w.set_f32(format::kKeyEvalTop1, e.top1_agreement);
}

std::optional<QuantEval> try_get_quant_eval(const format::GgufFile& g) {
  try {
    auto file = g.try_get_string(format::kKeyEvalFile);
    auto tokens = g.try_get_u64(format::kKeyEvalTokens);
    auto ctx = g.try_get_u32(format::kKeyEvalCtx);
    auto ppl = g.try_get_f32(format::kKeyEvalPerplexity);
    auto ppl_source = g.try_get_f32(format::kKeyEvalPerplexitySource);
    auto kld = g.try_get_f32(format::kKeyEvalKld);
    auto top1 = g.try_get_f32(format::kKeyEvalTop1);
    if (!file || !tokens || !ctx || !ppl || !ppl_source || !kld || !top1) return std::nullopt;
    return QuantEval{*file, *tokens, *ctx, *ppl, *ppl_source, *kld, *top1};
  } catch (const Error&) {
    return std::nullopt;
  }
}

}  // namespace lm::quant
