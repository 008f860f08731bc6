// Bit-compatibility with ggml: lm's converters (f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl,
// q2_K, q3_K, q4_K, q5_K, q6_K, iq4_xs, q8_K) against the bytes ggml's reference converters wrote
// for the same rows, and lm's dequantizers of the block types against ggml's values; the
// importance-weighted quantizers (quantize_row_weighted: q4_0, q4_1, q5_0, q5_1, iq4_nl, q2_K..q6_K,
// iq4_xs) against ggml's quantize_<type> with quant_weights, for an importance row per input.
// scripts/ggml_golden.py writes tests/data/quant/ggml_golden.bin (layout there);
// LM_GGML_GOLDEN=<file> checks a larger one made with its --extra-rows.
#include <doctest/doctest.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "base/file.hpp"
#include "golden_reader.hpp"
#include "quant/kquant.hpp"
#include "quant/quant.hpp"

using namespace lm::quant;
using lm::format::GgmlType;

namespace {

using Reader = lm::test::GoldenReader;

// Our bytes for ggml type `t` (q8_K is not a file type, so not in quantize_row).
std::vector<uint8_t> convert(uint32_t t, const std::vector<float>& x) {
  if (t == uint32_t(GgmlType::Q8_K)) {
    std::vector<uint8_t> out(x.size() / kSuperBlock * sizeof(BlockQ8_K));
    quantize_q8_K(x.data(), out.data(), x.size());
    return out;
  }
  std::vector<uint8_t> out(row_size(GgmlType(t), x.size()));
  quantize_row(GgmlType(t), x.data(), out.data(), x.size());
  return out;
}

std::vector<float> restore(uint32_t t, const std::vector<uint8_t>& q, size_t n) {
  std::vector<float> y(n);
  if (t == uint32_t(GgmlType::Q8_K))
    dequantize_q8_K(q.data(), y.data(), n);
  else
    dequantize_row(GgmlType(t), q.data(), y.data(), n);
  return y;
}

}  // namespace

TEST_CASE("every converter gives ggml's bytes for every golden row; dequantizers give ggml's floats") {
  const char* other = std::getenv("LM_GGML_GOLDEN");
  Reader r{lm::load_file(other && *other ? other : std::string(LM_TEST_DATA_DIR) + "/quant/ggml_golden.bin")};
  REQUIRE(r.take<char>(8) == std::vector<char>{'L', 'M', 'G', 'G', 'M', 'L', 'Q', '1'});
  const auto source = r.take<char>(r.u32());
  MESSAGE("fixture from " << std::string(source.begin(), source.end()));
  std::vector<std::vector<float>> rows(r.u32());
  for (auto& x : rows) x = r.take<float>(r.u32());
  const uint32_t n_records = r.u32();
  int checked[4] = {0, 0, 0, 0};
  std::vector<std::vector<float>> importance(rows.size());
  for (uint32_t i = 0; i < n_records; ++i) {
    const uint32_t row = r.u32(), type = r.u32(), op = r.u32();
    const auto want = r.take<uint8_t>(r.u32());
    REQUIRE(row < rows.size());
    REQUIRE(op <= 3);
    const std::vector<float>& x = rows[row];
    if (op == 3) {  // the importance row for this input's op 2 records
      REQUIRE(want.size() == x.size() * sizeof(float));
      importance[row].resize(x.size());
      std::memcpy(importance[row].data(), want.data(), want.size());
      ++checked[3];
      continue;
    }
    const char* name = lm::format::ggml_type_info(type) ? lm::format::ggml_type_info(type)->name : "?";
    CAPTURE(row);
    const std::string type_name = name;
    CAPTURE(type_name);
    CAPTURE(op);
    std::vector<uint8_t> ours;
    if (op == 2) {
      REQUIRE(importance[row].size() == x.size());
      CHECK(takes_importance(GgmlType(type)));
      ours.resize(row_size(GgmlType(type), x.size()));
      quantize_row_weighted(GgmlType(type), x.data(), ours.data(), x.size(), importance[row].data());
    } else {
      ours = convert(type, x);
    }
    std::vector<uint8_t> got = ours;
    if (op == 1) {
      const std::vector<float> y = restore(type, ours, x.size());
      got.assign(reinterpret_cast<const uint8_t*>(y.data()), reinterpret_cast<const uint8_t*>(y.data() + y.size()));
    }
    REQUIRE(got.size() == want.size());
    size_t first_diff = 0;
    while (first_diff < got.size() && got[first_diff] == want[first_diff]) ++first_diff;
    CAPTURE(first_diff);
    CHECK(first_diff == got.size());
    ++checked[op];
  }
  CHECK(r.pos == r.bytes.size());
  CHECK(checked[0] >= 22 * 15);  // the committed fixture: 22 rows, 15 converters
  CHECK(checked[1] >= 3 * 11);   // 3 rows through 11 dequantizers
  CHECK(checked[2] >= 22 * 11);  // 22 rows through 11 weighted quantizers
  CHECK(checked[3] >= 22);
}
