// Tests for lib/quant/imatrix: accumulation against a plain double loop, llama-quantize's
// importance (sum / count), the GGUF round trip, a file llama-imatrix wrote (read, and written
// back byte for byte), and files that are not importance matrices.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "base/file.hpp"
#include "base/rng.hpp"
#include "format/gguf.hpp"
#include "quant/imatrix.hpp"
#include "test_util.hpp"

using namespace lm;
using namespace lm::quant;

namespace {

const std::string kLlamaFile = std::string(LM_TEST_DATA_DIR) + "/quant/llama_imatrix_tiny.gguf";

}  // namespace

TEST_CASE("accumulate: per column sums of squares over every row and call, and the rows counted") {
  Rng rng(3);
  const int cols = 37;
  std::vector<float> a(size_t(5) * cols), b(size_t(11) * cols);
  for (auto& v : a) v = float(rng.normal());
  for (auto& v : b) v = float(rng.normal()) * 3.0f;
  Imatrix m;
  m.accumulate("blk.0.attn_q.weight", a.data(), 5, cols);
  m.accumulate("blk.0.attn_q.weight", b.data(), 11, cols);
  const ImatrixEntry& e = m.entries.at("blk.0.attn_q.weight");
  REQUIRE(e.cols == cols);
  REQUIRE(e.counts == std::vector<int64_t>{16});
  for (int j = 0; j < cols; ++j) {
    double want = 0;
    float same_order = 0;  // llama-imatrix's order: row after row, in float
    for (int r = 0; r < 5; ++r) want += double(a[size_t(r * cols + j)]) * a[size_t(r * cols + j)];
    for (int r = 0; r < 11; ++r) want += double(b[size_t(r * cols + j)]) * b[size_t(r * cols + j)];
    for (int r = 0; r < 5; ++r) same_order += a[size_t(r * cols + j)] * a[size_t(r * cols + j)];
    for (int r = 0; r < 11; ++r) same_order += b[size_t(r * cols + j)] * b[size_t(r * cols + j)];
    CHECK(e.sums[size_t(j)] == doctest::Approx(want).epsilon(1e-5));
    CHECK(e.sums[size_t(j)] == same_order);
  }
  CHECK_THROWS_AS(m.accumulate("blk.0.attn_q.weight", a.data(), 1, cols - 1), Error);
}

TEST_CASE("importance: each matrix's sums over its count, 1 where nothing was counted") {
  ImatrixEntry e;
  e.cols = 3;
  e.sums = {3, 6, 9, 5, 5, 5};
  e.counts = {3, 0};
  CHECK(Imatrix::importance(e) == std::vector<float>{1, 2, 3, 1, 1, 1});
}

TEST_CASE("save and read: the same entries and metadata") {
  test::TempDir dir;
  Imatrix m;
  m.datasets = {"a.txt", "b.txt"};
  m.chunk_count = 7, m.chunk_size = 64;
  m.entries["blk.1.ffn_down.weight"] = {3, {1.5f, 0.0f, 2.25f}, {12}};
  m.entries["blk.0.attn_q.weight"] = {2, {1, 2, 3, 4}, {5, 0}};  // two matrices (experts)
  const std::string path = dir.path() + "/m.gguf";
  save_imatrix(path, m);
  const Imatrix r = read_imatrix(path);
  CHECK(r.datasets == m.datasets);
  CHECK(r.chunk_count == 7);
  CHECK(r.chunk_size == 64);
  REQUIRE(r.entries.size() == 2);
  for (const auto& [name, e] : m.entries) {
    CAPTURE(name);
    const ImatrixEntry& g = r.entries.at(name);
    CHECK(g.cols == e.cols);
    CHECK(g.sums == e.sums);
    CHECK(g.counts == e.counts);
  }
  // llama-imatrix's names, types and shapes (trailing 1s dropped), in name order.
  const auto g = format::GgufFile::open(path);
  CHECK(g.get_string("general.type") == "imatrix");
  REQUIRE(g.tensors().size() == 4);
  CHECK(g.tensors()[0].name == "blk.0.attn_q.weight.in_sum2");
  CHECK(g.tensors()[0].n_dims == 2);
  CHECK(g.tensors()[1].name == "blk.0.attn_q.weight.counts");
  CHECK(g.tensors()[2].name == "blk.1.ffn_down.weight.in_sum2");
  CHECK(g.tensors()[2].n_dims == 1);
}

TEST_CASE("a file llama-imatrix wrote: read, and written back to the same bytes") {
  const Imatrix m = read_imatrix(kLlamaFile);
  CHECK(m.datasets == std::vector<std::string>{"cal.txt"});
  CHECK(m.chunk_count == 20);
  CHECK(m.chunk_size == 32);
  REQUIRE(m.entries.size() == 14);
  for (const auto& [name, e] : m.entries) {
    CAPTURE(name);
    CHECK(name.rfind("blk.", 0) == 0);
    CHECK(e.counts == std::vector<int64_t>{640});
    CHECK(e.cols == 256);
    double sum = 0;
    for (float v : e.sums) sum += v;
    CHECK(sum > 0);
  }
  test::TempDir dir;
  save_imatrix(dir.path() + "/again.gguf", m);
  CHECK(load_file(dir.path() + "/again.gguf") == load_file(kLlamaFile));
}

TEST_CASE("not an importance matrix: one error naming the file") {
  test::TempDir dir;
  const std::string model = dir.path() + "/model.gguf";
  {
    format::GgufWriter w;
    const std::vector<float> x(8, 1.0f);
    w.add_tensor("blk.0.attn_q.weight", format::GgmlType::F32, {4, 2}, x.data());
    w.save(model);
  }
  try {
    read_imatrix(model);
    FAIL("no error");
  } catch (const FormatError& e) {
    CHECK(std::string(e.what()).find("model.gguf") != std::string::npos);
    CHECK(std::string(e.what()).find("is not an importance matrix") != std::string::npos);
  }
  const std::string half = dir.path() + "/half.gguf";
  {
    format::GgufWriter w;
    const std::vector<float> x(4, 1.0f);
    w.add_tensor("blk.0.attn_q.weight.in_sum2", format::GgmlType::F32, {4}, x.data());
    w.save(half);
  }
  CHECK_THROWS_WITH_AS(read_imatrix(half), doctest::Contains("has in_sum2 but no counts"), FormatError);
  const std::string bad = dir.path() + "/bad.gguf";
  {
    format::GgufWriter w;
    const std::vector<float> x = {1, 2, 3, NAN}, c = {4};
    w.add_tensor("blk.0.attn_q.weight.in_sum2", format::GgmlType::F32, {4}, x.data());
    w.add_tensor("blk.0.attn_q.weight.counts", format::GgmlType::F32, {1}, c.data());
    w.save(bad);
  }
  CHECK_THROWS_WITH_AS(read_imatrix(bad), doctest::Contains("non-finite"), FormatError);
  const std::string shape = dir.path() + "/shape.gguf";
  {
    format::GgufWriter w;
    const std::vector<float> x(8, 1.0f), c = {4};
    w.add_tensor("blk.0.attn_q.weight.in_sum2", format::GgmlType::F32, {4, 2}, x.data());
    w.add_tensor("blk.0.attn_q.weight.counts", format::GgmlType::F32, {1}, c.data());
    w.save(shape);
  }
  CHECK_THROWS_WITH_AS(read_imatrix(shape), doctest::Contains("does not fit counts"), FormatError);
}
