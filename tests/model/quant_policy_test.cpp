// Tests for lib/model/quant_policy and lib/model/quant_convert: file type names, llama.cpp's mixing rules
// (output tensor, use_more_bits layers), --tensor-type overrides, shape fallbacks, plan sizes,
// and the quantized copy's metadata and bytes.
#include <doctest/doctest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "base/file.hpp"
#include "format/gguf.hpp"
#include "model/quant_convert.hpp"
#include "model/quant_policy.hpp"
#include "quant/quant.hpp"
#include "test_util.hpp"

using namespace lm::quant;
using lm::format::GgmlType;
using lm::format::GgufTensorInfo;

namespace {

GgufTensorInfo tensor(const std::string& name, std::vector<int64_t> ne, GgmlType type = GgmlType::F32) {
  GgufTensorInfo t;
  t.name = name;
  t.type = type;
  t.n_dims = uint32_t(ne.size());
  for (size_t i = 0; i < ne.size(); ++i) t.ne[i] = ne[i];
  REQUIRE(lm::format::ggml_tensor_bytes(type, t.ne, t.n_dims, &t.n_bytes));
  return t;
}

// The tensors of a llama model in lm-train's order: C wide, F hidden, V tokens, L layers.
std::vector<GgufTensorInfo> llama(int L, int C, int F, int V, bool tied, GgmlType type = GgmlType::F32) {
  const int kv = C / 2;
  std::vector<GgufTensorInfo> t{tensor("token_embd.weight", {C, V}, type)};
  for (int l = 0; l < L; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    t.push_back(tensor(b + "attn_norm.weight", {C}));
    t.push_back(tensor(b + "attn_q.weight", {C, C}, type));
    t.push_back(tensor(b + "attn_k.weight", {C, kv}, type));
    t.push_back(tensor(b + "attn_v.weight", {C, kv}, type));
    t.push_back(tensor(b + "attn_output.weight", {C, C}, type));
    t.push_back(tensor(b + "ffn_norm.weight", {C}));
    t.push_back(tensor(b + "ffn_gate.weight", {C, F}, type));
    t.push_back(tensor(b + "ffn_up.weight", {C, F}, type));
    t.push_back(tensor(b + "ffn_down.weight", {F, C}, type));
  }
  t.push_back(tensor("output_norm.weight", {C}));
  if (!tied) t.push_back(tensor("output.weight", {C, V}, type));
  return t;
}

const TensorPlan& find(const Plan& p, const std::string& name) {
  for (const auto& t : p.tensors)
    if (t.name == name) return t;
  FAIL("no tensor " << name);
  return p.tensors.front();
}

GgmlType out(const Plan& p, const std::string& name) { return find(p, name).out; }

Plan plan_for(const std::vector<GgufTensorInfo>& t, FileType type, int n_layer,
              const std::vector<std::string>& specs = {}) {
  std::vector<TensorTypeOverride> o;
  for (const auto& s : specs) o.push_back(parse_tensor_type_override(s));
  return make_plan(t, type, o, n_layer);
}

}  // namespace

TEST_CASE("file types: names, aliases, llama_ftype numbers, base types") {
  CHECK(try_parse_file_type("q8_0") == FileType::Q8_0);
  CHECK(try_parse_file_type("Q8_0") == FileType::Q8_0);
  CHECK(try_parse_file_type("q4_k") == FileType::Q4_K_M);
  CHECK(try_parse_file_type("Q4_K_M") == FileType::Q4_K_M);
  CHECK(try_parse_file_type("q6_K") == FileType::Q6_K);
  CHECK(try_parse_file_type("BF16") == FileType::BF16);
  CHECK(try_parse_file_type("q5_0") == FileType::Q5_0);
  CHECK(try_parse_file_type("Q5_K") == FileType::Q5_K_M);
  CHECK(try_parse_file_type("q3_k") == FileType::Q3_K_M);
  CHECK(try_parse_file_type("q2_K") == FileType::Q2_K);
  CHECK_FALSE(try_parse_file_type("q4_k_s"));
  CHECK_FALSE(try_parse_file_type("q5_1"));
  CHECK_FALSE(try_parse_file_type(""));
  const std::pair<FileType, uint32_t> numbers[] = {{FileType::F32, 0},  {FileType::F16, 1},     {FileType::Q4_0, 2},
                                                   {FileType::Q8_0, 7}, {FileType::Q4_K_M, 15}, {FileType::Q6_K, 18},
                                                   {FileType::BF16, 32}, {FileType::Q4_1, 3},  {FileType::Q5_0, 8},
                                                   {FileType::Q2_K, 10}, {FileType::Q3_K_M, 12}, {FileType::Q5_K_M, 17}};
  for (auto [t, n] : numbers) {
    CHECK(file_type_info(t).llama_ftype == n);
    CHECK(llama_ftype_name(n) == file_type_info(t).name);
  }
  CHECK(file_types().size() == 12);
  CHECK(file_type_info(FileType::Q3_K_M).base == GgmlType::Q3_K);
  CHECK(file_type_info(FileType::Q2_K).base == GgmlType::Q2_K);
  CHECK(file_type_info(FileType::Q4_K_M).base == GgmlType::Q4_K);
  CHECK(file_type_info(FileType::Q6_K).base == GgmlType::Q6_K);
  CHECK_FALSE(is_quantized(FileType::BF16));
  CHECK(is_quantized(FileType::Q4_0));
  CHECK(llama_ftype_name(17) == "q5_k_m");
  CHECK(llama_ftype_name(1024 + 7) == "q8_0");  // LLAMA_FTYPE_GUESSED
  CHECK(llama_ftype_name(4) == "unknown");
  CHECK(llama_ftype_name(9999) == "unknown");
}

TEST_CASE("tensor types and --tensor-type overrides: syntax, case, errors") {
  CHECK(try_parse_tensor_type("q4_K") == GgmlType::Q4_K);
  CHECK(try_parse_tensor_type("Q4_k") == GgmlType::Q4_K);
  CHECK(try_parse_tensor_type("F16") == GgmlType::F16);
  CHECK(try_parse_tensor_type("q6_k") == GgmlType::Q6_K);
  CHECK(try_parse_tensor_type("q5_0") == GgmlType::Q5_0);
  CHECK(try_parse_tensor_type("IQ4_XS") == GgmlType::IQ4_XS);
  CHECK_FALSE(try_parse_tensor_type("q8_1"));  // ggml's, but not a type lm writes
  CHECK_FALSE(try_parse_tensor_type("iq2_xs"));
  CHECK_FALSE(try_parse_tensor_type("q4_k_m"));  // a file type, not a tensor type

  const TensorTypeOverride o = parse_tensor_type_override("blk\\.[0-3]\\.attn_(q|k)=Q8_0");
  CHECK(o.pattern == "blk\\.[0-3]\\.attn_(q|k)");
  CHECK(o.type == GgmlType::Q8_0);
  CHECK(o.spec == "blk\\.[0-3]\\.attn_(q|k)=Q8_0");
  CHECK(parse_tensor_type_override("a=b=f16").pattern == "a=b");  // split at the last '='
  CHECK_THROWS_AS(parse_tensor_type_override("attn_v"), lm::UsageError);
  CHECK_THROWS_AS(parse_tensor_type_override("=q8_0"), lm::UsageError);
  CHECK(parse_tensor_type_override("attn_v=q5_1").type == GgmlType::Q5_1);
  CHECK_THROWS_AS(parse_tensor_type_override("attn_v=q8_1"), lm::UsageError);
  CHECK_THROWS_AS(parse_tensor_type_override("attn_v="), lm::UsageError);
  CHECK_THROWS_AS(parse_tensor_type_override("attn_(v=q8_0"), lm::UsageError);
  try {
    parse_tensor_type_override("(=q8_0");
  } catch (const lm::UsageError& e) {
    CHECK(std::string(e.what()).find("bad regular expression '('") != std::string::npos);
  }
}

TEST_CASE("use_more_bits picks llama.cpp's layers") {
  auto picks = [](int n) {
    std::set<int> s;
    for (int i = 0; i < n; ++i)
      if (use_more_bits(i, n)) s.insert(i);
    return s;
  };
  CHECK(picks(1) == std::set<int>{0});
  CHECK(picks(2) == std::set<int>{1});
  CHECK(picks(4) == std::set<int>{2, 3});
  CHECK(picks(8) == std::set<int>{0, 3, 6, 7});
  CHECK(picks(12) == std::set<int>{0, 3, 6, 9, 10, 11});
  // A 32-layer model (Llama 2 7B): the first and last four, and 6, 9, ..., 27.
  CHECK(picks(32) == std::set<int>{0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31});
}

TEST_CASE("float file types: every weight matrix in the type, norms copied, no rules") {
  for (FileType ft : {FileType::F32, FileType::F16, FileType::BF16}) {
    const Plan p = plan_for(llama(2, 64, 96, 100, false), ft, 2);
    for (const auto& t : p.tensors) {
      if (t.ne.size() == 1) {
        CHECK(t.out == GgmlType::F32);
        CHECK(t.reason == Reason::Copy);
        CHECK_FALSE(t.weight);
      } else {
        CHECK(t.out == file_type_info(ft).base);
        CHECK(t.reason == Reason::FileType);
      }
    }
    CHECK(p.warnings.empty());
  }
}

TEST_CASE("q8_0: everything q8_0, the output tensor too; sizes are 34 bytes per 32 values") {
  for (bool tied : {true, false}) {
    const auto t = llama(2, 64, 96, 100, tied);
    const Plan p = plan_for(t, FileType::Q8_0, 2);
    CHECK(out(p, "token_embd.weight") == GgmlType::Q8_0);
    CHECK(find(p, "token_embd.weight").reason == (tied ? Reason::Output : Reason::FileType));
    if (!tied) CHECK(find(p, "output.weight").reason == Reason::Output);
    uint64_t weights = 0, elements = 0, bytes = 0;
    for (const auto& x : p.tensors) {
      elements += x.n_elements;
      bytes += x.bytes_out;
      if (!x.weight) continue;
      CHECK(x.out == GgmlType::Q8_0);
      CHECK(x.bytes_out == x.n_elements / 32 * 34);
      weights += x.n_elements;
    }
    CHECK(p.weight_elements == weights);
    CHECK(p.n_elements == elements);
    CHECK(p.bytes_out == bytes);
    CHECK(p.weight_bpw_out() == doctest::Approx(8.5));
    CHECK(p.weight_bpw_in() == doctest::Approx(32.0));
  }
}

TEST_CASE("q4_0: the output tensor (or the tied embedding) is q6_K, or q8_0 when ne[0] % 256 != 0") {
  const Plan tied = plan_for(llama(2, 256, 256, 100, true), FileType::Q4_0, 2);
  CHECK(out(tied, "token_embd.weight") == GgmlType::Q6_K);
  CHECK(out(tied, "blk.0.attn_v.weight") == GgmlType::Q4_0);
  CHECK(out(tied, "blk.1.ffn_down.weight") == GgmlType::Q4_0);
  CHECK(find(tied, "token_embd.weight").bytes_out == 100 * 210);

  const Plan untied = plan_for(llama(2, 256, 256, 100, false), FileType::Q4_0, 2);
  CHECK(out(untied, "token_embd.weight") == GgmlType::Q4_0);
  CHECK(out(untied, "output.weight") == GgmlType::Q6_K);

  const Plan narrow = plan_for(llama(2, 64, 96, 100, true), FileType::Q4_0, 2);
  CHECK(out(narrow, "token_embd.weight") == GgmlType::Q8_0);
  CHECK(find(narrow, "token_embd.weight").reason == Reason::Output);
  CHECK_FALSE(find(narrow, "token_embd.weight").fallback_from);
  CHECK(narrow.warnings.empty());
}

TEST_CASE("q4_k_m: q6_K for attn_v and ffn_down of the use_more_bits layers, q4_K elsewhere") {
  const int L = 8;
  const Plan p = plan_for(llama(L, 256, 512, 300, false), FileType::Q4_K_M, L);
  CHECK(out(p, "token_embd.weight") == GgmlType::Q4_K);
  CHECK(out(p, "output.weight") == GgmlType::Q6_K);
  for (int l = 0; l < L; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    const GgmlType more = use_more_bits(l, L) ? GgmlType::Q6_K : GgmlType::Q4_K;
    CAPTURE(l);
    CHECK(out(p, b + "attn_v.weight") == more);
    CHECK(out(p, b + "ffn_down.weight") == more);
    CHECK(find(p, b + "ffn_down.weight").reason == (use_more_bits(l, L) ? Reason::MoreBits : Reason::FileType));
    for (const char* n : {"attn_q.weight", "attn_k.weight", "attn_output.weight", "ffn_gate.weight", "ffn_up.weight"})
      CHECK(out(p, b + n) == GgmlType::Q4_K);
    CHECK(out(p, b + "attn_norm.weight") == GgmlType::F32);
  }
  CHECK(p.warnings.empty());
  const Plan tied = plan_for(llama(2, 256, 256, 300, true), FileType::Q4_K_M, 2);
  CHECK(out(tied, "token_embd.weight") == GgmlType::Q6_K);
  CHECK(out(tied, "blk.0.attn_v.weight") == GgmlType::Q4_K);
  CHECK(out(tied, "blk.1.attn_v.weight") == GgmlType::Q6_K);
}

TEST_CASE("q4_0, q5_0 with an importance matrix: q4_1 / q5_1 for the first n_layer / 8 ffn_down layers") {
  const int L = 16;
  const auto t = llama(L, 256, 512, 300, false);
  for (FileType type : {FileType::Q4_0, FileType::Q5_0}) {
    const GgmlType base = type == FileType::Q4_0 ? GgmlType::Q4_0 : GgmlType::Q5_0;
    const GgmlType guard = type == FileType::Q4_0 ? GgmlType::Q4_1 : GgmlType::Q5_1;
    const Plan plain = make_plan(t, type, {}, L), with = make_plan(t, type, {}, L, 1, true);
    for (int l = 0; l < L; ++l) {
      CAPTURE(l);
      const std::string down = "blk." + std::to_string(l) + ".ffn_down.weight";
      CHECK(out(plain, down) == base);
      CHECK(out(with, down) == (l < L / 8 ? guard : base));
      CHECK(out(with, "blk." + std::to_string(l) + ".attn_v.weight") == base);
    }
  }
  // The K-quant mixtures are the same with or without one.
  for (FileType type : {FileType::Q4_K_M, FileType::Q3_K_M, FileType::Q2_K}) {
    const Plan plain = make_plan(t, type, {}, L), with = make_plan(t, type, {}, L, 1, true);
    for (size_t i = 0; i < plain.tensors.size(); ++i) CHECK(plain.tensors[i].out == with.tensors[i].out);
  }
}

TEST_CASE("q5_k_m, q3_k_m, q2_k: llama.cpp's types for attn_v, ffn_down and attn_output") {
  const int L = 32;
  auto t = llama(L, 256, 512, 300, false);
  const Plan q5 = plan_for(t, FileType::Q5_K_M, L), q3 = plan_for(t, FileType::Q3_K_M, L);
  const Plan q2 = plan_for(t, FileType::Q2_K, L, {}), q2_gqa4 = make_plan(t, FileType::Q2_K, {}, L, 4);
  for (const Plan* p : {&q5, &q3, &q2}) {
    CHECK(out(*p, "output.weight") == GgmlType::Q6_K);
    CHECK(out(*p, "token_embd.weight") == file_type_info(p->type).base);
    CHECK(p->warnings.empty());
  }
  for (int l = 0; l < L; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    CAPTURE(l);
    const GgmlType q5_more = use_more_bits(l, L) ? GgmlType::Q6_K : GgmlType::Q5_K;
    CHECK(out(q5, b + "attn_v.weight") == q5_more);
    CHECK(out(q5, b + "ffn_down.weight") == q5_more);
    CHECK(out(q5, b + "attn_output.weight") == GgmlType::Q5_K);
    CHECK(out(q3, b + "attn_v.weight") == (l < 2 ? GgmlType::Q5_K : GgmlType::Q4_K));
    CHECK(out(q3, b + "ffn_down.weight") == (l < L / 16 ? GgmlType::Q5_K : GgmlType::Q4_K));
    CHECK(out(q3, b + "attn_output.weight") == GgmlType::Q4_K);
    CHECK(find(q3, b + "attn_output.weight").reason == Reason::MoreBits);
    CHECK(out(q2, b + "attn_v.weight") == GgmlType::Q3_K);
    CHECK(out(q2_gqa4, b + "attn_v.weight") == GgmlType::Q4_K);
    CHECK(out(q2, b + "ffn_down.weight") == GgmlType::Q3_K);
    CHECK(out(q2, b + "attn_output.weight") == GgmlType::Q3_K);
    for (const char* n : {"attn_q.weight", "attn_k.weight", "ffn_gate.weight", "ffn_up.weight"}) {
      CHECK(out(q5, b + n) == GgmlType::Q5_K);
      CHECK(out(q3, b + n) == GgmlType::Q3_K);
      CHECK(out(q2, b + n) == GgmlType::Q2_K);
    }
  }
  // q5_0 and q4_1: the base type everywhere but the output tensor.
  for (FileType ft : {FileType::Q5_0, FileType::Q4_1}) {
    const Plan p = plan_for(llama(4, 256, 512, 300, true), ft, 4);
    CHECK(out(p, "token_embd.weight") == GgmlType::Q6_K);
    for (const auto& x : p.tensors)
      if (x.weight && x.name != "token_embd.weight") CHECK(x.out == file_type_info(ft).base);
  }
}

TEST_CASE("q6_k: everything q6_K") {
  const Plan p = plan_for(llama(3, 256, 512, 300, true), FileType::Q6_K, 3);
  for (const auto& t : p.tensors)
    if (t.weight) CHECK(t.out == GgmlType::Q6_K);
}

TEST_CASE("fallbacks: llama.cpp's (q4_K to q5_0, q6_K to q8_0, ...), else f16, with a warning") {
  // F = 320: ffn_down rows of 320 values fit 32-value blocks but not q4_K / q6_K.
  const Plan k = plan_for(llama(2, 256, 320, 300, true), FileType::Q4_K_M, 2);
  CHECK(out(k, "blk.0.ffn_down.weight") == GgmlType::Q5_0);
  CHECK(*find(k, "blk.0.ffn_down.weight").fallback_from == GgmlType::Q4_K);
  CHECK(out(k, "blk.1.ffn_down.weight") == GgmlType::Q8_0);
  CHECK(*find(k, "blk.1.ffn_down.weight").fallback_from == GgmlType::Q6_K);
  CHECK(out(k, "blk.0.ffn_up.weight") == GgmlType::Q4_K);
  REQUIRE(k.warnings.size() == 2);
  CHECK(k.warnings[0].find("'blk.0.ffn_down.weight' has 320 values per row, not a multiple of 256 for q4_K") !=
        std::string::npos);
  CHECK(k.warnings[0].find("it is q5_0 instead") != std::string::npos);
  const std::pair<FileType, GgmlType> fallbacks[] = {{FileType::Q5_K_M, GgmlType::Q5_1},
                                                     {FileType::Q3_K_M, GgmlType::Q4_0},
                                                     {FileType::Q2_K, GgmlType::Q4_0}};
  for (auto [ft, want] : fallbacks) {
    const Plan p = plan_for(llama(2, 256, 320, 300, true), ft, 2);
    CHECK(out(p, "blk.0.ffn_up.weight") == file_type_info(ft).base);
    CHECK(out(p, "blk.0.attn_q.weight") == file_type_info(ft).base);
    // ffn_down's rows of 320: the mixture's type (or the base) falls back.
    if (ft == FileType::Q5_K_M) CHECK(out(p, "blk.0.ffn_down.weight") == want);
    CHECK(find(p, "blk.0.ffn_down.weight").fallback_from);
  }

  // F = 300: not even a multiple of 32, so f16, for K-quants and q4_0 / q8_0 alike.
  for (FileType ft : {FileType::Q6_K, FileType::Q4_0, FileType::Q8_0, FileType::Q5_0, FileType::Q2_K}) {
    const Plan p = plan_for(llama(2, 256, 300, 300, true), ft, 2);
    CHECK(out(p, "blk.0.ffn_down.weight") == GgmlType::F16);
    CHECK(out(p, "blk.0.ffn_down.weight") == GgmlType::F16);
    CHECK(p.warnings.size() == 2);
    CHECK(find(p, "blk.1.ffn_down.weight").bytes_out == 300 * 256 * 2);
  }
  // Rows of 64: the output rule picks q8_0 itself, which is no fallback.
  const Plan narrow = plan_for(llama(1, 64, 64, 300, true), FileType::Q6_K, 1);
  CHECK(out(narrow, "token_embd.weight") == GgmlType::Q8_0);
  CHECK_FALSE(find(narrow, "token_embd.weight").fallback_from);
  CHECK(out(narrow, "blk.0.attn_q.weight") == GgmlType::Q8_0);
  CHECK(find(narrow, "blk.0.attn_q.weight").fallback_from);
}

TEST_CASE("--tensor-type: first match wins, beats the rules, not the fallbacks; norms are never weights") {
  const auto t = llama(4, 256, 320, 300, false);
  const Plan p = plan_for(t, FileType::Q4_K_M, 4,
                          {"blk\\.0\\.=f16", "attn_v=q8_0", "output\\.weight$=q4_0", "ffn_down=q6_K", "norm=q8_0"});
  CHECK(out(p, "blk.0.attn_q.weight") == GgmlType::F16);
  CHECK(out(p, "blk.0.attn_v.weight") == GgmlType::F16);  // the first match
  CHECK(find(p, "blk.0.attn_v.weight").override_index == 0);
  CHECK(out(p, "blk.1.attn_v.weight") == GgmlType::Q8_0);
  CHECK(find(p, "blk.1.attn_v.weight").reason == Reason::Override);
  CHECK(out(p, "output.weight") == GgmlType::Q4_0);  // instead of the output rule's q6_K
  CHECK(out(p, "blk.2.ffn_down.weight") == GgmlType::Q8_0);  // q6_K does not fit 320: fallback
  CHECK(*find(p, "blk.2.ffn_down.weight").fallback_from == GgmlType::Q6_K);
  CHECK(out(p, "blk.1.attn_norm.weight") == GgmlType::F32);
  CHECK(out(p, "output_norm.weight") == GgmlType::F32);
  CHECK(out(p, "blk.1.attn_q.weight") == GgmlType::Q4_K);
  // Overrides apply to float file types too.
  const Plan f = plan_for(t, FileType::F16, 4, {"token_embd=q8_0"});
  CHECK(out(f, "token_embd.weight") == GgmlType::Q8_0);
  CHECK(out(f, "output.weight") == GgmlType::F16);
}

TEST_CASE("convert_rows and write_quantized_tensor with importance: every row weighted alike, each matrix its own") {
  const size_t rows = 6, n = 256;
  std::vector<float> x(rows * n), imp(2 * n);
  uint32_t s = 7;
  for (float& v : x) s = s * 1664525u + 1013904223u, v = float(int32_t(s >> 8) % 2000) / 997.0f;
  for (size_t i = 0; i < imp.size(); ++i) imp[i] = float(1 + (i * 37) % 101) * (i < n ? 1.0f : 0.01f);
  const size_t rb = row_size(GgmlType::Q3_K, n);
  std::vector<uint8_t> got(rb * rows), want(rb * rows), plain(rb * rows);
  convert_rows(GgmlType::F32, x.data(), GgmlType::Q3_K, got.data(), rows, n, imp.data());
  for (size_t r = 0; r < rows; ++r)
    quantize_row_weighted(GgmlType::Q3_K, x.data() + r * n, want.data() + r * rb, n, imp.data());
  convert_rows(GgmlType::F32, x.data(), GgmlType::Q3_K, plain.data(), rows, n);
  CHECK(got == want);
  CHECK(got != plain);
  // A {n, 3, 2} tensor: rows 0..2 take imp[0..n), rows 3..5 imp[n..2n).
  lm::test::TempDir dir;
  const std::string path = dir.path() + "/e.gguf";
  {
    lm::format::GgufWriter w;
    w.add_tensor("blk.0.ffn_up_exps.weight", GgmlType::F32, {int64_t(n), 3, 2}, x.data());
    w.save(path);
  }
  const lm::format::GgufFile in = lm::format::GgufFile::open(path);
  Plan plan = make_plan(in.tensors(), FileType::Q3_K_M, {}, 1);
  REQUIRE(plan.tensors[0].out == GgmlType::Q3_K);
  std::vector<uint8_t> tensor(rb * rows);
  write_quantized_tensor(in, plan, 0, tensor.data(), imp.data());
  for (size_t r = 0; r < rows; ++r)
    quantize_row_weighted(GgmlType::Q3_K, x.data() + r * n, want.data() + r * rb, n, imp.data() + (r / 3) * n);
  CHECK(tensor == want);
}

TEST_CASE("requantizing: only tensors converted from a quantized type count") {
  const auto q8 = llama(2, 64, 96, 100, true, GgmlType::Q8_0);
  CHECK(plan_for(q8, FileType::Q8_0, 2).first_requantized() == nullptr);  // same types: copies
  const Plan to_q4 = plan_for(q8, FileType::Q4_0, 2);
  REQUIRE(to_q4.first_requantized() != nullptr);
  CHECK(to_q4.first_requantized()->name == "blk.0.attn_q.weight");  // token_embd stays q8_0
  CHECK(plan_for(q8, FileType::F16, 2).first_requantized() != nullptr);
  const auto f16 = llama(2, 64, 96, 100, true, GgmlType::F16);
  CHECK(plan_for(f16, FileType::Q4_0, 2).first_requantized() == nullptr);
}

TEST_CASE("convert_rows: ggml's bytes, a copy for the same type, the same bytes on any thread count") {
  const size_t rows = 37, n = 256;
  std::vector<float> x(rows * n);
  uint32_t s = 1;
  for (float& v : x) s = s * 1664525u + 1013904223u, v = float(int32_t(s >> 8) % 2000) / 997.0f;
  std::vector<uint8_t> a(row_size(GgmlType::Q8_0, n) * rows), b(a.size()), ref(a.size());
  quantize_q8_0(x.data(), ref.data(), rows * n);
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  convert_rows(GgmlType::F32, x.data(), GgmlType::Q8_0, a.data(), rows, n);
  omp_set_num_threads(3);
  convert_rows(GgmlType::F32, x.data(), GgmlType::Q8_0, b.data(), rows, n);
  omp_set_num_threads(threads);
  CHECK(a == ref);
  CHECK(b == ref);
  // f16 -> q4_0 goes through f32; q8_0 -> q8_0 is a copy.
  std::vector<uint8_t> h(rows * n * 2), q4(row_size(GgmlType::Q4_0, n) * rows), q4_ref(q4.size()), copy(a.size());
  convert_rows(GgmlType::F32, x.data(), GgmlType::F16, h.data(), rows, n);
  std::vector<float> back(rows * n);
  dequantize_f16(h.data(), back.data(), rows * n);
  quantize_q4_0(back.data(), q4_ref.data(), rows * n);
  convert_rows(GgmlType::F16, h.data(), GgmlType::Q4_0, q4.data(), rows, n);
  CHECK(q4 == q4_ref);
  convert_rows(GgmlType::Q8_0, a.data(), GgmlType::Q8_0, copy.data(), rows, n);
  CHECK(copy == a);
}

TEST_CASE("a quantized copy: metadata, tensors, eval keys rewritten in place") {
  lm::test::TempDir dir;
  const std::string in_path = dir.path() + "/in.gguf", out_path = dir.path() + "/out.gguf";
  const auto infos = llama(1, 64, 64, 40, true);
  std::vector<std::vector<float>> data;
  lm::format::GgufWriter w0;
  w0.set_string(lm::format::kKeyArchitecture, "llama");
  w0.set_u32(lm::format::kKeyFileType, 0);
  w0.set_string("tokenizer.ggml.model", "llama");
  w0.set_string("lm.quantize.eval.file", "stale.txt");  // from an earlier run: dropped
  for (const auto& t : infos) {
    data.emplace_back(t.n_elements());
    for (size_t i = 0; i < data.back().size(); ++i) data.back()[i] = float(int(i % 17) - 8) / 16.0f;
    w0.add_tensor(t.name, t.type, std::vector<int64_t>(t.ne, t.ne + t.n_dims), data.back().data());
  }
  w0.save(in_path);
  const lm::format::GgufFile in = lm::format::GgufFile::open(in_path);
  const Plan plan = make_plan(in.tensors(), FileType::Q4_0, {parse_tensor_type_override("attn_q=q8_0")}, 1);

  lm::format::GgufWriter w;
  QuantizeInfo info;
  info.source = "in.gguf";
  info.overrides = {"attn_q=q8_0"};
  add_quantized_model(w, in, plan, info);
  set_quant_eval(w, {"valid.txt"});
  const uint64_t planned = w.file_size();
  {
    lm::OutputFile out(out_path);
    w.write(out, [&](size_t i, uint8_t* dst) { write_quantized_tensor(in, plan, i, dst); });
    out.flush();
    CHECK(out.bytes_written() == planned);
    set_quant_eval(w, {"valid.txt", 4096, 512, 12.5f, 12.25f, 0.0123f, 0.975f});
    CHECK(w.file_size() == planned);
    const std::string h = w.header();
    out.write_at(0, h.data(), h.size());
    out.commit();
  }
  const lm::format::GgufFile g = lm::format::GgufFile::open(out_path);
  CHECK(g.get_string(lm::format::kKeyArchitecture) == "llama");
  CHECK(g.get_string("tokenizer.ggml.model") == "llama");
  CHECK(g.get_u32(lm::format::kKeyFileType) == 2);
  CHECK(g.get_u32(lm::format::kKeyQuantizationVersion) == 2);
  CHECK(g.get_string(lm::format::kKeyQuantizeSource) == "in.gguf");
  CHECK(g.get_u32(lm::format::kKeyQuantizeSourceFileType) == 0);
  CHECK(g.get_string(lm::format::kKeyQuantizeType) == "q4_0");
  CHECK(g.get_string_array(lm::format::kKeyQuantizeOverrides) == std::vector<std::string>{"attn_q=q8_0"});
  const auto e = try_get_quant_eval(g);
  REQUIRE(e);
  CHECK(e->file == "valid.txt");
  CHECK(e->tokens == 4096);
  CHECK(e->ctx == 512);
  CHECK(e->perplexity == 12.5f);
  CHECK(e->perplexity_source == 12.25f);
  CHECK(e->kld == 0.0123f);
  CHECK(e->top1_agreement == 0.975f);
  REQUIRE(g.tensors().size() == infos.size());
  for (size_t i = 0; i < infos.size(); ++i) {
    const auto& t = g.tensors()[i];
    CHECK(t.name == infos[i].name);
    CHECK(t.type == plan.tensors[i].out);
    std::vector<uint8_t> want(size_t(t.n_bytes));
    convert_rows(GgmlType::F32, data[i].data(), t.type, want.data(), size_t(t.n_elements() / uint64_t(t.ne[0])),
                 size_t(t.ne[0]));
    CHECK(std::memcmp(t.data, want.data(), want.size()) == 0);
  }
  CHECK(g.find_tensor("blk.0.attn_q.weight")->type == GgmlType::Q8_0);
  CHECK(g.find_tensor("token_embd.weight")->type == GgmlType::Q8_0);  // 64 values per row: not q6_K
  CHECK(g.find_tensor("blk.0.attn_k.weight")->type == GgmlType::Q4_0);
  CHECK_FALSE(try_get_quant_eval(in));
}

TEST_CASE("write_quantized_tensor refuses NaN in a float input, naming the tensor") {
  lm::test::TempDir dir;
  const std::string path = dir.path() + "/nan.gguf";
  std::vector<float> x(64 * 4, 0.5f);
  x[70] = std::nanf("");
  lm::format::GgufWriter w0;
  w0.add_tensor("blk.0.attn_q.weight", GgmlType::F32, {64, 4}, x.data());
  w0.save(path);
  const lm::format::GgufFile in = lm::format::GgufFile::open(path);
  const Plan plan = make_plan(in.tensors(), FileType::Q8_0, {}, 1);
  std::vector<uint8_t> dst(plan.tensors[0].bytes_out);
  try {
    write_quantized_tensor(in, plan, 0, dst.data());
    FAIL("no error");
  } catch (const lm::FormatError& e) {
    CHECK(std::string(e.what()).find("'blk.0.attn_q.weight' contains NaN at element 70") != std::string::npos);
  }
}
