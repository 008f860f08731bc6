#include "eval/imatrix.hpp"

#include <algorithm>
#include <cmath>

#include "base/error.hpp"
#include "model/arch.hpp"

namespace lm::eval {

std::map<std::pair<int, model::Role>, std::string> imatrix_names(const model::ModelConfig& cfg) {
  std::map<std::pair<int, model::Role>, std::string> names;
  const model::ArchDef* arch = model::find_arch(cfg.arch.name);
  LM_ASSERT(arch);
  for (const model::TensorSpec& t : arch->tensors(cfg))
    if (t.rows > 1) names[{t.layer, t.role}] = t.name;
  return names;
}

ImatrixCollector::ImatrixCollector(model::Session& session, std::map<std::pair<int, model::Role>, std::string> names,
                                   quant::Imatrix& out, const ImatrixOptions& opts, int bos)
    : s_(session), names_(std::move(names)), out_(out), o_(opts), bos_(bos) {
  if (o_.n_ctx < 2 || o_.n_ctx > s_.n_ctx())
    throw UsageError("chunk length " + std::to_string(o_.n_ctx) + " is out of range [2, " + std::to_string(s_.n_ctx()) +
                     "]");
  if (o_.n_batch < 1 || o_.n_batch > s_.n_batch()) throw UsageError("bad batch size " + std::to_string(o_.n_batch));
  chunk_.reserve(size_t(o_.n_ctx));
  if (o_.add_bos) chunk_.push_back(bos_);
  out_.chunk_size = uint32_t(o_.n_ctx);
  s_.set_observer(this);
}

ImatrixCollector::~ImatrixCollector() { s_.set_observer(nullptr); }

void ImatrixCollector::add(const int* ids, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    chunk_.push_back(ids[i]);
    if (chunk_.size() == size_t(o_.n_ctx)) run_chunk();
  }
  fed_ += n;
}

void ImatrixCollector::run_chunk() {
  if (o_.add_bos) chunk_[0] = bos_;
  s_.keep(0);
  const int n = int(chunk_.size());
  for (int b0 = 0; b0 < n; b0 += o_.n_batch) {
    const int m = std::min(o_.n_batch, n - b0);
    // Logits only when the head is collected: otherwise no row goes through it.
    const model::Session::Chunk c{0, chunk_.data() + b0, m, o_.process_output ? 0 : m};
    s_.eval_batch(&c, 1);
  }
  if (!non_finite_.empty())
    throw Error("the activations of " + non_finite_ + " summed to a non-finite value in chunk " +
                std::to_string(chunks_ + 1));
  chunk_.clear();
  ++chunks_;
  out_.chunk_count = uint32_t(chunks_);
}

void ImatrixCollector::observe(int layer, model::Role role, const kernels::QWeight& W, const float* x, int rows) {
  if (rows < kImatrixMinRows) return;
  const auto it = names_.find({layer, role});  // a tied head (token_embd) has no Head name: skipped
  if (it == names_.end()) return;
  const std::string& name = it->second;
  if (!(name.compare(0, 4, "blk.") == 0 || (o_.process_output && name == "output.weight"))) return;
  out_.accumulate(name, x, rows, W.cols);
  if (non_finite_.empty()) {
    const quant::ImatrixEntry& e = out_.entries[name];
    for (float v : e.sums)
      if (!std::isfinite(v)) {
        non_finite_ = name;
        break;
      }
  }
}

}  // namespace lm::eval
