#include "quant/imatrix.hpp"

#include <cmath>
#include <cstring>

#include "base/error.hpp"
#include "format/gguf.hpp"

namespace lm::quant {

namespace {

constexpr std::string_view kSums = ".in_sum2", kCounts = ".counts";
constexpr const char* kKeyDatasets = "imatrix.datasets";
constexpr const char* kKeyChunkCount = "imatrix.chunk_count";
constexpr const char* kKeyChunkSize = "imatrix.chunk_size";

bool strip_suffix(std::string& s, std::string_view suffix) {
  if (s.size() <= suffix.size() || s.compare(s.size() - suffix.size(), suffix.size(), suffix) != 0) return false;
  s.resize(s.size() - suffix.size());
  return true;
}

std::vector<float> read_f32(const format::GgufTensorInfo& t) {
  std::vector<float> v(size_t(t.n_elements()));
  std::memcpy(v.data(), t.data, v.size() * sizeof(float));
  return v;
}

}  // namespace

void Imatrix::accumulate(const std::string& name, const float* x, int rows, int cols) {
  ImatrixEntry& e = entries[name];
  if (e.counts.empty()) {
    e.cols = cols;
    e.sums.assign(size_t(cols), 0.0f);
    e.counts.assign(1, 0);
  } else if (e.cols != cols || e.n_mat() != 1) {
    throw Error("importance matrix entry " + name + " has " + std::to_string(e.cols) + " columns, not " +
                std::to_string(cols));
  }
  float* acc = e.sums.data();
  for (int r = 0; r < rows; ++r) {
    const float* row = x + size_t(r) * size_t(cols);
    for (int j = 0; j < cols; ++j) acc[j] += row[j] * row[j];
  }
  e.counts[0] += rows;
}

std::vector<float> Imatrix::importance(const ImatrixEntry& e) {
  std::vector<float> w(e.sums.size());
  const size_t n = size_t(e.cols);
  for (size_t m = 0; m < e.counts.size(); ++m) {
    const float count = float(e.counts[m]);
    for (size_t i = 0; i < n; ++i) w[m * n + i] = count > 0.0f ? e.sums[m * n + i] / count : 1.0f;
  }
  return w;
}

Imatrix read_imatrix(const std::string& path) {
  const format::GgufFile g = format::GgufFile::open(path);
  Imatrix m;
  // NAME -> (in_sum2, counts)
  std::map<std::string, std::pair<const format::GgufTensorInfo*, const format::GgufTensorInfo*>> pairs;
  for (const format::GgufTensorInfo& t : g.tensors()) {
    std::string name = t.name;
    if (strip_suffix(name, kSums))
      pairs[name].first = &t;
    else if (strip_suffix(name, kCounts))
      pairs[name].second = &t;
  }
  if (pairs.empty())
    throw FormatError(path, "is not an importance matrix: it has no NAME.in_sum2 and NAME.counts tensors (llama.cpp's "
                            "imatrix GGUF format; its older .dat format is not read)");
  for (const auto& [name, p] : pairs) {
    const auto* sums = p.first;
    const auto* counts = p.second;
    if (!sums || !counts)
      throw FormatError(path, "entry " + name + " has " + (sums ? "in_sum2 but no counts" : "counts but no in_sum2") +
                                  " tensor");
    if (sums->type != format::GgmlType::F32 || counts->type != format::GgmlType::F32)
      throw FormatError(path, "entry " + name + ": in_sum2 and counts must be F32");
    const int64_t n_mat = counts->ne[1];
    if (counts->ne[0] != 1 || counts->ne[2] != 1 || counts->ne[3] != 1 || sums->ne[1] != n_mat || sums->ne[2] != 1 ||
        sums->ne[3] != 1 || sums->ne[0] < 1)
      throw FormatError(path, "entry " + name + ": in_sum2 {" + std::to_string(sums->ne[0]) + ", " +
                                  std::to_string(sums->ne[1]) + "} does not fit counts {" +
                                  std::to_string(counts->ne[0]) + ", " + std::to_string(counts->ne[1]) + "}");
    ImatrixEntry e;
    e.cols = sums->ne[0];
    e.sums = read_f32(*sums);
    for (float v : e.sums)
      if (!std::isfinite(v) || v < 0) throw FormatError(path, "entry " + name + " holds a non-finite or negative sum");
    for (float c : read_f32(*counts)) {
      if (!std::isfinite(c) || c < 0 || c > 9e15f) throw FormatError(path, "entry " + name + " has a bad count");
      e.counts.push_back(std::llround(c));
    }
    m.entries.emplace(name, std::move(e));
  }
  if (const auto* d = g.try_get_string_array(kKeyDatasets)) m.datasets = *d;
  m.chunk_count = g.try_get_u32(kKeyChunkCount).value_or(0);
  m.chunk_size = g.try_get_u32(kKeyChunkSize).value_or(0);
  return m;
}

void save_imatrix(const std::string& path, const Imatrix& m) {
  format::GgufWriter w;
  w.set_string("general.type", "imatrix");
  w.set_array_string(kKeyDatasets, m.datasets);
  w.set_u32(kKeyChunkCount, m.chunk_count);
  w.set_u32(kKeyChunkSize, m.chunk_size);
  std::vector<std::vector<float>> counts;
  counts.reserve(m.entries.size());
  for (const auto& [name, e] : m.entries) {  // std::map: name order, as llama-imatrix sorts them
    // {cols, n_mat} and {1, n_mat}, trailing 1s dropped as ggml writes shapes.
    const int64_t n_mat = e.n_mat();
    const std::vector<int64_t> sums_ne = n_mat > 1 ? std::vector<int64_t>{e.cols, n_mat} : std::vector<int64_t>{e.cols};
    const std::vector<int64_t> counts_ne = n_mat > 1 ? std::vector<int64_t>{1, n_mat} : std::vector<int64_t>{1};
    w.add_tensor(name + std::string(kSums), format::GgmlType::F32, sums_ne, e.sums.data());
    counts.emplace_back(e.counts.begin(), e.counts.end());
    w.add_tensor(name + std::string(kCounts), format::GgmlType::F32, counts_ne, counts.back().data());
  }
  w.save(path);
}

}  // namespace lm::quant
